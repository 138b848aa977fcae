"""One consume() call's records of one topic, with their Kafka coordinates as Arrow columns."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa
from confluent_kafka import Message

from lakehouse.lake.checkpoint import PartitionProgress


@dataclass
class KafkaBatch:
    """Records of one topic from one consume() call, with their Kafka coordinates as Arrow columns."""

    messages: list[Message]
    coordinates: pa.Table  # partition, offset, timestamp (ms)

    @classmethod
    def of(cls, messages: list[Message]) -> KafkaBatch:
        return cls(messages, pa.table({
            "partition": pa.array([m.partition() for m in messages], pa.int32()),
            "offset": pa.array([m.offset() for m in messages], pa.int64()),
            "timestamp": pa.array([m.timestamp()[1] for m in messages], pa.int64()),
        }))

    @cached_property
    def spans(self) -> dict[int, tuple[int, int, int]]:
        """partition -> (first offset, last offset, record count)."""
        spans = self.coordinates.group_by("partition", use_threads=False).aggregate(
            [("offset", "min"), ("offset", "max"), ("offset", "count")])
        return {row["partition"]: (row["offset_min"], row["offset_max"], row["offset_count"])
                for row in spans.to_pylist()}

    def rows(self, indexes: list[int] | None) -> pa.Table:
        """The coordinates of some records (None: all)."""
        return self.coordinates if indexes is None else self.coordinates.take(pa.array(indexes, pa.int64()))

    def fresh(self, partitions: dict[tuple[str, int], PartitionProgress]) -> KafkaBatch:
        """Without records of partitions no longer ours or before their position (a late batch after a seek)."""
        topic = self.messages[0].topic()
        spans = self.spans
        if all((topic, p) in partitions and first >= partitions[(topic, p)].next_offset
               for p, (first, _last, _count) in spans.items()):
            return self  # the usual case
        return KafkaBatch.of([m for m in self.messages if (topic, m.partition()) in partitions
                              and m.offset() >= partitions[(topic, m.partition())].next_offset])


def group_by_topic(messages: list[Message]) -> dict[str, list[Message]]:
    if not messages:
        return {}
    first = messages[0].topic()
    topics = [m.topic() for m in messages]
    if topics.count(first) == len(topics):
        return {first: messages}
    groups: dict[str, list[Message]] = {}
    for topic, message in zip(topics, messages, strict=True):
        groups.setdefault(topic, []).append(message)
    return groups
