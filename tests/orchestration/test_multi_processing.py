"""Every orchestrator task on Beam's DirectRunner with two worker processes (issue 20): the DoFns are pickled and
shipped to other processes, so nothing they need may be created in the process that builds the pipeline. This is
the closest this machine gets to a distributed runner. The tasks share one small data set (topics produced once,
a lake exported once); each test works on its own copy of the lake and its own warehouse database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import mysql.connector
import pyarrow.dataset as ds
import pytest
from support import base_env, day_partition, run_script, unique

from lakehouse.kafka.clients import CONNECT_TIMEOUT_S, admin_client, delete_topics, topic_end_offsets
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

TWO_WORKER_PROCESSES = ("--", "--direct_running_mode=multi_processing", "--direct_num_workers=2")
EVENTS = 300
TABLE_FEEDS = ("user_transaction_summary", "user_transaction_summary_eur", "payment_method_totals",
               "product_purchase_counts")


@pytest.fixture(scope="module")
def shared(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Topics holding EVENTS raw events and what ksqlDB would derive from them, and a lake exported from them."""
    prefix = f"{unique('t')}_"
    env = base_env(KAFKA_BOOTSTRAP_SERVERS=stack_settings.kafka_bootstrap_servers, KSQLDB_URL="http://127.0.0.1:9",
                   DATA_LAKE_ROOT=str(tmp_path_factory.mktemp("seed") / "lake"), LAKEHOUSE_TOPIC_PREFIX=prefix)
    run_script("kafka_producer.py", "--messages", str(EVENTS), "--rate", "0", "--seed", "20", "--partitions", "2",
               "--derive", env=env, check=True)
    run_script("data_lake_config.py", "init", env=env, check=True)
    run_script("export_to_data_lake.py", "--all", "--source", "kafka", env=env, check=True)
    yield env
    topics = admin_client(stack_settings).list_topics(timeout=CONNECT_TIMEOUT_S).topics
    delete_topics(stack_settings, [topic for topic in topics if topic.startswith(prefix)])


def _orchestrate(task: str, env: dict[str, str], *options: str) -> str:
    result = run_script("beam_orchestrator.py", "--task", task, "--once", *options, *TWO_WORKER_PROCESSES,
                        env=env, check=True)
    assert f"[{task}] ok" in result.stdout
    # The workers log at the script's level: none of Beam's INFO lines once a worker has read its options (each
    # still prints two lines from its start-up, before it has them: Beam's own import warning and its echo).
    beam_info = [line for line in result.stderr.splitlines()
                 if line.startswith("INFO:") and not line.endswith("Logging handler created.")]
    assert beam_info == []
    return result.stdout


def _lake_ids(lake: Path) -> list[str]:
    return ds.dataset(lake / "streams/transaction_stream", format="parquet", partitioning="hive").to_table(
        columns=["transaction_id"]).column("transaction_id").to_pylist()


def _on_shared_data(env: dict[str, str], shared: dict[str, str], lake_root: Path) -> dict[str, str]:
    """This test's environment on the shared topics, with its own copy of the shared lake."""
    shutil.copytree(shared["DATA_LAKE_ROOT"], lake_root, dirs_exist_ok=True)
    return {**env, "LAKEHOUSE_TOPIC_PREFIX": shared["LAKEHOUSE_TOPIC_PREFIX"]}


def test_kafka_produce_on_two_worker_processes(env: dict[str, str], settings_for: Settings) -> None:
    _orchestrate("kafka_produce", env, "--messages", "200", "--shards", "4", "--seed", "21")
    assert sum(topic_end_offsets(settings_for, settings_for.topic("transaction_stream")).values()) == 200
    assert sum(topic_end_offsets(settings_for, settings_for.topic("payment_method_totals")).values()) > 0


def test_export_datalake_on_two_worker_processes(env: dict[str, str], shared: dict[str, str],
                                                 lake_root: Path) -> None:
    fresh = {**env, "LAKEHOUSE_TOPIC_PREFIX": shared["LAKEHOUSE_TOPIC_PREFIX"]}  # the shared topics, an empty lake
    _orchestrate("export_datalake", fresh)
    ids = _lake_ids(lake_root)
    assert len(ids) == len(set(ids)) == EVENTS
    for feed in TABLE_FEEDS:
        assert list((lake_root / "tables" / feed).glob("version=*/*.parquet")), feed


def test_sync_warehouse_on_two_worker_processes(env: dict[str, str], shared: dict[str, str], lake_root: Path,
                                                settings_for: Settings) -> None:
    _orchestrate("sync_warehouse", _on_shared_data(env, shared, lake_root))
    with mysql.connector.connect(**settings_for.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COALESCE(SUM(transaction_count), 0) FROM fact_user_transaction_summary")
        assert int(cursor.fetchone()[0]) == EVENTS


def test_retention_on_two_worker_processes(env: dict[str, str], shared: dict[str, str], lake_root: Path) -> None:
    on_shared = _on_shared_data(env, shared, lake_root)
    storage = LakeStorage(str(lake_root))
    expired = day_partition(storage, "streams/transaction_stream", date(2020, 1, 1), 3)  # past any 90 days
    future = day_partition(storage, "streams/transaction_stream", date(2999, 1, 1), 4)  # never old enough
    _orchestrate("retention", on_shared)
    assert not (lake_root / expired).exists()
    assert list((lake_root / future).glob("*.parquet"))
