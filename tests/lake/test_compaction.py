"""data_lake_config.py compact: closed days become a few large files, every row exactly once at every moment (issue 17).

Events are pinned to September 2026 and compaction is told which days are closed (`--before`), so these tests pass
whatever day the clock shows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
from support import REPO, expected_day_facts, lake_day_facts, land_small_files, produce_days, run_script

from lakehouse import layout
from lakehouse.catalog import FeedCatalog
from lakehouse.governance import retention
from lakehouse.lake import compaction
from lakehouse.storage import LakeStorage

FEED = "transaction_stream"
FIRST_DAY = date(2026, 9, 7)


def compact(env: dict[str, str], *args: str) -> str:
    return run_script("data_lake_config.py", "compact", "--feeds", FEED, *args, env=env, check=True).stdout


def day_files(lake_root: Path, day: date) -> list[Path]:
    return sorted((lake_root / layout.stream_partition_dir(FEED, day)).glob("*.parquet"))


def reconciled(env: dict[str, str]) -> bool:
    return run_script("kafka_consumer_datalake.py", "--reconcile", "--feeds", FEED, env=env).returncode == 0


def test_closed_days_become_one_sorted_file_each_and_keep_every_row(env, settings_for, lake_root) -> None:
    produced = produce_days(settings_for, FEED, 3, 300, seed=1)
    land_small_files(settings_for, FEED)
    before = {day: day_files(lake_root, day) for day in (FIRST_DAY + timedelta(days=n) for n in range(3))}
    assert all(len(files) >= 6 for files in before.values())

    dry = compact(env, "--before", "2026-09-09", "--dry-run")
    for day in list(before)[:2]:
        size = sum(path.stat().st_size for path in before[day])
        assert (f"stream {FEED}: would merge {layout.date_partition(day)}: {len(before[day])} files "
                f"({size:,} bytes) -> 1 file") in dry
    assert layout.date_partition(FIRST_DAY + timedelta(days=2)) not in dry  # not closed before 2026-09-09
    assert {day: day_files(lake_root, day) for day in before} == before

    out = compact(env, "--before", "2026-09-09")
    assert f"merged {len(before[FIRST_DAY]) + len(before[FIRST_DAY + timedelta(days=1)])} files" in out
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    for day in list(before)[:2]:
        (merged,) = day_files(lake_root, day)
        table = pq.read_table(merged)
        assert pc.all(pc.greater_equal(table["event_time"][1:], table["event_time"][:-1])).as_py()
        assert {"_topic", "_partition", "_offset"} <= set(table.column_names)
    assert day_files(lake_root, FIRST_DAY + timedelta(days=2)) == before[FIRST_DAY + timedelta(days=2)]
    assert reconciled(env)
    assert "nothing to compact" in compact(env, "--before", "2026-09-09")
    assert not [p for p in (lake_root / compaction.COMPACTION_STAGING).rglob("*") if p.is_file()]


def test_late_events_land_in_a_compacted_day_and_are_folded_in_next_time(env, settings_for, lake_root) -> None:
    produced = produce_days(settings_for, FEED, 2, 200, seed=2)
    land_small_files(settings_for, FEED)
    compact(env, "--before", "2026-09-30")
    assert [len(day_files(lake_root, FIRST_DAY + timedelta(days=n))) for n in range(2)] == [1, 1]

    produced += produce_days(settings_for, FEED, 1, 80, seed=3)  # late: events of the first, compacted, day
    land_small_files(settings_for, FEED, flush_size=20)
    assert len(day_files(lake_root, FIRST_DAY)) > 2
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    assert reconciled(env)

    compact(env, "--before", "2026-09-30")
    assert [len(day_files(lake_root, FIRST_DAY + timedelta(days=n))) for n in range(2)] == [1, 1]
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    assert reconciled(env)
    summary = run_script("data_lake_config.py", "status", env=env)
    assert summary.returncode == 0 and "MISMATCH" not in summary.stdout, summary.stdout


def test_sigkill_at_every_step_then_a_rerun_keeps_each_day_exactly_once(env, settings_for, lake_root) -> None:
    produced = produce_days(settings_for, FEED, 3, 150, seed=4)
    land_small_files(settings_for, FEED)
    expected = expected_day_facts(produced)
    # SIGKILL right after the 1st, then the 2nd, ... step the compaction logs, until a run gets to its end
    kills = 0
    while True:
        process = subprocess.Popen([sys.executable, str(REPO / "data_lake_config.py"), "compact", "--feeds", FEED,
                                    "--before", "2026-09-30"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        steps, lines = 0, []
        for line in process.stderr:
            lines.append(line)
            steps += " INFO " in line
            if steps > kills:
                process.kill()
                break
        if process.wait() == 0:
            break
        assert process.returncode == -signal.SIGKILL, "".join(lines)
        kills += 1
        assert lake_day_facts(lake_root, FEED) == expected, f"after a kill at step {kills}"
    assert kills >= 3, f"only {kills} kills: the compaction ran past the kill points"
    assert lake_day_facts(lake_root, FEED) == expected
    assert [len(day_files(lake_root, FIRST_DAY + timedelta(days=n))) for n in range(3)] == [1, 1, 1]
    assert not [p for p in (lake_root / compaction.COMPACTION_STAGING).rglob("*") if p.is_file()]
    assert reconciled(env)


def test_a_glob_reader_never_sees_a_row_twice_or_misses_one_while_days_are_swapped(env, settings_for,
                                                                                    lake_root) -> None:
    produced = produce_days(settings_for, FEED, 6, 100, seed=5)
    land_small_files(settings_for, FEED, flush_size=10)
    expected = expected_day_facts(produced)
    answers, failures, stop = [], [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                answers.append(lake_day_facts(lake_root, FEED))
            except duckdb.IOException as exc:  # listed before a swap, opened after it: loud, never wrong
                failures.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        compact(env, "--before", "2026-09-30")
    finally:
        stop.set()
        reader.join()
    assert answers and all(answer == expected for answer in answers), \
        f"{sum(answer != expected for answer in answers)} of {len(answers)} reads were wrong"
    assert all(len(day_files(lake_root, day)) == 1 for day, *_ in expected)


def stopped_compaction(env: dict[str, str]) -> subprocess.Popen:
    """A compaction run stopped (SIGSTOP) right after it staged its first day: it holds that day's lock."""
    process = subprocess.Popen([sys.executable, str(REPO / "data_lake_config.py"), "compact", "--feeds", FEED,
                                "--before", "2026-09-30"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if " staged " in line:
            process.send_signal(signal.SIGSTOP)
            return process
    raise AssertionError(f"the compaction never staged a day (exit {process.wait()})")


def test_retention_waits_for_a_compaction_of_the_same_day_and_counts_every_row(env, settings_for,
                                                                               lake_root) -> None:
    produced = produce_days(settings_for, FEED, 1, 200, seed=6)
    land_small_files(settings_for, FEED)
    day_dir = lake_root / layout.stream_partition_dir(FEED, FIRST_DAY)
    process = stopped_compaction(env)  # between staging and publishing, holding the day's lock ...
    storage = LakeStorage(lake_root)
    policies = retention.resolve_policies(FeedCatalog(storage), stream=FEED, retention_days=10)
    done: list[retention.Plan] = []
    deleting = threading.Thread(target=lambda: done.append(
        retention.apply(storage, retention.plan(storage, policies, today=date(2026, 10, 1)))))
    deleting.start()
    deleting.join(timeout=3)
    # ... so retention waits for it, while the day stays whole ...
    assert deleting.is_alive() and day_dir.is_dir()
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=60) == 0
    deleting.join(timeout=60)
    # ... then deletes the compacted day and counts every one of its rows
    (deleted,) = done[0].candidates
    assert deleted.rows == len(produced) and deleted.files == 1
    assert not day_dir.exists() and not list((lake_root / "streams" / FEED).rglob("*.parquet"))
    assert reconciled(env)


def test_a_backfill_of_the_day_waits_for_its_compaction_and_the_day_stays_exact(env, settings_for,
                                                                               lake_root) -> None:
    produced = produce_days(settings_for, FEED, 1, 200, seed=7)
    land_small_files(settings_for, FEED)
    compacting = stopped_compaction(env)
    backfill = subprocess.Popen([sys.executable, str(REPO / "export_to_data_lake.py"), "--stream", FEED, "--date",
                                 FIRST_DAY.isoformat()], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        backfill.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    assert backfill.poll() is None, "the backfill did not wait for the day's lock"
    compacting.send_signal(signal.SIGCONT)
    assert compacting.wait(timeout=60) == 0
    out, err = backfill.communicate(timeout=120)
    assert backfill.returncode == 0, err
    assert f"replaced {layout.date_partition(FIRST_DAY)}: 200 rows -> 200 rows" in out
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    assert reconciled(env)


def test_lateness_window_closes_days_per_feed(env, lake_root) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    run_script("manage_feeds.py", "update", FEED, "--lateness-days", "3", env=env, check=True)
    feed = FeedCatalog(LakeStorage(lake_root)).get(FEED)
    assert feed.lateness_days == 3
    assert compaction.closed_before(feed, date(2026, 12, 1)) == date(2026, 11, 28)
    feed.lateness_days = 1
    assert compaction.closed_before(feed, date(2026, 12, 1)) == date(2026, 11, 30)
    refused = run_script("manage_feeds.py", "update", "product_purchase_counts", "--lateness-days", "2", env=env)
    assert refused.returncode == 2 and "not compacted" in refused.stderr
    table = run_script("data_lake_config.py", "compact", "--feeds", "product_purchase_counts", env=env)
    assert table.returncode == 2 and "is a table feed, not a stream feed" in table.stderr


def test_without_an_atomic_folder_exchange_the_files_are_put_then_the_inputs_deleted(settings_for, lake_root,
                                                                                    monkeypatch) -> None:
    """The object-store path (no step swaps two folders there), taken on local disk: same rows, same files."""
    produced = produce_days(settings_for, FEED, 2, 150, seed=8)
    land_small_files(settings_for, FEED)
    monkeypatch.setattr(compaction, "exchange_dirs", lambda *_: False)
    storage = LakeStorage(lake_root)
    feeds = FeedCatalog(storage).select(names=[FEED])
    done = list(compaction.compact(storage, compaction.plan(storage, feeds, date(2026, 9, 30))))
    assert [day.day for day in done] == [FIRST_DAY, FIRST_DAY + timedelta(days=1)]
    assert [len(day_files(lake_root, FIRST_DAY + timedelta(days=n))) for n in range(2)] == [1, 1]
    assert lake_day_facts(lake_root, FEED) == expected_day_facts(produced)
    assert not [p for p in (lake_root / compaction.COMPACTION_STAGING).rglob("*") if p.is_file()]
