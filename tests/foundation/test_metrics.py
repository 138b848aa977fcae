"""lakehouse.metrics: each run's own registry, served over HTTP; --metrics-port checked before anything runs."""

from __future__ import annotations

import socket

import pytest
from support import free_port, run_script, scrape

from lakehouse.errors import LakehouseError
from lakehouse.metrics import ConsumerMetrics, OrchestratorMetrics
from lakehouse.settings import Settings


def test_a_run_serves_only_its_own_metrics_in_the_prometheus_text_format() -> None:
    first, second = ConsumerMetrics(), ConsumerMetrics(uses_mysql=True)
    port = free_port()
    first.serve(port, Settings())
    first.track(["transaction_stream", "transaction_flattened"])
    first.count("transaction_stream", consumed=5, landed=4, quarantined=1)
    first.lag.labels("t_transaction_stream", "3").set(7)
    first.committed(flush_seconds=0.2, commit_seconds=0.05)
    second.count("transaction_stream", consumed=1000)  # another run in the same process: not added

    samples = scrape(port)
    assert samples['lakehouse_records_consumed_total{feed="transaction_stream"}'] == 5
    assert samples['lakehouse_records_landed_total{feed="transaction_stream"}'] == 4
    assert samples['lakehouse_records_quarantined_total{feed="transaction_stream"}'] == 1
    assert samples['lakehouse_records_landed_total{feed="transaction_flattened"}'] == 0  # there from the start
    assert samples['lakehouse_consumer_lag_records{partition="3",topic="t_transaction_stream"}'] == 7
    assert samples["lakehouse_flush_duration_seconds_count"] == 1
    assert samples['lakehouse_flush_duration_seconds_bucket{le="0.25"}'] == 1
    assert samples["lakehouse_commit_duration_seconds_sum"] == 0.05
    assert samples["lakehouse_last_commit_timestamp_seconds"] > 1.7e9
    assert "lakehouse_mysql_retrying" not in samples  # the lake consumer never talks to MySQL
    assert not [name for name in samples if name.endswith("_created") or name.startswith("python_")]


def test_the_orchestrator_counts_task_runs_by_outcome_and_times_them() -> None:
    metrics, port = OrchestratorMetrics(), free_port()
    metrics.serve(port, Settings())
    metrics.task_ran("retention", "ok", 1.5)
    metrics.task_ran("sync_warehouse", "failed", 12.0)
    metrics.task_ran("retention", "ok", 0.5)
    samples = scrape(port)
    assert samples['lakehouse_task_runs_total{status="ok",task="retention"}'] == 2
    assert samples['lakehouse_task_runs_total{status="failed",task="sync_warehouse"}'] == 1
    assert samples['lakehouse_task_duration_seconds_sum{task="retention"}'] == 2.0
    assert samples['lakehouse_task_duration_seconds_bucket{le="1.0",task="retention"}'] == 1


def test_a_taken_port_is_one_clear_error_and_port_0_serves_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LakehouseError, match=rf"^cannot serve metrics on 127.0.0.1:{port}: Address already in "
                                                 r"use \(check --metrics-port and LAKEHOUSE_METRICS_ADDR\)$"):
            ConsumerMetrics().serve(port, Settings())
    ConsumerMetrics().serve(0, Settings(metrics_addr="256.0.0.1"))  # off: the address is not even looked at


@pytest.mark.parametrize("script, args, error", [
    ("kafka_consumer_datalake.py", ["--metrics-port", "70000"], "argument --metrics-port: must be at most 65535"),
    ("beam_orchestrator.py", ["--task", "retention", "--once", "--metrics-port", "9400"],
     "--metrics-port needs --every-minutes"),
])
def test_a_bad_metrics_port_is_refused_before_anything_runs(script: str, args: list[str], error: str) -> None:
    result = run_script(script, *args, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and error in result.stderr.splitlines()[-1], result.stderr
