"""`lakehouse COMMAND ...`: the installed command; each subcommand is one of the scripts, with the same options."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lakehouse import cli
from lakehouse.settings import ENV_GROUPS

# subcommand (a module of lakehouse.commands) -> the script it mirrors, what it does
COMMANDS = {
    "produce": ("kafka_producer.py", "produce seeded transaction events to Kafka"),
    "land": ("kafka_consumer_datalake.py", "land Kafka feeds in the data lake, exactly once"),
    "warehouse": ("kafka_consumer_warehouse.py", "consume the table changelogs into MySQL, exactly once"),
    "export": ("export_to_data_lake.py", "export feeds to the lake in one bounded run"),
    "sync": ("sync_to_mysql.py", "load table snapshots into MySQL as one snapshot run"),
    "config": ("data_lake_config.py", "lake setup, feed catalog, ksqlDB topology, status, migration, query"),
    "retention": ("data_retention.py", "apply retention to the lake"),
    "permissions": ("permissions_manager.py", "per-folder permissions on the lake"),
    "feeds": ("manage_feeds.py", "onboard and manage feeds"),
    "orchestrate": ("beam_orchestrator.py", "the jobs as Apache Beam pipelines, every N minutes or once"),
}
EXAMPLES = """
  lakehouse config init                  # create the lake, seed the built-in feeds
  lakehouse produce --messages 1000 --derive
  lakehouse land --until-end
  lakehouse config status
  lakehouse land --help                  # each command's options, examples and environment
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    # Our own options end at the subcommand's name; everything after it is the subcommand's.
    name_at = next((index for index, arg in enumerate(args) if not arg.startswith("-")), len(args))
    command = parser.parse_args(args[:name_at + 1]).command
    script = COMMANDS[command][0]
    module = importlib.import_module(f"lakehouse.commands.{command}")  # only the one run: --version stays instant
    with cli.invoked_as(script, f"lakehouse {command}"):
        return cli.run(module.main, args[name_at + 1:])


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<12} {text} ({script})" for name, (script, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="Kafka / ksqlDB streams and tables into a Parquet data lake and a MySQL star-schema warehouse.",
        epilog=f"commands:\n{listing}\n\nexamples:\n{EXAMPLES.strip(chr(10))}\n\n"
               + cli.environment_block(tuple(ENV_GROUPS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=cli.version_line("lakehouse"))
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of the commands below")
    return parser
