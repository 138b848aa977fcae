"""`data_lake_config.py status --json`: the collected status as one JSON document for machines.

Its keys are stable and documented in docs/status.md; docs/status.schema.json is the JSON Schema a test checks
every document against. Figures are raw numbers (bytes, rows, records); n/a is null. A key is never dropped:
what does not apply to a feed's kind is null (`days` of a table, `versions` of a stream).
"""

from __future__ import annotations

from lakehouse.governance.status import Check, DayStats, FeedStatus, Status, VersionStats

SCHEMA_VERSION = 1  # raised only when a key changes meaning or goes away; new keys keep it


def document(status: Status) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "collected_at": status.collected_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ok": status.ok,
        "lake": {"root": status.lake_root},
        "feeds": [_feed(feed) for feed in status.feeds],
        "warehouse": {
            "target": status.warehouse,
            "tables": None if status.tables is None else [
                {"name": name, "rows": rows if isinstance(rows, int) else None} for name, rows in status.tables],
        },
        "reconciliation": [_check(check) for check in status.checks],
        "notes": list(status.notes),
    }


def _feed(status: FeedStatus) -> dict:
    stream = status.feed.kind == "stream"
    return {
        "name": status.feed.name,
        "kind": status.feed.kind,
        "topic": status.topic,
        "rows": status.rows,
        "files": status.files,
        "bytes": status.bytes,
        "quarantined": status.quarantined,
        "retired": status.retired,
        "topic_records": status.topic_records,
        "lag": {"lake": status.lake_lag, "warehouse": None if stream else status.warehouse_lag},
        "current_version": status.current_version,
        "days": [_day(day) for day in status.days] if stream else None,
        "versions": None if stream else [_version(version) for version in status.versions],
    }


def _day(day: DayStats) -> dict:
    return {"date": day.day.isoformat(), "rows": day.rows, "files": day.files, "bytes": day.bytes}


def _version(version: VersionStats) -> dict:
    return {"version": version.version, "rows": version.rows, "files": version.files, "bytes": version.bytes,
            "created_at": version.created_at}


def _check(check: Check) -> dict:
    return {"check": check.label, "result": check.verdict, "ok": check.ok, "detail": check.detail}
