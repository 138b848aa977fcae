"""What operators see of the streaming warehouse consumer: its metrics, its rate and lag line, and its offsets in
Kafka, committed after each MySQL commit for lag tools only (the consumer resumes from MySQL's offsets)."""

from __future__ import annotations

import logging
from collections import Counter

from confluent_kafka import Consumer, KafkaException, TopicPartition

from lakehouse.kafka.progress import ProgressReport
from lakehouse.metrics import ConsumerMetrics
from lakehouse.warehouse.connection import Warehouse
from lakehouse.warehouse.offsets import TopicPartitionKey

log = logging.getLogger(__name__)


class ConsumerMonitor:
    def __init__(self, feed_of_topic: dict[str, str], warehouse: Warehouse, metrics: ConsumerMetrics,
                 status_every: float, log_lines: bool) -> None:
        self.feed_of_topic = feed_of_topic
        self.metrics = metrics
        metrics.track(list(feed_of_topic.values()))
        metrics.mysql_retrying.set_function(lambda: float(warehouse.retrying))  # read at each scrape
        self.progress = ProgressReport(status_every, metrics.lag, log_lines)
        self.reads: Counter[str] = Counter()  # records read per topic since the last report

    def read(self, topic: str) -> None:
        self.reads[topic] += 1

    def report(self, consumer: Consumer, positions: dict[TopicPartitionKey, int], consumed: int) -> None:
        """Records read to the metrics; the rate and lag line and the lag gauges when due."""
        for topic, count in self.reads.items():
            self.metrics.count(self.feed_of_topic[topic], consumed=count)
        self.reads.clear()
        self.progress.report(consumer, positions, consumed)

    def committed(self, consumer: Consumer, offsets: dict[TopicPartitionKey, int], applied: Counter[str],
                  quarantined: Counter[str], flush_seconds: float, commit_seconds: float) -> None:
        """A batch is in MySQL: its counts per feed, its durations, and its offsets to Kafka."""
        self.metrics.committed(flush_seconds, commit_seconds)
        for feed in applied.keys() | quarantined.keys():
            self.metrics.count(feed, landed=applied[feed], quarantined=quarantined[feed])
        try:  # asynchronous; a failure (say, during a rebalance) is harmless: the next commit corrects it
            consumer.commit(offsets=[TopicPartition(*tp, offset) for tp, offset in offsets.items()],
                            asynchronous=True)
        except KafkaException as exc:
            log.debug("Kafka offset commit (for monitoring only) failed: %s", exc)
