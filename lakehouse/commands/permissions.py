"""Per-folder permissions on the data lake (MySQL table data_lake_permissions, with an audit trail).

A grant on a folder covers its subfolders ('.' is the whole lake); admin includes write, write
includes read; expired and revoked grants do not count. `check` exits 0 when allowed, 1 when denied.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from lakehouse import cli
from lakehouse.governance import permissions
from lakehouse.settings import load_settings
from lakehouse.text_table import render

EXAMPLES = """
  python permissions_manager.py create-table
  python permissions_manager.py grant --email ada@example.com --folder streams/transaction_stream --permission read
  python permissions_manager.py grant --email ops@example.com --folder . --permission admin --expires 2027-01-01
  python permissions_manager.py check --email ada@example.com \\
      --folder streams/transaction_stream/year=2026 --permission read        # exit 0 allowed, 1 denied
  python permissions_manager.py revoke --email ada@example.com --folder streams/transaction_stream
  python permissions_manager.py list --folder streams/transaction_stream   # grants that apply to it
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    settings = load_settings()
    if args.command == "create-table":
        permissions.create_tables(settings)
        print(f"permission tables ready: {permissions.TABLE}, {permissions.AUDIT_TABLE}")
        return 0
    if args.command == "grant":
        granted, action = permissions.grant(settings, args.email, args.folder, args.permission,
                                            args.granted_by, args.expires)
        print(f"{'granted' if action == 'grant' else 'renewed'}: {granted.describe()}")
        if granted.state(permissions.utc_now()) == "expired":
            print(f"note: {args.expires} has begun (UTC), so this grant is already expired and does not count",
                  file=sys.stderr)
        return 0
    if args.command == "revoke":
        revoked = permissions.revoke(settings, args.email, args.folder, args.permission)
        for item in revoked:
            print(f"revoked: {item.describe()}")
        if not revoked:
            print(f"nothing to revoke: {args.email} has no active grant on exactly {args.folder}")
        return 0 if revoked else 1
    if args.command == "list":
        return _list(permissions.list_grants(settings, args.email, args.folder))
    decision = permissions.check_permission(settings, args.email, args.folder, args.permission)
    print(f"{'allowed' if decision.allowed else 'denied'}: {decision.reason}")
    return 0 if decision.allowed else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser("permissions_manager.py", __doc__, EXAMPLES, env=("mysql", "lake"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-table", help="create the permission and audit tables (idempotent)")
    grant = commands.add_parser("grant", help="grant a permission on a folder")
    _who_where(grant)
    grant.add_argument("--permission", required=True, choices=permissions.LEVELS)
    grant.add_argument("--expires", type=date.fromisoformat, metavar="YYYY-MM-DD",
                       help="the grant ends when this day begins (UTC)")
    grant.add_argument("--granted-by", metavar="G", help="who grants it (default: the OS user)")
    revoke = commands.add_parser("revoke", help="revoke the grants on exactly this folder")
    _who_where(revoke)
    revoke.add_argument("--permission", choices=permissions.LEVELS, help="only this level (default: all)")
    listing = commands.add_parser("list", help="grants in every state (active, expired, revoked)")
    listing.add_argument("--email", metavar="E")
    listing.add_argument("--folder", metavar="F", help="only the grants that apply to F (on it or a parent)")
    check = commands.add_parser("check", help="exit 0 when allowed, 1 when denied; prints the deciding grant")
    _who_where(check)
    check.add_argument("--permission", required=True, choices=permissions.LEVELS)
    return parser.parse_args(argv)


def _who_where(command: argparse.ArgumentParser) -> None:
    command.add_argument("--email", required=True, metavar="E")
    command.add_argument("--folder", required=True, metavar="F", help="relative to the lake root, e.g. streams/x")


def _list(grants: list[permissions.Grant]) -> int:
    if not grants:
        print("no grants")
        return 0
    now = permissions.utc_now()
    print(render(["id", "email", "folder", "permission", "granted by", "granted at", "expires at", "state"],
                 [[g.id, g.user_email, g.folder_path, g.permission, g.granted_by, g.granted_at, g.expires_at,
                   g.state(now)] for g in grants]))
    return 0
