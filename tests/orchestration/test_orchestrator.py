"""beam_orchestrator.py: Beam pipelines on the real stack, scheduling, the lock, run history (issue 7)."""

from __future__ import annotations

import base64
import bz2
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import apache_beam as beam
import mysql.connector
import orjson
from apache_beam.internal import pickler
from apache_beam.pipeline import PipelineVisitor
from support import (
    BOTH_BACKENDS,
    REPO,
    expected_day_facts,
    free_port,
    lake_day_facts,
    land_small_files,
    landed_column,
    produce_days,
    run_script,
    scrape,
    wait_for,
)

from lakehouse import layout
from lakehouse.orchestration import pipelines, schedule
from lakehouse.settings import Settings, load_settings
from lakehouse.storage import LakeStorage


def _lake_rows(lake: Path | str, feed: str) -> list[str]:
    return landed_column(LakeStorage(str(lake)), feed)


def _warehouse_count(settings: Settings) -> int:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COALESCE(SUM(transaction_count), 0) FROM fact_user_transaction_summary")
        return int(cursor.fetchone()[0])


@BOTH_BACKENDS
def test_all_tick_moves_new_events_into_the_lake_and_the_warehouse(env: dict[str, str], settings_for: Settings,
                                                                    lake_root: Path) -> None:
    first = run_script("beam_orchestrator.py", "--task", "all", "--once", "--messages", "1500", "--seed", "11",
                       env=env, check=True)
    for task in ("kafka_produce", "export_datalake", "sync_warehouse", "retention"):
        assert f"[{task}] ok" in first.stdout
    ids = _lake_rows(lake_root, "transaction_stream")
    assert len(ids) == len(set(ids)) == 1500
    assert _warehouse_count(settings_for) == 1500

    run_script("beam_orchestrator.py", "--task", "all", "--once", "--messages", "700", "--seed", "12",
               env=env, check=True)
    ids = _lake_rows(lake_root, "transaction_stream")
    assert len(ids) == len(set(ids)) == 2200
    assert _warehouse_count(settings_for) == 2200
    history = run_script("beam_orchestrator.py", "--history", env=env, check=True).stdout
    assert history.count("kafka_produce") == 2 and "failed" not in history


