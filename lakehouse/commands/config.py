"""Create the data lake layout and seed the feed catalog; show the catalog; apply and discover the ksqlDB topology;
print the status of the whole pipeline (lake, warehouse, reconciliation, consumer lag); migrate a lake of an older
folder layout; compact the small files of closed stream days; query the lake as a user, through their
permissions."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from lakehouse import cli
from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

# Each subcommand imports its own modules in its function: status and query load MySQL, DuckDB and pandas (about
# 1 s of CPU), which `show` and `init`, run by the orchestrator every few minutes, must not pay.

USER_ENV = "LAKEHOUSE_USER"  # who asks, for query without --as
QUERY_FORMATS = ("text", "csv", "json", "parquet")  # what governance.query.formatted writes

EXAMPLES = """
  python data_lake_config.py init      # create folders, seed the built-in feeds (idempotent)
  python data_lake_config.py show      # print the feed catalog
  DATA_LAKE_ROOT=/srv/lake python data_lake_config.py init
  python data_lake_config.py apply-ksql              # run ksql/*.sql on KSQLDB_URL, in order (idempotent)
  python data_lake_config.py discover                # ksqlDB streams/tables, topics, schemas; which are not feeds yet
  python data_lake_config.py status                  # lake and warehouse contents, reconciliation, consumer lag
  python data_lake_config.py status --json           # the same as one JSON document (keys: docs/status.md)
  python data_lake_config.py status --html status.html   # and as a self-contained HTML page with charts
  python data_lake_config.py migrate --dry-run        # what moving an older lake to the current layout would do
  python data_lake_config.py migrate                  # do it (idempotent; rerun after an interruption)
  python data_lake_config.py compact --dry-run        # closed days, files and bytes a compaction would merge
  python data_lake_config.py compact --feeds transaction_stream --before 2026-09-01 --target-file-mb 256
  python data_lake_config.py query --as ada@example.com "SELECT count(*) FROM transaction_stream WHERE month = 11"
  LAKEHOUSE_USER=ada@example.com python data_lake_config.py query --format csv --output top.csv \\
      "SELECT * FROM product_purchase_counts ORDER BY purchase_count DESC LIMIT 10"
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("data_lake_config.py", __doc__, EXAMPLES,
                        more_env=[(USER_ENV, "who asks, for query without --as")])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the lake layout and seed the built-in feeds")
    commands.add_parser("show", help="print the feed catalog as a table")
    apply = commands.add_parser("apply-ksql", help="apply the ksqlDB statements of ksql/*.sql in file-name order")
    apply.add_argument("--dir", default="ksql", help="folder of the .sql files (default: ksql)")
    commands.add_parser("discover", help="list ksqlDB streams and tables, marking those that are not feeds yet")
    show_status = commands.add_parser(
        "status", help="per feed what the lake holds, MySQL row counts, reconciliation, consumer lag "
                       "(exit 1 on a mismatch)")
    show_status.add_argument("--json", action="store_true",
                             help="print one JSON document instead of text (its keys: docs/status.md)")
    show_status.add_argument("--html", metavar="FILE",
                             help="also write a self-contained HTML page with charts to FILE (replaced atomically)")
    migrate = commands.add_parser("migrate", help="rewrite a lake of an older folder layout (month=09, version=v3) "
                                                  "into the current one, in place; stop the consumers first")
    migrate.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    compact = commands.add_parser("compact", help="merge the small files of each closed stream day into a few "
                                                  "large ones sorted by event time (safe while everything runs)")
    compact.add_argument("--feeds", type=cli.csv_list, default=[], metavar="a,b",
                         help="stream feeds to compact (default: every active append-mode stream)")
    compact.add_argument("--before", type=date.fromisoformat, metavar="YYYY-MM-DD",
                         help="compact the days before this date (default: the days each feed's lateness window "
                              "has closed: older than today minus lateness_days)")
    compact.add_argument("--target-file-mb", type=cli.at_least(1), default=128, metavar="N",  # compaction.DEFAULT_
                         # TARGET_FILE_MB, not imported: building the parser stays light (start-up)
                         help="size of the merged files (default %(default)s)")
    compact.add_argument("--dry-run", action="store_true", help="print the days, files and bytes, change nothing")
    compact.set_defaults(default_log_level="INFO")  # one line per step: how far a run got
    migrate.set_defaults(default_log_level="INFO")  # one line per change: how far a run got
    ask = commands.add_parser("query", help="run one SQL query (DuckDB) over the lake views the user may read now; "
                                            "every query is audited; exit 1 when refused")
    ask.add_argument("sql", help="one SELECT over views named after the feeds (a table feed's current version; "
                                 "<feed>_versions: all of its versions)")
    ask.add_argument("--as", dest="user", metavar="EMAIL", help=f"who asks (default: ${USER_ENV})")
    ask.add_argument("--format", choices=QUERY_FORMATS, default="text", help="output format (default: text)")
    ask.add_argument("--output", metavar="FILE", help="write the result to FILE instead of stdout "
                                                      "(needed for parquet)")
    args = parser.parse_args(argv)
    if args.command == "query" and args.format == "parquet" and not args.output:
        parser.error("--format parquet needs --output FILE")

    settings = load_settings()
    if args.command == "compact":
        return compact_lake(settings, args.feeds, args.before, args.target_file_mb, args.dry_run)
    if args.command == "migrate":
        return migrate_lake(settings, args.dry_run)
    catalog = FeedCatalog(LakeStorage(settings.data_lake_root))
    if args.command == "init":
        return init(settings, catalog)
    if args.command == "apply-ksql":
        return apply_ksql(settings, args.dir)
    if args.command == "discover":
        return discover(settings, catalog)
    if args.command == "status":
        return print_status(settings, args.json, args.html)
    if args.command == "query":
        return run_query(settings, args)
    return show(catalog)


