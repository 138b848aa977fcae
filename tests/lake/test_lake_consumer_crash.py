"""The lake consumer killed at any moment: a restart lands every record exactly once."""

from __future__ import annotations

import random
import re
import time

import pytest
from support import run_script, unique, wait_for
from test_lake_consumer import (
    FEED,
    SCRIPT,
    feed_glob,
    init_lake,
    landed_offsets,
    produce_events,
    query,
    start_consumer,
)

from lakehouse.catalog import FeedCatalog
from lakehouse.lake import commit
from lakehouse.lake.consumer import LandingOptions, land


def assert_landed_exactly_once(env, lake_root, produced: list[dict]) -> None:
    ids = [row[0] for row in query(f"select transaction_id from read_parquet('{feed_glob(lake_root)}')")]
    assert len(ids) == len(produced)
    assert set(ids) == {e["transaction_id"] for e in produced}
    assert not list((lake_root / commit.STAGING / "manifests").glob("*.json"))
    reconciled = run_script(SCRIPT, "--reconcile", "--feeds", FEED, env=env)
    assert reconciled.returncode == 0, reconciled.stdout
    assert re.search(rf"{FEED}\s+{len(produced)}\s+{len(produced)}\s+0\s+yes", reconciled.stdout)


def test_sigkill_at_random_moments_then_restart_lands_every_record_once(env, settings_for, lake_root,
                                                                         tmp_path) -> None:
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
        time.sleep(rng.uniform(0, 0.1))  # somewhere in the next checkpoints: staging, renames, offsets...
        assert process.poll() is None, f"run {kill} finished before it was killed (seed {seed})"
        process.kill()
        process.wait()
        landed_before = landed_offsets(storage, settings_for)
    assert 0 < landed_before < 100_000, f"seed {seed}"

    run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, check=True)
    assert_landed_exactly_once(env, lake_root, produced)


def test_commit_interrupted_after_its_manifests_is_completed_on_restart(env, settings_for, lake_root,
                                                                        monkeypatch) -> None:
    storage = init_lake(settings_for)
    produced = produce_events(settings_for, 5000)

    def crash(_storage, _commit) -> None:
        raise SystemExit("killed between the manifests and the renames")

    monkeypatch.setattr(commit, "complete", crash)
    feed = FeedCatalog(storage).get(FEED)
    with pytest.raises(SystemExit):
        land(settings_for, [feed], LandingOptions(group_id=unique("g"), until_end=True))
    monkeypatch.undo()
    assert len(list((lake_root / commit.STAGING / "manifests").glob("*.json"))) == 6
    assert not list((lake_root / "streams" / FEED).rglob("*.parquet"))  # staged only: readers see nothing

    result = run_script(SCRIPT, "--feeds", FEED, "--until-end", "--group-id", unique("g"), env=env, check=True)
    assert re.search(rf"^{FEED}\s+0\s", result.stdout, re.MULTILINE)  # nothing re-read: the commit completed
    assert_landed_exactly_once(env, lake_root, produced)
