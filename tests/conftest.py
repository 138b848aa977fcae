"""Fixtures over the real local stack (make up): Kafka on 127.0.0.1:9092, MariaDB on 127.0.0.1:3306, SeaweedFS's S3
on 127.0.0.1:8333 (bucket lakehouse; the standard AWS_* variables below, unless the environment sets them).

Every test that uses one of the stack's fixtures is marked `stack` here, so `pytest -m "not stack"` runs the
tests that need no service at all (tests/<stage>/ mirrors lakehouse/<stage>/).

Tests share the broker and the server, so each one works in names of its own: topics and consumer
groups with a unique suffix (the topics are deleted after the test), a fresh lake folder (or, for a test marked
`support.BOTH_BACKENDS`, also a fresh prefix s3://lakehouse/lake_<hex>, deleted afterwards), and a
scratch database data_warehouse_t<hex>.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import mysql.connector
import pyarrow.fs as pafs
import pytest
from support import S3_BUCKET, base_env, unique

from lakehouse.kafka.clients import CONNECT_TIMEOUT_S, admin_client, delete_topics, require_broker
from lakehouse.settings import Settings, load_settings

for _name, _value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "lakehouse",
                      "AWS_SECRET_ACCESS_KEY": "lakehouse-secret", "AWS_REGION": "us-east-1"}.items():
    os.environ.setdefault(_name, _value)  # make up's S3 server; the scripts inherit them through base_env

STACK_FIXTURES = frozenset({"stack_settings", "env", "settings_for", "warehouse_db", "topic_prefix"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        on_s3 = getattr(getattr(item, "callspec", None), "params", {}).get("lake_root") == "s3"
        if on_s3 or STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    settings = load_settings(env_file=None)
    require_broker(settings)
    return settings


@pytest.fixture
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """This test's lake: a fresh local folder, or (parametrized "s3" by support.BOTH_BACKENDS) a fresh prefix of the
    stack's S3 bucket, deleted afterwards."""
    if getattr(request, "param", "local") == "local":
        root = tmp_path / "lake"
        root.mkdir()
        yield root
        return
    _require_s3()
    uri = f"s3://{S3_BUCKET}/{unique('lake')}"
    yield uri
    filesystem, path = pafs.FileSystem.from_uri(uri)
    filesystem.delete_dir(path)


_S3_CHECKED: list[bool] = []


def _require_s3() -> None:
    """Fail at once with the fix when the S3 server is not there (rather than each script timing out)."""
    if _S3_CHECKED:
        return
    try:
        botocore.session.get_session().create_client("s3").head_bucket(Bucket=S3_BUCKET)
    except Exception as exc:  # noqa: BLE001 (any failure means the same thing here)
        pytest.fail(f"the S3 server ({os.environ['AWS_ENDPOINT_URL']}, bucket {S3_BUCKET}) is not reachable: {exc}; "
                    "start it with make up", pytrace=False)
    _S3_CHECKED.append(True)


@pytest.fixture
def warehouse_db(stack_settings: Settings) -> Iterator[str]:
    """A scratch warehouse database, dropped afterwards."""
    name = f"{stack_settings.mysql_database}_t{uuid.uuid4().hex[:10]}"
    params = {**stack_settings.mysql_params(), "database": None}
    with mysql.connector.connect(**params) as conn:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield name
    with mysql.connector.connect(**params) as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def env(stack_settings: Settings, lake_root: Path, warehouse_db: str, topic_prefix: str) -> dict[str, str]:
    """Environment for running scripts: the real stack, this test's lake and warehouse."""
    return base_env(
        KAFKA_BOOTSTRAP_SERVERS=stack_settings.kafka_bootstrap_servers,
        MYSQL_HOST=stack_settings.mysql_host,
        MYSQL_PORT=str(stack_settings.mysql_port),
        MYSQL_USER=stack_settings.mysql_user,
        MYSQL_PASSWORD=stack_settings.mysql_password,
        MYSQL_DATABASE=warehouse_db,
        DATA_LAKE_ROOT=str(lake_root),
        KSQLDB_URL="http://127.0.0.1:9",  # nothing listens: ksqlDB is absent unless a test serves one
        LAKEHOUSE_TOPIC_PREFIX=f"{topic_prefix}_",  # this test's own topics on the shared broker
    )


@pytest.fixture
def settings_for(env: dict[str, str]) -> Settings:
    """The same configuration as `env`, for calling the package directly."""
    return Settings(
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], ksqldb_url=env["KSQLDB_URL"],
        mysql_host=env["MYSQL_HOST"], mysql_port=int(env["MYSQL_PORT"]), mysql_user=env["MYSQL_USER"],
        mysql_password=env["MYSQL_PASSWORD"], mysql_database=env["MYSQL_DATABASE"],
        data_lake_root=env["DATA_LAKE_ROOT"], topic_prefix=env["LAKEHOUSE_TOPIC_PREFIX"],
    )


@pytest.fixture
def topic_prefix(stack_settings: Settings) -> Iterator[str]:
    """This test's topic prefix; its topics are deleted afterwards, so the shared broker does not pile them up."""
    prefix = unique("t")
    yield prefix
    topics = admin_client(stack_settings).list_topics(timeout=CONNECT_TIMEOUT_S).topics
    delete_topics(stack_settings, [topic for topic in topics if topic.startswith(f"{prefix}_")])
