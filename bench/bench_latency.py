"""Freshness: the time from producing a record to seeing it in the lake and in MySQL.

A running continuous `kafka_consumer_datalake.py --flush-interval F` and a running
`kafka_consumer_warehouse.py`, each a subprocess on its own topics, lake folder and scratch database.
Each probe produces one raw event and one user_transaction_summary changelog record, then polls until
the event's Parquet file is in its date partition (its name is deterministic: topic, partition, offset)
and the fact row is in MySQL. The ceiling, in the same run: a bare consumer thread on the raw topic,
i.e. Kafka's own produce-to-consume latency. Probes are spaced by a random pause so they do not line
up with the consumers' timers.

  python -m bench.bench_latency [--probes N] [--flush-interval SECONDS]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import mysql.connector
import orjson

from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.lake import commit
from lakehouse.produce import events
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage

REPO = Path(__file__).resolve().parent.parent
RAW, TABLE, FACT = "transaction_stream", "user_transaction_summary", "fact_user_transaction_summary"
DEFAULT_PROBES = 30
DEFAULT_FLUSH_INTERVAL = 0.5
_POLL_S = 0.005
_TIMEOUT_S = 30.0


@dataclass
class Probe:
    """One produced record: when it was handed to the producer and where Kafka put it."""

    sent_at: float
    partition: int = -1
    offset: int = -1


class BareConsumer(threading.Thread):
    """The ceiling: a plain consumer on the raw topic noting when each key arrives."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.topic = topic
        self.seen: dict[bytes, float] = {}
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = clients.consumer(self.settings, f"bench_latency_bare_{uuid.uuid4().hex[:8]}",
                                     **{"fetch.wait.max.ms": 10})
        consumer.subscribe([self.topic], on_assign=lambda *_: self.ready.set())
        while not self.stop.is_set():
            for message in consumer.consume(num_messages=100, timeout=0.05):
                if message.error() is None:
                    self.seen.setdefault(message.key(), time.perf_counter())
        consumer.close()


def run(settings: Settings, probes: int = DEFAULT_PROBES, flush_interval: float = DEFAULT_FLUSH_INTERVAL) -> dict:
    prefix = f"bench_latency_{uuid.uuid4().hex[:8]}_"
    raw_topic, table_topic = f"{prefix}{RAW}", f"{prefix}{TABLE}"
    clients.ensure_topics(settings, {raw_topic: False, table_topic: True})
    clients.wait_until_readable(settings, [raw_topic, table_topic])
    database = f"{settings.mysql_database}_bench_{uuid.uuid4().hex[:8]}"
    bare = BareConsumer(settings, raw_topic)
    admin = mysql.connector.connect(**{**settings.mysql_params(), "database": None})
    try:
        admin.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        with tempfile.TemporaryDirectory(prefix="bench_latency_") as root:
            FeedCatalog(LakeStorage(root)).init()
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                   "MYSQL_DATABASE": database, "DATA_LAKE_ROOT": root, "LAKEHOUSE_TOPIC_PREFIX": prefix}
            consumers = [
                _start(["kafka_consumer_datalake.py", "--feeds", RAW, "--flush-interval", str(flush_interval)], env),
                _start(["kafka_consumer_warehouse.py", "--feeds", TABLE], env),
            ]
            try:
                bare.start()
                bare.ready.wait(_TIMEOUT_S)
                sampler = _Sampler(settings, LakeStorage(root), database, raw_topic, table_topic, bare)
                sampler.probe(warm_up=True)  # both consumers assigned and their first flush done
                for _ in range(probes):
                    time.sleep(random.uniform(0.05, flush_interval))
                    sampler.probe()
            finally:
                for process in consumers:
                    _stop(process)
    finally:
        bare.stop.set()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
        clients.delete_topics(settings, [raw_topic, table_topic])
    return _figures(sampler, probes, flush_interval)


def _figures(sampler: _Sampler, probes: int, flush_interval: float) -> dict:
    def ms(values: list[float], quantile: float) -> float:
        ordered = sorted(values)
        return round(1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))], 1)

    result = {"probes": probes, "flush_interval_s": flush_interval}
    for name, values in (("lake", sampler.lake), ("mysql", sampler.mysql), ("kafka", sampler.kafka)):
        result[f"{name}_median_ms"] = round(1000 * statistics.median(values), 1)
        result[f"{name}_p95_ms"] = ms(values, 0.95)
    result["goal"] = f"lake p95 <= flush interval + 1 s ({1000 * (flush_interval + 1):.0f} ms)"
    return result


