#!/usr/bin/env python3
"""Land Kafka feeds in the data lake: streams as Parquet by event date, exactly once; tables as versioned
snapshots of their changelog; bad records quarantined with their reason.

Continuous by default (SIGINT/SIGTERM: land what is buffered, commit, exit 0). Several copies with the same
--group-id share the partitions.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from lakehouse import cli, metrics
from lakehouse.catalog import FeedCatalog
from lakehouse.lake.consumer import DEFAULT_GROUP, LandingOptions, default_group_id, feeds_to_land, land
from lakehouse.lake.reconcile import reconcile
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

EXAMPLES = """
  python kafka_consumer_datalake.py                                  # every active feed, continuously
  python kafka_consumer_datalake.py --until-end                      # land what is there now, then exit
  python kafka_consumer_datalake.py --feeds transaction_stream --flush-size 10000 --flush-interval 5
  python kafka_consumer_datalake.py --topics clickstream --max-messages 1000   # registers feed 'clickstream'
  python kafka_consumer_datalake.py --reconcile                      # consumed = landed + quarantined?
  python kafka_consumer_datalake.py --metrics-port 9400              # Prometheus metrics at :9400/metrics
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("kafka_consumer_datalake.py", __doc__, EXAMPLES)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--topics", type=cli.csv_list, help="Kafka topics a,b (a topic without a feed gets one)")
    source.add_argument("--feeds", type=cli.csv_list, help="catalog feeds a,b (default: every active feed)")
    parser.add_argument("--group-id", help=f"consumer group (default: <LAKEHOUSE_TOPIC_PREFIX>{DEFAULT_GROUP}, the "
                                           "group export_to_data_lake.py joins)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--until-end", action="store_true",
                       help="stop once every partition (landed here, or by another member of the group as the "
                            "lake's offsets show) reaches the end offset seen at start")
    bound.add_argument("--max-messages", type=cli.at_least(1), metavar="N", help="stop after N records")
    parser.add_argument("--flush-size", type=cli.at_least(1), default=LandingOptions.flush_size, metavar="N",
                        help="records per (partition, day) buffer that trigger a flush (default %(default)s)")
    parser.add_argument("--flush-interval", type=float, default=LandingOptions.flush_interval, metavar="SECONDS",
                        help="longest wait before buffered records land, idle or not (default %(default)s)")
    parser.add_argument("--snapshot-interval", type=float, default=LandingOptions.snapshot_interval,
                        metavar="SECONDS",
                        help="table feeds: at most one new version per interval (default %(default)s)")
    parser.add_argument("--reconcile", action="store_true",
                        help="only print, per feed, records consumed = rows landed + records quarantined")
    metrics.add_port_option(parser)
    args = parser.parse_args(argv)
    if args.flush_interval <= 0:
        parser.error("--flush-interval must be positive")

    settings = load_settings()
    storage = LakeStorage(settings.data_lake_root)
    if args.reconcile:
        return print_reconciliation(storage, args.feeds)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    feeds = feeds_to_land(settings, storage, args.feeds, args.topics)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    options = LandingOptions(group_id=args.group_id or default_group_id(settings), until_end=args.until_end,
                             max_messages=args.max_messages, flush_size=args.flush_size,
                             flush_interval=args.flush_interval,
                             snapshot_interval=args.snapshot_interval,
                             progress=sys.stderr.isatty() and (args.until_end or args.max_messages is not None))
    registry = metrics.ConsumerMetrics()
    registry.serve(args.metrics_port, settings)
    summary = land(settings, feeds, options, stop, registry)
    for topic in summary.skipped_topics:
        print(f"skipped (topic does not exist): {topic}")
    print(summary.render())
    return 0


def print_reconciliation(storage: LakeStorage, feed_names: list[str] | None) -> int:
    catalog = FeedCatalog(storage)
    feeds = [catalog.get(name) for name in feed_names] if feed_names else catalog.list()
    results = reconcile(storage, feeds)
    print(render(["feed", "consumed", "landed", "quarantined", "balanced"],
                 [[r.feed, r.consumed, r.landed, r.quarantined, "yes" if r.balanced else "NO"] for r in results]))
    for r in results:
        if r.retired:
            print(f"{r.feed}: landed and quarantined include {r.retired:,} rows data_retention.py has deleted since")
    return 0 if all(r.balanced for r in results) else 1


if __name__ == "__main__":
    sys.exit(cli.run(main))
