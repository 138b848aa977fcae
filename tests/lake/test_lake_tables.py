"""Table feeds in the lake consumer: changelog -> versioned snapshots (issue 3, tables)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from support import REPO, run_script, wait_for

from lakehouse import layout
from lakehouse.kafka import clients
from lakehouse.produce.derive import table_key
from lakehouse.quarantine import read_quarantine
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

FEED = "payment_method_totals"


def _produce(settings: Settings, changes: list[tuple[str, dict | None]]) -> None:
    topic = settings.topic(FEED)
    clients.ensure_topics(settings, {topic: True})
    clients.wait_until_readable(settings, [topic])
    producer = clients.producer(settings)
    for method, value in changes:
        producer.produce(topic, key=table_key(["payment_method"], (method,)),
                         value=None if value is None else orjson.dumps(value))
    assert producer.flush(30) == 0


def _version_rows(lake: Path, version: int) -> dict[str, dict]:
    table = pq.read_table(lake / f"tables/{FEED}/version={version}/part-00000.parquet")
    return {row["payment_method"]: row for row in table.to_pylist()}


def _versions(lake: Path) -> list[str]:
    return sorted(p.name for p in (lake / f"tables/{FEED}").iterdir() if not p.name.startswith("."))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _totals(total: float, count: int) -> dict:
    return {"TOTAL_AMOUNT_EUR": total, "TRANSACTION_COUNT": count, "AVG_AMOUNT_EUR": round(total / count, 4)}


def test_changelog_updates_and_tombstones_become_versions(env: dict[str, str], settings_for: Settings,
                                                          lake_root: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    _produce(settings_for, [("paypal", _totals(10.0, 1)), ("apple_pay", _totals(5.0, 1)),
                            ("paypal", _totals(30.0, 2)), ("cash", _totals(1.0, 1)), ("cash", None)])
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    assert _versions(lake_root) == ["version=1"]
    assert _version_rows(lake_root, 1) == {
        "paypal": {"payment_method": "paypal", "total_amount_eur": 30.0, "transaction_count": 2,
                   "avg_amount_eur": 15.0},
        "apple_pay": {"payment_method": "apple_pay", "total_amount_eur": 5.0, "transaction_count": 1,
                      "avg_amount_eur": 5.0},
    }
    first = lake_root / f"tables/{FEED}/version=1/part-00000.parquet"
    first_digest = _digest(first)

    _produce(settings_for, [("apple_pay", None), ("paypal", _totals(45.0, 3))])
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    assert _versions(lake_root) == ["version=1", "version=2"]
    assert _version_rows(lake_root, 2) == {
        "paypal": {"payment_method": "paypal", "total_amount_eur": 45.0, "transaction_count": 3,
                   "avg_amount_eur": 15.0}}
    assert _digest(first) == first_digest, "an earlier version was rewritten"

    unchanged = run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    assert _versions(lake_root) == ["version=1", "version=2"], "a run with no change wrote a version"
    metadata = orjson.loads((lake_root / f"_metadata/{FEED}/feed.json").read_bytes())
    assert metadata["current_version"] == 2
    assert "payment_method_totals" in unchanged.stdout
    reconcile = run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--reconcile", env=env, check=True)
    assert "yes" in reconcile.stdout.splitlines()[-1]


def test_bad_changelog_records_are_quarantined_and_the_rest_lands(env: dict[str, str], settings_for: Settings,
                                                                   lake_root: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    _produce(settings_for, [("paypal", _totals(10.0, 1))])
    producer = clients.producer(settings_for)
    producer.produce(settings_for.topic(FEED), key=b'"debit_card"', value=b"{not json")
    producer.produce(settings_for.topic(FEED), key=b'["paypal", "visa"]', value=b'{"TOTAL_AMOUNT_EUR": 1}')
    assert producer.flush(30) == 0
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    assert list(_version_rows(lake_root, 1)) == ["paypal"]
    reasons = [reason for path in (lake_root / f"_quarantine/{FEED}").rglob("*.parquet")
               for reason in pq.read_table(path).column("reason").to_pylist()]
    assert sorted(reason.split(":")[0] for reason in reasons) == [
        "key must be a single value for column payment_method", "value is not valid JSON"]


def test_continuous_consumer_publishes_new_versions_and_stops_on_sigterm(env: dict[str, str],
                                                                        settings_for: Settings,
                                                                        lake_root: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    _produce(settings_for, [("paypal", _totals(10.0, 1))])
    process = subprocess.Popen([sys.executable, "kafka_consumer_datalake.py", "--feeds", FEED,
                                "--snapshot-interval", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (lake_root / f"tables/{FEED}").exists() and _versions(lake_root) == ["version=1"],
                 60, "version 1")
        _produce(settings_for, [("paypal", _totals(20.0, 2))])
        wait_for(lambda: _versions(lake_root) == ["version=1", "version=2"], 60, "version 2")
        assert _version_rows(lake_root, 2)["paypal"]["transaction_count"] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]


STANDS_BY = "another consumer copy publishes its versions; this one stands by"


def test_two_copies_take_turns_publishing_a_table_and_never_go_back(env: dict[str, str], settings_for: Settings,
                                                                    lake_root: Path, tmp_path: Path) -> None:
    """Each copy materializes the table; only one publishes it; when it stops, the other takes over."""
    second_log = tmp_path / "second.log"
    run_script("data_lake_config.py", "init", env=env, check=True)
    _produce(settings_for, [("paypal", _totals(10.0, 1))])
    command = [sys.executable, "kafka_consumer_datalake.py", "--feeds", FEED, "--snapshot-interval", "0.5"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        wait_for(lambda: (lake_root / f"tables/{FEED}").exists() and _versions(lake_root) == ["version=1"],
                 60, "version 1")
        second = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=second_log.open("w"),
                                  text=True)
        wait_for(lambda: STANDS_BY in second_log.read_text(), 60, "the second copy to stand by")
        for count in range(2, 6):  # both copies read every change; the first one publishes them
            _produce(settings_for, [("paypal", _totals(10.0 * count, count))])
            wait_for(lambda count=count: _versions(lake_root)[-1] == f"version={count}", 60, f"version {count}")
        first.send_signal(signal.SIGTERM)
        _out, first_err = first.communicate(timeout=60)
        _produce(settings_for, [("paypal", _totals(60.0, 6))])  # now the second copy takes over
        wait_for(lambda: _versions(lake_root)[-1] == "version=6", 60, "version 6 from the second copy")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        if second is not None:
            second.communicate(timeout=60)
    second_err = second_log.read_text()
    assert first.returncode == 0 and second.returncode == 0, first_err[-2000:] + second_err[-2000:]
    counts = [_version_rows(lake_root, v)["paypal"]["transaction_count"] for v in range(1, 7)]
    assert counts == [1, 2, 3, 4, 5, 6], "a version went back to an older state or repeated one"


def test_a_bad_changelog_record_is_quarantined_once_however_often_the_table_lands(
        env: dict[str, str], settings_for: Settings, lake_root: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    _produce(settings_for, [("paypal", _totals(10.0, 1))])
    producer = clients.producer(settings_for)
    producer.produce(settings_for.topic(FEED), key=b'"debit_card"', value=b"{not json")
    assert producer.flush(30) == 0
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    storage = LakeStorage(lake_root)
    [landed] = [f.path for f in storage.walk_files(f"{layout.QUARANTINE}/{FEED}")]
    # That run was on an earlier day: its file sits in that day's folder, the next run lands on another day.
    earlier = f"{layout.quarantine_dir(FEED, date(2026, 1, 1))}/{landed.rsplit('/', 1)[1]}"
    storage.makedirs(earlier.rsplit("/", 1)[0])
    storage.rename(landed, earlier)

    _produce(settings_for, [("paypal", _totals(20.0, 2))])  # the table changes: the next run reads it all again
    run_script("kafka_consumer_datalake.py", "--feeds", FEED, "--until-end", env=env, check=True)
    assert list(_version_rows(lake_root, 2)) == ["paypal"]
    assert read_quarantine(storage, FEED).column("raw_value").to_pylist() == [b"{not json"]
