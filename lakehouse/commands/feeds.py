"""Onboard and manage feeds: add (by hand or from ksqlDB), list, show, update, disable/enable, archive/restore.

A new feed needs no code change: `add` writes its catalog entry, creates its lake folder and, for a
table, its warehouse table; consumers, export and sync then pick it up. Disabled and archived feeds
are skipped by all of them; archived feeds keep their data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lakehouse import cli
from lakehouse.catalog import DEFAULT_MAX_COLUMNS, STORAGE_MODES, Feed
from lakehouse.governance import onboarding, retention
from lakehouse.kafka import clients
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage
from lakehouse.text_table import render

EXAMPLES = """
  python manage_feeds.py add --name card_payments --type stream --topic card_payments --key-columns payment_id
  python manage_feeds.py add --name merchant_totals --type table --topic merchant_totals \\
      --key-columns merchant_id --keep-versions 10
  python manage_feeds.py add --from-ksqldb MERCHANT_TOTALS     # kind, topic and keys from DESCRIBE
  python manage_feeds.py list
  python manage_feeds.py show card_payments
  python manage_feeds.py update card_payments --retention-days 30
  python manage_feeds.py update card_payments --lateness-days 3   # compaction waits 3 days for late events
  python manage_feeds.py update merchant_totals --max-columns 300   # cap of its auto-mapped warehouse table
  python manage_feeds.py disable card_payments                 # consumers, export and sync skip it
  python manage_feeds.py archive card_payments                 # skipped too; its data stays
  python manage_feeds.py restore card_payments
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    settings = load_settings()
    if args.command == "add":
        return _add(settings, args)
    if args.command == "list":
        return _list(settings)
    if args.command == "show":
        return _show(settings, args.name)
    if args.command == "update":
        changes = {key: getattr(args, key) for key in onboarding.UPDATABLE if getattr(args, key) is not None}
        feed = onboarding.update_feed(settings, args.name, changes)
        print(f"updated {feed.name}: {', '.join(f'{k}={getattr(feed, k)}' for k in changes)}")
        return 0
    feed, changed = onboarding.set_status(settings, args.name, args.command)
    print(f"{feed.name} is {feed.status}" + ("" if changed else " (unchanged)")
          + ("" if feed.active else ": consumers, export, sync and the orchestrator skip it"))
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser("manage_feeds.py", __doc__, EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a feed (catalog entry, lake folder, Kafka topic, warehouse table)")
    add.add_argument("--name", help="feed name: lower-case letters, digits, '_'")
    add.add_argument("--type", choices=("stream", "table"))
    add.add_argument("--from-ksqldb", metavar="NAME", help="take type, topic and key columns from ksqlDB")
    add.add_argument("--partitions", type=cli.at_least(1), default=clients.DEFAULT_PARTITIONS, metavar="N",
                     help="partitions of the Kafka topic when add creates it (default %(default)s)")
    _definition_options(add)
    commands.add_parser("list", help="every feed with its status")
    commands.add_parser("show", help="one feed: catalog entry and what the lake holds").add_argument("name")
    update = commands.add_parser("update", help="change a feed's topic, keys, mode, retention, description")
    update.add_argument("name")
    _definition_options(update)
    for action, text in (("disable", "stop landing it (data stays)"), ("enable", "land it again"),
                         ("archive", "retire it; its data is kept"), ("restore", "un-archive it")):
        commands.add_parser(action, help=text).add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "add":
        _check_add(parser, args)
    return args


def _definition_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--topic", help="Kafka topic (without the environment's LAKEHOUSE_TOPIC_PREFIX)")
    command.add_argument("--ksql-name", help="its ksqlDB stream/table name (default: NAME upper-cased)")
    command.add_argument("--key-columns", type=cli.csv_list, metavar="a,b",
                         help="table: primary key columns; stream: the id column events must carry")
    command.add_argument("--timestamp-field", metavar="F",
                         help=f"stream: event time field for the date partition (default "
                              f"{onboarding.DEFAULT_TIMESTAMP_FIELD}; missing -> Kafka record time)")
    command.add_argument("--storage-mode", choices=tuple(STORAGE_MODES))
    command.add_argument("--description")
    policy = command.add_mutually_exclusive_group()
    policy.add_argument("--retention-days", type=cli.at_least(0, at_most=retention.MAX_RETENTION_DAYS), metavar="D",
                        help="stream: days of partitions to keep")
    policy.add_argument("--keep-versions", type=int, metavar="K", help="table: snapshot versions to keep")
    command.add_argument("--lateness-days", type=cli.at_least(0, at_most=retention.MAX_RETENTION_DAYS), metavar="D",
                         help="stream: whole days after a day ends before compaction rewrites it (default 1)")
    command.add_argument("--max-columns", type=int, metavar="N",
                         help=f"table without a curated mapping: most columns of its auto-mapped warehouse table, "
                              f"keys included (default {DEFAULT_MAX_COLUMNS}); records that would pass it are "
                              "quarantined")


def _check_add(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.from_ksqldb:
        given = [flag for flag, value in (("--type", args.type), ("--topic", args.topic),
                                           ("--ksql-name", args.ksql_name), ("--timestamp-field", args.timestamp_field))
                 if value]
        if given:
            parser.error(f"--from-ksqldb takes {', '.join(given)} from ksqlDB; leave them out")
        return
    missing = [flag for flag, value in (("--name", args.name), ("--type", args.type), ("--topic", args.topic))
               if not value]
    if missing:
        parser.error(f"add needs {', '.join(missing)} (or --from-ksqldb NAME)")


def _add(settings: Settings, args: argparse.Namespace) -> int:
    policy = {"storage_mode": args.storage_mode or "", "retention_days": args.retention_days,
              "keep_versions": args.keep_versions, "max_columns": args.max_columns}
    if args.from_ksqldb:
        feed = onboarding.feed_from_ksqldb(settings, args.from_ksqldb, name=args.name,
                                           key_columns=args.key_columns, **policy)
    else:
        feed = onboarding.new_feed(
            args.name, args.type, args.topic, ksql_name=args.ksql_name or "", key_columns=args.key_columns,
            timestamp_field=args.timestamp_field or onboarding.DEFAULT_TIMESTAMP_FIELD,
            description=args.description or "", **policy)
    if args.lateness_days is not None:
        feed.lateness_days = args.lateness_days
    result = onboarding.add_feed(settings, feed, args.partitions)
    print(f"added {feed.kind} feed {feed.name}: topic {settings.topic(feed.topic)}, mode {feed.storage_mode}, "
          f"{_policy(feed)}, lake folder {result.lake_folder}")
    if result.topic:
        print(f"kafka topic: {settings.topic(feed.topic)} ({result.topic})")
    if result.warehouse_table:
        print(f"warehouse table: {result.warehouse_table}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print("next steps:")
    for step in onboarding.next_steps(settings, feed):
        print(f"  {step}")
    return 0


def _list(settings: Settings) -> int:
    feeds = onboarding.catalog_for(settings).list()
    if not feeds:
        print("the catalog is empty; run: python data_lake_config.py init")
        return 1
    print(render(["feed", "kind", "topic", "mode", "retention", "keys", "status"],
                 [[f.name, f.kind, f.topic, f.storage_mode, _policy(f), f.key_columns, f.status] for f in feeds]))
    return 0


def _show(settings: Settings, name: str) -> int:
    feed = onboarding.catalog_for(settings).get(name)
    files = LakeStorage(settings.data_lake_root).walk_files(feed.lake_dir)
    rows = [("status", feed.status), ("kafka topic", settings.topic(feed.topic)), ("retention", _policy(feed)),
            ("lake folder", feed.lake_dir), ("lake files", len(files)), ("lake bytes", sum(f.size for f in files))]
    shown_above = ("name", "enabled", "archived", "retention_days", "keep_versions")
    rows += [(key, value) for key, value in vars(feed).items() if key not in shown_above]
    print(render(["feed " + feed.name, ""], rows))
    return 0


def _policy(feed: Feed) -> str:
    if feed.kind == "stream":
        return "no retention" if feed.retention_days is None else f"keep {feed.retention_days} days"
    return "keep all versions" if feed.keep_versions is None else f"keep {feed.keep_versions} versions"
