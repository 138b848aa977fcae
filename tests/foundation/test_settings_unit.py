"""lakehouse.settings: the secured-connection variables, password files, and passwords kept out of sight."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.settings import SECRETS, load_settings

SECURED = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "svc",
    "KAFKA_SASL_PASSWORD": "kafka-pw-1", "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem", "KAFKA_CONFIG_FILE": "/etc/k.conf",
    "KAFKA_REPLICATION_FACTOR": "3", "MYSQL_PASSWORD": "mysql-pw-2", "MYSQL_SSL_CA": "/etc/mysql-ca.pem",
    "KSQLDB_USER": "analyst", "KSQLDB_PASSWORD": "ksql-pw-3", "KSQLDB_SSL_CA": "/etc/ksql-ca.pem",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*SECURED, "MYSQL_PASSWORD_FILE", "KAFKA_SASL_PASSWORD_FILE", "KSQLDB_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_secured_connection_variable_is_read(environment: pytest.MonkeyPatch) -> None:
    for name, value in SECURED.items():
        environment.setenv(name, value)
    settings = load_settings(env_file=None)
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism, settings.kafka_sasl_username,
            settings.kafka_sasl_password, settings.kafka_ssl_ca_location, settings.kafka_config_file,
            settings.kafka_replication_factor) == (
        "SASL_SSL", "SCRAM-SHA-512", "svc", "kafka-pw-1", "/etc/ca.pem", "/etc/k.conf", 3)
    assert (settings.ksqldb_user, settings.ksqldb_password, settings.ksqldb_ssl_ca) == (
        "analyst", "ksql-pw-3", "/etc/ksql-ca.pem")
    assert settings.mysql_params()["ssl_ca"] == "/etc/mysql-ca.pem"
    assert settings.mysql_params()["ssl_verify_cert"] is settings.mysql_params()["ssl_verify_identity"] is True


def test_defaults_are_plaintext_and_the_brokers_replication_factor(environment: pytest.MonkeyPatch) -> None:
    settings = load_settings(env_file=None)
    assert settings.kafka_security_protocol == settings.kafka_sasl_password == ""
    assert settings.kafka_replication_factor == -1
    assert "ssl_ca" not in settings.mysql_params()


def test_passwords_are_never_in_the_repr_and_never_travel(environment: pytest.MonkeyPatch) -> None:
    for name, value in SECURED.items():
        environment.setenv(name, value)
    settings = load_settings(env_file=None)
    secrets = ("kafka-pw-1", "mysql-pw-2", "ksql-pw-3")
    assert not any(secret in repr(settings) for secret in secrets)
    shipped = pickle.dumps(settings.without_secrets())
    assert not any(secret.encode() in shipped for secret in secrets)
    assert set(SECRETS) == {"mysql_password", "kafka_sasl_password", "ksqldb_password"}

    environment.setenv("KAFKA_SASL_PASSWORD", "the-workers-own")
    on_worker = pickle.loads(shipped).with_secrets_from_env()
    assert (on_worker.kafka_sasl_password, on_worker.mysql_password, on_worker.ksqldb_password) == (
        "the-workers-own", "mysql-pw-2", "ksql-pw-3")


def test_a_password_file_is_read_without_its_final_line_break_and_wins(
        environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable, secret in (("MYSQL_PASSWORD", "from file 1"), ("KAFKA_SASL_PASSWORD", "from file 2"),
                             ("KSQLDB_PASSWORD", "from file 3")):
        path = tmp_path / variable
        path.write_text(f"{secret}\n")
        environment.setenv(variable, "from the variable")
        environment.setenv(f"{variable}_FILE", str(path))
    settings = load_settings(env_file=None)
    assert (settings.mysql_password, settings.kafka_sasl_password, settings.ksqldb_password) == (
        "from file 1", "from file 2", "from file 3")


def test_an_unreadable_password_file_is_one_line_naming_the_variable(
        environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("MYSQL_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(LakehouseError) as error:
        load_settings(env_file=None)
    assert str(error.value) == f"MYSQL_PASSWORD_FILE: cannot read {tmp_path / 'missing'} (No such file or directory)"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_replication_factor_must_be_positive_or_minus_one(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("KAFKA_REPLICATION_FACTOR", value)
    with pytest.raises(LakehouseError, match="KAFKA_REPLICATION_FACTOR must be a positive number"):
        load_settings(env_file=None)
