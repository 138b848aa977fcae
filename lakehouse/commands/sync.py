"""Load table snapshots into the MySQL warehouse as one numbered snapshot run: all tables land or none.

Each run replaces the rows of the tables it loads and stamps them with snapshot_version (the previous
run's + 1, or --version) and snapshot_date (today, UTC); the run is recorded in the sync_runs table.
A table whose snapshot is older than what kafka_consumer_warehouse.py has landed (kafka_offsets) is skipped
with one line, so the consumer's rows are never rolled back (docs/warehouse.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lakehouse import cli
from lakehouse.catalog import FeedCatalog
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.connection import describe
from lakehouse.warehouse.sync import SOURCES, sync

EXAMPLES = """
  python sync_to_mysql.py                                  # newest lake snapshot of every table feed
  python sync_to_mysql.py --table product_purchase_counts  # one table
  python sync_to_mysql.py --source kafka                   # materialize the changelog topics instead
  python sync_to_mysql.py --source ksqldb                  # pull queries against KSQLDB_URL
  python sync_to_mysql.py --version 7                      # stamp the rows with snapshot_version 7
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    feeds = FeedCatalog(LakeStorage(settings.data_lake_root)).select(names=[args.table] if args.table else (),
                                                                   kind="table")
    result = sync(settings, feeds, source=args.source, version=args.version,
                  warn=lambda text: print(f"warning: {text}", file=sys.stderr))
    print(f"snapshot version {result.version} ({result.day}) from {result.source} into {describe(settings)}:")
    for load in result.tables:
        extra = f", {load.quarantined} quarantined" if load.quarantined else ""
        print(f"  {load.feed.name} -> {load.mapping.table}: {len(load.payloads)} rows ({load.origin}{extra})")
    print(f"{result.row_count} rows in {len(result.tables)} tables, committed together")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("sync_to_mysql.py", __doc__, EXAMPLES, version_option=False)
    parser.add_argument("--table", help="one table feed (or its warehouse table name); default: every table feed")
    parser.add_argument("--source", choices=SOURCES, default="lake", help="where snapshots come from (default: lake)")
    parser.add_argument("--version", type=int, nargs="?", action=cli.VersionOrNumber, metavar="N",
                        help="snapshot_version to stamp (default: last run's + 1); alone: print the version")
    return parser
