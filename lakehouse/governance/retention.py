"""Retention: delete what the feed policies say is too old, safely, and leave an audit trail.

Policies (from the catalog, or overridden per feed):
  * stream feeds: a date partition goes when its date is strictly older than N days before today
    (UTC): with N = 90 on 2026-04-01, day=2026-01-01 (exactly 90 days old) stays, 2025-12-31 goes.
  * table feeds: all but the newest K versions go; the current version is never deleted.
  * quarantine: same rule as streams, on `_quarantine/<feed>/year=/month=/day=` (day of quarantine),
    with its own number of days (DEFAULT_QUARANTINE_DAYS unless overridden).
Archived feeds keep their data: retention never touches them.

Safety: nothing is deleted through a symlink or outside the lake root (LakeStorage.unsafe_to_delete,
checked when planning and again right before deleting); such paths are reported and skipped.
A limit of 0 (days or versions) is refused unless forced. Every deletion is appended to
`_logs/retention_audit.jsonl` and summarized in the feed's metadata (for the raw events also the totals they
added to the tables, lakehouse.governance.raw_totals), so reconciliation counts the deleted rows as landed.

Writers: a stream day is deleted holding its day lock (shared with compaction and backfill, so none of them
rewrites the day meanwhile; an interrupted compaction of it is finished first) and the locks of the feed's Kafka
partitions (those the lake writer commits under), and measured again under them, so a file landing after planning
is either deleted and counted, or lands after the deletion, into a new folder, and stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta

import orjson
import pyarrow as pa

from lakehouse import layout
from lakehouse.catalog import Feed, FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import raw_totals
from lakehouse.lake import commit, compaction, snapshots
from lakehouse.lake.metadata import FeedMetadata, utc_now_iso
from lakehouse.storage import LakeStorage, date_partition_dirs

DEFAULT_QUARANTINE_DAYS = 30
MAX_RETENTION_DAYS = 100 * 366  # a century; beyond it, "keep" means no retention (and dates would underflow)
AUDIT_LOG = layout.log_file("retention_audit.jsonl")
TARGETS = ("stream", "table", "quarantine")


@dataclass(frozen=True)
class Policy:
    feed: str
    target: str  # one of TARGETS
    limit: int  # days (stream, quarantine) or versions to keep (table)

    def describe(self) -> str:
        return f"keep {self.limit} versions" if self.target == "table" else f"keep {self.limit} days"


@dataclass(frozen=True)
class Candidate:
    """One folder (a date partition or a table version) that the policy removes."""
    feed: str
    target: str
    path: str
    files: int
    bytes: int
    rows: int | None  # None when a parquet footer could not be read
    reason: str
    raw_totals: dict | None = None  # raw feed only: what its rows added to the tables (lakehouse.governance.raw_totals)


@dataclass(frozen=True)
class Skipped:
    feed: str
    path: str
    reason: str


@dataclass
class Plan:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        self.candidates += other.candidates
        self.skipped += other.skipped


# ---------------------------------------------------------------- policies
def resolve_policies(catalog: FeedCatalog, *, all_feeds: bool = False,
                     stream: str | None = None, retention_days: int | None = None,
                     table: str | None = None, keep_versions: int | None = None,
                     quarantine_days: int | None = None, force: bool = False) -> list[Policy]:
    """The policies to apply: every active feed's own with `all_feeds` (disabled and archived feeds are left as
    they are, like every other job leaves them), the explicit ones overriding theirs."""
    chosen: dict[tuple[str, str], Policy] = {}
    if all_feeds:
        for feed in catalog.list():
            policy = _catalog_policy(feed)
            if policy is not None and feed.active:
                chosen[(policy.feed, policy.target)] = policy
    for name, kind, override in ((stream, "stream", retention_days), (table, "table", keep_versions)):
        if name is not None:
            policy = _explicit_policy(catalog.get(name), kind, override)
            chosen[(policy.feed, policy.target)] = policy
    if all_feeds or quarantine_days is not None:
        days = DEFAULT_QUARANTINE_DAYS if quarantine_days is None else quarantine_days
        inactive = {feed.name for feed in catalog.list() if not feed.active}
        for name in catalog.storage.list_dir(layout.QUARANTINE):
            if name not in inactive and not name.startswith("."):
                chosen[(name, "quarantine")] = Policy(name, "quarantine", days)
    policies = sorted(chosen.values(), key=lambda p: (TARGETS.index(p.target), p.feed))
    _refuse_zero_without_force(policies, force)
    return policies


def _catalog_limit(feed: Feed) -> int | None:
    return feed.retention_days if feed.kind == "stream" else feed.keep_versions


def _catalog_policy(feed: Feed) -> Policy | None:
    limit = _catalog_limit(feed)
    return None if limit is None else Policy(feed.name, feed.kind, limit)


def _explicit_policy(feed: Feed, kind: str, override: int | None) -> Policy:
    if feed.kind != kind:
        raise LakehouseError(f"feed {feed.name} is a {feed.kind}, not a {kind} (use --{feed.kind} {feed.name})")
    if feed.archived:
        raise LakehouseError(f"feed {feed.name} is archived and keeps its data (restore it first)")
    limit = override if override is not None else _catalog_limit(feed)
    if limit is None:
        flag = "--retention-days" if kind == "stream" else "--keep-versions"
        raise LakehouseError(f"feed {feed.name} has no retention policy in the catalog; pass {flag}")
    return Policy(feed.name, kind, limit)


def _refuse_zero_without_force(policies: Iterable[Policy], force: bool) -> None:
    zero = [p for p in policies if p.limit == 0]
    if zero and not force:
        listed = ", ".join(f"{p.target} {p.feed} ({p.describe()})" for p in zero)
        raise LakehouseError(f"refusing a retention of 0 for {listed}: that deletes all but today's data "
                             "or every non-current version; pass --force if that is really meant")
    negative = [p for p in policies if p.limit < 0]
    if negative:
        raise LakehouseError(f"retention must not be negative: {negative[0].target} {negative[0].feed}")


# ---------------------------------------------------------------- planning
def stream_cutoff(today: date, days: int) -> date:
    """The oldest partition date that is kept: partitions dated before it are deleted."""
    if days > MAX_RETENTION_DAYS:  # a catalog edited by hand; the commands refuse such a value already
        raise LakehouseError(f"a retention of {days} days is out of range (at most {MAX_RETENTION_DAYS})")
    return today - timedelta(days=days)


def plan(storage: LakeStorage, policies: Iterable[Policy], today: date) -> Plan:
    """What the policies remove today; nothing is touched."""
    result = Plan()
    for policy in policies:
        if policy.target == "table":
            result.extend(_plan_table(storage, policy))
        else:
            result.extend(_plan_dated(storage, policy, today))
    return result


def _plan_dated(storage: LakeStorage, policy: Policy, today: date) -> Plan:
    root = (layout.feed_dir("stream", policy.feed) if policy.target == "stream"
            else f"{layout.QUARANTINE}/{policy.feed}")
    cutoff = stream_cutoff(today, policy.limit)
    result = Plan()
    for path in date_partition_dirs(storage, root):
        day = layout.parse_partition_date(path)
        if day is not None and day < cutoff:
            reason = f"{day.isoformat()} is {(today - day).days} days old, policy {policy.describe()}"
            _add(storage, result, policy, path, reason)
    return result


def _plan_table(storage: LakeStorage, policy: Policy) -> Plan:
    versions = snapshots.list_versions(storage, policy.feed)
    current = snapshots.current_version(storage, policy.feed)
    kept = set(versions[-policy.limit:] if policy.limit else []) | {current}
    result = Plan()
    for version in versions:
        if version not in kept:
            reason = f"v{version} is older than the newest {policy.limit} (current v{current})"
            _add(storage, result, policy, layout.table_version_dir(policy.feed, version), reason)
    return result


def _add(storage: LakeStorage, result: Plan, policy: Policy, path: str, reason: str) -> None:
    hazard = storage.unsafe_to_delete(path)
    if hazard is not None:
        result.skipped.append(Skipped(policy.feed, path, hazard))
        return
    result.candidates.append(_measured(storage, Candidate(policy.feed, policy.target, path, 0, 0, 0, reason)))


def _measured(storage: LakeStorage, candidate: Candidate) -> Candidate:
    """The candidate with the files, bytes and rows its folder holds now."""
    files = storage.walk_files(candidate.path)
    return replace(candidate, files=len(files), bytes=sum(f.size for f in files),
                   rows=_row_count(storage, [f.path for f in files]))


def _row_count(storage: LakeStorage, paths: list[str]) -> int | None:
    """Rows from the parquet footers (no data read); None when a footer is unreadable."""
    total = 0
    for path in paths:
        if not path.endswith(".parquet"):
            continue
        try:
            total += storage.parquet_row_count(path)
        except (OSError, pa.ArrowException):
            return None
    return total


# ---------------------------------------------------------------- deleting
def apply(storage: LakeStorage, planned: Plan) -> Plan:
    """Delete the planned folders; returns what was deleted and what was skipped as unsafe."""
    run_id = uuid.uuid4().hex[:12]
    done = Plan(skipped=list(planned.skipped))
    for candidate in planned.candidates:
        with _writers_held(storage, candidate):
            hazard = storage.unsafe_to_delete(candidate.path)  # the lake may have changed since planning
            if hazard is not None:
                done.skipped.append(Skipped(candidate.feed, candidate.path, hazard))
                continue
            # Measured again with the writers held: a file landed since planning is deleted and counted.
            deleted = _with_raw_totals(storage, _measured(storage, candidate))
            storage.delete_dir(candidate.path)
            _prune_empty_parents(storage, candidate)
            # Recorded right away, not at the end of the run: a run that dies midway leaves nothing uncounted.
            FeedMetadata(storage, deleted.feed).update(lambda document, item=deleted: _summarize(document, item,
                                                                                                 run_id))
        storage.append_line(AUDIT_LOG, orjson.dumps(
            {"at": utc_now_iso(), "run_id": run_id, "action": "delete", **asdict(deleted)}).decode())
        done.candidates.append(deleted)
    return done


@contextmanager
def _writers_held(storage: LakeStorage, candidate: Candidate) -> Iterator[None]:
    """A stream day is rewritten by compaction and backfill (under its day lock) and written by commits of the
    feed's Kafka partitions: hold the day's lock, finish a compaction a crash interrupted, then hold the
    partitions' locks while the day goes."""
    day = layout.parse_partition_date(candidate.path)
    if candidate.target != "stream" or day is None:
        yield
        return
    with storage.exclusive(commit.day_lock(candidate.feed, day)):
        compaction.recover_day(storage, candidate.feed, day)
        with commit.holding_partitions(storage, FeedMetadata(storage, candidate.feed).landed_partitions()):
            yield


