"""The pure part of the permission semantics (lakehouse.governance.permissions): levels, folder inheritance, expiry,
validation, and the decision over a user's grants (`decide`, which check_permission runs on the grants MySQL holds).

Every time is pinned; grants are built in memory, no database.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.governance import permissions
from lakehouse.governance.permissions import Grant

NOW = datetime(2026, 9, 7, 12, 0, 0)
ADA = "ada@example.com"
FOLDER = "streams/transaction_stream/year=2026/month=9"


def grant(id_: int, folder: str, permission: str, *, email: str = ADA, expires_at: datetime | None = None,
          revoked_at: datetime | None = None) -> Grant:
    return Grant(id_, email, folder, permission, "admin-bot", datetime(2026, 1, 2, 3, 4, 5), expires_at, revoked_at)


# ---------------------------------------------------------------- levels and folders
@pytest.mark.parametrize(("permission", "granting"), [
    ("read", ["read", "write", "admin"]),
    ("write", ["write", "admin"]),
    ("admin", ["admin"]),
])
def test_a_permission_is_granted_by_its_level_and_every_stronger_one(permission: str, granting: list[str]) -> None:
    assert permissions.levels_including(permission) == granting


def test_a_folder_is_covered_by_itself_and_every_parent_up_to_the_lake_root() -> None:
    assert permissions.covering_folders(FOLDER) == [
        FOLDER, "streams/transaction_stream/year=2026", "streams/transaction_stream", "streams", "."]
    assert permissions.covering_folders(".") == ["."]


@pytest.mark.parametrize(("text", "folder"), [
    ("streams/transaction_stream/", "streams/transaction_stream"),
    ("./streams//transaction_stream/./year=2026", "streams/transaction_stream/year=2026"),
    ("  tables/payment_method_totals/version=10 ", "tables/payment_method_totals/version=10"),
    (".", "."),
    ("./", "."),
])
def test_folders_are_normalized_relative_to_the_lake_root(text: str, folder: str) -> None:
    assert permissions.normalize_folder(text) == folder


@pytest.mark.parametrize(("text", "message"), [
    ("", "folder is empty"),
    ("/etc/passwd", "folder '/etc/passwd' is absolute"),
    ("~/lake", "folder '~/lake' is absolute"),
    ("C:/lake", "folder 'C:/lake' is absolute"),
    ("streams/../../etc", "folder 'streams/../../etc' contains '..'"),
    ("streams/.hidden", "folder 'streams/.hidden': invalid name '.hidden'"),
    ("streams/a b", "folder 'streams/a b': invalid name 'a b'"),
    ("streams/x;drop", "folder 'streams/x;drop': invalid name 'x;drop'"),
])
def test_a_folder_outside_the_lake_or_with_unsafe_names_is_refused(text: str, message: str) -> None:
    with pytest.raises(LakehouseError) as refused:
        permissions.normalize_folder(text)
    assert str(refused.value).startswith(message)


def test_a_folder_longer_than_the_column_is_refused() -> None:
    long_folder = "/".join(["a" * 100] * 6)
    with pytest.raises(LakehouseError, match="is longer than 512 characters"):
        permissions.normalize_folder(long_folder)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("text", "email"), [
    ("Ada@Example.COM", "ada@example.com"),
    ("  grace.hopper+lake@navy.mil.us ", "grace.hopper+lake@navy.mil.us"),
    ("a@b.co", "a@b.co"),
])
def test_valid_emails_are_trimmed_and_lower_cased(text: str, email: str) -> None:
    assert permissions.validate_email(text) == email


@pytest.mark.parametrize("text", ["", "ada", "ada@", "@example.com", "ada@example", "ada..l@example.com",
                                  "ada@exa_mple.com", ".ada@example.com", "ada'; DROP TABLE x;--@example.com",
                                  "a" * 250 + "@example.com"])
def test_invalid_emails_are_refused_before_any_sql(text: str) -> None:
    with pytest.raises(LakehouseError, match=r"^invalid email .*: expected name@domain\.tld"):
        permissions.validate_email(text)


def test_permissions_and_actors_are_validated() -> None:
    assert [permissions.validate_permission(level) for level in ("read", "write", "admin")] == [
        "read", "write", "admin"]
    for bad in ("READ", "owner", ""):
        with pytest.raises(LakehouseError, match="use one of read, write, admin"):
            permissions.validate_permission(bad)
    assert permissions.validate_actor("ops-bot@example.com") == "ops-bot@example.com"
    for bad in ("", "two words", "x" * 255):
        with pytest.raises(LakehouseError, match="invalid granted-by"):
            permissions.validate_actor(bad)


# ---------------------------------------------------------------- expiry
@pytest.mark.parametrize(("expires_at", "revoked_at", "state"), [
    (None, None, "active"),
    (datetime(2026, 9, 7, 12, 0, 0, 1000), None, "active"),  # one millisecond left
    (datetime(2026, 9, 7, 12, 0, 0), None, "expired"),  # expiry reached exactly now
    (datetime(2026, 9, 1), None, "expired"),
    (datetime(2027, 1, 1), datetime(2026, 9, 1), "revoked"),
])
def test_a_grant_counts_until_its_expiry_is_reached_or_it_is_revoked(expires_at, revoked_at, state: str) -> None:
    assert grant(1, "streams", "read", expires_at=expires_at, revoked_at=revoked_at).state(NOW) == state


def test_a_grant_describes_itself_with_its_times_in_utc() -> None:
    assert grant(7, "streams", "write", expires_at=datetime(2027, 1, 1)).describe() == (
        "grant #7: write on streams for ada@example.com (granted by admin-bot at 2026-01-02 03:04:05 UTC, "
        "expires 2027-01-01 00:00:00 UTC)")


# ---------------------------------------------------------------- the decision
def test_a_grant_on_a_parent_folder_covers_the_folders_below_it() -> None:
    decision = permissions.decide(ADA, FOLDER, "read", [grant(1, "streams/transaction_stream", "read")], NOW)
    assert decision.allowed and decision.grant.id == 1
    assert decision.reason.startswith("allowed by grant #1: read on streams/transaction_stream")


def test_a_grant_on_the_lake_root_covers_everything() -> None:
    assert permissions.decide(ADA, FOLDER, "admin", [grant(3, ".", "admin")], NOW).allowed


def test_the_most_specific_folder_decides_then_the_strongest_level() -> None:
    grants = [grant(1, ".", "admin"), grant(2, "streams/transaction_stream", "read"),
              grant(3, "streams/transaction_stream", "write")]
    assert permissions.decide(ADA, FOLDER, "read", grants, NOW).grant.id == 3


def test_write_includes_read_but_read_does_not_include_write() -> None:
    writer = [grant(1, "streams", "write")]
    assert permissions.decide(ADA, FOLDER, "read", writer, NOW).allowed
    denied = permissions.decide(ADA, FOLDER, "admin", writer, NOW)
    assert not denied.allowed and denied.grant is None
    assert denied.reason == (f"no active grant of admin for {ADA} on {FOLDER} or a parent folder; "
                             "not counted: #1 write on streams (write does not include admin)")


def test_expired_and_revoked_grants_are_named_in_the_denial() -> None:
    grants = [grant(4, "streams", "read", expires_at=datetime(2026, 9, 7, 12)),
              grant(5, "streams/transaction_stream", "admin", revoked_at=datetime(2026, 9, 1, 8, 30))]
    denied = permissions.decide(ADA, FOLDER, "read", grants, NOW)
    assert not denied.allowed
    assert denied.reason == (
        f"no active grant of read or write or admin for {ADA} on {FOLDER} or a parent folder; not counted: "
        "#4 read on streams (expired 2026-09-07 12:00:00 UTC); "
        "#5 admin on streams/transaction_stream (revoked 2026-09-01 08:30:00 UTC)")


def test_grants_of_another_user_or_on_a_sibling_or_child_folder_do_not_apply() -> None:
    grants = [grant(1, "streams", "admin", email="grace@example.com"),
              grant(2, "streams/transaction_flattened", "admin"),
              grant(3, f"{FOLDER}/day=7", "admin")]
    denied = permissions.decide(ADA, FOLDER, "read", grants, NOW)
    assert not denied.allowed
    assert denied.reason == f"no active grant of read or write or admin for {ADA} on {FOLDER} or a parent folder"
