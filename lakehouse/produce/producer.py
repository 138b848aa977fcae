"""The produce loop behind kafka_producer.py: batching, delivery reports, throttling, derived feeds.

Nothing is silently dropped: by the time flush() returns, librdkafka has reported the outcome of every
record handed over; failures are counted and fail the run. With `derive`, only raw events whose
delivery was confirmed are derived and aggregated, so the derived topics describe what the raw topic
holds. The table changelogs go out at the end of the run (the final value per changed key); a run
interrupted with Ctrl-C still delivers, derives and publishes what it had handed over.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from confluent_kafka import KafkaError, Message
from tqdm import tqdm

from lakehouse.errors import LakehouseError
from lakehouse.kafka import clients
from lakehouse.produce.derive import (
    BUYERS_STATE_TOPIC,
    STREAM_TOPICS,
    TABLE_TOPICS,
    DerivedTables,
    stream_key,
    stream_rows,
)
from lakehouse.produce.events import GeneratorOptions, generate_events, serialize
from lakehouse.settings import Settings

RAW_TOPIC = "transaction_stream"
_POLL_EVERY = 10_000  # serve delivery reports (and the progress bar) every N records; poll() per record is slow
_BUFFER_FULL_WAIT_S = 0.05


@dataclass(frozen=True)
class ProduceOptions:
    topic: str = RAW_TOPIC  # catalog name; the settings' topic prefix is added
    rate: float = 0.0  # events per second, 0 = as fast as possible
    derive: bool = False
    partitions: int = clients.DEFAULT_PARTITIONS
    progress: bool = False


@dataclass(frozen=True)
class ProduceReport:
    topic: str
    events: int  # raw events whose delivery was confirmed
    seconds: float
    delivered: dict[str, int]  # per Kafka topic
    failed: int
    first_error: str | None
    interrupted: bool

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class RecordSender:
    """A producer with its delivery accounting: every record handed over is later confirmed or failed.

    Confirmations cost a Python call per record, so librdkafka reports only failures unless the values
    of one topic are wanted (`keep_values_of`, for deriving); after flush(), delivered = handed over - failed.
    """

    def __init__(self, settings: Settings, keep_values_of: str | None = None, **overrides: object) -> None:
        self.handed_over: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.first_error: str | None = None
        self.keep_values_of = keep_values_of
        self.values: deque[bytes] = deque()  # confirmed values of `keep_values_of`, in delivery order
        # murmur2 like the Java clients and ksqlDB: a key lands in the same partition whoever writes it.
        self.producer = clients.producer(
            settings, on_delivery=self._on_delivery, partitioner="murmur2_random",
            **{"delivery.report.only.error": keep_values_of is None}, **overrides)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed[message.topic()] += 1
            self.first_error = self.first_error or f"{message.topic()}: {error.str()}"
        elif message.topic() == self.keep_values_of:
            self.values.append(message.value())

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.send_all(topic, ((key, value),))

    def send_all(self, topic: str, records: Iterable[tuple[bytes, bytes]], rate: float = 0.0,
                 on_step: Callable[[int], None] | None = None) -> int:
        """Hand every (key, value) over, at most `rate` per second; returns how many were handed over.

        `on_step(sent)` runs after each poll: every record when throttled, else every _POLL_EVERY records.
        """
        produce, poll = self.producer.produce, self.producer.poll  # bound once: this is the hot loop
        started = time.monotonic()
        sent = 0
        try:
            for key, value in records:
                while True:
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        poll(_BUFFER_FULL_WAIT_S)  # local queue full: serve delivery reports to make room
                sent += 1
                if rate:
                    self._wait_until(started + sent / rate)
                if rate or sent % _POLL_EVERY == 0:
                    poll(0)
                    if on_step is not None:
                        on_step(sent)
        finally:
            self.handed_over[topic] += sent  # counted even when interrupted: those records still get delivered
        return sent

    def _wait_until(self, moment: float) -> None:
        while (delay := moment - time.monotonic()) > 0:
            self.producer.poll(delay)  # sleeps, but serves delivery reports meanwhile

    def flush(self) -> None:
        """Block until every record handed over is confirmed or failed."""
        self.producer.flush()

    def delivered(self) -> dict[str, int]:
        """Records confirmed per topic (complete after flush())."""
        return {topic: count - self.failed[topic] for topic, count in self.handed_over.items()}


def event_records(options: GeneratorOptions) -> Iterable[tuple[bytes, bytes]]:
    """(key, value) of every generated event: key = transaction_id, value = the serialized event."""
    for event in generate_events(options):
        yield event["transaction_id"].encode(), serialize(event)


class Deriver:
    """What ksqlDB would publish: stream rows as raw events are confirmed, table changelogs at the end."""

    def __init__(self, settings: Settings, sender: RecordSender) -> None:
        self.sender = sender
        self.topics = {name: settings.topic(name) for name in derived_topics()}
        clients.wait_until_readable(settings, [self.topics[name] for name in (*TABLE_TOPICS, BUYERS_STATE_TOPIC)])
        self.tables = DerivedTables.load(settings)

    def drain(self) -> None:
        """Derive every raw event confirmed so far."""
        values = self.sender.values
        while values:
            event = orjson.loads(values.popleft())
            key = stream_key(event)
            for name, row in stream_rows(event):
                self.sender.send(self.topics[name], key, orjson.dumps(row))
            self.tables.fold(event)

    def finish(self) -> None:
        """Wait for every raw report, derive the rest, then publish the buyer state and the final table values."""
        self.sender.flush()
        while self.sender.values:
            self.drain()
            self.sender.flush()
        # The state first: a table value must never count buyers the state topic does not know.
        for records in (self.tables.state_records(), self.tables.changelog_records()):
            for name, key, value in records:
                self.sender.send(self.topics[name], key, value)
            self.sender.flush()


def derive_values(settings: Settings, values: Iterable[bytes], partitions: int = clients.DEFAULT_PARTITIONS) -> int:
    """Derive raw event values already confirmed in the raw topic (the orchestrator's parallel shards).

    Returns the derived records delivered; any delivery failure raises.
    """
    clients.ensure_topics(settings, {settings.topic(name): compacted for name, compacted in derived_topics().items()},
                           partitions)
    sender = RecordSender(settings)
    deriver = Deriver(settings, sender)
    for value in values:
        sender.values.append(value)
        if len(sender.values) >= _POLL_EVERY:
            deriver.drain()
    deriver.finish()
    if sum(sender.failed.values()):
        raise LakehouseError(f"{sum(sender.failed.values())} derived records failed: {sender.first_error}")
    return sum(sender.delivered().values())


def derived_topics() -> dict[str, bool]:
    """Catalog name of every topic `derive` writes -> whether it is compacted."""
    return {**dict.fromkeys(STREAM_TOPICS, False), **dict.fromkeys((*TABLE_TOPICS, BUYERS_STATE_TOPIC), True)}


def produce_events(settings: Settings, generator: GeneratorOptions, options: ProduceOptions) -> ProduceReport:
    """Create the topics, produce the generated events (and with `derive`, the derived feeds); report."""
    raw_topic = settings.topic(options.topic)
    wanted = {options.topic: False, **(derived_topics() if options.derive else {})}
    clients.ensure_topics(settings, {settings.topic(name): compacted for name, compacted in wanted.items()},
                           options.partitions)
    sender = RecordSender(settings, keep_values_of=raw_topic if options.derive else None)
    deriver = Deriver(settings, sender) if options.derive else None

    started = time.monotonic()
    interrupted = False
    with tqdm(total=generator.messages, unit="ev", disable=not options.progress) as bar:
        def step(sent: int) -> None:
            if deriver is not None:
                deriver.drain()
            bar.update(sent - bar.n)

        try:
            step(sender.send_all(raw_topic, event_records(generator), options.rate, step))
        except KeyboardInterrupt:
            interrupted = True  # stop generating; still deliver (and derive) what was handed over
        if deriver is not None:
            deriver.finish()
        sender.flush()
    delivered = sender.delivered()
    return ProduceReport(topic=raw_topic, events=delivered.get(raw_topic, 0), seconds=time.monotonic() - started,
                         delivered=delivered, failed=sum(sender.failed.values()), first_error=sender.first_error,
                         interrupted=interrupted)
