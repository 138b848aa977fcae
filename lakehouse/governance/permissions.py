"""Per-folder permissions on the lake, kept in MySQL, with an audit trail of every change and every governed query.

Semantics:
  * a grant on a folder covers everything below it; "." is the whole lake;
  * admin includes write, write includes read;
  * an expired grant (expires_at reached, UTC) or a revoked one does not count.
`check_permission` answers "may E do P on F?" for the scripts and for the API layer to come; `readable_folders`
is what the governed query (governance.query) lets a user read, and `record_query` audits each query.

Input is validated before any SQL runs: emails by a strict pattern, folders normalized relative
to the lake root (no absolute paths, no '..', only safe characters) and known to the catalog or
present in the lake. All SQL is parameterized.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import mysql.connector

from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage
from lakehouse.warehouse.connection import Connection, connect
from lakehouse.warehouse.migrations import PERMISSION_TABLES, migrate

LEVELS = ("read", "write", "admin")  # each level includes the ones before it
ROOT_FOLDER = "."
TABLE, AUDIT_TABLE = PERMISSION_TABLES
MAX_EMAIL = 254
MAX_FOLDER = 512

# Used with fullmatch: `$` would also accept a trailing newline.
_EMAIL = re.compile(r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                    r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_ACTOR = re.compile(r"[A-Za-z0-9._@+-]{1,254}")
_FOLDER_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]{0,254}")  # feed names, year=2026, version=3
_GRANT_COLUMNS = "id, user_email, folder_path, permission, granted_by, granted_at, expires_at, revoked_at"

@dataclass(frozen=True)
class Grant:
    id: int
    user_email: str
    folder_path: str
    permission: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= now else "active"

    def describe(self) -> str:
        expiry = f", expires {_stamp(self.expires_at)}" if self.expires_at else ""
        return (f"grant #{self.id}: {self.permission} on {self.folder_path} for {self.user_email} "
                f"(granted by {self.granted_by} at {_stamp(self.granted_at)}{expiry})")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    email: str
    folder: str
    permission: str
    grant: Grant | None  # the grant that allowed it; None when denied
    reason: str


# ---------------------------------------------------------------- validation (no SQL before this passes)
def validate_email(text: str) -> str:
    email = (text or "").strip().lower()
    if len(email) > MAX_EMAIL or ".." in email or not _EMAIL.fullmatch(email):
        raise LakehouseError(f"invalid email {text!r}: expected name@domain.tld with letters, digits and . _ + -")
    return email


def validate_permission(text: str) -> str:
    if text not in LEVELS:
        raise LakehouseError(f"invalid permission {text!r}: use one of {', '.join(LEVELS)}")
    return text


def validate_actor(text: str) -> str:
    if not _ACTOR.fullmatch(text or ""):
        raise LakehouseError(f"invalid granted-by {text!r}: use letters, digits and . _ @ + - (max 254)")
    return text


def default_actor() -> str:
    """Who is running the command (the OS user), for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
    return user if _ACTOR.fullmatch(user) else "unknown"


def normalize_folder(text: str) -> str:
    """A folder relative to the lake root, '/'-separated, without '.', '//' or a trailing '/'."""
    raw = (text or "").strip()
    if not raw:
        raise LakehouseError("folder is empty: give a folder relative to the lake root, e.g. "
                             "streams/transaction_stream (or '.' for the whole lake)")
    if raw.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", raw):
        raise LakehouseError(f"folder {text!r} is absolute: give it relative to the lake root, "
                             "e.g. streams/transaction_stream")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LakehouseError(f"folder {text!r} contains '..': folders must stay inside the lake")
    for part in parts:
        if not _FOLDER_PART.fullmatch(part):
            raise LakehouseError(f"folder {text!r}: invalid name {part!r} (letters, digits and _ . = - only, "
                                 "not starting with '.')")
    folder = "/".join(parts) or ROOT_FOLDER
    if len(folder) > MAX_FOLDER:
        raise LakehouseError(f"folder {text!r} is longer than {MAX_FOLDER} characters")
    return folder


