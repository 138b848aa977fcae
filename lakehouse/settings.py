"""Configuration shared by every script: environment variables (optionally from a .env file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

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
    # Secured servers (empty: plaintext, as the local stack's default listeners). See lakehouse.kafka.clients.
    kafka_security_protocol: str = ""
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_ca_location: str = ""
    kafka_config_file: str = ""  # a librdkafka properties file for everything else; read when a client is made
    kafka_replication_factor: int = -1  # of the topics we create; -1: the broker's default.replication.factor
    mysql_ssl_ca: str = ""  # set: TLS, the server's certificate and name verified against this CA
    ksqldb_user: str = ""
    ksqldb_password: str = field(default="", repr=False)
    ksqldb_ssl_ca: str = ""
    # Where --metrics-port listens: the loopback by default; 0.0.0.0 lets a Prometheus on another host scrape.
    metrics_addr: str = "127.0.0.1"

    def topic(self, name: str) -> str:
        """The Kafka topic for a catalog topic name."""
        return f"{self.topic_prefix}{name}"

    def without_secrets(self) -> Settings:
        """A copy that can travel (pickled into Beam steps): no password; see with_secrets_from_env."""
        return replace(self, **dict.fromkeys(SECRETS, ""))

    def with_secrets_from_env(self) -> Settings:
        """This copy with the passwords of the environment it runs in (a Beam worker's own MYSQL_PASSWORD, …)."""
        local = load_settings()
        return replace(self, **{name: getattr(local, name) for name in SECRETS})

    def mysql_params(self) -> dict[str, object]:
        """Connection keyword arguments for mysql.connector."""
        params: dict[str, object] = {
            "host": self.mysql_host,
            "port": self.mysql_port,
            "user": self.mysql_user,
            "password": self.mysql_password,
            "database": self.mysql_database,
        }
        if self.mysql_ssl_ca:
            params.update(ssl_ca=self.mysql_ssl_ca, ssl_verify_cert=True, ssl_verify_identity=True)
        elif self.mysql_host in LOOPBACK_HOSTS:
            # Nothing on the wire to protect, and an unverified handshake costs ~0.2 s per connection (the driver
            # loads the system's CAs). Elsewhere the driver still prefers TLS, but takes any certificate.
            params["ssl_disabled"] = True
        return params


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SECRETS = ("mysql_password", "kafka_sasl_password", "ksqldb_password")


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
    "kafka_security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "kafka_sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "kafka_sasl_username": "KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "KAFKA_SASL_PASSWORD",
    "kafka_ssl_ca_location": "KAFKA_SSL_CA_LOCATION",
    "kafka_config_file": "KAFKA_CONFIG_FILE",
    "kafka_replication_factor": "KAFKA_REPLICATION_FACTOR",
    "mysql_ssl_ca": "MYSQL_SSL_CA",
    "ksqldb_user": "KSQLDB_USER",
    "ksqldb_password": "KSQLDB_PASSWORD",
    "ksqldb_ssl_ca": "KSQLDB_SSL_CA",
    "metrics_addr": "LAKEHOUSE_METRICS_ADDR",
}
# What each variable is for, in every command's --help ("environment:"), grouped by the service it points at.
ENV_HELP = {
    "kafka_bootstrap_servers": "Kafka brokers, host:port[,host:port]",
    "topic_prefix": "prefix of every Kafka topic the project names",
    "ksqldb_url": "ksqlDB server",
    "mysql_host": "MySQL host",
    "mysql_port": "MySQL port",
    "mysql_user": "MySQL user",
    "mysql_password": "MySQL password (environment or .env only, never on the command line)",
    "mysql_database": "MySQL database",
    "data_lake_root": "the lake: a folder, or an object-store URI such as s3://bucket/lake",
    "metrics_addr": "where --metrics-port listens (0.0.0.0: from other hosts too)",
    "kafka_security_protocol": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN",
    "kafka_sasl_username": "the SASL user",
    "kafka_sasl_password": "the SASL password (or KAFKA_SASL_PASSWORD_FILE)",
    "kafka_ssl_ca_location": "the CA file the broker's certificate is checked against",
    "kafka_config_file": "a librdkafka properties file for any other client setting",
    "kafka_replication_factor": "replication factor of the topics we create (-1: the broker's default)",
    "mysql_ssl_ca": "TLS to MySQL, the server verified against this CA",
    "ksqldb_user": "ksqlDB basic-auth user",
    "ksqldb_password": "ksqlDB basic-auth password (or KSQLDB_PASSWORD_FILE)",
    "ksqldb_ssl_ca": "the CA of an https ksqlDB",
}
ENV_GROUPS = {
    "kafka": ("kafka_bootstrap_servers", "topic_prefix", "kafka_security_protocol", "kafka_sasl_mechanism",
              "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_ca_location", "kafka_config_file",
              "kafka_replication_factor"),
    "ksqldb": ("ksqldb_url", "ksqldb_user", "ksqldb_password", "ksqldb_ssl_ca"),
    "mysql": ("mysql_host", "mysql_port", "mysql_user", "mysql_password", "mysql_database", "mysql_ssl_ca"),
    "lake": ("data_lake_root",),
    "metrics": ("metrics_addr",),
}

