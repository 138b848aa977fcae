"""lakehouse.kafka.clients: the one place that builds every client's configuration (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.settings import Settings

SECURED = Settings(kafka_bootstrap_servers="broker:9093", kafka_security_protocol="SASL_SSL",
                   kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="svc", kafka_sasl_password="pw",
                   kafka_ssl_ca_location="/ca.pem")


def test_producers_and_consumers_carry_the_login_and_the_ca() -> None:
    for config in (clients.producer_config(SECURED), clients.connection_config(SECURED)):
        assert {key: config[key] for key in ("bootstrap.servers", "security.protocol", "sasl.mechanism",
                                             "sasl.username", "sasl.password", "ssl.ca.location")} == {
            "bootstrap.servers": "broker:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "svc", "sasl.password": "pw", "ssl.ca.location": "/ca.pem"}


def test_plaintext_settings_add_no_security_property() -> None:
    assert set(clients.connection_config(Settings())) == {"bootstrap.servers", "log_level"}


def test_the_file_fills_in_the_variables_win_and_the_clients_own_guarantees_stay(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("# comment\n\nsasl.mechanism=PLAIN\n  client.id = team-a \n"
                    "ssl.endpoint.identification.algorithm=none\nenable.idempotence=false\nbootstrap.servers=elsewhere:1\n")
    settings = Settings(kafka_config_file=str(path), kafka_sasl_mechanism="SCRAM-SHA-256")
    config = clients.producer_config(settings)
    assert config["client.id"] == "team-a" and config["ssl.endpoint.identification.algorithm"] == "none"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"          # KAFKA_SASL_MECHANISM over the file
    assert config["bootstrap.servers"] == "127.0.0.1:9092"      # KAFKA_BOOTSTRAP_SERVERS always
    assert config["enable.idempotence"] is True                 # exactly-once is not the file's to turn off


def test_a_missing_properties_file_is_one_line() -> None:
    with pytest.raises(LakehouseError) as error:
        clients.connection_config(Settings(kafka_config_file="/no/such/file.properties"))
    assert str(error.value) == "KAFKA_CONFIG_FILE: cannot read /no/such/file.properties (No such file or directory)"


def test_a_property_librdkafka_refuses_names_the_variable_to_fix() -> None:
    with pytest.raises(LakehouseError) as error:
        clients.producer(Settings(kafka_security_protocol="SASL_TLS"))
    assert str(error.value).startswith("Kafka client configuration: ")
    assert 'property "security.protocol"' in str(error.value) and str(error.value).endswith(
        "(check KAFKA_SECURITY_PROTOCOL)")


@pytest.mark.parametrize(("code", "expected"), [
    (KafkaError.ILLEGAL_GENERATION, True), (KafkaError.REBALANCE_IN_PROGRESS, True),
    (KafkaError.UNKNOWN_MEMBER_ID, True), (KafkaError._TRANSPORT, False),
    (KafkaError.GROUP_AUTHORIZATION_FAILED, False),
])
def test_an_offset_commit_refused_by_a_rebalance_is_told_apart_from_a_real_failure(code: int, expected: bool) -> None:
    assert clients.during_rebalance(KafkaException(KafkaError(code))) is expected
