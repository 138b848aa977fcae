#!/usr/bin/env python3
"""Consume the ksqlDB table changelogs into the MySQL warehouse, exactly once.

Offsets live in MySQL (table kafka_offsets), committed in the same transaction as the rows; a crash
or a MySQL outage never loses or duplicates a change. SIGTERM (or Ctrl-C) flushes and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from lakehouse import cli, metrics
from lakehouse.catalog import FeedCatalog
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.connection import describe
from lakehouse.warehouse.consumer import ConsumerOptions, ConsumerSummary, WarehouseConsumer, default_group_id

EXAMPLES = """
  python kafka_consumer_warehouse.py                       # every enabled table feed, runs until SIGTERM
  python kafka_consumer_warehouse.py --until-end           # catch up with the topics, then exit
  python kafka_consumer_warehouse.py --feeds payment_method_totals,product_purchase_counts
  python kafka_consumer_warehouse.py --topics user_transaction_summary --max-messages 10000
  python kafka_consumer_warehouse.py --group-id warehouse-replay --until-end   # a fresh replay
  python kafka_consumer_warehouse.py --metrics-port 9401           # Prometheus metrics at :9401/metrics
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    settings = load_settings()
    feeds = FeedCatalog(LakeStorage(settings.data_lake_root)).select(
        names=args.feeds or (), topics=args.topics or (), kind="table", topic_prefix=settings.topic_prefix)
    if not feeds:
        print("no active table feed to consume (see: python data_lake_config.py show)")
        return 1
    options = ConsumerOptions(group_id=args.group_id or default_group_id(settings), until_end=args.until_end,
                              max_messages=args.max_messages)
    registry = metrics.ConsumerMetrics(uses_mysql=True)
    consumer = WarehouseConsumer(settings, feeds, options, metrics=registry)
    registry.serve(args.metrics_port, settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: consumer.request_stop())
    print(f"consuming {', '.join(settings.topic(f.topic) for f in feeds)} into {describe(settings)} "
          f"as group {options.group_id}", flush=True)
    _print_summary(consumer.run())
    return 0


def _print_summary(summary: ConsumerSummary) -> None:
    print(f"consumed {summary.consumed} records in {summary.batches} committed batches: "
          f"{summary.upserted} rows upserted, {summary.deleted} deleted, {summary.quarantined} quarantined")
    if summary.uncommitted:
        print(f"stopped while MySQL was unreachable: {summary.uncommitted} records not committed "
              "(they are read again on the next start)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("kafka_consumer_warehouse.py", __doc__, EXAMPLES)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--topics", type=cli.csv_list, help="comma-separated topics of table feeds (default: all)")
    which.add_argument("--feeds", type=cli.csv_list, help="comma-separated table feed names (default: all)")
    parser.add_argument("--group-id", help="consumer group; its offsets are kept in MySQL "
                                           "(default: <LAKEHOUSE_TOPIC_PREFIX>lakehouse-warehouse)")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--until-end", action="store_true",
                      help="stop once every partition of the topics (read here, or by another member of the "
                           "group as MySQL's offsets show) reaches the end offset seen at start")
    stop.add_argument("--max-messages", type=_positive, help="stop after this many records")
    metrics.add_port_option(parser)
    return parser


if __name__ == "__main__":
    sys.exit(cli.run(main))
