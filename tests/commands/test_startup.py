"""Whole-process start-up (issue 20): `data_lake_config.py show`, which the orchestrator runs every few minutes,
loads none of the libraries only other subcommands need (each costs its import on every run)."""

from __future__ import annotations

import re

import mysql.connector
import pytest
from confluent_kafka import KafkaError, KafkaException
from support import base_env, run_script

from lakehouse import cli

# The heavy libraries a catalog listing does not need: the query engine, pandas (and pyarrow.dataset, which loads
# it), the MySQL client, Kafka's client and the S3 client of a lake on an object store.
NOT_FOR_SHOW = ("duckdb", "pandas", "pyarrow.dataset", "mysql.connector", "confluent_kafka", "botocore")


def test_show_lists_the_catalog_without_loading_what_only_other_commands_need(tmp_path) -> None:
    env = base_env(DATA_LAKE_ROOT=str(tmp_path / "lake"))
    run_script("data_lake_config.py", "init", env=env, check=True)
    shown = run_script("data_lake_config.py", "show", env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, check=True)

    assert "transaction_stream" in shown.stdout and "payment_method_totals" in shown.stdout
    imported = set(re.findall(r"^import time:.*\|\s*(\S+)$", shown.stderr, re.MULTILINE))
    assert "lakehouse.catalog" in imported  # the profile was read
    assert sorted(imported & set(NOT_FOR_SHOW)) == []


def _raising(exc: BaseException):
    def main(argv) -> int:
        raise exc
    return main


def test_kafka_and_mysql_errors_stay_one_line_though_cli_no_longer_imports_their_libraries(capsys) -> None:
    kafka_down = KafkaException(KafkaError(KafkaError._TRANSPORT, "broker transport failure"))
    assert cli.run(_raising(kafka_down), []) == 2
    assert capsys.readouterr().err == "error: Kafka: broker transport failure\n"

    no_table = mysql.connector.errors.ProgrammingError(msg="Table 'dw.x' doesn't exist", errno=1146)
    assert cli.run(_raising(no_table), []) == 2
    assert capsys.readouterr().err == "error: MySQL: Table 'dw.x' doesn't exist\n"

    with pytest.raises(ValueError, match="a bug"):  # anything else is not dressed up as a known failure
        cli.run(_raising(ValueError("a bug")), [])
