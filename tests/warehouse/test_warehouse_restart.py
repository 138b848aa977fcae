"""The warehouse consumer across a MariaDB crash and restart.

The shared server must never be stopped (other tests use it), so this test runs a private mariadbd on
a free port, kills it with SIGKILL while the consumer is working, and starts it again on the same
data directory.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import orjson
import pytest
from support import REPO, wait_for
from test_warehouse import end_offsets, init_lake, produce, stored_offsets

from lakehouse.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("mariadbd") is None, reason="mariadbd not installed")
DATABASE = "data_warehouse_private"


class PrivateMariaDb:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={folder / 'data'}", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.folder / 'data'}", f"--port={self.port}",
             f"--socket={self.folder / 's.sock'}", f"--pid-file={self.folder / 'mariadbd.pid'}",
             f"--log-error={self.folder / 'error.log'}", "--bind-address=127.0.0.1", "--user=root",
             "--local-infile=1", "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while subprocess.run(self._root_client("SELECT 1"), capture_output=True).returncode != 0:
            assert self.process.poll() is None, (self.folder / "error.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "private mariadbd did not start"
            time.sleep(0.2)

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def create_user_and_database(self) -> None:
        subprocess.run(self._root_client(
            f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
            "CREATE USER 'lakehouse'@'%' IDENTIFIED BY 'lakehouse'; "
            f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO 'lakehouse'@'%';"), check=True, capture_output=True)

    def _root_client(self, sql: str) -> list[str]:
        return ["mariadb", "--no-defaults", f"--socket={self.folder / 's.sock'}", "-uroot", "-e", sql]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDb]:
    server = PrivateMariaDb(tmp_path / "mariadb")
    server.start()
    server.create_user_and_database()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.crash()


def _payment_records(step: int) -> list[tuple[int, bytes, bytes]]:
    methods = ("credit_card", "paypal", "bank_transfer", "apple_pay", "google_pay", "debit_card")
    return [(index, orjson.dumps(name), orjson.dumps({
        "TOTAL_AMOUNT_EUR": 10.0 * step, "TRANSACTION_COUNT": step, "AVG_AMOUNT_EUR": 10.0}))
        for index, name in enumerate(methods)]


def _caught_up(private: Settings, shared: Settings, topic: str) -> bool:
    try:
        return stored_offsets(private, topic) == end_offsets(shared, topic)
    except mysql.connector.Error:
        return False  # schema not created yet, or the server is still down


def test_consumer_survives_a_mariadb_crash_and_resumes_by_itself(
        env: dict[str, str], settings_for: Settings, private_mariadb: PrivateMariaDb) -> None:
    init_lake(env)
    private_env = {**env, "MYSQL_PORT": str(private_mariadb.port), "MYSQL_DATABASE": DATABASE}
    private = Settings(**{**settings_for.__dict__, "mysql_port": private_mariadb.port, "mysql_database": DATABASE})
    topic = "payment_method_totals"

    produce(settings_for, topic, [record for step in range(1, 51) for record in _payment_records(step)])
    consumer = subprocess.Popen([sys.executable, str(REPO / "kafka_consumer_warehouse.py"), "--feeds", topic],
                                cwd=REPO, env=private_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _caught_up(private, settings_for, topic), 60, "the first 300 records")

        private_mariadb.crash()
        produce(settings_for, topic, [record for step in range(51, 101) for record in _payment_records(step)])
        time.sleep(3)  # the consumer now retries against a dead server
        private_mariadb.start()
        wait_for(lambda: _caught_up(private, settings_for, topic), 90, "the resumption")
        assert consumer.poll() is None, "the consumer gave up instead of waiting for MySQL"
    finally:
        consumer.send_signal(signal.SIGTERM)
        stdout, stderr = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, stderr
    assert "unreachable" in stderr and "is back" in stderr

    with mysql.connector.connect(**private.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT d.payment_method, f.transaction_count, f.total_amount_eur FROM "
                       "fact_payment_method_totals f JOIN dim_payment_methods d USING (payment_method_id)")
        rows = cursor.fetchall()
    assert len(rows) == 6 and {(count, float(total)) for _, count, total in rows} == {(100, 1000.0)}
    assert stored_offsets(private, topic) == {p: 100 for p in range(6)}
