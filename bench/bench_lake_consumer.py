"""Lake consumer throughput and memory against a bare confluent-kafka loop on the same topic.

1M raw events in a fresh topic; `kafka_consumer_datalake.py --until-end` as a subprocess (rate from its
assignment to its exit, peak RSS from /proc) and, in the same run, a consume-and-discard loop, also in a
fresh process (rate from its assignment to its last record). Then 2M more events and the consumer again
over all 3M: its peak RSS should stay within 20% of the 1M run (the buffers are bounded).
On the same 1M events, the seed's approach (bench_seed_baseline) as a whole process, against the lake consumer's
whole process (interpreter start to exit, start-up included): the lead over the seed, measured.

  python -m bench.bench_lake_consumer          # needs the local stack (make up)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.produce import events
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage

REPO = Path(__file__).resolve().parent.parent
FEED = "transaction_stream"
_ASSIGNED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO assigned ")


def run(settings: Settings, events_first: int = 1_000_000, events_second: int = 2_000_000) -> dict:
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    topic = f"{prefix}{FEED}"
    clients.ensure_topics(settings, {topic: False})
    try:
        produce(settings, topic, events_first, seed=1)
        bare_rate = bare_consume_rate(settings, topic, events_first)
        first = lake_consumer_run(settings, prefix, events_first)
        seed_s = seed_baseline_seconds(settings, topic, events_first)
        produce(settings, topic, events_second, seed=2)
        second = lake_consumer_run(settings, prefix, events_first + events_second)
    finally:
        clients.delete_topics(settings, [topic])
    result = {
        "events": events_first,
        "lake_events_per_s": round(first["rate"]),
        "bare_events_per_s": round(bare_rate),
        "ratio": round(first["rate"] / bare_rate, 3),
        "peak_rss_mb_1m": round(first["peak_rss_mb"], 1),
        "peak_rss_mb_3m": round(second["peak_rss_mb"], 1),
        "rss_growth": round(second["peak_rss_mb"] / first["peak_rss_mb"] - 1, 3),
        "lake_events_per_s_3m": round(second["rate"]),
        "lake_whole_process_events_per_s": round(events_first / first["whole_s"]),
        "seed_whole_process_events_per_s": round(events_first / seed_s),
        "lead_over_seed": round(seed_s / first["whole_s"], 2),
    }
    return result


def produce(settings: Settings, topic: str, count: int, seed: int) -> None:
    producer = clients.producer(settings)
    options = events.GeneratorOptions(messages=count, seed=seed, users=1000, days=3)
    for event in events.generate_events(options):
        while True:
            try:
                producer.produce(topic, key=event["transaction_id"].encode(), value=events.serialize(event))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush()


def bare_consume_rate(settings: Settings, topic: str, count: int) -> float:
    """The ceiling, in a fresh process like the consumer: batch consume and discard."""
    code = ("import sys; from bench.bench_lake_consumer import bare_loop; from lakehouse.settings import Settings; "
            f"print(bare_loop(Settings(kafka_bootstrap_servers={settings.kafka_bootstrap_servers!r}), "
            f"{topic!r}, {count}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def bare_loop(settings: Settings, topic: str, count: int) -> float:
    """Records per second from assignment to the last record."""
    consumer = clients.consumer(settings, f"bench_bare_{uuid.uuid4().hex[:8]}")
    started: list[float] = []
    consumer.subscribe([topic], on_assign=lambda c, parts: started.append(time.monotonic()))
    received = 0
    while received < count:
        received += len(consumer.consume(num_messages=10_000, timeout=1.0))
    elapsed = time.monotonic() - started[0]
    consumer.close()
    return count / elapsed


def seed_baseline_seconds(settings: Settings, topic: str, count: int) -> float:
    """Whole-process seconds of the seed's approach landing the topic's first `count` records."""
    with tempfile.TemporaryDirectory(prefix="bench_seed_") as root:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "bench.bench_seed_baseline", settings.kafka_bootstrap_servers,
                                 topic, str(count), root], cwd=REPO, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if result.returncode != 0 or result.stdout.strip() != str(count):
        raise RuntimeError(f"the seed's approach did not land {count} records ({result.returncode}):\n"
                           f"{result.stdout[-500:]}{result.stderr[-2000:]}")
    return elapsed


def lake_consumer_run(settings: Settings, prefix: str, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_lake_") as root:
        FeedCatalog(LakeStorage(root)).init()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
               "DATA_LAKE_ROOT": root, "LAKEHOUSE_TOPIC_PREFIX": prefix}
        launched = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(REPO / "kafka_consumer_datalake.py"), "--feeds", FEED, "--until-end",
             "--group-id", f"bench_lake_{uuid.uuid4().hex[:8]}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = PeakRss(process.pid)
        peak.start()
        stdout, stderr = process.communicate()
        ended = datetime.now()
        whole_s = time.perf_counter() - launched
        peak.join()
        if process.returncode != 0:
            raise RuntimeError(f"lake consumer failed ({process.returncode}):\n{stderr[-2000:]}")
        if f" {count} " not in stdout:
            raise RuntimeError(f"lake consumer did not land {count} records:\n{stdout}")
        assigned = next(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
                        for m in map(_ASSIGNED.match, stderr.splitlines()) if m)
        return {"rate": count / (ended - assigned).total_seconds(), "peak_rss_mb": peak.mb, "whole_s": whole_s}


class PeakRss(threading.Thread):
    """Polls a process's high-water RSS (VmHWM) until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.mb = 0.0

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                text = status.read_text()
            except (FileNotFoundError, ProcessLookupError):
                return
            match = re.search(r"VmHWM:\s+(\d+) kB", text)
            if match is None:  # zombie: exited, waiting to be reaped
                return
            self.mb = max(self.mb, int(match.group(1)) / 1024)
            time.sleep(0.05)


if __name__ == "__main__":
    figures = run(load_settings())
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(f"ratio lake/bare: {figures['ratio']} (goal >= 0.8); lead over the seed: {figures['lead_over_seed']}x; "
          f"RSS 3M vs 1M: {figures['rss_growth']:+.1%} "
          "(goal within 20%)")
