"""Secrets stay secret (issue 16): the scripts run on secured Kafka, MySQL and ksqlDB with passwords the test knows;
none of them appears in what the scripts print, in any file of the lake (catalog, run history, quarantine, data),
in any warehouse row (audit trail included), in `status`, or on the command line of any process while they run."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import mysql.connector
import pyarrow.parquet as pq
from ksqldb_double import KsqlDbDouble
from secured_stack import SecuredKafka, secured_kafka, tls_only_mysql_user  # noqa: F401 (pytest fixtures)
from support import run_script, unique

from lakehouse.settings import Settings


class CommandLineWatch:
    """Reads every process's command line (/proc/<pid>/cmdline, readable by every account on the host) until
    stopped, and keeps those that carry a secret."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [secret.encode() for secret in secrets]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CommandLineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    line = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue  # gone meanwhile
                if any(secret in line for secret in self.secrets):
                    self.seen.append(line.replace(b"\0", b" ").decode(errors="replace")[:200])


def _lake_text(lake_root: Path) -> dict[str, bytes]:
    """Every file of the lake as bytes; Parquet files also as the text of their rows (a value may be compressed)."""
    texts = {}
    for path in lake_root.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes()
            if path.suffix == ".parquet":
                texts[f"{path} (rows)"] = repr(pq.read_table(path).to_pylist()).encode()
    return texts


def _warehouse_text(settings: Settings) -> dict[str, bytes]:
    texts = {}
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SHOW TABLES")
        for (table,) in cursor.fetchall():
            cursor.execute(f"SELECT * FROM `{table}`")
            texts[f"table {table}"] = repr(cursor.fetchall()).encode()
    return texts


def test_known_secrets_appear_nowhere_the_scripts_write(
        env: dict[str, str], settings_for: Settings, lake_root: Path, secured_kafka: SecuredKafka,  # noqa: F811
        tls_only_mysql_user: tuple[str, str]) -> None:  # noqa: F811
    mysql_user, mysql_password = tls_only_mysql_user
    ksqldb_password = f"ksqldb-secret-{uuid.uuid4().hex}"
    secrets = [secured_kafka.password, mysql_password, ksqldb_password]
    double = KsqlDbDouble(credentials=("analyst", ksqldb_password)).start()
    secured = {**env, **secured_kafka.env(), "MYSQL_USER": mysql_user, "MYSQL_PASSWORD": mysql_password,
               "MYSQL_SSL_CA": secured_kafka.ca, "KSQLDB_URL": double.url, "KSQLDB_USER": "analyst",
               "KSQLDB_PASSWORD": ksqldb_password}
    runs = [
        ("data_lake_config.py", "init"),
        ("kafka_producer.py", "--messages", "200", "--seed", "7", "--start", "2026-03-01", "--derive"),
        ("kafka_consumer_datalake.py", "--until-end", "--group-id", unique("g")),
        ("kafka_consumer_warehouse.py", "--until-end"),
        ("export_to_data_lake.py", "--table", "user_transaction_summary", "--source", "ksqldb"),
        ("sync_to_mysql.py", "--source", "lake"),
        ("manage_feeds.py", "add", "--from-ksqldb", "HIGH_VALUE_TRANSACTIONS", "--key-columns", "transaction_id"),
        ("permissions_manager.py", "create-table"),
        ("permissions_manager.py", "grant", "--email", "ada@example.com", "--folder", "streams", "--permission",
         "read"),
        ("permissions_manager.py", "check", "--email", "ada@example.com", "--folder", "streams/transaction_stream",
         "--permission", "read"),
        ("data_retention.py", "--all", "--dry-run"),
        ("beam_orchestrator.py", "--task", "all", "--once", "--messages", "100", "--shards", "2", "--seed", "8"),
    ]
    outputs: dict[str, str] = {}
    try:
        with CommandLineWatch(secrets) as watch:
            for script, *args in runs:
                result = run_script(script, *args, env=secured, check=True)
                outputs[" ".join((script, *args))] = result.stdout + result.stderr
            status = run_script("data_lake_config.py", "status", env=secured)
            outputs["status"] = status.stdout + status.stderr
    finally:
        double.stop()

    assert status.returncode in (0, 1) and "Traceback" not in status.stderr, status.stderr
    tick = outputs[" ".join(runs[-1])]
    assert all(f"[{task}] ok" in tick for task in ("kafka_produce", "export_datalake", "sync_warehouse", "retention"))
    assert (lake_root / "_logs/orchestrator_runs.jsonl").is_file()  # the run history, read below
    written = {**{name: text.encode() for name, text in outputs.items()}, **_lake_text(lake_root),
               **_warehouse_text(settings_for)}
    assert any(name.startswith("table data_lake_permissions_audit") for name in written)
    leaks = [(name, secret[:6]) for name, text in written.items() for secret in secrets if secret.encode() in text]
    assert leaks == []
    assert watch.seen == []
