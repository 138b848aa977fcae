"""Apply retention to the data lake: old stream partitions, old table versions, old quarantine.

A stream partition goes when its date is strictly older than N days before today (UTC); a table
keeps its newest K versions and always its current one; quarantine has its own number of days.
Nothing outside the lake root or behind a symlink is deleted (reported, exit code 1); every
deletion is written to _logs/retention_audit.jsonl.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from lakehouse import cli
from lakehouse.catalog import FeedCatalog
from lakehouse.governance import retention
from lakehouse.settings import load_settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

EXAMPLES = """
  python data_retention.py --all --dry-run                   # what every feed's policy would delete
  python data_retention.py --all                             # apply every policy + quarantine (30 days)
  python data_retention.py --stream transaction_stream --retention-days 30
  python data_retention.py --table payment_method_totals --keep-versions 2 --dry-run
  python data_retention.py --quarantine-days 7               # only the quarantine
  python data_retention.py --stream transaction_stream --retention-days 0 --force   # keep only today
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    storage = LakeStorage(load_settings().data_lake_root)
    policies = retention.resolve_policies(
        FeedCatalog(storage), all_feeds=args.all, stream=args.stream, retention_days=args.retention_days,
        table=args.table, keep_versions=args.keep_versions, quarantine_days=args.quarantine_days,
        force=args.force)
    planned = retention.plan(storage, policies, datetime.now(UTC).date())
    outcome = planned if args.dry_run else retention.apply(storage, planned)
    _report(outcome, args.dry_run)
    return 1 if outcome.skipped else 0


_days = cli.at_least(0, at_most=retention.MAX_RETENTION_DAYS)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser("data_retention.py", __doc__, EXAMPLES, env=("lake",))
    parser.add_argument("--all", action="store_true", help="apply each feed's policy from the catalog")
    parser.add_argument("--stream", metavar="NAME", help="one stream feed (its catalog policy unless overridden)")
    parser.add_argument("--retention-days", type=_days, metavar="N",
                        help="with --stream: delete partitions dated more than N days before today")
    parser.add_argument("--table", metavar="NAME", help="one table feed (its catalog policy unless overridden)")
    parser.add_argument("--keep-versions", type=cli.at_least(0), metavar="K",
                        help="with --table: keep the newest K versions (the current one always stays)")
    parser.add_argument("--quarantine-days", type=_days, metavar="N",
                        help=f"quarantine retention in days (default {retention.DEFAULT_QUARANTINE_DAYS} "
                             "with --all; given alone, only the quarantine is cleaned)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    parser.add_argument("--force", action="store_true", help="allow a retention of 0 days or 0 versions")
    args = parser.parse_args(argv)
    if args.retention_days is not None and args.stream is None:
        parser.error("--retention-days needs --stream NAME")
    if args.keep_versions is not None and args.table is None:
        parser.error("--keep-versions needs --table NAME")
    if not (args.all or args.stream or args.table or args.quarantine_days is not None):
        parser.error("nothing to do: give --all, --stream NAME, --table NAME or --quarantine-days N")
    return args


def _report(outcome: retention.Plan, dry_run: bool) -> None:
    items = outcome.candidates
    if items:
        print(render(["feed", "what", "path", "files", "bytes", "rows", "why"],
                     [[c.feed, c.target, c.path, c.files, c.bytes, "?" if c.rows is None else c.rows, c.reason]
                      for c in items]))
    rows = sum(c.rows or 0 for c in items)
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb}: {len(items)} folders, {sum(c.files for c in items)} files, "
          f"{sum(c.bytes for c in items)} bytes, {rows} rows" + (" (dry run: nothing deleted)" if dry_run else ""))
    for skipped in outcome.skipped:
        print(f"skipped (not safe to delete) {skipped.path}: {skipped.reason}")
