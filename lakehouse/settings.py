"""Configuration shared by every script: environment variables (optionally from a .env file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import load_dotenv

from lakehouse.errors import LakehouseError


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    ksqldb_url: str = "http://127.0.0.1:8088"
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "lakehouse"
    mysql_password: str = field(default="lakehouse", repr=False)  # never printed
    mysql_database: str = "data_warehouse"
    data_lake_root: str = "./data_lake"
    # Prefixes every Kafka topic the project names (lets several environments or test runs share one broker).
    topic_prefix: str = ""
    # Where --metrics-port listens: the loopback by default; 0.0.0.0 lets a Prometheus on another host scrape.
    metrics_addr: str = "127.0.0.1"

    def topic(self, name: str) -> str:
        """The Kafka topic for a catalog topic name."""
        return f"{self.topic_prefix}{name}"

    def without_secrets(self) -> Settings:
        """A copy that can travel (pickled into Beam steps): no MySQL password; see with_secrets_from_env."""
        return replace(self, mysql_password="")

    def with_secrets_from_env(self) -> Settings:
        """This copy with the MySQL password of the environment it runs in (a Beam worker's own MYSQL_PASSWORD)."""
        return replace(self, mysql_password=load_settings().mysql_password)

    def mysql_params(self) -> dict[str, object]:
        """Connection keyword arguments for mysql.connector."""
        return {
            "host": self.mysql_host,
            "port": self.mysql_port,
            "user": self.mysql_user,
            "password": self.mysql_password,
            "database": self.mysql_database,
        }


ENV_VARS = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "ksqldb_url": "KSQLDB_URL",
    "mysql_host": "MYSQL_HOST",
    "mysql_port": "MYSQL_PORT",
    "mysql_user": "MYSQL_USER",
    "mysql_password": "MYSQL_PASSWORD",
    "mysql_database": "MYSQL_DATABASE",
    "data_lake_root": "DATA_LAKE_ROOT",
    "topic_prefix": "LAKEHOUSE_TOPIC_PREFIX",
    "metrics_addr": "LAKEHOUSE_METRICS_ADDR",
}


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings from the environment; a .env file fills in variables that are not already set."""
    if env_file and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    values: dict[str, object] = {}
    for attr, var in ENV_VARS.items():
        raw = os.environ.get(var)
        if raw is None or raw == "":
            continue
        values[attr] = _parse_port(raw) if attr == "mysql_port" else raw
    return Settings(**values)  # type: ignore[arg-type]


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise LakehouseError(f"MYSQL_PORT must be a number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise LakehouseError(f"MYSQL_PORT out of range: {port}")
    return port
