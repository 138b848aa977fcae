"""Watching the warehouse consumer run: /metrics, its rate and lag line, its group's lag in Kafka's own tool."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import mysql.connector
import orjson
from support import REPO, free_port, init_lake, producing, run_script, scrape, unique, wait_for

from lakehouse.catalog import FeedCatalog
from lakehouse.kafka import clients
from lakehouse.settings import Settings
from lakehouse.warehouse.consumer import ConsumerOptions, WarehouseConsumer

FEED = "payment_method_totals"
METHODS = [f"method_{index:02d}" for index in range(12)]
# kafka-consumer-groups.sh runs this class of the kafka-tools jar, which make up puts beside the broker's jars.
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def produce_totals(settings: Settings, steps: range, bad: bool = False) -> int:
    """A change of each of the 12 methods' totals per step (its count: the step), two methods per partition; `bad`:
    also one record that is no JSON and one whose count is no number. Returns the records written."""
    topic = settings.topic(FEED)
    clients.ensure_topics(settings, {topic: True})
    records = [(index % 6, orjson.dumps(method), orjson.dumps(
        {"TOTAL_AMOUNT_EUR": 2.5 * step, "TRANSACTION_COUNT": step, "AVG_AMOUNT_EUR": 2.5}))
        for step in steps for index, method in enumerate(METHODS)]
    if bad:
        records += [(0, b'"broken"', b"not json"),
                    (1, b'"broken"', orjson.dumps({"TOTAL_AMOUNT_EUR": 1, "TRANSACTION_COUNT": "many"}))]
    with producing(settings) as producer:
        for partition, key, value in records:
            producer.produce(topic, key=key, value=value, partition=partition)
    return len(records)


def query(settings: Settings, sql: str) -> list[tuple]:
    with mysql.connector.connect(**settings.mysql_params()) as conn:
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        conn.commit()
        return rows


def describe_group(settings: Settings, group: str) -> dict[int, tuple[str, str, str]]:
    """kafka-consumer-groups.sh --describe --group, run from the stack's jars: partition -> (CURRENT-OFFSET,
    LOG-END-OFFSET, LAG) as the tool prints them."""
    libs = Path(os.environ.get("STACK_DIR", REPO / ".stack")) / "kafka" / "libs"
    assert list(libs.glob("kafka-tools-*.jar")), f"Kafka's command-line tools are not in {libs}: run make up"
    result = subprocess.run(["java", "-cp", f"{libs}/*", GROUP_COMMAND, "--bootstrap-server",
                             settings.kafka_bootstrap_servers, "--describe", "--group", group],
                            capture_output=True, text=True, timeout=120, check=True)
    lines = result.stdout.splitlines()
    header = next(line.split() for line in lines if line.startswith("GROUP "))
    rows = [dict(zip(header, line.split(), strict=True)) for line in lines if line.startswith(f"{group} ")]
    return {int(row["PARTITION"]): (row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"]) for row in rows}


def test_metrics_and_kafka_lag_tools_see_what_the_running_consumer_applied(env: dict[str, str],
                                                                           settings_for: Settings,
                                                                           tmp_path: Path) -> None:
    init_lake(settings_for)
    produced = produce_totals(settings_for, range(1, 51), bad=True)  # 600 changes and 2 bad records
    group, port = unique("warehouse"), free_port()
    log = tmp_path / "consumer.log"
    process = subprocess.Popen([sys.executable, str(REPO / "kafka_consumer_warehouse.py"), "--feeds", FEED,
                                "--group-id", group, "--metrics-port", str(port)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    feed = f'{{feed="{FEED}"}}'
    try:
        wait_for(lambda: scrape(port).get(f"lakehouse_records_landed_total{feed}") == 600, 60, "600 changes applied")
        wait_for(lambda: sum(value for name, value in scrape(port).items()
                             if name.startswith("lakehouse_consumer_lag_records")) == 0, 10, "no lag left")
        samples = scrape(port)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert f"consumed {produced} records" in stdout
    assert samples[f"lakehouse_records_consumed_total{feed}"] == produced == 602
    assert samples[f"lakehouse_records_quarantined_total{feed}"] == 2
    assert len([name for name in samples if name.startswith("lakehouse_consumer_lag_records")]) == 6
    assert samples["lakehouse_mysql_retrying"] == 0
    assert samples["lakehouse_commit_duration_seconds_count"] >= 1
    assert query(settings_for, "SELECT SUM(transaction_count) FROM fact_payment_method_totals") == [(12 * 50,)]

    # Kafka's own tool shows the group: what MySQL holds as committed, and the backlog produced since.
    produce_totals(settings_for, range(51, 52))  # one more change per method: 2 per partition
    stored = dict(query(settings_for, f"SELECT `partition`, next_offset FROM kafka_offsets "
                                      f"WHERE consumer_group = '{group}'"))
    described = describe_group(settings_for, group)
    assert sum(int(current) for current, _end, _lag in described.values()) == produced
    assert {partition: int(current) for partition, (current, _end, _lag) in described.items()} == stored
    assert {partition: lag for partition, (_current, _end, lag) in described.items()} == dict.fromkeys(range(6), "2")

    # MySQL stays the source of truth: with its offsets gone, the group reads everything again, whatever Kafka holds.
    query(settings_for, f"DELETE FROM kafka_offsets WHERE consumer_group = '{group}'")
    query(settings_for, "DELETE FROM fact_payment_method_totals")
    again = run_script("kafka_consumer_warehouse.py", "--feeds", FEED, "--group-id", group, "--until-end",
                       env=env, check=True)
    assert f"consumed {produced + 12} records" in again.stdout
    assert query(settings_for, "SELECT SUM(transaction_count) FROM fact_payment_method_totals") == [(12 * 51,)]


def test_a_continuous_run_logs_its_rate_and_lag(settings_for: Settings, caplog) -> None:  # noqa: ANN001 (pytest)
    storage = init_lake(settings_for)
    produce_totals(settings_for, range(1, 6))
    consumer = WarehouseConsumer(settings_for, [FeedCatalog(storage).get(FEED)],
                                 ConsumerOptions(group_id=unique("warehouse"), status_every=0.2))
    caplog.set_level(logging.INFO)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(re.fullmatch(r"\d+ records/s, lag 0 records, 6 partitions", record.getMessage())
                             for record in caplog.records) and consumer.summary.consumed == 60,
                 60, "a rate and lag line once all 60 records are read")
    finally:
        consumer.request_stop()
        thread.join(30)
    assert not thread.is_alive() and consumer.summary.batches >= 1


def test_the_metrics_say_while_mysql_is_being_retried(env: dict[str, str], settings_for: Settings) -> None:
    init_lake(settings_for)
    port = free_port()
    process = subprocess.Popen([sys.executable, str(REPO / "kafka_consumer_warehouse.py"), "--feeds", FEED,
                                "--metrics-port", str(port)], cwd=REPO, env={**env, "MYSQL_PORT": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: scrape(port).get("lakehouse_mysql_retrying") == 1, 60, "the retrying gauge at 1")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "retry 1 in" in err, err[-2000:]