def init(settings: Settings, catalog: FeedCatalog) -> int:
    created, kept = catalog.init()
    print(f"lake root: {settings.data_lake_root}")
    print(f"feeds created: {', '.join(created) or 'none'}")
    print(f"feeds kept as they are: {', '.join(kept) or 'none'}")
    return 0


def show(catalog: FeedCatalog) -> int:
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


def apply_ksql(settings: Settings, directory: str) -> int:
    from lakehouse.kafka import ksqldb

    applied = ksqldb.apply_topology(settings, directory)
    print(f"ksqlDB: {settings.ksqldb_url}")
    print(render(["file", "statement", "ksqlDB says"], [[a.file, a.statement, a.outcome] for a in applied]))
    print(f"{len(applied)} statements applied")
    return 0


def print_status(settings: Settings, as_json: bool, html_file: str | None) -> int:
    from lakehouse.governance import status, status_json, status_report

    summary = status.collect(settings)
    if html_file:
        status_report.write(summary, html_file)
        print(f"status report written to {html_file}", file=sys.stderr)  # stderr: stdout stays one document
    if as_json:
        print(orjson.dumps(status_json.document(summary), option=orjson.OPT_INDENT_2).decode())
    else:
        print(summary.render())
    return 0 if summary.ok else 1


def migrate_lake(settings: Settings, dry_run: bool) -> int:
    from lakehouse.lake import migration

    print(f"lake root: {settings.data_lake_root}")
    for line in migration.migrate(settings.data_lake_root, dry_run).describe(dry_run):
        print(line)
    return 0


def compact_lake(settings: Settings, feeds: list[str], before: date | None, target_file_mb: int,
                 dry_run: bool) -> int:
    from lakehouse.lake import compaction

    storage = LakeStorage(settings.data_lake_root)
    chosen = FeedCatalog(storage).select(names=feeds, kind="stream")
    target = target_file_mb * compaction.MB
    if not dry_run:
        for feed in compaction.compactable(chosen):
            compaction.recover(storage, feed.name)
    planned = compaction.plan(storage, chosen, datetime.now(UTC).date(), before, target)
    if not dry_run:
        planned = list(compaction.compact(storage, planned, target))
    for day in planned:
        print(day.describe(dry_run))
    files, size = sum(len(day.inputs) for day in planned), sum(day.input_bytes for day in planned)
    verb = "would merge" if dry_run else "merged"
    print(f"{verb} {files} files ({size:,} bytes) of {len(planned)} closed days into "
          f"{sum(day.outputs for day in planned)} files" if planned else "nothing to compact")
    return 0


def run_query(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.governance import query

    asked = query.run_query(settings, user_or_env(args.user), args.sql, progress=sys.stderr)
    if asked.table is None:
        print(f"{'refused' if asked.outcome == 'refused' else 'error'}: {asked.reason}", file=sys.stderr)
        return 1 if asked.outcome == "refused" else 2
    result = query.formatted(asked.table, args.format)
    if args.output:
        Path(args.output).write_bytes(result)
        print(f"{asked.table.num_rows} rows written to {args.output} ({args.format})")
    else:
        sys.stdout.buffer.write(result)
    return 0


def user_or_env(given: str | None) -> str:
    """The querying user: --as, else LAKEHOUSE_USER (a .env file may set it); query.run_query validates it."""
    email = given or os.environ.get(USER_ENV, "")
    if not email:
        raise LakehouseError(f"who is asking? give --as EMAIL or set {USER_ENV}")
    return email


def discover(settings: Settings, catalog: FeedCatalog) -> int:
    from lakehouse.kafka import ksqldb

    sources = ksqldb.discover(settings, catalog)
    print(render(["name", "kind", "topic", "feed", "schema"],
                 [[s.name, s.kind, s.topic, "yes" if s.is_feed else "NO", s.schema] for s in sources]))
    missing = [s.name for s in sources if not s.is_feed]
    if missing:
        print(f"not yet feeds: {', '.join(missing)} (add one with: python manage_feeds.py add --from-ksqldb NAME)")
    return 0
