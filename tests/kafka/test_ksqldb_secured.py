"""The ksqlDB client against a secured server (the protocol double with basic auth and https): issue 16."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from ksqldb_double import KsqlDbDouble
from secured_stack import Certificates, make_certificates
from support import run_script

from lakehouse.errors import LakehouseError
from lakehouse.kafka.ksqldb import KsqlClient, client_for
from lakehouse.settings import Settings

USER, PASSWORD = "analyst", "ksql-s3cret:with-colon"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"), "ksqldb")


@pytest.fixture
def secured_double(certificates: Certificates) -> Iterator[KsqlDbDouble]:
    double = KsqlDbDouble(credentials=(USER, PASSWORD), tls=(certificates.certificate, certificates.key)).start()
    yield double
    double.stop()


def test_basic_auth_and_https_with_the_ca_of_the_settings(secured_double: KsqlDbDouble,
                                                           certificates: Certificates) -> None:
    settings = Settings(ksqldb_url=secured_double.url, ksqldb_user=USER, ksqldb_password=PASSWORD,
                        ksqldb_ssl_ca=str(certificates.ca))
    assert secured_double.url.startswith("https://127.0.0.1:")
    streams = client_for(settings).list_streams()
    assert "TRANSACTION_FLATTENED" in {stream["name"] for stream in streams}
    assert client_for(settings).reachable()
    assert secured_double.refused == 0
    assert base64.b64decode(secured_double.authorization.split()[1]).decode() == f"{USER}:{PASSWORD}"


@pytest.mark.parametrize(("user", "password"), [(USER, "wrong"), ("", "")])
def test_wrong_or_missing_credentials_are_one_line_naming_the_variables(
        secured_double: KsqlDbDouble, certificates: Certificates, user: str, password: str) -> None:
    client = KsqlClient(secured_double.url, timeout=5, user=user, password=password, ca=str(certificates.ca))
    for call in (client.list_tables, client.reachable):  # a server that refuses us is not an absent one
        with pytest.raises(LakehouseError) as error:
            call()
        assert str(error.value) == (f"ksqlDB at {secured_double.url} refused the request to "
                                    f"{'/ksql' if call == client.list_tables else '/info'} (HTTP 401); "
                                    "check KSQLDB_USER and KSQLDB_PASSWORD")
    assert secured_double.refused == 2


def test_a_certificate_the_ca_did_not_sign_is_refused_naming_ksqldb_ssl_ca(
        secured_double: KsqlDbDouble, tmp_path: Path) -> None:
    other = make_certificates(tmp_path, "other")
    for ca in (str(other.ca), ""):  # another CA, or only the system's
        with pytest.raises(LakehouseError) as error:
            KsqlClient(secured_double.url, timeout=5, user=USER, password=PASSWORD, ca=ca).list_streams()
        assert str(error.value).startswith(f"ksqlDB at {secured_double.url}: its certificate was not accepted (")
        assert "check KSQLDB_SSL_CA" in str(error.value)
    assert secured_double.requests == []


def test_a_script_reaches_the_secured_ksqldb(env: dict[str, str], secured_double: KsqlDbDouble,
                                             certificates: Certificates) -> None:
    secured = {**env, "KSQLDB_URL": secured_double.url, "KSQLDB_USER": USER, "KSQLDB_PASSWORD": PASSWORD,
               "KSQLDB_SSL_CA": str(certificates.ca)}
    run_script("data_lake_config.py", "init", env=secured, check=True)
    out = run_script("data_lake_config.py", "discover", env=secured, check=True).stdout
    assert "not yet feeds: HIGH_VALUE_TRANSACTIONS, KSQL_PROCESSING_LOG" in out
    refused = run_script("data_lake_config.py", "discover", env={**secured, "KSQLDB_PASSWORD": "wrong"})
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: ksqlDB at {secured_double.url} refused the request to /ksql "
                                      "(HTTP 401); check KSQLDB_USER and KSQLDB_PASSWORD")
