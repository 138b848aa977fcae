"""The local stack's secured side, for tests: Kafka's SASL_SSL listener, MariaDB's TLS, and certificates of a test CA.

`make up` starts the broker with a SASL_SSL listener and MariaDB with TLS, both presenting a certificate of the
stack's CA (.stack/certs/ca.pem of the checkout that started it). Tests find both from the running broker (its
advertised listeners and its keystore's folder), so they work whichever checkout started the stack. Each test logs
in as a user of its own with a random password, created here (Kafka: the admin API; MariaDB: CREATE USER ...
REQUIRE SSL) and dropped afterwards: the secrets are known to the test and appear nowhere else.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import mysql.connector
import pytest
from confluent_kafka.admin import (
    ConfigResource,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from lakehouse.kafka import clients
from lakehouse.settings import Settings


class SecuredKafka(NamedTuple):
    bootstrap: str     # host:port of the SASL_SSL listener
    ca: str            # the stack's CA file (it also signed MariaDB's certificate)
    username: str
    password: str

    def env(self) -> dict[str, str]:
        """The variables a script needs to use the secured listener."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": self.username,
                "KAFKA_SASL_PASSWORD": self.password, "KAFKA_SSL_CA_LOCATION": self.ca}


class Certificates(NamedTuple):
    ca: Path
    certificate: Path
    key: Path


def make_certificates(folder: Path, name: str = "test") -> Certificates:
    """A CA of the test's own and a server certificate it signed for 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / f"{name}-ca.pem", folder / f"{name}-ca-key.pem"
    certificate, key, request = folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}.csr"
    extensions = folder / f"{name}.ext"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                          "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                          "authorityKeyIdentifier=keyid,issuer\n")
    for command in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", ca_key, "-out", ca],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key, "-out", request],
            ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-set_serial", "1", "-days", "2",
             "-extfile", extensions, "-out", certificate]):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True, timeout=60)
    return Certificates(ca, certificate, key)


def sasl_ssl_listener(settings: Settings) -> tuple[str, str]:
    """(host:port, CA file) of the running broker's SASL_SSL listener, from its own configuration."""
    resource = ConfigResource("BROKER", "1")
    admin = clients.require_broker(settings)  # kept until the answer is in: a dropped client drops the request
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    advertised = configs["advertised.listeners"].value.split(",")
    bootstrap = next(listener.split("://", 1)[1] for listener in advertised if listener.startswith("SASL_SSL://"))
    keystore = configs["listener.name.sasl_ssl.ssl.keystore.location"].value
    return bootstrap, str(Path(keystore).parent / "ca.pem")


@pytest.fixture
def secured_kafka(stack_settings: Settings) -> Iterator[SecuredKafka]:
    """A SCRAM-SHA-512 user of this test's own on the stack's SASL_SSL listener (removed afterwards)."""
    bootstrap, ca = sasl_ssl_listener(stack_settings)
    username, password = f"t_{uuid.uuid4().hex[:10]}", f"kafka-secret-{uuid.uuid4().hex}"
    admin = clients.require_broker(stack_settings)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    for future in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(username, info, password.encode())]).values():
        future.result(timeout=30)
    yield SecuredKafka(bootstrap, ca, username, password)
    for future in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(username, ScramMechanism.SCRAM_SHA_512)]).values():
        future.result(timeout=30)


@pytest.fixture
def tls_only_mysql_user(stack_settings: Settings) -> Iterator[tuple[str, str]]:
    """(user, password) of a MariaDB user of this test's own that may log in over TLS only (REQUIRE SSL), with the
    project user's rights on the scratch databases (MariaDB lets it pass on its wildcard grant, not a narrower one)."""
    user, password = f"t_{uuid.uuid4().hex[:10]}", f"mysql-secret-{uuid.uuid4().hex}"
    with mysql.connector.connect(**stack_settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY %s REQUIRE SSL", (password,))
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{stack_settings.mysql_database}\\_%`.* TO '{user}'@'%'")
    yield user, password
    with mysql.connector.connect(**stack_settings.mysql_params()) as conn:
        conn.cursor().execute(f"DROP USER IF EXISTS '{user}'@'%'")