class _Sampler:
    def __init__(self, settings: Settings, storage: LakeStorage, database: str, raw_topic: str, table_topic: str,
                 bare: BareConsumer) -> None:
        self.storage = storage
        self.raw_topic, self.table_topic = raw_topic, table_topic
        self.bare = bare
        self.producer = clients.producer(settings, **{"linger.ms": 0})
        # autocommit: every poll sees the latest committed rows, not one transaction's snapshot
        self.connection = mysql.connector.connect(**{**settings.mysql_params(), "database": database},
                                                  autocommit=True)
        self.lake: list[float] = []  # seconds from produce to visible, per probe
        self.mysql: list[float] = []
        self.kafka: list[float] = []
        self.count = 0

    def probe(self, warm_up: bool = False) -> None:
        self.count += 1
        event = next(events.generate_events(events.GeneratorOptions(
            messages=1, seed=10_000 + self.count, days=1, start=datetime.now(UTC).date())))
        user_id = f"probe_{self.count:05d}_{uuid.uuid4().hex[:6]}"
        raw = self._send(self.raw_topic, event["transaction_id"].encode(), events.serialize(event))
        table = self._send(self.table_topic, orjson.dumps({"USER_ID": user_id, "TRANSACTION_TYPE": "purchase"}),
                           orjson.dumps(_summary_value(event)))
        self.producer.flush()
        lake_file = commit.stream_file(RAW, date.fromisoformat(event["timestamp"][:10]), self.raw_topic,
                                            raw.partition, raw.offset)
        key = event["transaction_id"].encode()
        seen = _wait_for({"lake": lambda: self.storage.exists(lake_file), "mysql": lambda: self._fact_exists(user_id),
                          "kafka": lambda: key in self.bare.seen})
        if warm_up:
            return
        self.lake.append(seen["lake"] - raw.sent_at)
        self.mysql.append(seen["mysql"] - table.sent_at)
        self.kafka.append(self.bare.seen[key] - raw.sent_at)  # the thread's own receive time

    def _send(self, topic: str, key: bytes, value: bytes) -> Probe:
        probe = Probe(time.perf_counter())

        def delivered(error, message) -> None:
            if error is not None:
                raise RuntimeError(f"probe not delivered: {error}")
            probe.partition, probe.offset = message.partition(), message.offset()

        self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
        return probe

    def _fact_exists(self, user_id: str) -> bool:
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT 1 FROM {FACT} WHERE user_id = %s", (user_id,))
            return cursor.fetchone() is not None
        except mysql.connector.Error:
            return False  # the consumer has not created the schema yet
        finally:
            cursor.close()


def _summary_value(event: dict) -> dict:
    amount = event["amount"]
    user = event["user"]
    return {"USER_NAME": user["name"], "USER_EMAIL": user["email"], "USER_COUNTRY": user["country"],
            "USER_CITY": user["city"], "TOTAL_AMOUNT": amount, "TRANSACTION_COUNT": 1, "AVG_AMOUNT": amount,
            "MIN_AMOUNT": amount, "MAX_AMOUNT": amount, "LAST_TRANSACTION_AT": event["timestamp"]}


def _wait_for(conditions: dict[str, Callable[[], bool]]) -> dict[str, float]:
    """perf_counter() at the first poll that saw each condition true; all are polled in the same loop."""
    seen: dict[str, float] = {}
    deadline = time.perf_counter() + _TIMEOUT_S
    while len(seen) < len(conditions):
        for name, condition in conditions.items():
            if name not in seen and condition():
                seen[name] = time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not visible after {_TIMEOUT_S:.0f} s: {sorted(set(conditions) - set(seen))}")
        time.sleep(_POLL_S)
    return seen


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / command[0]), *command[1:]], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=DEFAULT_PROBES)
    parser.add_argument("--flush-interval", type=float, default=DEFAULT_FLUSH_INTERVAL)
    args = parser.parse_args(argv)
    print(orjson.dumps(run(load_settings(), args.probes, args.flush_interval), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
