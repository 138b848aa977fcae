"""The lake consumer on the S3 lake (make up's SeaweedFS) against the same run on the local disk.

The same raw events in one fresh topic; `kafka_consumer_datalake.py --until-end` lands them twice, with two groups,
into a new lake in a temp folder and into a new prefix of the S3 bucket (DATA_LAKE_ROOT=s3://lakehouse/bench_<hex>,
the standard AWS_* variables of the environment, else make up's defaults). Rates are from assignment to the end.

  python -m bench.bench_lake_s3          # needs the local stack (make up)
"""

from __future__ import annotations

import os
import tempfile
import uuid

import pyarrow.fs as pafs

from bench.bench_lake_consumer import FEED, lake_consumer_run_at, produce
from lakehouse.kafka import clients
from lakehouse.settings import Settings, load_settings

S3_DEFAULTS = {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "lakehouse",
               "AWS_SECRET_ACCESS_KEY": "lakehouse-secret", "AWS_REGION": "us-east-1"}


def run(settings: Settings, events: int = 1_000_000) -> dict:
    for name, value in S3_DEFAULTS.items():
        os.environ.setdefault(name, value)
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    topic = f"{prefix}{FEED}"
    s3_root = f"s3://lakehouse/bench_{uuid.uuid4().hex[:8]}"
    clients.ensure_topics(settings, {topic: False})
    try:
        produce(settings, topic, events, seed=1)
        with tempfile.TemporaryDirectory(prefix="bench_lake_") as root:
            local = lake_consumer_run_at(settings, prefix, events, root)
        s3 = lake_consumer_run_at(settings, prefix, events, s3_root)
    finally:
        clients.delete_topics(settings, [topic])
        filesystem, path = pafs.FileSystem.from_uri(s3_root)
        filesystem.delete_dir(path)
    return {"events": events, "local_events_per_s": round(local["rate"]), "s3_events_per_s": round(s3["rate"]),
            "ratio": round(s3["rate"] / local["rate"], 3)}


def main() -> None:
    figures = run(load_settings())
    print(f"lake consumer on S3: {figures['s3_events_per_s']:,} events/s, on local disk "
          f"{figures['local_events_per_s']:,} events/s: ratio {figures['ratio']} (goal >= 0.5)")


if __name__ == "__main__":
    main()
