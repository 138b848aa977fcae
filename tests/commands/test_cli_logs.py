"""Logs: LAKEHOUSE_LOG_FORMAT=json gives one JSON object per line; --log-level sets what is shown (issue 18)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from support import base_env, run_script

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.cli import JsonLogFormatter
from lakehouse.storage import LakeStorage

OLD_VERSION = "tables/payment_method_totals/version=v3"  # a layout-1 folder: migrate renames it, logging at INFO
OLD_DAY = "streams/transaction_stream/year=2020/month=1/day=1"  # older than any retention


def _json_lines(stderr: str) -> list[dict]:
    entries = [json.loads(line) for line in stderr.splitlines()]
    for entry in entries:
        assert {"timestamp", "level", "logger", "message"} <= set(entry)
        assert datetime.fromisoformat(entry["timestamp"]).utcoffset().total_seconds() == 0
    return entries


def _layout_1_lake(root: Path) -> None:
    storage = LakeStorage(root)
    FeedCatalog(storage).init()
    storage.write_parquet(f"{OLD_VERSION}/part-00000.parquet", pa.table({"payment_method": ["card"], "total": [1.5]}))
    (root / layout.LAYOUT_FILE).unlink()


def test_migrate_logs_json_lines_and_log_level_hides_them(tmp_path: Path) -> None:
    for lake in ("quiet", "lake"):
        _layout_1_lake(tmp_path / lake)
    env = base_env(DATA_LAKE_ROOT=str(tmp_path / "quiet"), LAKEHOUSE_LOG_FORMAT="json")
    quiet = run_script("data_lake_config.py", "--log-level", "WARNING", "migrate", env=env, check=True)
    assert quiet.stderr == "" and "tables/payment_method_totals: rename 1 version folders" in quiet.stdout

    env["DATA_LAKE_ROOT"] = str(tmp_path / "lake")
    migrated = run_script("data_lake_config.py", "migrate", env=env, check=True)
    entries = _json_lines(migrated.stderr)
    assert {"level": "INFO", "logger": "lakehouse.lake.migration",
            "message": f"renamed {OLD_VERSION} -> version=3"}.items() <= entries[-1].items()
    assert "moved the lake from layout 1 to layout 2" in migrated.stdout  # the report stays plain text


def test_retention_at_debug_logs_each_deletion_with_its_path(tmp_path: Path) -> None:
    storage = LakeStorage(tmp_path / "lake")
    FeedCatalog(storage).init()
    storage.write_parquet(f"{OLD_DAY}/t+0+0.parquet", pa.table({"transaction_id": ["t1"]}))
    env = base_env(DATA_LAKE_ROOT=str(tmp_path / "lake"))
    args = ("--stream", "transaction_stream", "--retention-days", "30")

    planned = run_script("data_retention.py", *args, "--dry-run", env=env, check=True)
    assert planned.stderr == ""  # nothing at the default level (WARNING)
    deleted = run_script("data_retention.py", "--log-level", "debug", *args,
                         env={**env, "LAKEHOUSE_LOG_FORMAT": "json"}, check=True)
    assert {"level": "DEBUG", "logger": "lakehouse.storage", "message": f"deleted folder {OLD_DAY}",
            "path": OLD_DAY}.items() <= _json_lines(deleted.stderr)[0].items()
    assert not storage.exists(OLD_DAY)


def test_text_logs_and_a_wrong_log_format(tmp_path: Path) -> None:
    env = base_env(DATA_LAKE_ROOT=str(tmp_path / "lake"))
    text = run_script("data_lake_config.py", "--log-level", "DEBUG", "init", env=env, check=True)
    first = text.stderr.splitlines()[0].split(" ", 3)  # date, time, level, message
    assert first[2:] == ["DEBUG", f"wrote {layout.LAYOUT_FILE}"]

    wrong = run_script("data_lake_config.py", "init", env={**env, "LAKEHOUSE_LOG_FORMAT": "xml"})
    assert (wrong.returncode, wrong.stderr) == (2, "error: LAKEHOUSE_LOG_FORMAT must be text or json, got 'xml'\n")


def test_json_lines_carry_the_extra_fields_and_the_exception() -> None:
    try:
        raise ValueError("bad offset")
    except ValueError:
        record = logging.getLogger("lakehouse.test").makeRecord(
            "lakehouse.test", logging.ERROR, __file__, 1, "lag %d on %s", (42, "t[0]"), exc_info=sys.exc_info(),
            extra={"topic": "t", "partition": 0, "since": datetime(2026, 9, 7)})
    entry = json.loads(JsonLogFormatter().format(record))
    assert {"level": "ERROR", "logger": "lakehouse.test", "message": "lag 42 on t[0]", "topic": "t", "partition": 0,
            "since": "2026-09-07 00:00:00"}.items() <= entry.items()
    assert entry["exception"].endswith("ValueError: bad offset")
