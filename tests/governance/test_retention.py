"""data_retention.py: stream partitions by date, table versions, quarantine; dry run, safety, audit."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support import BOTH_BACKENDS, day_partition, producing, run_script

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.governance import retention
from lakehouse.kafka import clients
from lakehouse.lake import snapshots
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.produce.events import GeneratorOptions, generate_events, serialize
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

STREAM = "transaction_stream"
TABLE = "payment_method_totals"


def _lake(settings: Settings) -> tuple[LakeStorage, FeedCatalog]:
    storage = LakeStorage(settings.data_lake_root)
    catalog = FeedCatalog(storage)
    catalog.init()
    return storage, catalog


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stored(storage: LakeStorage) -> dict[str, bytes]:
    """Every visible file of the lake with its bytes, on any backend."""
    return {f.path: storage.read_bytes(f.path) for f in storage.walk_files("")}


def _today() -> date:
    return datetime.now(UTC).date()


def test_stream_boundary_exactly_n_days_is_kept(settings_for: Settings, lake_root: Path) -> None:
    storage, catalog = _lake(settings_for)
    today = date(2026, 3, 1)
    feed_dir = layout.feed_dir("stream", STREAM)
    ages = {91: 4, 90: 5, 89: 6, 0: 7}  # days old -> rows
    folders = {age: day_partition(storage, feed_dir, today - timedelta(days=age), rows) for age, rows in ages.items()}

    policies = retention.resolve_policies(catalog, stream=STREAM, retention_days=90)
    done = retention.apply(storage, retention.plan(storage, policies, today))

    assert [(c.path, c.files, c.rows) for c in done.candidates] == [(folders[91], 1, 4)]
    assert not (lake_root / folders[91]).exists()
    for age in (90, 89, 0):
        assert (lake_root / folders[age]).is_dir(), f"{age} days old must stay"
    # 91 days before 2026-03-01 is 2025-11-30: its emptied month folder goes, its year still has December.
    assert not (lake_root / feed_dir / "year=2025/month=11").exists()
    assert (lake_root / feed_dir / "year=2025/month=12").is_dir()


@pytest.mark.parametrize(("today", "days", "kept_oldest"), [
    (date(2028, 3, 30), 30, date(2028, 2, 29)),   # a leap day is a day like any other: kept when exactly N old
    (date(2028, 3, 31), 31, date(2028, 2, 29)),
    (date(2027, 1, 5), 5, date(2026, 12, 31)),    # across the year end
    (date(2027, 1, 1), 1, date(2026, 12, 31)),
    (date(2026, 10, 1), 30, date(2026, 9, 1)),    # single-digit month and day folders
])
def test_retention_date_math_on_the_unpadded_layout(lake_root: Path, today: date, days: int,
                                                    kept_oldest: date) -> None:
    storage = LakeStorage(lake_root)
    catalog = FeedCatalog(storage)
    catalog.init()
    feed_dir = layout.feed_dir("stream", STREAM)
    span = [kept_oldest + timedelta(days=offset) for offset in range(-3, 3)]
    folders = {day: day_partition(storage, feed_dir, day, 1) for day in span}

    policies = retention.resolve_policies(catalog, stream=STREAM, retention_days=days)
    done = retention.apply(storage, retention.plan(storage, policies, today))

    assert sorted(c.path for c in done.candidates) == sorted(folders[d] for d in span if d < kept_oldest)
    assert {d for d in span if (lake_root / folders[d]).is_dir()} == {d for d in span if d >= kept_oldest}
    assert all("=0" not in folder for folder in folders.values())


@BOTH_BACKENDS
def test_dry_run_lists_paths_files_bytes_rows_and_deletes_nothing(env: dict[str, str], settings_for: Settings) -> None:
    storage, _ = _lake(settings_for)
    old = day_partition(storage, layout.feed_dir("stream", STREAM), _today() - timedelta(days=200), 123)
    day_partition(storage, layout.feed_dir("stream", STREAM), _today(), 5)
    before = _stored(storage)

    result = run_script("data_retention.py", "--stream", STREAM, "--retention-days", "30", "--dry-run",
                        env=env, check=True)

    size = next(f.size for f in storage.walk_files(old))
    line = next(line for line in result.stdout.splitlines() if old in line)
    assert line.split()[:6] == [STREAM, "stream", old, "1", str(size), "123"]
    assert f"would delete: 1 folders, 1 files, {size} bytes, 123 rows (dry run: nothing deleted)" in result.stdout
    assert _stored(storage) == before
    assert not storage.exists(retention.AUDIT_LOG)


@BOTH_BACKENDS
def test_deletion_is_audited_and_recorded_in_feed_metadata(env: dict[str, str], settings_for: Settings) -> None:
    storage, _ = _lake(settings_for)
    old = day_partition(storage, layout.feed_dir("stream", STREAM), _today() - timedelta(days=100), 10)

    result = run_script("data_retention.py", "--all", env=env, check=True)  # catalog policy: 90 days

    assert "deleted: 1 folders, 1 files" in result.stdout
    assert not storage.walk_files(old)
    audit = [json.loads(line) for line in storage.read_bytes(retention.AUDIT_LOG).decode().splitlines()]
    assert [(a["action"], a["feed"], a["path"], a["rows"]) for a in audit] == [("delete", STREAM, old, 10)]
    summary = FeedMetadata(storage, STREAM).read()["retention"]["stream"]
    assert (summary["folders_deleted"], summary["rows_deleted"], summary["last_deleted"]) == (1, 10, [old])


def _versions(storage: LakeStorage, catalog: FeedCatalog, count: int) -> None:
    feed = catalog.get(TABLE)
    for number in range(1, count + 1):
        snapshots.write_snapshot(storage, feed, [{"payment_method": "paypal", "transaction_count": number}])


def test_table_keeps_newest_versions_and_always_the_current_one(env: dict[str, str], settings_for: Settings,
                                                                lake_root: Path) -> None:
    storage, catalog = _lake(settings_for)
    _versions(storage, catalog, 5)
    FeedMetadata(storage, TABLE).update(lambda doc: doc.update(current_version=2))  # readers pinned to v2

    run_script("data_retention.py", "--table", TABLE, "--keep-versions", "2", env=env, check=True)

    assert snapshots.list_versions(storage, TABLE) == [2, 4, 5]
    assert sorted(FeedMetadata(storage, TABLE).read()["versions"]) == ["2", "4", "5"]

    run_script("data_retention.py", "--table", TABLE, "--keep-versions", "0", "--force", env=env, check=True)
    assert snapshots.list_versions(storage, TABLE) == [2]
    assert snapshots.read_snapshot(storage, TABLE).to_pylist() == [
        {"payment_method": "paypal", "transaction_count": 2}]


def test_zero_retention_is_refused_without_force(env: dict[str, str], settings_for: Settings,
                                                 lake_root: Path) -> None:
    storage, catalog = _lake(settings_for)
    _versions(storage, catalog, 3)
    day_partition(storage, layout.feed_dir("stream", STREAM), _today() - timedelta(days=1), 3)
    before = _files(lake_root)

    for args in (["--stream", STREAM, "--retention-days", "0"], ["--table", TABLE, "--keep-versions", "0"]):
        result = run_script("data_retention.py", *args, env=env)
        assert result.returncode == 2
        assert "refusing a retention of 0" in result.stderr and "--force" in result.stderr
    assert _files(lake_root) == before

    forced = run_script("data_retention.py", "--stream", STREAM, "--retention-days", "0", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "deleted: 1 folders" in forced.stdout  # yesterday goes, today's partition is always kept


def test_an_out_of_range_retention_is_one_line_not_a_traceback(env: dict[str, str], settings_for: Settings,
                                                              lake_root: Path) -> None:
    storage, _catalog = _lake(settings_for)
    day_partition(storage, layout.feed_dir("stream", STREAM), _today() - timedelta(days=1), 3)
    before = _files(lake_root)
    for args in (["--stream", STREAM, "--retention-days", "1000000000000"], ["--quarantine-days", "99999999999"]):
        result = run_script("data_retention.py", *args, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"must be at most {retention.MAX_RETENTION_DAYS}" in result.stderr.splitlines()[-1]

    entry = lake_root / f"_catalog/feeds/{STREAM}.json"  # a catalog edited by hand
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "retention_days": 10**12}))
    result = run_script("data_retention.py", "--all", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "out of range" in result.stderr
    assert {path: data for path, data in _files(lake_root).items() if "_catalog" not in path} == {
        path: data for path, data in before.items() if "_catalog" not in path}


def test_symlinks_are_never_followed(env: dict[str, str], settings_for: Settings, lake_root: Path,
                                     tmp_path: Path) -> None:
    storage, _ = _lake(settings_for)
    outside = tmp_path / "outside"
    (outside / "month=1/day=1").mkdir(parents=True)
    (outside / "month=1/day=1/precious.parquet").write_bytes(b"not the lake's")
    (outside / "loose.parquet").write_bytes(b"also not the lake's")
    feed_dir = lake_root / layout.feed_dir("stream", STREAM)
    feed_dir.mkdir(parents=True, exist_ok=True)
    (feed_dir / "year=2001").symlink_to(outside, target_is_directory=True)  # a whole year pointing outside
    mixed = day_partition(storage, layout.feed_dir("stream", STREAM), date(2002, 1, 1), 2)
    (lake_root / mixed / "link.parquet").symlink_to(outside / "loose.parquet")  # a link inside a real partition
    plain = day_partition(storage, layout.feed_dir("stream", STREAM), date(2003, 1, 1), 2)

    result = run_script("data_retention.py", "--all", env=env)

    assert result.returncode == 1, result.stderr
    assert f"skipped (not safe to delete) {layout.feed_dir('stream', STREAM)}/year=2001/month=1/day=1" \
           in result.stdout
    assert f"skipped (not safe to delete) {mixed}: {mixed}/link.parquet is a symlink" in result.stdout
    assert (outside / "month=1/day=1/precious.parquet").read_bytes() == b"not the lake's"
    assert (outside / "loose.parquet").read_bytes() == b"also not the lake's"
    assert (lake_root / mixed / "link.parquet").is_symlink()
    assert not (lake_root / plain).exists()  # the safe old partition still went
    assert storage.unsafe_to_delete("streams/../..") is not None


def test_the_audit_log_is_never_written_through_a_symlink(env: dict[str, str], settings_for: Settings,
                                                          lake_root: Path, tmp_path: Path) -> None:
    storage, _ = _lake(settings_for)
    day_partition(storage, layout.feed_dir("stream", STREAM), _today() - timedelta(days=40), 3)
    outside = tmp_path / "not_the_lake.jsonl"
    outside.write_text("precious\n")
    audit = lake_root / retention.AUDIT_LOG
    audit.parent.mkdir(parents=True, exist_ok=True)
    audit.symlink_to(outside)

    result = run_script("data_retention.py", "--stream", STREAM, "--retention-days", "30", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert f"refusing to write {retention.AUDIT_LOG}: {retention.AUDIT_LOG} is a symlink" in result.stderr
    assert outside.read_text() == "precious\n"


def test_quarantine_has_its_own_retention_and_inactive_feeds_keep_data(env: dict[str, str],
                                                                       settings_for: Settings,
                                                                       lake_root: Path) -> None:
    storage, catalog = _lake(settings_for)
    old_q = day_partition(storage, f"{layout.QUARANTINE}/{STREAM}", _today() - timedelta(days=40), 1)
    recent_q = day_partition(storage, f"{layout.QUARANTINE}/{STREAM}", _today() - timedelta(days=20), 1)
    archived = catalog.get("transaction_flattened")
    archived.archived = True
    catalog.save(archived)
    kept = day_partition(storage, layout.feed_dir("stream", archived.name), _today() - timedelta(days=400), 1)
    disabled = catalog.get("transaction_stream_anonymized")
    disabled.enabled = False
    catalog.save(disabled)
    paused = day_partition(storage, layout.feed_dir("stream", disabled.name), _today() - timedelta(days=400), 1)

    run_script("data_retention.py", "--all", env=env, check=True)  # quarantine default: 30 days
    assert not (lake_root / old_q).exists() and (lake_root / recent_q).is_dir()
    assert (lake_root / kept).is_dir() and (lake_root / paused).is_dir()
    # Asked for by name, a disabled (not archived) feed's old data does go.
    run_script("data_retention.py", "--stream", disabled.name, env=env, check=True)
    assert not (lake_root / paused).exists()

    run_script("data_retention.py", "--quarantine-days", "10", env=env, check=True)
    assert not (lake_root / recent_q).exists()

    refused = run_script("data_retention.py", "--stream", archived.name, "--retention-days", "1", env=env)
    assert refused.returncode == 2 and "archived" in refused.stderr
    assert (lake_root / kept).is_dir()


def _land_events(env: dict[str, str], settings: Settings, seed: int, messages: int, start: date, days: int) -> None:
    """Raw events with explicit dates, produced and landed by an export."""
    topic = settings.topic(STREAM)
    clients.ensure_topics(settings, {topic: False})
    clients.wait_until_readable(settings, [topic])
    with producing(settings) as producer:
        for event in generate_events(GeneratorOptions(messages=messages, seed=seed, days=days, start=start)):
            producer.produce(topic, key=event["transaction_id"].encode(), value=serialize(event))
    run_script("export_to_data_lake.py", "--stream", STREAM, "--source", "kafka", env=env, check=True)


def test_a_file_landing_after_retention_planned_is_deleted_and_counted(env: dict[str, str], settings_for: Settings,
                                                                        lake_root: Path) -> None:
    storage, catalog = _lake(settings_for)
    old = date(2026, 7, 1)
    _land_events(env, settings_for, seed=11, messages=300, start=old, days=3)
    policies = retention.resolve_policies(catalog, stream=STREAM, retention_days=30)
    planned = retention.plan(storage, policies, today=date(2026, 8, 29))
    assert [layout.parse_partition_date(c.path) for c in planned.candidates] == [old + timedelta(days=n)
                                                                                for n in range(3)]
    _land_events(env, settings_for, seed=12, messages=50, start=old, days=1)  # late events of a planned day

    done = retention.apply(storage, planned)
    assert sum(c.rows for c in done.candidates) == 350
    reconciled = run_script("kafka_consumer_datalake.py", "--reconcile", "--feeds", STREAM, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{STREAM}\s+350\s+350\s+0\s+yes", reconciled.stdout)
