"""The seed's own approach to landing a topic in the lake, kept as a baseline so the lead over it stays measured.

kafka-python's KafkaConsumer, one json.loads per message, a pandas DataFrame every 1,000 records written to
Parquet in the partition of the wall-clock date (not the event's). No exactly-once, no quarantine, no schema.
bench_lake_consumer runs it as a whole process on the same topic as the lake consumer:

  python -m bench.bench_seed_baseline BOOTSTRAP TOPIC COUNT LAKE_ROOT   # prints the rows it landed

kafka-python is a bench-only dependency (requirements-dev.txt): nothing in lakehouse/ uses it.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path

BATCH = 1000


def land(bootstrap: str, topic: str, count: int, root: Path) -> int:
    import pandas as pd
    from kafka import KafkaConsumer

    def write(batch: list[dict]) -> None:
        now = datetime.now()
        folder = root / f"year={now.year}" / f"month={now.month:02d}" / f"day={now.day:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(batch).to_parquet(folder / f"{uuid.uuid4().hex}.parquet", index=False)

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench_seed_{uuid.uuid4().hex[:8]}",
                             auto_offset_reset="earliest", enable_auto_commit=True, consumer_timeout_ms=10_000)
    batch: list[dict] = []
    landed = 0
    for message in consumer:
        batch.append(json.loads(message.value))
        if len(batch) >= BATCH:
            write(batch)
            landed, batch = landed + len(batch), []
        if landed + len(batch) >= count:
            break
    if batch:
        write(batch)
        landed += len(batch)
    consumer.close()
    return landed


if __name__ == "__main__":
    bootstrap_servers, topic_name, expected, lake_root = sys.argv[1:5]
    print(land(bootstrap_servers, topic_name, int(expected), Path(lake_root)))
