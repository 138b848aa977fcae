"""Connections to the warehouse: one-line errors, retry with backoff while MySQL is away.

Every warehouse connection allows LOAD DATA LOCAL INFILE (the bulk path), starts with autocommit off
(writes land only in explicit transactions) and uses UTC and a strict SQL mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import mysql.connector
from mysql.connector import errorcode
from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.cursor import MySQLCursor

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

Connection = MySQLConnectionAbstract
T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
# Until MySQL has answered once, a run gives up after this long (one line, not minutes of silence); a server
# lost after that gets the caller's whole give_up_after to come back.
FIRST_CONTACT_GIVE_UP_S = 10.0
# Session settings every writer relies on: strict types and UTC.
_SESSION_SQL = (
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', "
    "time_zone = '+00:00'"
)
# Errors that mean "the server is (temporarily) away or the transaction lost a race": retry the unit of work.
_TRANSIENT_ERRNOS = {
    errorcode.CR_CONNECTION_ERROR, errorcode.CR_CONN_HOST_ERROR, errorcode.CR_SERVER_GONE_ERROR,
    errorcode.CR_SERVER_LOST, errorcode.CR_SERVER_LOST_EXTENDED, errorcode.ER_SERVER_SHUTDOWN,
    errorcode.ER_LOCK_DEADLOCK, errorcode.ER_LOCK_WAIT_TIMEOUT, errorcode.ER_CON_COUNT_ERROR,
    1927,  # MariaDB: connection was killed
    4031,  # MySQL 8: disconnected by the server because of inactivity
}


class StopRequested(Exception):
    """Raised out of a retry loop when the caller asked to stop (SIGTERM) while MySQL was away."""


def describe(settings: Settings) -> str:
    return f"{settings.mysql_host}:{settings.mysql_port}/{settings.mysql_database}"


def is_transient(exc: BaseException) -> bool:
    """True when retrying later can succeed (server down, connection lost, deadlock)."""
    if not isinstance(exc, mysql.connector.Error):
        return False
    if exc.errno in _TRANSIENT_ERRNOS or isinstance(exc, mysql.connector.errors.ConnectionTimeoutError):
        return True  # (a server that accepts but never answers times out connecting)
    # Client-side failures without a server error number (socket closed mid-read, ...).
    return isinstance(exc, mysql.connector.errors.InterfaceError) and not exc.errno


def error_text(exc: BaseException) -> str:
    """The driver's message on one line (some span several)."""
    return " ".join((getattr(exc, "msg", None) or str(exc)).split())


def connect(settings: Settings) -> Connection:
    """One attempt; a server that does not answer becomes a LakehouseError with what to check."""
    try:
        conn = mysql.connector.connect(
            **settings.mysql_params(), allow_local_infile=True, autocommit=False,
            connection_timeout=CONNECT_TIMEOUT_S, charset="utf8mb4", collation="utf8mb4_unicode_ci",
        )
    except mysql.connector.Error as exc:
        if is_transient(exc):
            raise LakehouseError(
                f"MySQL is not reachable at {settings.mysql_host}:{settings.mysql_port} ({error_text(exc)}; "
                "check MYSQL_HOST / MYSQL_PORT; start the local stack with: make up)"
            ) from exc
        raise LakehouseError(f"MySQL refused the connection to {describe(settings)}: {error_text(exc)} "
                             "(check MYSQL_USER / MYSQL_PASSWORD / MYSQL_DATABASE)") from None
    conn.cursor().execute(_SESSION_SQL)
    return conn


@dataclass
class Backoff:
    """Exponential delays between attempts: 0.5 s, 1 s, 2 s ... capped."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    _next: float = 0.0

    def next_delay(self) -> float:
        self._next = self.initial if not self._next else min(self._next * self.factor, self.maximum)
        return self._next


def _never() -> bool:
    return False


class Warehouse:
    """A warehouse connection that reconnects by itself: `run(work)` retries a unit of work on transient errors.

    A unit of work is a function of a cursor that runs inside one transaction: it is committed when it
    returns and rolled back when it raises, so a retried unit never lands twice.
    """

    def __init__(self, settings: Settings, *, give_up_after: float | None = 60.0,
                 should_stop: Callable[[], bool] = _never,
                 on_retry: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.give_up_after = give_up_after  # None: retry until it works (the streaming consumer)
        self.should_stop = should_stop
        self.on_retry = on_retry
        self._conn: Connection | None = None
        self._answered = False  # MySQL has accepted a connection of this warehouse at least once
        self.retrying = False  # MySQL is away and run() waits to try its unit of work again (a metric reads it)

    def connection(self) -> Connection:
        if self._conn is None or not self._is_open(self._conn):
            self._conn = connect(self.settings)
            self._answered = True
        return self._conn

    def run(self, work: Callable[[MySQLCursor], T], *, transactional: bool = True) -> T:
        """Run `work` (in one transaction unless it is DDL), reconnecting and retrying while MySQL is away."""
        try:
            return self._run_retrying(work, transactional)
        finally:
            self.retrying = False

    def _run_retrying(self, work: Callable[[MySQLCursor], T], transactional: bool) -> T:
        backoff, started, attempt = Backoff(), time.monotonic(), 0
        while True:
            try:
                result = self._attempt(work, transactional)
                if attempt and self.on_retry:
                    self.on_retry(f"MySQL at {describe(self.settings)} is back")
                return result
            except (LakehouseError, mysql.connector.Error) as exc:
                cause = exc.__cause__ if isinstance(exc, LakehouseError) else exc
                if cause is None or not is_transient(cause):
                    raise
                self.close()
                delay, budget = backoff.next_delay(), self._give_up_budget()
                if budget is not None and time.monotonic() - started + delay > budget:
                    raise LakehouseError(f"MySQL at {describe(self.settings)} stayed unreachable for "
                                         f"{time.monotonic() - started:.0f}s: {error_text(cause)} "
                                         "(check MYSQL_HOST / MYSQL_PORT; start the local stack with: make up)"
                                         ) from None
                attempt += 1
                self.retrying = True
                if self.on_retry:
                    self.on_retry(f"MySQL at {describe(self.settings)} unreachable ({error_text(cause)}); "
                                  f"retry {attempt} in {delay:g}s, nothing committed")
                self._sleep(delay)

    def _give_up_budget(self) -> float | None:
        if self.give_up_after is None or self._answered:
            return self.give_up_after
        return min(self.give_up_after, FIRST_CONTACT_GIVE_UP_S)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except mysql.connector.Error:
                pass  # the connection is already gone; nothing to release
            self._conn = None

    def _attempt(self, work: Callable[[MySQLCursor], T], transactional: bool) -> T:
        conn = self.connection()
        cursor = conn.cursor()
        try:
            result = work(cursor)
            if transactional:
                conn.commit()
            return result
        except BaseException:
            if transactional and self._is_open(conn):
                try:
                    conn.rollback()
                except mysql.connector.Error:
                    pass  # the server dropped the connection: the transaction is rolled back anyway
            raise
        finally:
            cursor.close()

    def _sleep(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if self.should_stop():
                raise StopRequested()
            time.sleep(min(0.2, deadline - time.monotonic()))

    @staticmethod
    def _is_open(conn: Connection) -> bool:
        try:
            return conn.is_connected()
        except mysql.connector.Error:
            return False


@contextmanager
def open_warehouse(settings: Settings, **options: object) -> Iterator[Warehouse]:
    warehouse = Warehouse(settings, **options)  # type: ignore[arg-type]
    try:
        yield warehouse
    finally:
        warehouse.close()
