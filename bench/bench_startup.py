"""Whole-process start-up: the bounded runs the orchestrator pays every few minutes, with nothing to do.

  python -m bench.bench_startup [--runs N]

A small lake and warehouse are made first (events produced with --derive, landed by the lake consumer, synced
once); then each command runs N times as a whole process, from interpreter start to exit; the medians of its
wall time (the goal) and of its CPU time (user + system, which a loaded machine does not inflate) are reported:
  * data_lake_config.py show
  * sync_to_mysql.py with nothing new (the lake's newest versions already synced: a small snapshot again)
  * kafka_consumer_datalake.py --until-end with nothing new (the lake already at every partition's end)
Reference in the same run: a bare interpreter (python -c pass), so a loaded machine shows as such.
Goal: each under 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from bench.scratch import run_script, scratch_database, script_env, topic_prefix
from lakehouse.settings import Settings, load_settings

COMMANDS = {
    "data_lake_config.py show": ("data_lake_config.py", "show"),
    "sync_to_mysql.py, nothing new": ("sync_to_mysql.py",),
    "lake consumer --until-end, nothing new": ("kafka_consumer_datalake.py", "--until-end"),
}
GOAL_S = 1.5


def run(settings: Settings, runs: int = 7) -> dict:
    with (topic_prefix(settings, "startup") as prefix, scratch_database(settings) as database,
          tempfile.TemporaryDirectory(prefix="bench_startup_") as lake):
        env = script_env(settings, lake, prefix, database)
        run_script(env, "kafka_producer.py", "--messages", "2000", "--rate", "0", "--seed", "5", "--derive")
        run_script(env, "data_lake_config.py", "init")
        run_script(env, "kafka_consumer_datalake.py", "--until-end")
        run_script(env, "sync_to_mysql.py")
        timings = {name: [run_script(env, *command) for _ in range(runs)] for name, command in COMMANDS.items()}
        bare = [_bare_interpreter() for _ in range(runs)]
    return {"runs": runs, "goal_s": GOAL_S, "bare_python_s": round(statistics.median(bare), 3),
            "median_s": {name: round(statistics.median(t.wall_s for t in runs_), 3) for name, runs_ in timings.items()},
            "median_cpu_s": {name: round(statistics.median(t.cpu_s for t in runs_), 3)
                             for name, runs_ in timings.items()}}


def _bare_interpreter() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    result = run(load_settings(), parser.parse_args(argv).runs)
    for name, seconds in result["median_s"].items():
        print(f"{name:42} {seconds:.3f} s, CPU {result['median_cpu_s'][name]:.3f} s (goal < {GOAL_S} s)")
    print(f"{'bare python -c pass':42} {result['bare_python_s']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