def known_folder(storage: LakeStorage, text: str) -> str:
    """A normalized folder that the lake holds or the catalog knows: a feed folder, a parent of one, or a folder
    inside one (a date partition or version that may not have landed yet)."""
    folder = normalize_folder(text)
    if folder == ROOT_FOLDER or storage.exists(folder):
        return folder
    feed_dirs = [feed.lake_dir for feed in FeedCatalog(storage).list()]
    if any(d == folder or d.startswith(folder + "/") or folder.startswith(d + "/") for d in feed_dirs):
        return folder
    examples = ", ".join(sorted(feed_dirs)[:4]) or "none: run python data_lake_config.py init"
    raise LakehouseError(f"folder {folder!r} is neither in the feed catalog nor in the lake "
                         f"(feed folders: {examples})")


def covering_folders(folder: str) -> list[str]:
    """The folder and every parent up to the lake root, most specific first."""
    if folder == ROOT_FOLDER:
        return [ROOT_FOLDER]
    parts = folder.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)] + [ROOT_FOLDER]


def levels_including(permission: str) -> list[str]:
    """The levels that grant `permission` (admin grants write grants read)."""
    return list(LEVELS[LEVELS.index(permission):])


# ---------------------------------------------------------------- database
def create_tables(settings: Settings) -> None:
    """Create the permission table and its audit table: the warehouse migrations hold them (idempotent; every
    other command does it too)."""
    with _connection(settings):
        pass


