"""Every benchmark in one command: one table of figures, each beside its ceiling measured in the same run.

  python -m bench.run                      # everything, full sizes (takes a while); also: make bench
  python -m bench.run --quick              # smaller sizes, for a quick look
  python -m bench.run --only warehouse,latency
  python -m bench.run --only soak --minutes 60   # the soak is run only when asked for (make bench BENCH_ARGS=...)

Each bench module exposes run(settings, **sizes) -> dict; this runs them one after the other (they
would otherwise compete for the same cores), turns their dicts into rows and writes everything, with
the machine it ran on, to bench/results/latest.json (git-ignored). A bench that fails is reported in
the table and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import mysql.connector
import orjson

from bench import (
    bench_lake_consumer,
    bench_lake_s3,
    bench_latency,
    bench_producer,
    bench_scale_out,
    bench_soak,
    bench_startup,
    bench_warehouse,
)
from lakehouse.settings import Settings, load_settings
from lakehouse.text_table import render

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "latest.json"
SEED_LEAD = 8.9  # the lead over the seed's approach measured on 2026-12-01 (74-88k vs 8.3k events/s): keep it


@dataclass(frozen=True)
class Row:
    bench: str
    figure: str
    ours: float | None
    ceiling: float | None
    ratio: float | None  # ours relative to the ceiling (throughput: ours / ceiling; latency: ceiling / ours)
    goal: str
    met: bool | None  # None: no goal stated for this figure


@dataclass(frozen=True)
class Bench:
    run: Callable[..., dict]
    full: dict
    quick: dict
    rows: Callable[[dict], list[Row]]


def _producer_rows(r: dict) -> list[Row]:
    ratio = r["ratio"]
    return [
        Row("producer", "events/s, send loop, 1 producer (vs kcat -P)", r["ours_events_per_s"],
            r["kcat_events_per_s"], ratio, ">= 100,000/s and ratio >= 0.5",
            r["ours_events_per_s"] >= 100_000 and ratio >= 0.5),
        Row("producer", "events/s, kafka_producer.py incl. generation", r["script_events_per_s"],
            r["kcat_events_per_s"], round(r["script_events_per_s"] / r["kcat_events_per_s"], 3), "-", None),
    ]


def _lake_rows(r: dict) -> list[Row]:
    lead = r["lead_over_seed"]
    return [
        Row("lake_consumer", f"events/s, --until-end over {r['events']:,} (vs bare consume loop)",
            r["lake_events_per_s"], r["bare_events_per_s"], r["ratio"], "ratio >= 0.8", r["ratio"] >= 0.8),
        Row("lake_consumer", "peak RSS MB, 3x the events (vs 1x)", r["peak_rss_mb_3m"], r["peak_rss_mb_1m"],
            round(r["peak_rss_mb_3m"] / r["peak_rss_mb_1m"], 3), "within 20 %", abs(r["rss_growth"]) <= 0.2),
        Row("lake_consumer", "events/s, whole process incl. start-up (vs the seed's kafka-python + pandas)",
            r["lake_whole_process_events_per_s"], r["seed_whole_process_events_per_s"], lead,
            f"lead >= {SEED_LEAD} (the x10)", lead >= SEED_LEAD),
    ]


def _lake_s3_rows(r: dict) -> list[Row]:
    return [Row("lake_s3", f"events/s, lake consumer --until-end over {r['events']:,} on S3 (vs local disk)",
                r["s3_events_per_s"], r["local_events_per_s"], r["ratio"], "ratio >= 0.5", r["ratio"] >= 0.5)]


def _warehouse_rows(r: dict) -> list[Row]:
    """One row per variant the bench measured, validation included in each: new keys against LOAD DATA into an
    empty table, updates against the server's own floor for updates (raw LOAD DATA ... REPLACE of the same keys),
    which is shown first, as a reference against the empty-table load."""
    ceiling, floor = r["ceiling_load_data_rows_per_s"], r["server_floor_updates_rows_per_s"]
    rows = [Row("warehouse", f"rows/s, {r['rows']:,} rows, server floor: raw LOAD DATA REPLACE (vs LOAD DATA)",
                floor, ceiling, r["ratio_server_floor_updates_to_ceiling"], "reference", None)]
    variants = [key[len("ratio_"):-len("_to_floor")] for key in r if key.startswith("ratio_") and
                key.endswith("_to_floor")]
    for variant in variants:
        against_empty = variant == "new_keys"
        ratio = r[f"ratio_{variant}_to_ceiling" if against_empty else f"ratio_{variant}_to_floor"]
        rows.append(Row("warehouse", f"rows/s, {r['rows']:,} rows, {variant.replace('_', ' ')} "
                                     f"(vs {'LOAD DATA' if against_empty else 'the server floor'})",
                        r[f"{variant}_rows_per_s"], ceiling if against_empty else floor, ratio, "ratio >= 0.8",
                        ratio >= 0.8))
    return rows


def _latency_rows(r: dict) -> list[Row]:
    flush = r["flush_interval_s"]
    lake_goal = 1000 * (flush + 1)

    def latency(figure: str, ours: float, kafka: float, goal: str = "-", met: bool | None = None) -> Row:
        return Row("latency", figure, ours, kafka, round(kafka / ours, 3), goal, met)

    return [
        latency(f"ms produce -> lake file, median (--flush-interval {flush})", r["lake_median_ms"],
                r["kafka_median_ms"]),
        latency("ms produce -> lake file, p95", r["lake_p95_ms"], r["kafka_p95_ms"],
                f"<= flush interval + 1 s ({lake_goal:.0f})", r["lake_p95_ms"] <= lake_goal),
        latency("ms produce -> MySQL row, median", r["mysql_median_ms"], r["kafka_median_ms"]),
        latency("ms produce -> MySQL row, p95", r["mysql_p95_ms"], r["kafka_p95_ms"]),
    ]


def _soak_rows(r: dict) -> list[Row]:
    """One row per soak figure; the ceilings are the uncompacted lake (files), the ideal copy (query time), the
    process at minute 2 (RSS) and one flush interval (lag)."""
    minutes = f"{r['minutes']:g} min soak"

    def ms(seconds: float) -> float:
        return round(1000 * seconds, 1)

    rows = [
        Row("soak", f"files per closed (feed, day), uncompacted, max ({minutes})",
            r["files_per_closed_day_uncompacted_max"], None, None, "-", None),
        Row("soak", "files per closed (feed, day), live lake before the last compaction, max",
            r["files_per_closed_day_live_max"], None, None, "-", None),
        Row("soak", f"files per closed (feed, day) after compaction, max (largest file "
                    f"{r['largest_closed_file_mb']} MB)", r["files_per_closed_day_after_max"],
            r["files_per_closed_day_uncompacted_max"], None, "<= 2 (days < 128 MB)",
            r["files_per_closed_day_after_max"] <= 2),
        Row("soak", f"ms, week-wide DuckDB aggregate, {r['closed_days']} closed days, uncompacted (vs ideal copy)",
            ms(r["query_s_uncompacted"]), ms(r["query_s_ideal"]), r["query_ratio_uncompacted"], "-", None),
        Row("soak", "ms, week-wide DuckDB aggregate after compaction (vs ideal copy)", ms(r["query_s_after"]),
            ms(r["query_s_ideal"]), r["query_ratio_after"], "ratio >= 0.8", r["query_ratio_after"] >= 0.8),
        Row("soak", "ms, same over the whole feed, open days' small files included (vs ideal copy)",
            ms(r["query_s_whole_feed_after"]), ms(r["query_s_whole_feed_ideal"]), r["query_ratio_whole_feed"], "-",
            None),
    ]
    for name, end in r["rss_mb"]["end"].items():
        start = r["rss_mb"]["minute 2"].get(name) or None
        growth = r["rss_growth"].get(name)
        rows.append(Row("soak", f"peak RSS MB, {name}, end (vs minute 2)", end, start,
                        None if growth is None else round(1 + growth, 3), "growth <= 10 %",
                        None if growth is None else growth <= 0.1))
    rows += [
        Row("soak", f"lake lag at the end, records (vs one flush interval at {r['raw_topic_rate']}/s)",
            r["lake_lag_max"], round(r["raw_topic_rate"] * bench_soak.FLUSH_INTERVAL_S), None,
            f"<= {bench_soak.FLUSH_INTERVAL_S:.0f} s", r["lag_seconds"] <= bench_soak.FLUSH_INTERVAL_S),
        Row("soak", "status reconciliation mismatches", len(r["status_mismatches"]), None, None, "0",
            r["status_ok"]),
        Row("soak", "records lost", r["records_lost"], None, None, "0", r["records_lost"] == 0),
        Row("soak", "records duplicated", r["records_duplicated"], None, None, "0", r["records_duplicated"] == 0),
    ]
    return rows


def _startup_rows(r: dict) -> list[Row]:
    goal = r["goal_s"]
    return [Row("startup", f"s whole process, {name} (median of {r['runs']}; CPU {r['median_cpu_s'][name]:.2f} s; "
                           "vs python -c pass)", seconds, r["bare_python_s"], round(r["bare_python_s"] / seconds, 3),
                f"< {goal} s", seconds < goal)
            for name, seconds in r["median_s"].items()]


def _scale_out_rows(r: dict) -> list[Row]:
    rows = []
    for stage, unit in (("lake", "events"), ("warehouse", "changelog records")):
        runs = r[stage]
        single = runs[0]["records_per_s"]
        for run in runs:
            rows.append(Row("scale_out", f"{stage}: {run['processes']} process(es), {unit}/s (vs 1 process), "
                                         f"drained in {run['drain_s']} s",
                            run["records_per_s"], single, round(run["records_per_s"] / single, 3),
                            "exactly-once", run["exactly_once"]))
    return rows


BENCHES = {
    "producer": Bench(bench_producer.run, {}, {"events": 100_000}, _producer_rows),
    "lake_consumer": Bench(bench_lake_consumer.run, {},
                           {"events_first": 100_000, "events_second": 200_000}, _lake_rows),
    "lake_s3": Bench(bench_lake_s3.run, {}, {"events": 100_000}, _lake_s3_rows),
    "warehouse": Bench(bench_warehouse.run, {}, {"rows": 50_000}, _warehouse_rows),
    "latency": Bench(bench_latency.run, {"probes": 40}, {"probes": 10}, _latency_rows),
    "startup": Bench(bench_startup.run, {"runs": 7}, {"runs": 3}, _startup_rows),
    "scale_out": Bench(bench_scale_out.run, {"events": 3_000_000}, {"events": 150_000}, _scale_out_rows),
    "soak": Bench(bench_soak.run, {}, {"minutes": 3}, _soak_rows),
}
ON_REQUEST = ("soak",)  # runs only when named in --only


def machine(settings: Settings) -> dict:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                      if line.startswith("MemTotal:")), 0)
    return {"nproc": os.cpu_count(), "memory_gb": round(memory_kb / 1024 ** 2, 1), "cpu": cpu,
            "python": platform.python_version(), "mariadb": _mysql_version(settings),
            "kafka": _kafka_version(), "kcat": _kcat_version()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _mysql_version(settings: Settings) -> str:
    try:
        with mysql.connector.connect(**settings.mysql_params()) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT VERSION()")
            return str(cursor.fetchone()[0])
    except mysql.connector.Error:
        return "unknown"


def _kafka_version() -> str:
    """The broker's version, from the jars the local stack runs (stack/stack.sh assembles them in .stack/)."""
    jars = sorted((REPO / ".stack" / "kafka" / "libs").glob("kafka-server-[0-9]*.jar"))
    return jars[-1].stem.removeprefix("kafka-server-") if jars else "unknown"


