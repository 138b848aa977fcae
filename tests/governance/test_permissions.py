"""permissions_manager.py and check_permission on real MariaDB: subfolders, levels, expiry, revocation,
validation and injection attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mysql.connector
import pytest
from support import BOTH_BACKENDS, run_script

from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.governance import permissions
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

FEED_DIR = "streams/transaction_stream"
DEEP = f"{FEED_DIR}/year=2026/month=1/day=2"
ADA = "ada@example.com"


@pytest.fixture
def ready(env: dict[str, str], settings_for: Settings) -> dict[str, str]:
    """A lake with the built-in feeds and one date partition, and the permission tables."""
    storage = LakeStorage(settings_for.data_lake_root)
    FeedCatalog(storage).init()
    storage.makedirs(DEEP)
    run_script("permissions_manager.py", "create-table", env=env, check=True)
    return env


def _pm(env: dict[str, str], *args: str):
    return run_script("permissions_manager.py", *args, env=env)


def _grant(env: dict[str, str], folder: str, permission: str, *extra: str, email: str = ADA) -> int:
    result = _pm(env, "grant", "--email", email, "--folder", folder, "--permission", permission, *extra)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split("grant #")[1].split(":")[0])


def _check(env: dict[str, str], folder: str, permission: str, email: str = ADA):
    return _pm(env, "check", "--email", email, "--folder", folder, "--permission", permission)


def _db_state(settings: Settings) -> list[tuple]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        state = []
        for table in (permissions.TABLE, permissions.AUDIT_TABLE):
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")
            state.append((table, cursor.fetchall()))
        return state


def _sql(settings: Settings, statement: str, params: tuple) -> None:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        conn.cursor().execute(statement, params)
        conn.commit()


def test_create_table_is_idempotent(ready: dict[str, str], settings_for: Settings) -> None:
    again = _pm(ready, "create-table")
    assert again.returncode == 0 and "permission tables ready" in again.stdout
    assert _db_state(settings_for) == [(permissions.TABLE, []), (permissions.AUDIT_TABLE, [])]


def test_grant_covers_subfolders_not_parents_or_siblings(ready: dict[str, str]) -> None:
    grant_id = _grant(ready, "./streams//transaction_stream/", "read")  # normalized on the way in

    allowed = _check(ready, DEEP, "read")
    assert allowed.returncode == 0
    assert allowed.stdout.startswith(f"allowed: allowed by grant #{grant_id}: read on {FEED_DIR} for {ADA}")
    assert _check(ready, "streams", "read").returncode == 1
    sibling = _check(ready, "streams/transaction_flattened", "read")
    assert sibling.returncode == 1
    assert sibling.stdout.startswith(f"denied: no active grant of read or write or admin for {ADA} on "
                                     "streams/transaction_flattened")
    assert _check(ready, DEEP, "read", email="grace@example.com").returncode == 1


def test_levels_admin_includes_write_includes_read(ready: dict[str, str], settings_for: Settings) -> None:
    read_id = _grant(ready, DEEP, "read")
    denied = _check(ready, DEEP, "write")
    assert denied.returncode == 1
    assert f"not counted: #{read_id} read on {DEEP} (read does not include write)" in denied.stdout

    admin_id = _grant(ready, "streams", "admin")
    for level in ("read", "write", "admin"):
        assert _check(ready, DEEP, level).returncode == 0, level
    decision = permissions.check_permission(settings_for, ADA, DEEP, "write")
    assert decision.allowed and decision.grant is not None and decision.grant.id == admin_id
    # The most specific sufficient grant decides.
    assert permissions.check_permission(settings_for, ADA, DEEP, "read").grant.id == read_id

    whole_lake = _grant(ready, ".", "write", email="ops@example.com")
    assert permissions.check_permission(settings_for, "OPS@example.com", "tables", "write").grant.id == whole_lake


def test_expired_grants_do_not_count(ready: dict[str, str], settings_for: Settings) -> None:
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    grant_id = _grant(ready, FEED_DIR, "write", "--expires", tomorrow)
    assert _check(ready, DEEP, "write").returncode == 0

    # A day passes: move the expiry into the past instead of waiting.
    _sql(settings_for, f"UPDATE {permissions.TABLE} SET expires_at = %s WHERE id = %s",
         (datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1), grant_id))
    expired = _check(ready, DEEP, "write")
    assert expired.returncode == 1
    assert f"#{grant_id} write on {FEED_DIR} (expired" in expired.stdout

    # A date already begun is recorded as it is: an expired grant, which does not count.
    past = _pm(ready, "grant", "--email", ADA, "--folder", DEEP, "--permission", "read", "--expires", "2020-01-01")
    assert past.returncode == 0 and "already expired and does not count" in past.stderr
    denied = _check(ready, DEEP, "read")
    assert denied.returncode == 1 and f"read on {DEEP} (expired" in denied.stdout


def test_revoked_grants_do_not_count_and_everything_is_audited(ready: dict[str, str],
                                                               settings_for: Settings) -> None:
    grant_id = _grant(ready, FEED_DIR, "read", "--granted-by", "security@example.com")
    assert _grant(ready, FEED_DIR, "read") == grant_id  # granting again renews the same grant

    revoked = _pm(ready, "revoke", "--email", ADA, "--folder", FEED_DIR)
    assert revoked.returncode == 0 and f"revoked: grant #{grant_id}" in revoked.stdout
    denied = _check(ready, DEEP, "read")
    assert denied.returncode == 1 and f"#{grant_id} read on {FEED_DIR} (revoked" in denied.stdout
    again = _pm(ready, "revoke", "--email", ADA, "--folder", FEED_DIR)
    assert again.returncode == 1 and "nothing to revoke" in again.stdout

    listing = _pm(ready, "list", "--folder", DEEP)
    assert listing.returncode == 0 and "revoked" in listing.stdout and ADA in listing.stdout
    audit = dict(_db_state(settings_for))[permissions.AUDIT_TABLE]
    assert [(row[1], row[2]) for row in audit] == [(grant_id, "grant"), (grant_id, "renew"), (grant_id, "revoke")]


@pytest.mark.parametrize("args, message", [
    (["--email", "a@example.com' OR '1'='1", "--folder", FEED_DIR], "invalid email"),
    (["--email", "x@example.com; DROP TABLE data_lake_permissions; --", "--folder", FEED_DIR], "invalid email"),
    (["--email", "no-at-sign", "--folder", FEED_DIR], "invalid email"),
    (["--email", ADA, "--folder", "streams/x'; DELETE FROM data_lake_permissions; --"], "invalid name"),
    (["--email", ADA, "--folder", "streams/%"], "invalid name"),
    (["--email", ADA, "--folder", "../etc"], "contains '..'"),
    (["--email", ADA, "--folder", "streams/transaction_stream/../../.."], "contains '..'"),
    (["--email", ADA, "--folder", "/etc/passwd"], "is absolute"),
    (["--email", ADA, "--folder", "streams\n/transaction_stream"], "invalid name"),
    (["--email", ADA, "--folder", "streams/not_a_feed"], "neither in the feed catalog nor in the lake"),
    (["--email", ADA, "--folder", FEED_DIR, "--granted-by", "x'); DROP TABLE data_lake_permissions; --"],
     "invalid granted-by"),
    (["--email", ADA, "--folder", FEED_DIR, "--granted-by", "ada\n"], "invalid granted-by"),
])
def test_injection_and_bad_input_are_refused_and_leave_the_database_unchanged(
        ready: dict[str, str], settings_for: Settings, args: list[str], message: str) -> None:
    _grant(ready, FEED_DIR, "read")
    before = _db_state(settings_for)

    for command in ("grant",) if "--granted-by" in args else ("grant", "check"):
        result = _pm(ready, command, *args, "--permission", "read")
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr

    assert _db_state(settings_for) == before


def test_bad_permission_level_is_refused(ready: dict[str, str], settings_for: Settings) -> None:
    result = _pm(ready, "grant", "--email", ADA, "--folder", FEED_DIR, "--permission", "read' OR 1=1")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    with pytest.raises(LakehouseError, match="invalid permission"):
        permissions.check_permission(settings_for, ADA, FEED_DIR, "superuser")
    assert _db_state(settings_for) == [(permissions.TABLE, []), (permissions.AUDIT_TABLE, [])]


@BOTH_BACKENDS
def test_first_use_makes_the_tables_and_subfolders_need_not_exist_yet(env: dict[str, str],
                                                                      settings_for: Settings) -> None:
    """No create-table, no landed data: a date partition of a catalog feed can be checked and granted."""
    FeedCatalog(LakeStorage(settings_for.data_lake_root)).init()
    not_landed = f"{FEED_DIR}/year=2031"
    first = _pm(env, "check", "--email", ADA, "--folder", not_landed, "--permission", "read")
    assert first.returncode == 1 and first.stdout.startswith("denied: no active grant")
    grant_id = _grant(env, not_landed, "read")
    assert _check(env, f"{not_landed}/month=1", "read").returncode == 0
    assert [row[0] for row in dict(_db_state(settings_for))[permissions.TABLE]] == [grant_id]
