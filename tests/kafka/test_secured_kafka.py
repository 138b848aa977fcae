"""The scripts on Kafka's SASL_SSL listener (SCRAM-SHA-512 over TLS), as on a managed cluster (issue 16).

The local stack's broker has the listener (`make up`); each test logs in as a SCRAM user of its own.
"""

from __future__ import annotations

from pathlib import Path

import mysql.connector
import pyarrow.dataset as ds
import pytest
from secured_stack import SecuredKafka, make_certificates, secured_kafka  # noqa: F401 (pytest fixture)
from support import run_script, unique

from lakehouse.kafka import clients
from lakehouse.settings import Settings

STREAM = "transaction_stream"


def _lake_ids(lake_root: Path) -> list[str]:
    return ds.dataset(lake_root / "streams" / STREAM, format="parquet", partitioning="hive").to_table(
        columns=["transaction_id"]).column("transaction_id").to_pylist()


def _warehouse_transactions(settings: Settings) -> int:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COALESCE(SUM(transaction_count), 0) FROM fact_user_transaction_summary")
        return int(cursor.fetchone()[0])


def test_producer_lake_warehouse_and_export_run_over_sasl_ssl(
        env: dict[str, str], secured_kafka: SecuredKafka, settings_for: Settings, lake_root: Path) -> None:  # noqa: F811
    secured = {**env, **secured_kafka.env()}  # 127.0.0.1:9093 speaks nothing but SASL_SSL
    run_script("data_lake_config.py", "init", env=secured, check=True)
    run_script("kafka_producer.py", "--messages", "400", "--seed", "16", "--start", "2026-03-01", "--days", "2",
               "--derive", env=secured, check=True)

    run_script("kafka_consumer_datalake.py", "--feeds", STREAM, "--until-end", "--group-id", unique("g"),
               env=secured, check=True)
    ids = _lake_ids(lake_root)
    assert len(ids) == len(set(ids)) == 400

    warehouse = run_script("kafka_consumer_warehouse.py", "--feeds", "user_transaction_summary", "--until-end",
                           env=secured, check=True)
    assert _warehouse_transactions(settings_for) == 400, warehouse.stdout

    exported = run_script("export_to_data_lake.py", "--table", "product_purchase_counts", "--source", "kafka",
                          env=secured, check=True).stdout
    assert "table product_purchase_counts:" in exported and "wrote version=1" in exported


@pytest.mark.parametrize(("script", "args"), [
    ("kafka_consumer_datalake.py", ("--feeds", STREAM, "--until-end")),
    ("kafka_producer.py", ("--messages", "10")),
])
def test_a_wrong_password_exits_2_at_once_with_one_line_naming_the_setting(
        env: dict[str, str], secured_kafka: SecuredKafka, script: str, args: tuple[str, ...]) -> None:  # noqa: F811
    run_script("data_lake_config.py", "init", env=env, check=True)
    wrong = {**env, **secured_kafka.env(), "KAFKA_SASL_PASSWORD": "not-the-password"}
    result = run_script(script, *args, env=wrong, timeout=15)  # librdkafka alone would retry for ever
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: Kafka at {secured_kafka.bootstrap} refused the login of user "
                           f"'{secured_kafka.username}'")
    assert "Authentication failed" in line and "(check KAFKA_SASL_PASSWORD and KAFKA_SASL_USERNAME)" in line
    assert "not-the-password" not in result.stdout + result.stderr


def test_a_broker_certificate_from_another_ca_is_refused_naming_the_ca_setting(
        env: dict[str, str], secured_kafka: SecuredKafka, tmp_path: Path) -> None:  # noqa: F811
    other = make_certificates(tmp_path / "certs", "other")
    run_script("data_lake_config.py", "init", env=env, check=True)
    result = run_script("export_to_data_lake.py", "--table", "product_purchase_counts", "--source", "kafka",
                        env={**env, **secured_kafka.env(), "KAFKA_SSL_CA_LOCATION": str(other.ca)}, timeout=15)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "certificate verify failed" in line and "(check KAFKA_SSL_CA_LOCATION" in line


def test_a_librdkafka_properties_file_carries_the_rest(
        env: dict[str, str], secured_kafka: SecuredKafka, settings_for: Settings, tmp_path: Path) -> None:  # noqa: F811
    properties = tmp_path / "client.properties"
    properties.write_text("# a managed cluster's client settings\n"
                          "security.protocol=SASL_SSL\nsasl.mechanism = SCRAM-SHA-512\n"
                          f"sasl.username={secured_kafka.username}\nsasl.password={secured_kafka.password}\n"
                          f"ssl.ca.location={secured_kafka.ca}\n\nclient.id=lakehouse-test\n")
    from_file = {**env, "KAFKA_BOOTSTRAP_SERVERS": secured_kafka.bootstrap, "KAFKA_CONFIG_FILE": str(properties)}
    produced = run_script("kafka_producer.py", "--messages", "25", "--seed", "3", env=from_file, check=True)
    assert sum(clients.topic_end_offsets(settings_for, settings_for.topic(STREAM)).values()) == 25, produced.stdout

    properties.write_text("security.protocol=SASL_SSL\nthis line has no equals sign\n")
    broken = run_script("kafka_producer.py", "--messages", "1", env=from_file, timeout=15)
    assert broken.returncode == 2
    assert broken.stderr.strip() == f"error: KAFKA_CONFIG_FILE {properties} line 2: expected name=value"


def test_topics_get_the_brokers_replication_factor_unless_kafka_replication_factor_says(
        env: dict[str, str], settings_for: Settings) -> None:
    run_script("kafka_producer.py", "--messages", "5", env=env, check=True)
    topic = settings_for.topic(STREAM)
    metadata = clients.require_broker(settings_for).list_topics(topic=topic, timeout=10).topics[topic]
    assert {len(partition.replicas) for partition in metadata.partitions.values()} == {1}  # the broker's default

    two = run_script("kafka_producer.py", "--topic", "other_stream", "--messages", "5",
                     env={**env, "KAFKA_REPLICATION_FACTOR": "2"}, timeout=60)
    assert two.returncode == 2 and "Traceback" not in two.stderr
    assert f"cannot create topic {settings_for.topic('other_stream')}: " in two.stderr
    assert "replication factor" in two.stderr.lower()