def _kcat_version() -> str:
    try:
        output = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return next((line.split()[1] for line in output.splitlines() if line.startswith("Version ")), "unknown")


def run_all(settings: Settings, names: list[str], quick: bool, overrides: dict | None = None) -> dict:
    results: dict[str, dict] = {}
    rows: list[Row] = []
    for name in names:
        bench = BENCHES[name]
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            sizes = {**(bench.quick if quick else bench.full), **{key: value for key, value in (overrides or {}).items()
                                                                   if name in ON_REQUEST}}
            result = bench.run(settings, **sizes)
            rows += bench.rows(result)
        except Exception as exc:  # one failing bench must not lose the others' figures
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append(Row(name, f"FAILED: {result['error'][:100]}", None, None, None, "-", False))
        result["seconds"] = round(time.monotonic() - started, 1)
        results[name] = result
        print(f"[bench] {name} done in {result['seconds']} s", file=sys.stderr, flush=True)
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
            "machine": machine(settings), "results": results, "rows": [asdict(row) for row in rows]}


def render_table(report: dict) -> str:
    rows = [Row(**row) for row in report["rows"]]
    body = render(["bench", "figure", "ours", "ceiling", "ratio", "goal", "met"],
                  [[r.bench, r.figure, _number(r.ours), _number(r.ceiling), r.ratio, r.goal,
                    "-" if r.met is None else "yes" if r.met else "NO"] for r in rows])
    m = report["machine"]
    return (f"{body}\n\n{report['date']}{' (quick sizes)' if report['quick'] else ''}: {m['nproc']} cores "
            f"{m['cpu']}, {m['memory_gb']} GB, MariaDB {m['mariadb']}, Kafka {m['kafka']}, kcat {m['kcat']}")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=_names, default=[name for name in BENCHES if name not in ON_REQUEST],
                        help=f"comma-separated benches to run: {', '.join(BENCHES)} (default: all but "
                             f"{', '.join(ON_REQUEST)})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (figures are indicative only)")
    parser.add_argument("--minutes", type=float, help=f"soak: minutes of continuous running (default "
                                                      f"{bench_soak.DEFAULT_MINUTES:g})")
    parser.add_argument("--rate", type=float, help=f"soak: producer events per second (default "
                                                   f"{bench_soak.DEFAULT_RATE:g})")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("minutes", args.minutes), ("rate", args.rate)) if value is not None}
    report = run_all(load_settings(), args.only, args.quick, overrides)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(render_table(report))
    print(f"\nresults: {RESULTS.relative_to(REPO)}")
    return 0 if all("error" not in result for result in report["results"].values()) else 1


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    return names


if __name__ == "__main__":
    sys.exit(main())
