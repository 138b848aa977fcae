"""The lake consumer killed at any moment, on a local lake and on the S3 lake: every record lands exactly once,
also with two consumers on two machines (two working directories, no shared lock files) in one group."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import BOTH_BACKENDS, REPO, landed_column, run_script, unique, wait_for
from test_lake_consumer import FEED, SCRIPT, init_lake, landed_offsets, produce_events, start_consumer, stop

from lakehouse.catalog import FeedCatalog
from lakehouse.lake import commit
from lakehouse.lake.consumer import LandingOptions, land
from lakehouse.lake.metadata import FeedMetadata
from lakehouse.storage import LakeStorage


def assert_landed_exactly_once(env, storage: LakeStorage, produced: list[dict]) -> None:
    ids = landed_column(storage, FEED)
    assert len(ids) == len(produced)
    assert set(ids) == {e["transaction_id"] for e in produced}
    assert not [f for f in storage.walk_files(commit.STAGING) if f.path.endswith(".parquet")]
    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{FEED}\s+{len(produced)}\s+{len(produced)}\s+0\s+yes", reconciled.stdout)


@BOTH_BACKENDS
def test_sigkill_at_random_moments_then_restart_lands_every_record_once(env, settings_for, tmp_path) -> None:
    storage = init_lake(settings_for)
    produced = produce_events(settings_for, 100_000)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    landed_before = 0
    for kill in range(5):
        # a fresh group each time: the lake offsets, not Kafka's, say where to resume (and a killed
        # member would hold its partitions in the old group until its session times out)
        process = start_consumer(env, "--feeds", FEED, "--until-end", "--flush-size", "300",
                                 "--group-id", unique("g"), log=tmp_path / f"run{kill}.log")
        wait_for(lambda before=landed_before, running=process: landed_offsets(storage, settings_for) > before
                 or running.poll() is not None, 60, "the consumer landing", step=0.005)
        time.sleep(rng.uniform(0, 0.1))  # somewhere in the next checkpoints: staging, decision, publishing...
        assert process.poll() is None, f"run {kill} finished before it was killed (seed {seed})"
        process.kill()
        process.wait()
        landed_before = landed_offsets(storage, settings_for)
    assert 0 < landed_before < 100_000, f"seed {seed}"

    run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, check=True)
    assert_landed_exactly_once(env, storage, produced)


@BOTH_BACKENDS
def test_commit_interrupted_after_its_decision_is_completed_on_restart(env, settings_for, monkeypatch) -> None:
    storage = init_lake(settings_for)
    produced = produce_events(settings_for, 5000)

    def crash(_storage, renames) -> int:
        if renames:
            raise SystemExit("killed between the decision and the publishing")
        return 0

    monkeypatch.setattr(commit, "publish", crash)
    feed = FeedCatalog(storage).get(FEED)
    with pytest.raises(SystemExit):
        land(settings_for, [feed], LandingOptions(group_id=unique("g"), until_end=True))
    monkeypatch.undo()
    decided = [state for state in FeedMetadata(storage, FEED).partition_states() if state.get("pending")]
    assert len(decided) == 6 and sum(state["next_offset"] for state in decided) == 5000
    assert landed_column(storage, FEED) == []  # staged only: readers see nothing

    result = run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, check=True)
    assert re.search(rf"^{FEED}\s+0\s", result.stdout, re.MULTILINE)  # nothing re-read: the commit completed
    assert_landed_exactly_once(env, storage, produced)


def start_on_machine(env: dict[str, str], machine: Path, *args: str) -> subprocess.Popen:
    """The consumer as another machine would run it: its own working directory and its own temp folder, where
    LakeStorage keeps the machine-local locks of an object-store lake; nothing local is shared."""
    machine.mkdir()
    return subprocess.Popen([sys.executable, str(REPO / SCRIPT), *args], cwd=machine,
                            env={**env, "TMPDIR": str(machine)}, stdout=subprocess.PIPE,
                            stderr=(machine / "consumer.log").open("w"), text=True)


@pytest.mark.parametrize("lake_root", ["s3"], indirect=True)
def test_two_machines_in_one_group_with_a_rebalance_and_a_sigkill_land_exactly_once(env, settings_for,
                                                                                      tmp_path) -> None:
    storage = init_lake(settings_for)
    args = ("--feeds", FEED, "--group-id", unique("g"), "--flush-size", "500", "--flush-interval", "1")
    produced = produce_events(settings_for, 20_000, seed=1)
    first = start_on_machine(env, tmp_path / "machine-a", *args)
    second = None
    try:
        wait_for(lambda: landed_offsets(storage, settings_for) > 0, 60, "machine a landing")
        second = start_on_machine(env, tmp_path / "machine-b", *args)  # the rebalance: partitions move to b
        wait_for(lambda: "INFO assigned" in (tmp_path / "machine-b" / "consumer.log").read_text(), 60,
                 "the rebalance")
        produced += produce_events(settings_for, 20_000, seed=2)
        landed = landed_offsets(storage, settings_for)
        wait_for(lambda: landed_offsets(storage, settings_for) > landed, 60, "both landing after the rebalance")
        first.kill()  # SIGKILL mid-run, maybe between a commit's decision and its publishing
        first.wait()
        # b takes a's partitions once a's session times out; its claims publish what a had decided
        wait_for(lambda: len(re.findall(r"INFO assigned (?!nothing)", (tmp_path / "machine-b" / "consumer.log")
                                        .read_text())) >= 2, 60, "machine b taking machine a's partitions")
        wait_for(lambda: landed_offsets(storage, settings_for) == 40_000, 180, "40,000 records landed", step=0.5)
    finally:
        if first.poll() is None:
            first.kill()
        if second is not None:
            stop(second)
    assert "revoked" in (tmp_path / "machine-a" / "consumer.log").read_text()  # a gave partitions to b
    assert_landed_exactly_once(env, storage, produced)
