"""Soak: the whole pipeline running continuously for N minutes, then what a week of small files costs readers.

Processes, each a subprocess on its own topics (a fresh prefix), lake folder and scratch database:
  * `kafka_producer.py --derive --rate R --days 7`: a steady rate, event times spread over the 7 days ending
    today, so the closed days keep receiving late events all along;
  * `kafka_consumer_datalake.py` with its default settings (flush every 30 s, every active feed);
  * `kafka_consumer_warehouse.py`;
  * `beam_orchestrator.py --task all --every-minutes 1` (export, sync, retention, compact; its kafka_produce task
    gets `--messages 0 --no-derive`: the derive stand-in, like ksqlDB, must be the one writer of the derived
    topics, and two of them break its state);
  * a second `kafka_consumer_datalake.py` (own group, own lake, stream feeds only): the same records landed with no
    compaction, the "before" of the file counts and of the query.
At the end: lag is read while the producer still runs; the producer finishes, the orchestrator stops, the consumers
drain and stop; the lake is compacted once more (the last minute's late files); then files per closed (feed, day),
a DuckDB aggregate over the raw feed's closed days of the week (uncompacted lake, compacted lake, an ideal copy of
one file per day; also over the whole feed, whose open days are not compacted by design), `status` reconciliation
and records lost or duplicated (every stream topic's records against
the distinct (`_partition`, `_offset`) the lake holds).

  python -m bench.bench_soak [--minutes 10] [--rate 40]     also: make bench BENCH_ARGS="--only soak --minutes 10"
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import mysql.connector
import orjson
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.governance import status
from lakehouse.kafka import clients
from lakehouse.lake import compaction
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage, date_partition_dirs

REPO = Path(__file__).resolve().parent.parent
RAW = "transaction_stream"
DEFAULT_MINUTES = 10
DEFAULT_RATE = 40.0
FLUSH_INTERVAL_S = 30.0  # the lake consumer's default
WEEK = 7
_QUERY_RUNS = 15


def run(settings: Settings, minutes: float = DEFAULT_MINUTES, rate: float = DEFAULT_RATE) -> dict:
    prefix = f"soak_{uuid.uuid4().hex[:8]}_"
    database = f"{settings.mysql_database}_soak_{uuid.uuid4().hex[:8]}"
    _server_statement(settings, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    work = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    lake, mirror = work / "lake", work / "mirror"
    soak = dataclasses.replace(settings, data_lake_root=str(lake), mysql_database=database, topic_prefix=prefix)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "MYSQL_DATABASE": database,
           "DATA_LAKE_ROOT": str(lake), "LAKEHOUSE_TOPIC_PREFIX": prefix}
    processes: dict[str, subprocess.Popen] = {}
    try:
        feeds = FeedCatalog(LakeStorage(lake)).init()[0]
        FeedCatalog(LakeStorage(mirror)).init()
        catalog = FeedCatalog(LakeStorage(lake))
        streams = [f.name for f in catalog.list(kind="stream")]
        clients.ensure_topics(soak, {soak.topic(f.topic): f.kind == "table" for f in catalog.list()})
        clients.wait_until_readable(soak, [soak.topic(f.topic) for f in catalog.list()])
        today = datetime.now(UTC).date()
        events = int(rate * minutes * 60)
        processes["lake consumer"] = _start(["kafka_consumer_datalake.py"], env, work)
        processes["mirror consumer (no compaction)"] = _start(
            ["kafka_consumer_datalake.py", "--feeds", ",".join(streams), "--group-id", f"{prefix}mirror"],
            {**env, "DATA_LAKE_ROOT": str(mirror)}, work)
        processes["warehouse consumer"] = _start(["kafka_consumer_warehouse.py"], env, work)
        # The producer is the one source (the derive stand-in, like ksqlDB, is a single writer): the orchestrator's
        # own kafka_produce task is given nothing to produce.
        processes["orchestrator"] = _start(["beam_orchestrator.py", "--task", "all", "--every-minutes", "1",
                                            "--messages", "0", "--no-derive"], env, work)
        processes["producer"] = _start(["kafka_producer.py", "--derive", "--rate", str(rate), "--messages",
                                        str(events), "--days", str(WEEK), "--start",
                                        (today - timedelta(days=WEEK - 1)).isoformat()], env, work)
        started = time.monotonic()
        rss = {"minute 2": {}, "end": {}}
        _sleep_until(started + min(120, minutes * 30))
        rss["minute 2"] = {name: _peak_rss_mb(p.pid) for name, p in processes.items()}
        raw_topic = soak.topic(RAW)
        ends_before = sum(clients.topic_end_offsets(soak, raw_topic).values())
        _sleep_until(started + minutes * 60 - 60)
        raw_rate = (sum(clients.topic_end_offsets(soak, raw_topic).values()) - ends_before) / max(
            1.0, time.monotonic() - started - min(120, minutes * 30))
        rss["end"] = {name: _peak_rss_mb(p.pid) for name, p in processes.items()}
        lags = {s.feed.name: (s.lake_lag, s.warehouse_lag) for s in _status(soak).feeds}
        _stop(processes.pop("producer"), wait_for_exit=True)
        _stop(processes.pop("orchestrator"))
        _drain(soak, catalog)
        for name in list(processes):
            _stop(processes.pop(name))
        figures = _measure(soak, lake, mirror, streams, today)
        (work / "figures.json").write_bytes(orjson.dumps(figures))  # kept whatever happens next
        reconciliation = status.collect(soak)
        for folder in (lake, mirror, work / "ideal"):  # the processes' logs stay in `work`
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        for process in processes.values():
            _stop(process)
        _server_statement(settings, f"DROP DATABASE IF EXISTS `{database}`")
        clients.delete_topics(soak, [t for t in clients.admin_client(soak).list_topics(timeout=10).topics
                                     if t.startswith(prefix)])
    lake_lag_max = max((lag[0] or 0) for lag in lags.values())
    result = {"minutes": minutes, "rate": rate, "events_produced": events, "feeds_created": len(feeds),
            "raw_topic_rate": round(raw_rate, 1), "rss_mb": rss,
            "rss_growth": {name: round(rss["end"][name] / rss["minute 2"][name] - 1, 3)
                           for name in rss["end"] if rss["minute 2"].get(name)},
            "lag_records": lags, "lake_lag_max": lake_lag_max,
            "lag_seconds": round(lake_lag_max / max(raw_rate, 1e-9), 1),
            "status_ok": reconciliation.ok,
            "status_mismatches": [c.label for c in reconciliation.checks if c.ok is False],
            **figures, "logs": str(work)}
    (work / "figures.json").write_bytes(orjson.dumps(result))  # the whole run's figures, beside its logs
    return result


def _measure(settings: Settings, lake: Path, mirror: Path, streams: list[str], today: date) -> dict:
    """Files per closed day and query times before and after the last compaction; lost and duplicated records.
    The aggregate's goal is over the closed days of the week (the ones compaction may rewrite); over the whole feed,
    open days' small files included, it is reported too."""
    storage = LakeStorage(lake)
    feeds = {f.name: f for f in FeedCatalog(storage).list(kind="stream")}
    bound = compaction.closed_before(feeds[RAW], today)
    before_live = _files_per_closed_day(lake, streams, bound)
    before_mirror = _files_per_closed_day(mirror, streams, bound)
    closed = sorted({day for feed, day in before_mirror if feed == RAW})
    before = _query_seconds({"uncompacted": (mirror, closed), "live": (lake, closed)}, runs=5)
    subprocess.run([sys.executable, str(REPO / "data_lake_config.py"), "compact"], cwd=REPO, check=True,
                   env={**os.environ, "DATA_LAKE_ROOT": str(lake)}, capture_output=True)
    after = _files_per_closed_day(lake, streams, bound)
    ideal = _ideal_copy(lake, lake.parent / "ideal")
    query = _query_seconds({"after": (lake, closed), "ideal": (ideal, closed)}, runs=_QUERY_RUNS) | before
    query |= _query_seconds({"whole_feed_after": (lake, None), "whole_feed_ideal": (ideal, None)}, runs=3)
    sizes = [f.size for f in storage.walk_files(layout.STREAMS)
             if (layout.parse_partition_date(f.path) or bound) < bound]
    lost, duplicated = _lost_and_duplicated(settings, lake, streams, [feeds[name].topic for name in streams])
    return {"closed_days": len(closed), "closed_before": bound.isoformat(),
            "files_per_closed_day_uncompacted_max": max(before_mirror.values(), default=0),
            "files_per_closed_day_uncompacted_mean": round(statistics.mean(before_mirror.values() or [0]), 1),
            "files_per_closed_day_live_max": max(before_live.values(), default=0),
            "files_per_closed_day_after_max": max(after.values(), default=0),
            "largest_closed_file_mb": round(max(sizes, default=0) / compaction.MB, 2),
            **{f"query_s_{name}": seconds for name, seconds in query.items()},
            "query_ratio_after": round(query["ideal"] / query["after"], 3),
            "query_ratio_uncompacted": round(query["ideal"] / query["uncompacted"], 3),
            "query_ratio_whole_feed": round(query["whole_feed_ideal"] / query["whole_feed_after"], 3),
            "records_lost": lost, "records_duplicated": duplicated}


