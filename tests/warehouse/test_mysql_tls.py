"""MariaDB over TLS: MYSQL_SSL_CA verifies the server, MYSQL_PASSWORD_FILE replaces MYSQL_PASSWORD (issue 16).

The local stack's MariaDB serves TLS with a certificate of the stack's CA (`make up`). The tests log in as a user of
their own that the server admits over TLS only (REQUIRE SSL), so a script that works has talked TLS.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from secured_stack import make_certificates, sasl_ssl_listener, tls_only_mysql_user  # noqa: F401 (pytest fixture)
from support import producing, run_script

from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.settings import Settings
from lakehouse.warehouse.connection import connect

SUMMARY = "user_transaction_summary"


@pytest.fixture
def tls_settings(settings_for: Settings, stack_settings: Settings,
                 tls_only_mysql_user: tuple[str, str]) -> Settings:  # noqa: F811
    user, password = tls_only_mysql_user
    return replace(settings_for, mysql_user=user, mysql_password=password,
                   mysql_ssl_ca=sasl_ssl_listener(stack_settings)[1])  # the stack's CA signed both servers


def test_with_mysql_ssl_ca_the_session_is_encrypted_and_the_server_verified(tls_settings: Settings) -> None:
    for host in ("127.0.0.1", "localhost"):  # both names are in the server's certificate
        conn = connect(replace(tls_settings, mysql_host=host))
        try:
            cursor = conn.cursor()
            cursor.execute("SHOW STATUS LIKE 'Ssl_cipher'")
            assert cursor.fetchone()[1] != ""
        finally:
            conn.close()


def test_a_server_certificate_the_ca_did_not_sign_is_refused_at_once(tls_settings: Settings, tmp_path: Path) -> None:
    other = make_certificates(tmp_path, "other")
    with pytest.raises(LakehouseError) as error:
        connect(replace(tls_settings, mysql_ssl_ca=str(other.ca)))
    assert "certificate verify failed" in str(error.value) and "check MYSQL_SSL_CA" in str(error.value)
    assert "\n" not in str(error.value)


def test_the_warehouse_consumer_over_tls_with_the_password_in_a_file(
        env: dict[str, str], tls_settings: Settings, tmp_path: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    topic = tls_settings.topic(SUMMARY)
    clients.ensure_topics(tls_settings, {topic: True}, partitions=1)
    with producing(tls_settings) as producer:
        producer.produce(topic, key=orjson.dumps({"USER_ID": "u1", "TRANSACTION_TYPE": "purchase"}),
                         value=orjson.dumps({"TOTAL_AMOUNT": 12.5, "TRANSACTION_COUNT": 3, "AVG_AMOUNT": 4.5,
                                             "MIN_AMOUNT": 1.0, "MAX_AMOUNT": 9.0,
                                             "LAST_TRANSACTION_AT": "2026-03-01T10:00:00.000Z"}))
    password_file = tmp_path / "mysql_password"
    password_file.write_text(tls_settings.mysql_password + "\n")
    tls_env = {**env, "MYSQL_USER": tls_settings.mysql_user, "MYSQL_PASSWORD": "not-this-one",
               "MYSQL_PASSWORD_FILE": str(password_file), "MYSQL_SSL_CA": tls_settings.mysql_ssl_ca}

    run_script("kafka_consumer_warehouse.py", "--feeds", SUMMARY, "--until-end", env=tls_env, check=True)

    conn = connect(tls_settings)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT user_id, transaction_count FROM fact_user_transaction_summary")
        assert cursor.fetchall() == [("u1", 3)]
    finally:
        conn.close()
    other = make_certificates(tmp_path / "other", "other")
    refused = run_script("sync_to_mysql.py", "--source", "kafka", env={**tls_env, "MYSQL_SSL_CA": str(other.ca)},
                         timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "the server's TLS certificate was not accepted" in line and "check MYSQL_SSL_CA" in line
