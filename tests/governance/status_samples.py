"""A collected status with pinned figures and dates, and the documented JSON Schema of `status --json`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jsonschema

from lakehouse.catalog import builtin_feeds
from lakehouse.governance.status import Check, DayStats, FeedStatus, Status, VersionStats

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "status.schema.json").read_text())
FIRST_DAY = date(2026, 9, 5)
FAILING_CHECK = "warehouse fact_product_purchase_counts"


def validate(document: dict) -> None:
    """Raise jsonschema.ValidationError unless `document` has exactly the documented keys and types."""
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def sample_status() -> Status:
    """Every built-in feed with some data: 3 days of streams (the middle one missing for one feed), 3 versions of
    each table a few minutes apart; one failing reconciliation check, one n/a; a note."""
    status = Status("/srv/lake", "127.0.0.1:3306/data_warehouse", datetime(2026, 9, 7, 10, 15, tzinfo=UTC))
    for n, feed in enumerate(builtin_feeds()):
        if feed.kind == "stream":
            days = [DayStats(FIRST_DAY + timedelta(days=d), 300 + 100 * d + 10 * n, 4 + d, 40_000 + 9_000 * d)
                    for d in range(3) if not (n == 3 and d == 1)]
            rows = sum(day.rows for day in days)
            status.feeds.append(FeedStatus(
                feed, f"prod_{feed.topic}", None, rows, sum(d.files for d in days), sum(d.bytes for d in days),
                2 * n, rows + 2 * n + 15 * n, 15 * n, None, days=days))
        else:
            versions = [VersionStats(v, 40 * v + n, 1, 2_000 * v, f"2026-09-0{5 + v // 2}T0{v}:1{n}:00.000Z")
                        for v in (1, 2, 3)]
            status.feeds.append(FeedStatus(
                feed, f"prod_{feed.topic}", 3, versions[-1].rows, 3, sum(v.bytes for v in versions), 0,
                500 + n, n - 4, 2 * n, versions=versions))
    status.feeds.sort(key=lambda s: (s.feed.kind != "stream", s.feed.name))
    status.tables = [("dim_users", 499), ("fact_product_purchase_counts", 50), ("sync_runs", "n/a")]
    status.checks = [
        Check("lake transaction_stream", "records in topic 1,215 = rows 1,200 + quarantined 0 + not landed 15", True),
        Check(FAILING_CHECK, "= lake product_purchase_counts v3: rows 50, purchase_count 597 != 596, "
                             "total_quantity 1,778, total_revenue 391,292.56", False),
        Check("lake payment_method_totals", "no lake version yet", None),
    ]
    status.notes = ["Kafka: a note that says why something is n/a"]
    return status


def empty_status() -> Status:
    """Nothing to show: no feeds, no MySQL."""
    return Status("/srv/empty", "127.0.0.1:1/data_warehouse", datetime(2026, 9, 7, 10, 15, tzinfo=UTC),
                  notes=["the feed catalog is empty; run: python data_lake_config.py init"])