def _files_per_closed_day(root: Path, feeds: list[str], bound: date) -> dict[tuple[str, date], int]:
    storage = LakeStorage(root)
    counts = {}
    for feed in feeds:
        for folder in date_partition_dirs(storage, layout.feed_dir("stream", feed)):
            day = layout.parse_partition_date(folder)
            if day is not None and day < bound:
                counts[(feed, day)] = sum(1 for name in storage.list_dir(folder) if name.endswith(".parquet"))
    return counts


_WEEK_QUERY = """
    SELECT make_date(year, month, day) AS day, currency, count(*) AS events, sum(amount) AS amount,
           count(DISTINCT "user".user_id) AS users
    FROM read_parquet({files}, hive_partitioning = true, union_by_name = true)
    GROUP BY ALL ORDER BY ALL
"""


def _day_globs(root: Path, days: list[date] | None) -> list[str]:
    """The raw feed's closed days, or (None) the whole feed, as globs for read_parquet."""
    feed_dir = f"{root}/{layout.feed_dir('stream', RAW)}"
    if days is None:
        return [f"{feed_dir}/**/*.parquet"]
    return [f"{feed_dir}/{layout.date_partition(day)}/*.parquet" for day in days]


def _query_seconds(targets: dict[str, tuple[Path, list[date] | None]], runs: int) -> dict[str, float]:
    """Median wall time of the week-wide aggregate over the raw feed of each target, a fresh connection each run;
    the targets take turns, so a machine whose load drifts weighs on all of them alike."""
    timings: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, (root, days) in targets.items():
            files = "[" + ", ".join(f"'{glob}'" for glob in _day_globs(root, days)) + "]"
            connection = duckdb.connect()
            started = time.perf_counter()
            connection.sql(_WEEK_QUERY.format(files=files)).fetchall()
            timings[name].append(time.perf_counter() - started)
            connection.close()
    return {name: round(statistics.median(values), 4) for name, values in timings.items()}


