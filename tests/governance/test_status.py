"""`python data_lake_config.py status` and `make demo`: the summary, its reconciliation, n/a."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import mysql.connector
import orjson
from status_samples import validate
from support import REPO, run_script

from lakehouse.catalog import FeedCatalog
from lakehouse.governance import retention
from lakehouse.lake import commit
from lakehouse.settings import Settings
from lakehouse.storage import LakeStorage

RECONCILIATION_LINES = 12  # 4 stream feeds + 4 tables x (warehouse vs lake, lake vs raw events)


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lakehouse.orchestration.demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def flat(output: str) -> str:
    """The output with runs of spaces and line breaks as one space: a reconciliation detail wrapped onto
    continuation lines reads as one line again."""
    return " ".join(output.split())


def verdicts(output: str) -> list[str]:
    section = output.split("\nReconciliation\n", 1)[1]
    return re.findall(r"^(OK|MISMATCH|n/a)\s", section, flags=re.MULTILINE)


def test_demo_runs_end_to_end_reconciles_and_reruns_additively(env: dict[str, str], settings_for: Settings) -> None:
    first = run_demo(env, "--messages", "800", "--days", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    for command in ("data_lake_config.py init", "kafka_producer.py --derive", "kafka_consumer_datalake.py --until-end",
                    "kafka_consumer_warehouse.py --until-end", "export_to_data_lake.py --all --source kafka",
                    "sync_to_mysql.py", "data_retention.py --all --dry-run", "permissions_manager.py check"):
        assert f"$ python {command}" in first.stdout
    assert verdicts(first.stdout) == ["OK"] * RECONCILIATION_LINES
    assert "records in topic 800 = rows 800 + quarantined 0 + not landed 0" in first.stdout

    second = run_demo(env, "--messages", "800", "--days", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "--seed 2" in second.stdout  # a new seed: new transaction ids, not the same events again
    assert "records in topic 1,600 = rows 1,600 + quarantined 0 + not landed 0" in second.stdout
    assert verdicts(second.stdout) == ["OK"] * RECONCILIATION_LINES

    # the warehouse drifting from the lake is reported, with a non-zero exit
    with mysql.connector.connect(**settings_for.mysql_params()) as conn:
        conn.cursor().execute("UPDATE fact_product_purchase_counts SET purchase_count = purchase_count + 1 LIMIT 1")
        conn.commit()
    # events produced but not landed yet count as lag, and the lake line still balances
    run_script("kafka_producer.py", "--messages", "50", "--seed", "99", env=env, check=True)
    status = run_script("data_lake_config.py", "status", env=env)
    assert status.returncode == 1
    assert re.search(r"^MISMATCH\s+warehouse fact_product_purchase_counts .*purchase_count [\d,]+ != ",
                     status.stdout, flags=re.MULTILINE)
    assert "records in topic 1,650 = rows 1,600 + quarantined 0 + not landed 50" in status.stdout
    assert re.search(r"^transaction_stream\s+stream\s+\d+ days\s+1600\s+\d+\s+[\d.]+ KB\s.*\s1650\s+50\s+-$",
                     status.stdout, flags=re.MULTILINE)
    assert re.search(r"^dim_users\s+\d+$", status.stdout, flags=re.MULTILINE)
    # the table versions reflect their changelogs up to the end: no lake lag, no warehouse lag
    assert re.search(r"^payment_method_totals\s+table\s.*\s0\s+0$", status.stdout, flags=re.MULTILINE)

    # the same collection for machines and as a page: same figures, same verdict and exit code
    report = Path(env["DATA_LAKE_ROOT"]).parent / "status.html"
    as_json = run_script("data_lake_config.py", "status", "--json", "--html", str(report), env=env)
    assert as_json.returncode == 1, as_json.stderr
    assert as_json.stderr.strip() == f"status report written to {report}"
    document = orjson.loads(as_json.stdout)
    validate(document)
    feeds = {feed["name"]: feed for feed in document["feeds"]}
    raw = feeds["transaction_stream"]
    assert (raw["rows"], raw["topic_records"], raw["lag"]) == (1600, 1650, {"lake": 50, "warehouse": None})
    assert len(raw["days"]) >= 2 and sum(day["rows"] for day in raw["days"]) == 1600
    assert sum(day["files"] for day in raw["days"]) == raw["files"]
    totals = feeds["payment_method_totals"]
    assert [v["version"] for v in totals["versions"]] == list(range(1, totals["current_version"] + 1))
    assert totals["lag"] == {"lake": 0, "warehouse": 0}
    assert {table["name"] for table in document["warehouse"]["tables"]} >= {"dim_users", "kafka_offsets"}
    assert document["ok"] is False
    assert [c["check"] for c in document["reconciliation"] if c["ok"] is False] == [
        "warehouse fact_product_purchase_counts"]
    assert report.read_text().count("<svg") == 4


def test_status_before_anything_ran_says_na_instead_of_failing(env: dict[str, str]) -> None:
    empty = run_script("data_lake_config.py", "status", env=env)
    assert empty.returncode == 0
    assert "the feed catalog is empty; run: python data_lake_config.py init" in empty.stdout

    run_script("data_lake_config.py", "init", env=env, check=True)
    fresh = run_script("data_lake_config.py", "status", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert verdicts(fresh.stdout) == ["n/a"] * RECONCILIATION_LINES
    assert "topic not found" in fresh.stdout
    assert "no lake version yet" in fresh.stdout

    no_mysql = run_script("data_lake_config.py", "status", env={**env, "MYSQL_PORT": "1"})
    assert no_mysql.returncode == 0, no_mysql.stderr
    assert "note: warehouse: MySQL is not reachable at" in no_mysql.stdout
    assert "Traceback" not in no_mysql.stderr
    no_mysql_json = run_script("data_lake_config.py", "status", "--json", env={**env, "MYSQL_PORT": "1"})
    assert no_mysql_json.returncode == 0, no_mysql_json.stderr
    document = orjson.loads(no_mysql_json.stdout)
    validate(document)
    assert document["warehouse"]["tables"] is None
    assert {c["result"] for c in document["reconciliation"]} == {"n/a"}
    assert document["notes"][0].startswith("warehouse: MySQL is not reachable at")


def test_status_stays_ok_after_retention_and_still_catches_a_lost_file(
        env: dict[str, str], settings_for: Settings) -> None:
    run_script("data_lake_config.py", "init", env=env, check=True)
    run_script("kafka_producer.py", "--messages", "4000", "--days", "60", "--start", "2026-07-01", "--derive",
               "--rate", "0", env=env, check=True)
    run_script("kafka_consumer_datalake.py", "--until-end", env=env, check=True)
    run_script("kafka_consumer_warehouse.py", "--until-end", env=env, check=True)
    storage = LakeStorage(settings_for.data_lake_root)
    policies = retention.resolve_policies(FeedCatalog(storage), stream="transaction_stream", retention_days=30)
    done = retention.apply(storage, retention.plan(storage, policies, today=date(2026, 8, 29)))
    deleted = sum(candidate.rows for candidate in done.candidates)
    assert 1500 < deleted < 2500

    status = run_script("data_lake_config.py", "status", env=env)
    assert status.returncode == 0, status.stdout
    assert verdicts(status.stdout) == ["OK"] * RECONCILIATION_LINES
    assert (f"records in topic 4,000 = rows {4000 - deleted:,} + quarantined 0 + not landed 0 "
            f"+ deleted by retention {deleted:,}") in flat(status.stdout)

    kept = commit.stream_files(storage, "transaction_stream")
    lost = storage.parquet_row_count(kept[0])
    Path(storage.full(kept[0])).unlink()  # a real loss: a file gone by hand, not by retention
    broken = run_script("data_lake_config.py", "status", env=env)
    assert broken.returncode == 1
    assert (f"records in topic 4,000 != rows {4000 - deleted - lost:,} + quarantined 0 + not landed 0 "
            f"+ deleted by retention {deleted:,}") in flat(broken.stdout)
    assert re.search(r"^MISMATCH\s+lake user_transaction_summary ", broken.stdout, flags=re.MULTILINE)
