"""The kafka_offsets table: where the streaming warehouse consumer resumes, per group, topic and partition.

Written in the same transaction as the rows they cover (exactly once); sync reads them to never roll back what the
consumer landed (lakehouse.warehouse.sync.consumer_ahead).
"""

from __future__ import annotations

from mysql.connector.cursor import MySQLCursor

TopicPartitionKey = tuple[str, int]


def read_offsets(cursor: MySQLCursor, group: str, partitions: list[TopicPartitionKey],
                 lock: bool = False) -> dict[TopicPartitionKey, int]:
    """The stored next offsets of `partitions` for `group` (absent: none stored); `lock`: FOR UPDATE."""
    if not partitions:
        return {}
    pairs = ", ".join(["(%s, %s)"] * len(partitions))
    cursor.execute(f"SELECT topic, `partition`, next_offset FROM kafka_offsets WHERE consumer_group = %s "
                   f"AND (topic, `partition`) IN ({pairs}){' FOR UPDATE' if lock else ''}",
                   [group, *(value for tp in partitions for value in tp)])
    return {(str(topic), int(partition)): int(offset) for topic, partition, offset in cursor.fetchall()}


def write_offsets(cursor: MySQLCursor, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
    cursor.executemany(
        "INSERT INTO kafka_offsets (consumer_group, topic, `partition`, next_offset) VALUES (%s, %s, %s, %s) "
        "ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)",
        [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()])


def starts_on_assign(cursor: MySQLCursor, group: str, watermarks: dict[TopicPartitionKey, tuple[int, int]]
                     ) -> tuple[dict[TopicPartitionKey, int | None], list[str]]:
    """Where newly assigned partitions resume (None: from the beginning), and what had to be reset: a stored
    offset beyond a partition's end means the topic was recreated, so it restarts at the partition's first offset."""
    stored: dict[TopicPartitionKey, int | None] = dict(read_offsets(cursor, group, list(watermarks), lock=True))
    beyond = {tp: low for tp, (low, high) in watermarks.items() if (stored.get(tp) or 0) > high}
    resets = [f"stored offset {stored[tp]} of {tp[0]}[{tp[1]}] is beyond the end of the partition "
              f"({watermarks[tp][1]}): the topic was recreated; reset to the beginning ({low})"
              for tp, low in beyond.items()]
    if beyond:
        write_offsets(cursor, group, beyond)
        stored.update(beyond)
    return stored, resets