def grant(settings: Settings, email: str, folder: str, permission: str, granted_by: str | None = None,
          expires: date | None = None) -> tuple[Grant, str]:
    """Grant (or renew: same email, folder and level still active) a permission; returns (grant, action)."""
    email, permission = validate_email(email), validate_permission(permission)
    folder = known_folder(LakeStorage(settings.data_lake_root), folder)
    actor = validate_actor(granted_by or default_actor())
    now = utc_now()
    # A day already begun is accepted: the grant is recorded expired (renewing an active one that way ends it).
    expires_at = datetime(expires.year, expires.month, expires.day) if expires else None
    with _connection(settings) as conn:
        cursor = conn.cursor()
        existing = _fetch(cursor, "user_email = %s AND folder_path = %s AND permission = %s AND revoked_at IS NULL "
                          "AND (expires_at IS NULL OR expires_at > %s)", (email, folder, permission, now), lock=True)
        if existing:
            grant_id, action = existing[0].id, "renew"
            cursor.execute(f"UPDATE {TABLE} SET expires_at = %s, granted_by = %s WHERE id = %s",
                           (expires_at, actor, grant_id))
        else:
            action = "grant"
            cursor.execute(f"INSERT INTO {TABLE} (user_email, folder_path, permission, granted_by, granted_at, "
                           "expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                           (email, folder, permission, actor, now, expires_at))
            grant_id = cursor.lastrowid
        _audit(cursor, grant_id, action, email, folder, permission, expires_at, actor, now)
        conn.commit()
        return _fetch(cursor, "id = %s", (grant_id,))[0], action


def revoke(settings: Settings, email: str, folder: str, permission: str | None = None,
           revoked_by: str | None = None) -> list[Grant]:
    """Revoke the grants on exactly this folder (one level, or all); the folder may be gone from the lake."""
    email, folder = validate_email(email), normalize_folder(folder)
    levels = [validate_permission(permission)] if permission else list(LEVELS)
    actor = validate_actor(revoked_by or default_actor())
    now = utc_now()
    with _connection(settings) as conn:
        cursor = conn.cursor()
        targets = _fetch(cursor, f"user_email = %s AND folder_path = %s AND permission IN ({_marks(levels)}) "
                         "AND revoked_at IS NULL", (email, folder, *levels), lock=True)
        for target in targets:
            cursor.execute(f"UPDATE {TABLE} SET revoked_at = %s WHERE id = %s", (now, target.id))
            _audit(cursor, target.id, "revoke", email, folder, target.permission, target.expires_at, actor, now)
        conn.commit()
        return _fetch(cursor, f"id IN ({_marks(targets)})", tuple(t.id for t in targets)) if targets else []


def list_grants(settings: Settings, email: str | None = None, folder: str | None = None) -> list[Grant]:
    """Grants in every state; with `folder`, those that apply to it (on it or on a parent folder)."""
    conditions, params = [], []
    if email is not None:
        conditions.append("user_email = %s")
        params.append(validate_email(email))
    if folder is not None:
        covering = covering_folders(normalize_folder(folder))
        conditions.append(f"folder_path IN ({_marks(covering)})")
        params += covering
    with _connection(settings) as conn:
        return _fetch(conn.cursor(), " AND ".join(conditions) or "1 = 1", tuple(params))


def readable_folders(settings: Settings, email: str, now: datetime) -> list[str]:
    """The folders `email` may read at `now`: those of their active grants (every level includes read)."""
    return sorted({g.folder_path for g in list_grants(settings, email) if g.state(now) == "active"})


def record_query(settings: Settings, email: str, sql: str, feeds: list[str], rows: int | None, outcome: str,
                 reason: str, now: datetime) -> None:
    """One audit row for a governed query (outcome allowed, refused or failed), in its own transaction."""
    with _connection(settings) as conn:
        conn.cursor().execute(
            f"INSERT INTO {AUDIT_TABLE} (action, user_email, permission, actor, at, query_text, feeds, rows_returned, "
            "outcome, reason) VALUES ('query', %s, 'read', %s, %s, %s, %s, %s, %s, %s)",
            (email, default_actor(), now, sql, ",".join(feeds), rows, outcome, reason))
        conn.commit()


def check_permission(settings: Settings, email: str, folder: str, permission: str,
                     now: datetime | None = None) -> Decision:
    """May `email` do `permission` on `folder`? The deciding grant is the most specific active one."""
    email, permission = validate_email(email), validate_permission(permission)
    folder = known_folder(LakeStorage(settings.data_lake_root), folder)
    now = now or utc_now()
    covering = covering_folders(folder)
    with _connection(settings) as conn:
        candidates = _fetch(conn.cursor(), f"user_email = %s AND folder_path IN ({_marks(covering)})",
                            (email, *covering))
    return decide(email, folder, permission, candidates, now)


def decide(email: str, folder: str, permission: str, candidates: list[Grant], now: datetime) -> Decision:
    """The decision on validated input, from the user's grants (no SQL): only grants of `email` on `folder` or a
    parent folder apply; the deciding one is the most specific active grant of a sufficient level, then the
    strongest level."""
    covering = covering_folders(folder)
    candidates = [g for g in candidates if g.user_email == email and g.folder_path in covering]
    sufficient = levels_including(permission)
    counting = [g for g in candidates if g.state(now) == "active" and g.permission in sufficient]
    if counting:
        # Most specific folder first, then the strongest level: the grant an administrator would look at.
        deciding = min(counting, key=lambda g: (covering.index(g.folder_path), -LEVELS.index(g.permission)))
        return Decision(True, email, folder, permission, deciding, f"allowed by {deciding.describe()}")
    why_not = [f"#{g.id} {g.permission} on {g.folder_path} ({_not_counted(g, now, sufficient)})"
               for g in candidates]
    reason = (f"no active grant of {' or '.join(sufficient)} for {email} on {folder} or a parent folder"
              + (f"; not counted: {'; '.join(why_not)}" if why_not else ""))
    return Decision(False, email, folder, permission, None, reason)


def _not_counted(grant_row: Grant, now: datetime, sufficient: list[str]) -> str:
    state = grant_row.state(now)
    if state == "revoked":
        return f"revoked {_stamp(grant_row.revoked_at)}"
    if state == "expired":
        return f"expired {_stamp(grant_row.expires_at)}"
    return f"{grant_row.permission} does not include {sufficient[0]}"


@contextmanager
def _connection(settings: Settings) -> Iterator[Connection]:
    """A connection to the warehouse with the permission tables in place (made on first use by the migrations)."""
    conn = connect(settings)  # autocommit off, UTC session, one-line error when MySQL is unreachable
    try:
        migrate(conn.cursor())
        yield conn
    except mysql.connector.Error:
        conn.rollback()
        raise
    finally:
        conn.close()


def _fetch(cursor, where: str, params: tuple, lock: bool = False) -> list[Grant]:
    """Grants matching a WHERE clause built only from constants and %s placeholders."""
    cursor.execute(f"SELECT {_GRANT_COLUMNS} FROM {TABLE} WHERE {where} ORDER BY id"
                   + (" FOR UPDATE" if lock else ""), params)
    return [Grant(*row) for row in cursor.fetchall()]


def _audit(cursor, grant_id: int, action: str, email: str, folder: str, permission: str,
           expires_at: datetime | None, actor: str, now: datetime) -> None:
    cursor.execute(f"INSERT INTO {AUDIT_TABLE} (grant_id, action, user_email, folder_path, permission, "
                   "expires_at, actor, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                   (grant_id, action, email, folder, permission, expires_at, actor, now))


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def utc_now() -> datetime:
    """UTC now as MySQL DATETIME(3) stores it (naive, millisecond precision)."""
    moment = datetime.now(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC" if moment else "-"
