"""The lake's folder layout as pure functions (lakehouse.layout): unpadded integers, canonical spellings only."""

from __future__ import annotations

from datetime import date

import pytest

from lakehouse import layout


@pytest.mark.parametrize(("day", "folder"), [
    (date(2026, 9, 7), "year=2026/month=9/day=7"),
    (date(2026, 1, 1), "year=2026/month=1/day=1"),
    (date(2026, 10, 10), "year=2026/month=10/day=10"),
    (date(999, 3, 4), "year=999/month=3/day=4"),
])
def test_date_partitions_are_plain_unpadded_integers(day: date, folder: str) -> None:
    assert layout.date_partition(day) == folder


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2026, 9, 7), date(2024, 2, 29), date(2026, 12, 31),
                                 date(1, 1, 1), date(9999, 12, 31)])
def test_every_date_partition_parses_back_to_its_date(day: date) -> None:
    assert layout.parse_partition_date(f"streams/f/{layout.date_partition(day)}/x.parquet") == day


@pytest.mark.parametrize(("path", "canonical", "legacy"), [
    ("year=2026/month=09/day=7", None, date(2026, 9, 7)),
    ("year=2026/month=9/day=07", None, date(2026, 9, 7)),
    ("year=0999/month=3/day=4", None, date(999, 3, 4)),
    ("year=2026/month=2/day=30", None, None),
    ("year=2026/month=13/day=1", None, None),
    ("year=2026/month=0/day=1", None, None),
    ("year=2026/month=9", None, None),
    ("year=2026/month=9/day=7x", None, None),
    ("_quarantine/f/year=2026/month=11/day=30", date(2026, 11, 30), date(2026, 11, 30)),
])
def test_only_canonical_folders_parse_unless_legacy_padding_is_allowed(path: str, canonical, legacy) -> None:
    assert layout.parse_partition_date(path) == canonical
    assert layout.parse_partition_date(path, legacy=True) == legacy


@pytest.mark.parametrize(("name", "version"), [
    ("version=1", 1), ("version=0", 0), ("version=123456", 123456),
    ("version=-1", None), ("version=3 ", None), ("v=3", None),
    ("tables/f/version=3", None),
])
def test_parse_version_takes_only_a_bare_canonical_version_folder_name(name: str, version: int | None) -> None:
    assert layout.parse_version(name) == version


def test_version_folders_round_trip_and_name_the_snapshot_file() -> None:
    assert [layout.parse_version(layout.version_folder(v)) for v in (1, 9, 10, 100)] == [1, 9, 10, 100]
    assert layout.table_snapshot_file("payment_method_totals", 10) == (
        "tables/payment_method_totals/version=10/part-00000.parquet")


def test_batch_file_names_sort_by_offset_as_text() -> None:
    offsets = [0, 9, 10, 99, 100, 2**63 - 1]
    names = [layout.batch_file_name("payments", 2, offset) for offset in offsets]
    assert names[1] == "payments+2+00000000000000000009.parquet"
    assert sorted(names) == names, "zero-padded offsets: name order is offset order"
    assert len({len(name) for name in names}) == 1


@pytest.mark.parametrize(("call", "path"), [
    (lambda: layout.stream_partition_dir("clicks", date(2027, 1, 5)), "streams/clicks/year=2027/month=1/day=5"),
    (lambda: layout.quarantine_dir("clicks", date(2028, 2, 29)), "_quarantine/clicks/year=2028/month=2/day=29"),
    (lambda: layout.offsets_file("clicks", "clicks_topic", 4), "_metadata/clicks/offsets/clicks_topic+4.json"),
    (lambda: layout.offsets_dir("clicks"), "_metadata/clicks/offsets"),
    (lambda: layout.metadata_file("clicks"), "_metadata/clicks/feed.json"),
    (lambda: layout.catalog_file("clicks"), "_catalog/feeds/clicks.json"),
    (lambda: layout.feed_dir("stream", "clicks"), "streams/clicks"),
    (lambda: layout.feed_dir("table", "totals"), "tables/totals"),
    (lambda: layout.log_file("retention_audit.jsonl"), "_logs/retention_audit.jsonl"),
])
def test_lake_paths_follow_the_documented_layout(call, path: str) -> None:
    assert call() == path