def test_a_second_overlapping_start_is_refused(env: dict[str, str], lake_root: Path) -> None:
    scheduler = subprocess.Popen([sys.executable, "beam_orchestrator.py", "--task", "retention",
                                  "--every-minutes", "10"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        history = lake_root / "_logs/orchestrator_runs.jsonl"
        deadline = time.monotonic() + 60
        while not history.exists():  # the first tick has run: the scheduler now waits, holding the lock
            assert time.monotonic() < deadline, "the scheduler never ran its first tick"
            time.sleep(0.2)
        second = run_script("beam_orchestrator.py", "--task", "retention", "--once", env=env)
        assert second.returncode == 2
        assert "another orchestrator run is in progress (pid" in second.stderr
    finally:
        scheduler.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        out, err = scheduler.communicate(timeout=60)
    assert time.monotonic() - stopping < 5  # SIGTERM while the scheduler waits between ticks
    assert scheduler.returncode == 0, err[-2000:]
    assert "scheduler stopped after 1 tick(s)" in out


def test_the_scheduler_serves_its_task_runs_as_metrics(env: dict[str, str], lake_root: Path) -> None:
    port = free_port()
    scheduler = subprocess.Popen([sys.executable, "beam_orchestrator.py", "--task", "retention", "--every-minutes",
                                  "10", "--metrics-port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: 'lakehouse_task_runs_total{status="ok",task="retention"}' in scrape(port), 120,
                 "the first tick's run in the metrics")
        samples = scrape(port)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _out, err = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, err[-2000:]
    assert samples['lakehouse_task_runs_total{status="ok",task="retention"}'] == 1
    assert samples['lakehouse_task_duration_seconds_count{task="retention"}'] == 1
    assert not [name for name in samples if 'status="failed"' in name]
    runs = (lake_root / "_logs/orchestrator_runs.jsonl").read_text().splitlines()
    assert [(run["task"], run["status"]) for run in map(orjson.loads, runs)] == [("retention", "ok")]


def test_the_lock_file_is_never_opened_through_a_symlink(env: dict[str, str], lake_root: Path, tmp_path: Path) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    outside = tmp_path / "not_the_lake.txt"
    outside.write_text("precious")
    lock = lake_root / "_logs/orchestrator.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.symlink_to(outside)
    result = run_script("beam_orchestrator.py", "--task", "retention", "--once", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("error: refusing to write _logs/orchestrator.lock: _logs/orchestrator.lock is a "
                                     f"symlink (to {outside}); lake folders and files must be real ones inside the "
                                     "lake root")
    assert outside.read_text() == "precious"


def test_every_minutes_must_be_a_finite_interval_of_at_least_six_seconds(env: dict[str, str], lake_root: Path) -> None:
    for value in ("nan", "inf", "0", "-5", "0.01"):
        result = run_script("beam_orchestrator.py", "--task", "retention", f"--every-minutes={value}", env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, value
        assert result.stderr.splitlines()[-1].startswith("beam_orchestrator.py: error: argument --every-minutes:")
    assert not (lake_root / "_logs/orchestrator_runs.jsonl").exists()  # no tick ran


def test_a_failing_task_is_recorded_and_the_next_tick_succeeds(env: dict[str, str]) -> None:
    broken = {**env, "MYSQL_PORT": "1"}  # nothing listens there
    failing = run_script("beam_orchestrator.py", "--task", "sync_warehouse", "--every-minutes", "0.1",
                         "--ticks", "2", env=broken, timeout=180)
    assert failing.returncode == 0, failing.stderr[-2000:]
    assert failing.stdout.count("[sync_warehouse] failed") == 2
    assert "scheduler stopped after 2 tick(s)" in failing.stdout

    fixed = run_script("beam_orchestrator.py", "--task", "sync_warehouse", "--once", "--", "--direct_num_workers=2",
                       env=env)  # Beam's own options after --
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "[sync_warehouse] ok" in fixed.stdout

    lines = run_script("beam_orchestrator.py", "--history", env=env, check=True).stdout.splitlines()[2:]
    assert [line.split()[3] for line in lines] == ["failed", "failed", "ok"]
    assert "unreachable" in lines[0]


def _steps(build) -> list[beam.DoFn]:
    """The DoFns of a built pipeline (what Beam pickles and ships to the workers)."""
    pipeline, steps = beam.Pipeline(), []

    class Collect(PipelineVisitor):
        def visit_transform(self, node) -> None:  # noqa: ANN001 (Beam's AppliedPTransform)
            if isinstance(node.transform, beam.ParDo):
                steps.append(node.transform.fn)

    build(pipeline)
    pipeline.visit(Collect())
    return steps


def test_beam_steps_do_not_carry_the_mysql_password(env: dict[str, str], lake_root: Path) -> None:
    """A pipeline is pickled and shipped to its workers: the password stays out, workers read their own."""
    run_script("data_lake_config.py", "init", env=env, check=True)
    secret = f"pw-{uuid.uuid4().hex}"
    settings = replace(load_settings(env_file=None), data_lake_root=str(lake_root), mysql_password=secret)
    steps = [step for build in (pipelines.build_produce(settings, pipelines.ProduceSpec(messages=10), run_seed=1),
                                pipelines.build_export(settings), pipelines.build_retention(settings))
             for step in _steps(build)]
    steps += [pipelines.SyncFromLake(settings)]
    names = {type(step).__name__ for step in steps}
    assert {"ProduceShard", "DeriveShards", "ExportFeed", "ApplyRetention", "SyncFromLake"} <= names
    for step in steps:
        pickled = bz2.decompress(base64.b64decode(pickler.dumps(step)))  # Beam's own pickling, uncompressed
        assert secret.encode() not in pickled, type(step).__name__


def _day_files(lake: Path, day: date) -> list[Path]:
    return list((lake / layout.stream_partition_dir("transaction_stream", day)).glob("*.parquet"))


def test_compact_task_merges_closed_days_and_is_part_of_all(env: dict[str, str], settings_for: Settings,
                                                            lake_root: Path) -> None:
    first = date(2026, 9, 1)  # closed on every date the tests run on (lateness window of 1 day)
    produced = produce_days(settings_for, "transaction_stream", 2, 150, seed=21, first=first)
    land_small_files(settings_for, "transaction_stream")
    assert all(len(_day_files(lake_root, first + timedelta(days=n))) > 2 for n in range(2))

    tick = run_script("beam_orchestrator.py", "--task", "compact", "--once", env=env, check=True)
    assert "[compact] ok" in tick.stdout
    assert [len(_day_files(lake_root, first + timedelta(days=n))) for n in range(2)] == [1, 1]
    assert lake_day_facts(lake_root, "transaction_stream") == expected_day_facts(produced)
    assert "compact" in schedule.tasks_for("all")
