"""A consumer's progress for operators: a rate and lag line in the log, the lag gauges per topic-partition.

Shared by the lake and the warehouse consumers; each hands over where it stands (the next offset to read of every
partition it holds) and how many records it has read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Gauge

log = logging.getLogger(__name__)
GAUGE_EVERY_S = 1.0  # the lag gauges follow the consumer closely; the log line comes far less often


class ProgressReport:
    """A rate and lag line every `every` seconds (continuous runs only), the lag gauge every second."""

    def __init__(self, every: float, lag: Gauge, log_lines: bool) -> None:
        self.every, self.log_lines, self.lag = every, log_lines, lag
        self.logged_at = self.gauged_at = time.monotonic()
        self.consumed = 0
        self.gauged: set[tuple[str, str]] = set()

    def report(self, consumer: Consumer, positions: Mapping[tuple[str, int], int], consumed: int) -> None:
        """`positions`: the next offset to read per (topic, partition) held; `consumed`: records read so far."""
        now = time.monotonic()
        log_due = self.log_lines and now - self.logged_at >= self.every
        if not log_due and now - self.gauged_at < GAUGE_EVERY_S:
            return
        lags = partition_lags(consumer, positions)
        self._gauge(lags)
        self.gauged_at = now
        if log_due:
            rate = (consumed - self.consumed) / (now - self.logged_at)
            log.info("%.0f records/s, lag %d records, %d partitions", rate, sum(lags.values()), len(positions))
            self.logged_at, self.consumed = now, consumed

    def _gauge(self, lags: dict[tuple[str, int], int]) -> None:
        labels = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for gone in self.gauged - labels.keys():  # revoked: another consumer reports it now
            self.lag.remove(*gone)
        for label, lag in labels.items():
            self.lag.labels(*label).set(lag)
        self.gauged = set(labels)


def partition_lags(consumer: Consumer, positions: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Records after each position, by the high watermark of the last fetch (asking the broker per partition would
    stall the loop); a partition not fetched yet has no known lag and is left out."""
    lags = {}
    for (topic, partition), position in list(positions.items()):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if high >= 0:
            lags[(topic, partition)] = max(0, high - position)
    return lags
