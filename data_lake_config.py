#!/usr/bin/env python3
"""Create the data lake layout and seed the feed catalog; show the catalog."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lakehouse import cli
from lakehouse.catalog import FeedCatalog
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage
from lakehouse.tables import render

EXAMPLES = """
  python data_lake_config.py init      # create folders, seed the built-in feeds (idempotent)
  python data_lake_config.py show      # print the feed catalog
  DATA_LAKE_ROOT=/srv/lake python data_lake_config.py init
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("data_lake_config.py", __doc__, EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the lake layout and seed the built-in feeds")
    commands.add_parser("show", help="print the feed catalog as a table")
    args = parser.parse_args(argv)

    settings = load_settings()
    catalog = FeedCatalog(LakeStorage(settings.data_lake_root))
    if args.command == "init":
        created, kept = catalog.init()
        print(f"lake root: {settings.data_lake_root}")
        print(f"feeds created: {', '.join(created) or 'none'}")
        print(f"feeds kept as they are: {', '.join(kept) or 'none'}")
        return 0
    feeds = catalog.list()
    if not feeds:
        print("the catalog is empty; run: python data_lake_config.py init")
        return 1
    print(render(
        ["feed", "kind", "topic", "ksql name", "mode", "partitioning", "retention", "keys", "warehouse", "status"],
        [[f.name, f.kind, f.topic, f.ksql_name, f.storage_mode, f.partitioning,
          f"{f.retention_days}d" if f.kind == "stream" else f"{f.keep_versions} versions",
          f.key_columns, f.warehouse_table, f.status] for f in feeds],
    ))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
