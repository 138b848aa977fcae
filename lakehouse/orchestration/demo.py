"""`make demo`: the whole job end to end on the local stack, as a walkthrough of the real scripts.

Each step is the command a user would type, echoed, then run as a subprocess with the same environment
(DATA_LAKE_ROOT, topics, MySQL from the env / .env, defaults otherwise). The summary at the end is
`python data_lake_config.py status`. Re-running is safe and additive: every run produces new events
(the seed is the run number, so ids never repeat), the consumers continue from their offsets, export
writes a table version only when a table changed, sync adds a snapshot run, a grant is renewed.

  python -m lakehouse.orchestration.demo [--messages N] [--days D]
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from lakehouse import cli, layout
from lakehouse.governance.status import RAW_FEED, KafkaView
from lakehouse.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]  # the scripts: lakehouse/orchestration/demo.py -> the repository
EXAMPLES = """
  python -m lakehouse.orchestration.demo                          # 20,000 events over 3 days, then every step
  python -m lakehouse.orchestration.demo --messages 2000 --days 2
"""
DEMO_USER = "analyst@example.com"
RAW_FOLDER = layout.feed_dir("stream", RAW_FEED)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("python -m lakehouse.orchestration.demo", __doc__.split("\n\n")[0], EXAMPLES)
    parser.add_argument("--messages", type=int, default=20_000, help="events to produce (default %(default)s)")
    parser.add_argument("--days", type=int, default=3, help="spread them over this many days (default %(default)s)")
    args = parser.parse_args(argv)
    settings = load_settings()
    print(f"demo: lake {settings.data_lake_root}, Kafka {settings.kafka_bootstrap_servers}, "
          f"MySQL {settings.mysql_host}:{settings.mysql_port}/{settings.mysql_database}", flush=True)

    today = datetime.now(UTC).date()
    steps: list[tuple[str, list[list[str]]]] = [
        ("Create the lake layout and seed the feed catalog", [["data_lake_config.py", "init"]]),
        (f"Produce {args.messages:,} events over {args.days} days, with what ksqlDB derives from them",
         [["kafka_producer.py", "--derive", "--messages", str(args.messages), "--days", str(args.days),
           "--users", "500", "--seed", str(_run_number(settings, args.messages))]]),
        ("Land every feed in the lake up to the current end: streams by event date, tables as version=N",
         [["kafka_consumer_datalake.py", "--until-end"]]),
        ("Consume the table changelogs into the MySQL star schema, exactly once",
         [["kafka_consumer_warehouse.py", "--until-end"]]),
        ("Export on demand: a new table version only where a table changed (streams are landed already)",
         [["export_to_data_lake.py", "--all", "--source", "kafka"]]),
        ("Load the newest lake snapshots into MySQL as one numbered snapshot run", [["sync_to_mysql.py"]]),
        ("What retention would delete (dry run)", [["data_retention.py", "--all", "--dry-run"]]),
        ("Per-folder permissions: create the tables, grant read on the raw events, check a subfolder",
         [["permissions_manager.py", "create-table"],
          ["permissions_manager.py", "grant", "--email", DEMO_USER, "--folder", RAW_FOLDER, "--permission", "read"],
          ["permissions_manager.py", "check", "--email", DEMO_USER, "--folder",
           f"{RAW_FOLDER}/year={today.year:04d}", "--permission", "read"]]),
        ("The summary (any time: python data_lake_config.py status)", [["data_lake_config.py", "status"]]),
    ]
    started = time.monotonic()
    for number, (title, commands) in enumerate(steps, start=1):
        print(f"\n== {number}. {title}", flush=True)
        for command in commands:
            code = _run(command)
            if code != 0:
                print(f"\ndemo: step {number} failed (exit code {code}): python {shlex.join(command)}",
                      file=sys.stderr)
                return code
    print(f"\ndemo: done in {time.monotonic() - started:.0f} s")
    return 0


def _run_number(settings: Settings, messages: int) -> int:
    """1 on a fresh stack, then one more per earlier run: each run's seed gives new transaction ids."""
    with KafkaView(settings) as kafka:
        watermarks = kafka.watermarks(settings.topic(RAW_FEED)) or {}
    produced = sum(high for _low, high in watermarks.values())
    return produced // max(1, messages) + 1


def _run(command: list[str]) -> int:
    print(f"$ python {shlex.join(command)}", flush=True)
    return subprocess.run([sys.executable, str(REPO / command[0]), *command[1:]], cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(cli.run(main))