def _ideal_copy(lake: Path, target: Path) -> Path:
    """The raw feed as one file per day, sorted by event time: the fastest layout a reader could get."""
    table = ds.dataset(lake / layout.feed_dir("stream", RAW), format="parquet", partitioning="hive").to_table()
    for key in table.select(["year", "month", "day"]).group_by(["year", "month", "day"]).aggregate([]).to_pylist():
        mask = pc.and_(pc.and_(pc.equal(table["year"], key["year"]), pc.equal(table["month"], key["month"])),
                       pc.equal(table["day"], key["day"]))
        part = table.filter(mask).drop_columns(["year", "month", "day"]).sort_by("event_time")
        folder = target / layout.stream_partition_dir(RAW, date(key["year"], key["month"], key["day"]))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / "part-0.parquet", compression="zstd")
    return target


def _lost_and_duplicated(settings: Settings, lake: Path, feeds: list[str], topics: list[str]) -> tuple[int, int]:
    """Per stream: records in its topic minus distinct (partition, offset) in the lake minus quarantined (lost), and
    rows beyond the distinct ones (duplicated)."""
    lost = duplicated = 0
    for feed, topic in zip(feeds, topics, strict=True):
        records = sum(clients.topic_end_offsets(settings, settings.topic(topic)).values())
        glob = f"{lake}/{layout.feed_dir('stream', feed)}/**/*.parquet"
        quarantine = list((lake / layout.QUARANTINE / feed).rglob("*.parquet"))
        quarantined = sum(pq.ParquetFile(path).metadata.num_rows for path in quarantine)
        if not list((lake / layout.feed_dir("stream", feed)).rglob("*.parquet")):
            lost += records - quarantined
            continue
        rows, distinct = duckdb.sql(f"SELECT count(*), count(DISTINCT (_partition, _offset)) FROM read_parquet("
                                    f"'{glob}', union_by_name = true)").fetchall()[0]
        lost += records - distinct - quarantined
        duplicated += rows - distinct
    return lost, duplicated


def _drain(settings: Settings, catalog: FeedCatalog, timeout: float = 300) -> None:
    """Until both consumers have landed every record (lake lag and warehouse lag 0), or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        feeds = _status(settings).feeds
        if all((f.lake_lag or 0) == 0 and (f.warehouse_lag or 0) == 0 for f in feeds):
            return
        time.sleep(5)


def _status(settings: Settings, attempts: int = 5) -> status.Status:
    """`status.collect`, read again when a compaction swapped a day between its listing and its reading of the
    files (a glob reader meets "No such file" then, never a wrong count)."""
    for attempt in range(attempts):
        try:
            return status.collect(settings)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _server_statement(settings: Settings, sql: str) -> None:
    """One statement on a connection of its own: a connection opened at the start would not outlive an hour idle."""
    with mysql.connector.connect(**{**settings.mysql_params(), "database": None}) as connection:
        connection.cursor().execute(sql)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, from /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")), 0)
    return round(kb / 1024, 1)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _start(command: list[str], env: dict[str, str], work: Path) -> subprocess.Popen:
    log = (work / f"{Path(command[0]).stem}.{uuid.uuid4().hex[:4]}.log").open("w")
    return subprocess.Popen([sys.executable, str(REPO / command[0]), *command[1:]], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen, wait_for_exit: bool = False) -> None:
    """SIGTERM (or, `wait_for_exit`, let it finish by itself first), SIGKILL after a grace period."""
    if wait_for_exit:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="events per second of the producer")
    args = parser.parse_args(argv)
    print(orjson.dumps(run(load_settings(), args.minutes, args.rate), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
