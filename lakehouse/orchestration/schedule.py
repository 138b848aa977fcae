"""Running the Beam pipelines on a schedule: one tick at a time, never overlapping, every run recorded.

  --once            one tick, for cron
  --every-minutes   the `schedule` library runs a tick every N minutes until stopped

A tick runs the selected tasks in order; a failing task is recorded with its error and the next task
(and the next tick) still runs. History lives in the lake: `_logs/orchestrator_runs.jsonl`.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

import orjson
import schedule

from lakehouse import layout
from lakehouse.errors import LakehouseError
from lakehouse.lake.metadata import utc_now_iso
from lakehouse.storage import LakeStorage

HISTORY_LOG = layout.log_file("orchestrator_runs.jsonl")
LOCK_FILE = layout.log_file("orchestrator.lock")
ORDER = ("kafka_produce", "export_datalake", "sync_warehouse", "retention", "compact")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    task: str
    started_at: str
    ended_at: str
    status: str  # ok | failed
    rows: int
    error: str | None


TaskRunner = Callable[[str], int]  # task name -> rows moved
RunObserver = Callable[[str, str, float], None]  # task, status, seconds (the metrics of --every-minutes)


def tasks_for(selection: str) -> list[str]:
    return list(ORDER) if selection == "all" else [selection]


@contextmanager
def exclusive_run(storage: LakeStorage) -> Iterator[None]:
    """Hold the orchestrator lock for the whole process; a second start is refused, not queued."""
    with ExitStack() as held:
        try:
            note = held.enter_context(storage.exclusive(LOCK_FILE, wait=False))
        except BlockingIOError as busy:
            raise LakehouseError(f"another orchestrator run is in progress ({str(busy) or 'unknown'}); "
                                 "refusing to overlap") from None
        note.truncate(0)
        note.write(f"pid {os.getpid()} since {utc_now_iso()}")
        note.flush()
        yield


def run_tick(storage: LakeStorage, tasks: list[str], runner: TaskRunner,
             echo: Callable[[str], None] = print, on_run: RunObserver | None = None) -> list[RunRecord]:
    """Run each task once; record every outcome (and tell `on_run`); never raise for a task's failure."""
    records = []
    for task in tasks:
        started = utc_now_iso()
        clock = time.monotonic()
        try:
            rows, status, error = runner(task), "ok", None
        except Exception as exc:  # noqa: BLE001 - a failed task is recorded and retried next tick
            rows, status, error = 0, "failed", _one_line(exc)
            echo(traceback.format_exc().rstrip())
        record = RunRecord(uuid.uuid4().hex[:12], task, started, utc_now_iso(), status, rows, error)
        storage.append_line(HISTORY_LOG, orjson.dumps(asdict(record)).decode())
        seconds = time.monotonic() - clock
        if on_run:
            on_run(task, status, seconds)
        outcome = f"[{task}] {status} in {seconds:.1f}s, rows={rows}"
        echo(outcome + (f", error: {error}" if error else ""))
        records.append(record)
    return records


def run_every(minutes: float, tick: Callable[[], object], ticks: int | None = None) -> int:
    """Run `tick` now and then every `minutes` until SIGINT/SIGTERM (or `ticks` ticks); returns ticks run."""
    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True)) for sig in (signal.SIGINT, signal.SIGTERM)}
    done = 0
    scheduler = schedule.Scheduler()

    def counted() -> None:
        nonlocal done
        tick()
        done += 1

    try:
        counted()
        scheduler.every(minutes).minutes.do(counted)
        while not stopping and (ticks is None or done < ticks):
            scheduler.run_pending()
            time.sleep(min(1.0, max(0.05, scheduler.idle_seconds or 0.05)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return done


def history(storage: LakeStorage, limit: int = 20) -> list[RunRecord]:
    if not storage.exists(HISTORY_LOG):
        return []
    lines = storage.read_bytes(HISTORY_LOG).decode().splitlines()
    return [RunRecord(**orjson.loads(line)) for line in lines[-limit:] if line.strip()]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
