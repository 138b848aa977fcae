"""Retention planning on a lake folder alone (lakehouse.governance.retention): no script, no service, pinned dates.

The date math of whole runs across leap days and year ends is in tests/test_retention.py; here: the cutoff itself,
what a plan lists (paths, counts, reasons), table versions, quarantine, unsafe paths, and policy resolution.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from support import day_partition

from lakehouse import layout
from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import retention
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage

STREAM = "transaction_stream"
TABLE = "payment_method_totals"
TODAY = date(2026, 4, 1)


@pytest.fixture
def lake(tmp_path: Path) -> tuple[LakeStorage, FeedCatalog]:
    storage = LakeStorage(tmp_path / "lake")
    catalog = FeedCatalog(storage)
    catalog.init()
    return storage, catalog


def versions(storage: LakeStorage, count: int) -> None:
    for version in range(1, count + 1):
        storage.write_parquet(layout.table_snapshot_file(TABLE, version), pa.table({"v": [version] * version}))


@pytest.mark.parametrize(("today", "days", "cutoff"), [
    (date(2026, 4, 1), 90, date(2026, 1, 1)),
    (date(2026, 4, 1), 0, date(2026, 4, 1)),
    (date(2028, 3, 1), 1, date(2028, 2, 29)),
    (date(2029, 3, 1), 1, date(2029, 2, 28)),
    (date(2027, 1, 1), 365, date(2026, 1, 1)),
])
def test_the_cutoff_is_the_oldest_day_kept(today: date, days: int, cutoff: date) -> None:
    assert retention.stream_cutoff(today, days) == cutoff


def test_a_stream_plan_lists_each_old_day_with_files_bytes_rows_and_its_reason(lake) -> None:
    storage, _catalog = lake
    root = layout.feed_dir("stream", STREAM)
    old = day_partition(storage, root, date(2025, 12, 31), 3)
    day_partition(storage, root, date(2026, 1, 1), 4)  # exactly 90 days old: kept
    day_partition(storage, root, date(2026, 3, 31), 5)
    planned = retention.plan(storage, [retention.Policy(STREAM, "stream", 90)], TODAY)
    assert [(c.path, c.target, c.files, c.rows, c.reason) for c in planned.candidates] == [
        (old, "stream", 1, 3, "2025-12-31 is 91 days old, policy keep 90 days")]
    assert planned.candidates[0].bytes == (storage.local_root / old / "t+0+00000000000000000000.parquet").stat().st_size
    assert planned.skipped == []


def test_planning_deletes_nothing(lake) -> None:
    storage, _catalog = lake
    old = day_partition(storage, layout.feed_dir("stream", STREAM), date(2020, 1, 1), 1)
    planned = retention.plan(storage, [retention.Policy(STREAM, "stream", 1)], TODAY)
    assert [c.path for c in planned.candidates] == [old]
    assert (storage.local_root / old).is_dir()


def test_a_padded_layout_1_day_folder_is_not_a_date_to_retention(lake) -> None:
    storage, _catalog = lake
    padded = f"{layout.feed_dir('stream', STREAM)}/year=2020/month=01/day=01"
    storage.write_parquet(f"{padded}/x.parquet", pa.table({"n": [1]}))
    assert retention.plan(storage, [retention.Policy(STREAM, "stream", 1)], TODAY).candidates == []


def test_a_table_keeps_its_newest_versions_and_the_current_one_even_when_older(lake) -> None:
    storage, _catalog = lake
    versions(storage, 7)
    FeedMetadata(storage, TABLE).update(lambda document: document.update(current_version=2))
    planned = retention.plan(storage, [retention.Policy(TABLE, "table", 3)], TODAY)
    assert [(c.path, c.rows, c.reason) for c in planned.candidates] == [
        ("tables/payment_method_totals/version=1", 1, "v1 is older than the newest 3 (current v2)"),
        ("tables/payment_method_totals/version=3", 3, "v3 is older than the newest 3 (current v2)"),
        ("tables/payment_method_totals/version=4", 4, "v4 is older than the newest 3 (current v2)"),
    ]


def test_versions_order_numerically_so_version_10_is_newer_than_9(lake) -> None:
    storage, _catalog = lake
    versions(storage, 11)
    planned = retention.plan(storage, [retention.Policy(TABLE, "table", 2)], TODAY)
    assert [layout.parse_version(c.path.rsplit("/", 1)[1]) for c in planned.candidates] == list(range(1, 10))


def test_keeping_zero_versions_still_keeps_the_current_one(lake) -> None:
    storage, _catalog = lake
    versions(storage, 3)
    planned = retention.plan(storage, [retention.Policy(TABLE, "table", 0)], TODAY)
    assert [c.path.rsplit("/", 1)[1] for c in planned.candidates] == ["version=1", "version=2"]


def test_quarantine_days_are_planned_under_the_quarantine_folder_and_unreadable_footers_give_no_rows(lake) -> None:
    storage, _catalog = lake
    folder = f"{layout.quarantine_dir(STREAM, date(2026, 2, 1))}"
    storage.write_bytes(f"{folder}/bad.parquet", b"not parquet")
    day_partition(storage, f"{layout.QUARANTINE}/{STREAM}", date(2026, 3, 15), 2)
    planned = retention.plan(storage, [retention.Policy(STREAM, "quarantine", 30)], TODAY)
    assert [(c.path, c.target, c.files, c.bytes, c.rows, c.reason) for c in planned.candidates] == [
        ("_quarantine/transaction_stream/year=2026/month=2/day=1", "quarantine", 1, 11, None,
         "2026-02-01 is 59 days old, policy keep 30 days")]


def test_a_day_folder_that_is_a_symlink_is_skipped_with_its_reason_not_planned(lake, tmp_path: Path) -> None:
    storage, _catalog = lake
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.parquet").write_bytes(b"not the lake's")
    month = storage.local_root / layout.feed_dir("stream", STREAM) / "year=2020/month=1"
    month.mkdir(parents=True)
    os.symlink(outside, month / "day=1", target_is_directory=True)
    planned = retention.plan(storage, [retention.Policy(STREAM, "stream", 30)], TODAY)
    assert planned.candidates == []
    assert [(s.path, s.reason) for s in planned.skipped] == [
        ("streams/transaction_stream/year=2020/month=1/day=1",
         f"streams/transaction_stream/year=2020/month=1/day=1 is a symlink (to {outside})")]


def test_apply_deletes_the_planned_day_prunes_its_empty_month_and_audits_it(lake) -> None:
    storage, _catalog = lake
    root = layout.feed_dir("stream", STREAM)
    old = day_partition(storage, root, date(2025, 11, 30), 2)
    kept = day_partition(storage, root, date(2025, 12, 31), 1)
    done = retention.apply(storage, retention.plan(storage, [retention.Policy(STREAM, "stream", 91)], TODAY))
    assert [c.path for c in done.candidates] == [old]
    assert not (storage.local_root / root / "year=2025/month=11").exists()
    assert (storage.local_root / kept).is_dir()
    audit = [orjson.loads(line) for line in (storage.local_root / retention.AUDIT_LOG).read_text().splitlines()]
    assert [(entry["action"], entry["path"], entry["rows"]) for entry in audit] == [("delete", old, 2)]
    assert FeedMetadata(storage, STREAM).read()["retention"]["stream"]["rows_deleted"] == 2


# ---------------------------------------------------------------- policies
def test_all_feeds_take_the_catalog_policies_of_active_feeds_and_every_quarantine_folder(lake) -> None:
    storage, catalog = lake
    archived = catalog.get("transaction_flattened")
    archived.archived = True
    catalog.save(archived)
    for name in ("clicks", ".hidden", "transaction_flattened"):
        storage.makedirs(f"{layout.QUARANTINE}/{name}")
    policies = retention.resolve_policies(catalog, all_feeds=True)
    assert [(p.target, p.feed, p.limit) for p in policies] == [
        ("stream", "transaction_stream", 90), ("stream", "transaction_stream_anonymized", 90),
        ("stream", "transaction_stream_blacklisted", 90),
        ("table", "payment_method_totals", 5), ("table", "product_purchase_counts", 5),
        ("table", "user_transaction_summary", 5), ("table", "user_transaction_summary_eur", 5),
        ("quarantine", "clicks", retention.DEFAULT_QUARANTINE_DAYS),
    ]


def test_an_explicit_limit_overrides_the_catalog_for_that_feed_only(lake) -> None:
    _storage, catalog = lake
    policies = retention.resolve_policies(catalog, all_feeds=True, stream=STREAM, retention_days=7,
                                          table=TABLE, keep_versions=2)
    limits = {(p.target, p.feed): p.limit for p in policies}
    assert (limits[("stream", STREAM)], limits[("table", TABLE)]) == (7, 2)
    assert limits[("stream", "transaction_flattened")] == 90
    assert [p.describe() for p in policies if p.feed in (STREAM, TABLE)] == ["keep 7 days", "keep 2 versions"]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"stream": STREAM, "retention_days": 0}, "refusing a retention of 0 for stream transaction_stream (keep 0 days)"),
    ({"table": TABLE, "keep_versions": 0},
     "refusing a retention of 0 for table payment_method_totals (keep 0 versions)"),
    ({"stream": STREAM, "retention_days": -1, "force": True},
     "retention must not be negative: stream transaction_stream"),
    ({"table": STREAM}, "feed transaction_stream is a stream, not a table (use --stream transaction_stream)"),
    ({"quarantine_days": 0}, "refusing a retention of 0"),
])
def test_dangerous_or_wrong_policies_are_refused_with_a_clear_message(lake, arguments: dict, message: str) -> None:
    storage, catalog = lake
    storage.makedirs(f"{layout.QUARANTINE}/{STREAM}")
    with pytest.raises(LakehouseError) as refused:
        retention.resolve_policies(catalog, **arguments)
    assert str(refused.value).startswith(message)


def test_a_feed_without_a_catalog_policy_needs_an_explicit_limit_and_an_archived_one_is_refused(lake) -> None:
    _storage, catalog = lake
    catalog.add(Feed(name="clicks", kind="stream", topic="clicks"))
    with pytest.raises(LakehouseError,
                       match="^feed clicks has no retention policy in the catalog; pass --retention-days$"):
        retention.resolve_policies(catalog, stream="clicks")
    assert retention.resolve_policies(catalog, stream="clicks", retention_days=3) == [
        retention.Policy("clicks", "stream", 3)]
    archived = catalog.get("clicks")
    archived.archived = True
    catalog.save(archived)
    with pytest.raises(LakehouseError, match="archived and keeps its data"):
        retention.resolve_policies(catalog, stream="clicks", retention_days=3)
