"""data_lake_config.py: layout and feed catalog."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_script

from lakehouse.catalog import builtin_feeds


def test_init_twice_is_idempotent_and_keeps_edited_feeds(env: dict[str, str], lake_root: Path) -> None:
    first = run_script("data_lake_config.py", "init", env=env, check=True)
    assert "feeds created: transaction_stream" in first.stdout
    for folder in ("streams", "tables", "_catalog/feeds", "_metadata", "_quarantine", "_logs"):
        assert (lake_root / folder).is_dir(), folder

    edited = lake_root / "_catalog/feeds/transaction_stream.json"
    entry = json.loads(edited.read_text())
    entry["retention_days"] = 7
    edited.write_text(json.dumps(entry))

    second = run_script("data_lake_config.py", "init", env=env, check=True)
    assert "feeds created: none" in second.stdout
    assert json.loads(edited.read_text())["retention_days"] == 7
    assert sorted(p.stem for p in (lake_root / "_catalog/feeds").glob("*.json")) == sorted(
        f.name for f in builtin_feeds())


def test_show_lists_every_builtin_feed(env: dict[str, str]) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    shown = run_script("data_lake_config.py", "show", env=env, check=True).stdout
    for feed in builtin_feeds():
        assert feed.name in shown
    assert "fact_user_transaction_summary" in shown


def test_show_on_empty_lake_says_how_to_init(env: dict[str, str]) -> None:
    result = run_script("data_lake_config.py", "show", env=env)
    assert result.returncode == 1
    assert "data_lake_config.py init" in result.stdout
