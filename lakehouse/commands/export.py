"""Export feeds to the data lake in one bounded run: tables as a new snapshot version, streams into date partitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from lakehouse import cli
from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.lake import export
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage

EXAMPLES = """
  python export_to_data_lake.py --all                              # every active feed; ksqlDB if reachable, else Kafka
  python export_to_data_lake.py --table product_purchase_counts --source kafka   # new version=N if it changed
  python export_to_data_lake.py --stream transaction_stream        # land what the lake has not landed yet
  python export_to_data_lake.py --stream transaction_stream --date 2026-11-25   # rebuild that day's partition
  python export_to_data_lake.py --stream transaction_stream --date 2026-11-25 --allow-shrink   # even with fewer rows
  python export_to_data_lake.py --all --dry-run                    # what would be written; writes nothing
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("export_to_data_lake.py", __doc__, EXAMPLES, env=("kafka", "ksqldb", "lake"))
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--stream", metavar="NAME", help="export one stream feed")
    what.add_argument("--table", metavar="NAME", help="export one table feed")
    what.add_argument("--all", action="store_true", help="export every active feed of the catalog")
    parser.add_argument("--source", choices=export.SOURCES,
                        help="where rows come from (default: ksqldb when reachable, else kafka)")
    parser.add_argument("--date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="streams: re-export that day only, replacing its partition atomically")
    parser.add_argument("--allow-shrink", action="store_true",
                        help="with --date: replace the day even when the rebuild holds fewer rows than the day does "
                             "(records Kafka has already expired are then gone from the lake too)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    args = parser.parse_args(argv)
    if args.date and args.table:
        parser.error("--date applies to streams (a table is exported as a whole new version)")
    if args.allow_shrink and not args.date:
        parser.error("--allow-shrink applies to a backfill (--date)")

    settings = load_settings()
    storage = LakeStorage(settings.data_lake_root)
    named = args.stream or args.table
    feeds = FeedCatalog(storage).select(names=[named] if named else (), kind="stream" if args.stream else
                                        "table" if args.table else None)
    if not feeds:
        raise LakehouseError("no active feeds in the catalog (run: python data_lake_config.py init)")
    source, why = export.choose_source(settings, args.source)
    print(why)
    export.export_feeds(settings, storage, feeds, source, day=args.date, dry_run=args.dry_run,
                        skip_missing=args.all, allow_shrink=args.allow_shrink)
    if args.dry_run:
        print("dry run: nothing was written")
    return 0
