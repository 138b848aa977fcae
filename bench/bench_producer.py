"""Producer throughput: our send loop against `kcat -P` on the same 1M serialized events, in the same run.

Both send the same pre-serialized events (generation is not timed) with the same librdkafka
configuration (clients.producer_config, handed to kcat in a -F file), each into a fresh topic with the
default partition count. The script's end-to-end rate (generation included) is measured too.
Goal: >= 100k events/s and ours / kcat >= 0.5.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from lakehouse.kafka import clients
from lakehouse.produce.events import GeneratorOptions
from lakehouse.produce.producer import ProduceOptions, RecordSender, event_records, produce_events
from lakehouse.settings import Settings, load_settings

EVENTS = 1_000_000
_KEY_SEPARATOR = "\t"  # never inside a transaction id, and orjson escapes tabs inside values


def run(settings: Settings, events: int = EVENTS) -> dict:
    generator = GeneratorOptions(messages=events, seed=1, days=7)
    records = list(event_records(generator))
    suffix = uuid.uuid4().hex[:8]
    script_name = f"bench_producer_script_{suffix}"  # produce_events adds the topic prefix itself
    ours, kcat, script = (settings.topic(f"bench_producer_{who}_{suffix}") for who in ("ours", "kcat", "script"))
    clients.ensure_topics(settings, {ours: False, kcat: False})
    clients.wait_until_readable(settings, [ours, kcat])
    try:
        ours_seconds = _time_ours(settings, ours, records)
        with tempfile.TemporaryDirectory() as folder:
            kcat_seconds = _time_kcat(settings, kcat, records, Path(folder) / "events.txt")
        report = produce_events(settings, generator, ProduceOptions(topic=script_name))
        _check_landed(settings, {ours: events, kcat: events, script: report.events})
    finally:
        clients.delete_topics(settings, [ours, kcat, script])
    return {
        "events": events,
        "ours_events_per_s": round(events / ours_seconds),
        "kcat_events_per_s": round(events / kcat_seconds),
        "ratio": round(kcat_seconds / ours_seconds, 3),  # our events/s over kcat's
        "script_events_per_s": round(report.events_per_second),
        "goal": ">= 100000 events/s, ratio >= 0.5",
    }


def _time_ours(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    sender = RecordSender(settings)
    started = time.perf_counter()
    sender.send_all(topic, records)
    sender.flush()
    seconds = time.perf_counter() - started
    if sender.first_error:
        raise RuntimeError(f"our producer: {sum(sender.failed.values())} delivery failures: {sender.first_error}")
    return seconds


def _time_kcat(settings: Settings, topic: str, records: list[tuple[bytes, bytes]], path: Path) -> float:
    separator = _KEY_SEPARATOR.encode()
    path.write_bytes(b"".join(key + separator + value + b"\n" for key, value in records))
    config = clients.producer_config(settings, partitioner="murmur2_random")
    # a file, not -X arguments: a SASL password must not show on a command line
    properties = path.with_name("producer.properties")
    properties.write_text("".join(f"{name}={_librdkafka(value)}\n" for name, value in config.items()))
    properties.chmod(0o600)
    command = ["kcat", "-P", "-t", topic, "-K", _KEY_SEPARATOR, "-l", str(path), "-F", str(properties)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _librdkafka(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_landed(settings: Settings, expected: dict[str, int]) -> None:
    """Every event of every contender is in its topic (a fast but lossy sender would not count)."""
    consumer = clients.consumer(settings, f"bench-check-{uuid.uuid4().hex}")
    try:
        for topic, count in expected.items():
            landed = sum(clients.end_offsets(consumer, topic, clients.topic_partitions(settings, topic)).values())
            if landed != count:
                raise RuntimeError(f"{topic}: {landed} records landed, {count} expected")
    finally:
        consumer.close()


if __name__ == "__main__":
    print(orjson.dumps(run(load_settings()), option=orjson.OPT_INDENT_2).decode())
