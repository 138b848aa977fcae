"""Helpers for tests that drive the real scripts against the real stack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.lake import consumer
from lakehouse.produce import events
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

REPO = Path(__file__).resolve().parent.parent
S3_BUCKET = "lakehouse"  # make up's SeaweedFS
# A test taking `lake_root` runs twice with this mark: on a local folder and on a prefix of the S3 bucket.
BOTH_BACKENDS = pytest.mark.parametrize("lake_root", ["local", "s3"], indirect=True)


def ksqldb_average(total: Decimal, divisor: int) -> Decimal:
    """An average as ksql/03_tables.sql computes it, ROUND(CAST(total AS DOUBLE) / divisor, 4): the double quotient
    rounded half-up from its shortest decimal form (ksqlDB's ROUND reads a double through BigDecimal.valueOf)."""
    return Decimal(repr(float(total) / divisor)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses: topics, groups and databases are shared by the stack."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run_script(script: str, *args: str, env: dict[str, str], timeout: float = 300,
               check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a top-level script as a user would, with the given environment."""
    result = subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def base_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MYSQL_", "KSQLDB_"))}
    env.pop("DATA_LAKE_ROOT", None)
    env.update(overrides)
    return env


@contextmanager
def producing(settings: Settings, transactional: bool = False, **config: object) -> Iterator[Producer]:
    """A producer whose records are all delivered on exit. `transactional`: all in one transaction, as ksqlDB
    writes with exactly-once, so a commit marker (an offset no consumer sees) follows each partition's records."""
    if transactional:
        config["transactional.id"] = unique("tx")
    producer = clients.producer(settings, **config)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    yield producer
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


def free_port() -> int:
    """A TCP port nothing listens on right now (for a script's --metrics-port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """The samples a running script serves at /metrics, as Prometheus would read them: 'name{label="v",...}' ->
    value (labels sorted); empty while nothing answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:  # connection refused (not serving yet), URLError
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


class IdleGroupMember:
    """A real member of a consumer group that holds partitions and does nothing with them (say, a copy that
    is busy or stuck), until it leaves. Polled from a thread so it takes part in every rebalance."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        self.consumer = consumer
        self.held: set[int] = set()  # kept by the rebalance callbacks: the client is not called across threads
        self._stop = threading.Event()
        consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _assigned(self, _consumer: Consumer, partitions: list) -> None:
        self.held |= {p.partition for p in partitions}

    def _revoked(self, _consumer: Consumer, partitions: list) -> None:
        self.held -= {p.partition for p in partitions}

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.consumer.poll(0.1)
        self.consumer.close()

    def holds(self) -> int:
        return len(self.held)

    def leave(self) -> None:
        self._stop.set()
        self._thread.join()


def init_lake(settings: Settings) -> LakeStorage:
    """The settings' lake with the built-in feeds in its catalog."""
    storage = LakeStorage(settings.data_lake_root)
    FeedCatalog(storage).init()
    return storage


def landed_column(storage: LakeStorage, feed: str, column: str = "transaction_id") -> list:
    """One column of every row of a stream feed's files, on any backend (DuckDB reads only the local ones)."""
    return [value for stored in storage.walk_files(layout.feed_dir("stream", feed)) if stored.path.endswith(".parquet")
            for value in storage.read_parquet(stored.path).column(column).to_pylist()]


def day_partition(storage: LakeStorage, root: str, day: date, rows: int) -> str:
    """One parquet file of `rows` rows in the day's partition under `root`; returns the partition folder."""
    folder = f"{root}/{layout.date_partition(day)}"
    storage.write_parquet(f"{folder}/{layout.batch_file_name('t', 0, 0)}", pa.table({"n": list(range(rows))}))
    return folder


def produce_days(settings: Settings, feed: str, days: int, per_day: int, seed: int,
                 first: date = date(2026, 9, 7)) -> list[dict]:
    """Events on `days` pinned days from `first`, with Kafka record times on their day, over 3 partitions."""
    topic = settings.topic(feed)
    clients.ensure_topics(settings, {topic: False}, partitions=3)
    produced = []
    with producing(settings) as producer:
        for offset in range(days):
            day = first + timedelta(days=offset)
            options = events.GeneratorOptions(messages=per_day, seed=seed * 100 + offset, days=1, start=day)
            for event in events.generate_events(options):
                moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                producer.produce(topic, key=event["transaction_id"].encode(), value=events.serialize(event),
                                 timestamp=int(moment.timestamp() * 1000))
                producer.poll(0)
                produced.append(event)
    return produced


def land_small_files(settings: Settings, feed: str, flush_size: int = 25) -> None:
    """The real lake consumer with small batches and flushes: many small files per day, as continuous landing
    makes."""
    options = consumer.LandingOptions(group_id=unique("g"), until_end=True, flush_size=flush_size,
                                      batch_size=flush_size)
    consumer.land(settings, [FeedCatalog(init_lake(settings)).get(feed)], options)


def lake_day_facts(lake_root: Path, feed: str) -> list[tuple]:
    """Per day, what a glob reader sees: rows, distinct transaction ids, sum of amount."""
    glob = f"{lake_root}/streams/{feed}/**/*.parquet"
    return duckdb.sql(f"select make_date(year, month, day), count(*), count(distinct transaction_id), "
                      f"round(sum(amount), 2) from read_parquet('{glob}', hive_partitioning = true, "
                      f"union_by_name = true) group by all order by all").fetchall()


def expected_day_facts(produced: list[dict]) -> list[tuple]:
    """lake_day_facts of the produced events, computed from them."""
    per_day: dict[date, list[dict]] = {}
    for event in produced:
        per_day.setdefault(date.fromisoformat(event["timestamp"][:10]), []).append(event)
    return [(day, len(rows), len({r["transaction_id"] for r in rows}), round(sum(r["amount"] for r in rows), 2))
            for day, rows in sorted(per_day.items())]