# Variables read by the libraries themselves, not by Settings: an s3:// lake takes only AWS's standard ones.
STANDARD_ENV = {
    "lake": [("AWS_ENDPOINT_URL", "an S3-compatible server for an s3:// lake (unset: AWS)"),
             ("AWS_ACCESS_KEY_ID", "its access key"),
             ("AWS_SECRET_ACCESS_KEY", "its secret key"),
             ("AWS_REGION", "its region")],
}


def environment_help(groups: Sequence[str]) -> list[tuple[str, str]]:
    """(variable, what it is for and its default) for the settings of `groups`, in ENV_GROUPS order."""
    defaults = Settings()
    rows = []
    for group, attrs in ENV_GROUPS.items():
        if group in groups:
            for attr in attrs:
                default = "" if attr in SECRETS else f" (default {getattr(defaults, attr) or 'none'})"
                rows.append((ENV_VARS[attr], ENV_HELP[attr] + default))
            rows += STANDARD_ENV.get(group, [])
    return rows


def load_env_file(env_file: str | os.PathLike[str] | None = ".env") -> None:
    """Let a .env file set the variables the environment does not."""
    if env_file and Path(env_file).is_file():
        from dotenv import load_dotenv  # here: most runs have no .env file, and need not pay the import

        load_dotenv(env_file, override=False)


# A password may instead come from a file (a mounted secret): <VARIABLE>_FILE names it, and wins when both are set.
SECRET_FILES = {name: f"{ENV_VARS[name]}_FILE" for name in SECRETS}


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings from the environment; a .env file fills in variables that are not already set."""
    load_env_file(env_file)
    values: dict[str, object] = {}
    for attr, var in ENV_VARS.items():
        raw = os.environ.get(var)
        if raw is None or raw == "":
            continue
        values[attr] = _PARSERS[attr](raw) if attr in _PARSERS else raw
    for attr, var in SECRET_FILES.items():
        if os.environ.get(var):
            values[attr] = _read_secret(var, os.environ[var])
    return Settings(**values)  # type: ignore[arg-type]


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise LakehouseError(f"MYSQL_PORT must be a number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise LakehouseError(f"MYSQL_PORT out of range: {port}")
    return port


def _parse_replication_factor(raw: str) -> int:
    try:
        factor = int(raw)
    except ValueError:
        factor = 0
    if factor < 1 and factor != -1:
        raise LakehouseError(f"KAFKA_REPLICATION_FACTOR must be a positive number (or -1: the broker's default), "
                             f"got {raw!r}")
    return factor


_PARSERS = {"mysql_port": _parse_port, "kafka_replication_factor": _parse_replication_factor}


def _read_secret(var: str, path: str) -> str:
    """The secret in a file: its text without the final line break (never echoed in an error)."""
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise LakehouseError(f"{var}: cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None