def _with_raw_totals(storage: LakeStorage, candidate: Candidate) -> Candidate:
    """Raw events record what they added to the tables, so status can still check the tables without them."""
    if candidate.target != "stream" or candidate.feed != raw_totals.RAW_FEED:
        return candidate
    paths = [f.path for f in storage.walk_files(candidate.path) if f.path.endswith(".parquet")]
    try:
        totals = raw_totals.to_json(raw_totals.of_files(storage, paths)) if paths else None
    except (OSError, pa.ArrowException):
        totals = None  # files without the event columns: status's table checks will say so, nothing is hidden
    return replace(candidate, raw_totals=totals)


def _prune_empty_parents(storage: LakeStorage, candidate: Candidate) -> None:
    """Remove month=/year= folders a deleted day leaves empty (never the feed folder itself)."""
    if candidate.target == "table":
        return
    folder = candidate.path.rsplit("/", 1)[0]
    while folder.rsplit("/", 1)[-1].startswith(("month=", "year=")) and not storage.list_dir(folder):
        storage.delete_dir(folder)
        folder = folder.rsplit("/", 1)[0]


def _summarize(document: dict, item: Candidate, run_id: str) -> None:
    """Totals per target plus the last run's deletions; a deleted table version leaves the version index."""
    entry = document.setdefault("retention", {}).setdefault(
        item.target, {"folders_deleted": 0, "files_deleted": 0, "bytes_deleted": 0, "rows_deleted": 0})
    entry["folders_deleted"] += 1
    entry["files_deleted"] += item.files
    entry["bytes_deleted"] += item.bytes
    entry["rows_deleted"] += item.rows or 0
    if item.raw_totals:
        entry["raw_totals"] = raw_totals.to_json(raw_totals.added(raw_totals.from_json(entry.get("raw_totals", {})),
                                                                  raw_totals.from_json(item.raw_totals)))
    if entry.get("last_run_id") != run_id:
        entry["last_run_id"], entry["last_deleted"] = run_id, []
    entry["last_run_at"] = utc_now_iso()
    entry["last_deleted"].append(item.path)
    if item.target == "table":
        document.get("versions", {}).pop(str(layout.parse_version(item.path.rsplit("/", 1)[-1])), None)
