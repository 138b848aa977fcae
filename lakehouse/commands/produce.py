"""Produce seeded transaction events to Kafka (and, with --derive, what ksqlDB would derive from them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from lakehouse import cli
from lakehouse.kafka.clients import DEFAULT_PARTITIONS
from lakehouse.produce.events import GeneratorOptions
from lakehouse.produce.producer import RAW_TOPIC, ProduceOptions, ProduceReport, produce_events
from lakehouse.settings import load_settings

EXAMPLES = """
  python kafka_producer.py --messages 100000 --rate 0 --seed 7       # as fast as possible, prints events/s
  python kafka_producer.py --messages 600 --rate 10                  # 10 events per second for a minute
  python kafka_producer.py --days 30 --start 2026-01-01 --users 500   # timestamps spread over 30 days
  python kafka_producer.py --derive    # also the derived streams and table changelogs (no ksqlDB running)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    generator = GeneratorOptions(messages=args.messages, seed=args.seed, users=args.users, days=args.days,
                                 start=args.start)
    options = ProduceOptions(topic=args.topic, rate=args.rate, derive=args.derive, partitions=args.partitions,
                             progress=sys.stderr.isatty())
    report = produce_events(load_settings(), generator, options)
    _print_report(report)
    if report.failed:
        print(f"error: {report.failed} record(s) failed delivery; first: {report.first_error}", file=sys.stderr)
        return 1
    return 130 if report.interrupted else 0


def _print_report(report: ProduceReport) -> None:
    derived = {topic: count for topic, count in report.delivered.items() if topic != report.topic}
    if derived:
        print("derived records: " + ", ".join(f"{topic}={count}" for topic, count in sorted(derived.items())))
    print(f"sent {report.events} events to {report.topic} in {report.seconds:.2f} s "
          f"({report.events_per_second:,.0f} events/s)")


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("kafka_producer.py", __doc__, EXAMPLES, env=("kafka",))
    parser.add_argument("--topic", default=RAW_TOPIC, help="raw event topic (default: %(default)s)")
    parser.add_argument("--messages", type=cli.at_least(0), default=1000, help="events to send (default: %(default)s)")
    parser.add_argument("--rate", type=cli.at_least(0, float), default=0.0,
                        help="events per second, 0 = as fast as possible (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="same seed and options -> same bytes (default: 42)")
    parser.add_argument("--users", type=cli.at_least(1), default=100, help="distinct users (default: %(default)s)")
    parser.add_argument("--days", type=cli.at_least(1), default=1,
                        help="spread event timestamps over this many days (default: %(default)s)")
    parser.add_argument("--start", type=_day, default=None,
                        help="first day, YYYY-MM-DD (default: --days days before today, UTC)")
    parser.add_argument("--derive", action="store_true",
                        help="also publish the derived streams and the four table changelogs, as ksqlDB would")
    parser.add_argument("--partitions", type=cli.at_least(1), default=DEFAULT_PARTITIONS,
                        help="partitions of topics this creates (default: %(default)s)")
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
