"""lakehouse.kafka.ksqldb against a local double speaking ksqlDB's recorded wire format, and the commands using it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from ksqldb_double import CONTENT_TYPE, KsqlDbDouble, ksqldb_double  # noqa: F401 (pytest fixture)
from support import run_script

from lakehouse.errors import LakehouseError
from lakehouse.kafka.ksqldb import KsqlClient, column_names, key_columns, pull_by_key, pull_table
from lakehouse.settings import Settings


@pytest.fixture
def client(ksqldb_double: KsqlDbDouble) -> KsqlClient:  # noqa: F811
    return KsqlClient(ksqldb_double.url, timeout=5)


def test_statements_run_in_order_each_waiting_for_the_previous_command(
        client: KsqlClient, ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    results = client.execute(
        "CREATE STREAM IF NOT EXISTS S1 (ID STRING KEY, V INT) WITH (KAFKA_TOPIC='s1', FORMAT='JSON');\n"
        "-- a comment; with a semicolon\n"
        "CREATE STREAM IF NOT EXISTS S2 WITH (KAFKA_TOPIC='s2') AS SELECT * FROM S1 WHERE V > 1 EMIT CHANGES;")
    assert [r["commandStatus"]["message"] for r in results] == ["Stream created", "Created query with ID CSAS_S2_2"]
    assert [r["commandId"] for r in results] == ["stream/`S1`/create", "stream/`S2`/create"]
    first, second = ksqldb_double.requests
    assert "commandSequenceNumber" not in first["body"]
    assert second["body"]["commandSequenceNumber"] == results[0]["commandSequenceNumber"]
    assert client.execute("CREATE STREAM IF NOT EXISTS S1 (ID STRING KEY) WITH (KAFKA_TOPIC='s1');")[0]["message"] \
        == "Cannot add stream `S1`: A stream with the same name already exists."


def test_a_queued_command_is_polled_on_status_until_it_settles(
        client: KsqlClient, ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    result = client.execute("CREATE STREAM IF NOT EXISTS SLOW_STREAM (A INT) WITH (KAFKA_TOPIC='s');")
    assert result[0]["commandStatus"] == {"status": "SUCCESS", "message": "Stream created"}
    assert [r["path"] for r in ksqldb_double.requests] == ["/ksql", "/status/stream/`SLOW_STREAM`/create"]


@pytest.mark.parametrize(("call", "expected"), [
    (lambda c: c.execute("CREATE STREAM BROKEN (A INT) WITH (KAFKA_TOPIC='b');"),
     "ksqlDB error 40001: line 1:22: Syntax Error Expecting {'(', 'WITH'} in: CREATE STREAM BROKEN"),
    (lambda c: c.execute("SELECT * FROM T;"), "ksqlDB error 40002: The following statement types should be issued"),
    (lambda c: c.describe("no_such"), "ksqlDB error 40001: Could not find STREAM/TABLE 'NO_SUCH' in the Metastore"),
    (lambda c: c.describe("crash"), "ksqlDB error 50000: Could not write the statement 'DESCRIBE CRASH;'"),
    (lambda c: c.pull("SELECT * FROM NO_SUCH;"),
     "ksqlDB error 40001: Exception while preparing statement: NO_SUCH does not exist."),
    (lambda c: c.pull("SELECT * FROM BROKEN_TABLE;"), "ksqlDB error 50000: Error while executing pull query"),
    (lambda c: c.pull("SELECT * FROM T EMIT CHANGES;"), "pull() runs pull queries only"),
])
def test_errors_carry_ksqldbs_code_and_message_on_one_line(client: KsqlClient, call, expected: str) -> None:
    with pytest.raises(LakehouseError) as error:
        call(client)
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)


def test_listings_and_describe_give_topics_formats_and_key_columns(client: KsqlClient) -> None:
    streams = {s["name"]: s for s in client.list_streams()}
    tables = {t["name"]: t for t in client.list_tables()}
    assert streams["TRANSACTION_FLATTENED"]["topic"] == "transaction_flattened"
    assert (streams["TRANSACTION_FLATTENED"]["keyFormat"], streams["TRANSACTION_FLATTENED"]["valueFormat"]) \
        == ("KAFKA", "JSON")
    assert "KSQL_PROCESSING_LOG" in streams and set(tables) == {
        "USER_TRANSACTION_SUMMARY", "USER_TRANSACTION_SUMMARY_EUR", "PAYMENT_METHOD_TOTALS", "PRODUCT_PURCHASE_COUNTS"}
    description = client.describe("user_transaction_summary")
    assert (description["type"], description["topic"]) == ("TABLE", "user_transaction_summary")
    assert key_columns(description) == ["user_id", "transaction_type"]
    assert key_columns(client.describe("PRODUCT_PURCHASE_COUNTS")) == ["product_id"]


def test_pull_query_rows_keep_their_keys(client: KsqlClient, ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    rows = client.pull("SELECT * FROM USER_TRANSACTION_SUMMARY;")
    assert [(r["USER_ID"], r["TRANSACTION_TYPE"], r["TRANSACTION_COUNT"]) for r in rows] == [
        ("user_00001", "purchase", 2), ("user_00001", "refund", 1), ("user_00002", "deposit", 1)]
    assert rows[0]["TOTAL_AMOUNT"] == 146.93 and rows[0]["LAST_TRANSACTION_AT"] == "2026-11-25T10:15:00.123Z"
    request = ksqldb_double.requests[-1]
    assert (request["path"], request["body"]["ksql"]) == ("/query", "SELECT * FROM USER_TRANSACTION_SUMMARY;")


def test_pull_table_returns_snake_case_rows(ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    rows = pull_table(Settings(ksqldb_url=ksqldb_double.url), "product_purchase_counts")
    assert rows[0] == {"product_id": "prod_0001", "product_name": "Books item 1", "product_category": "books",
                       "purchase_count": 3, "total_quantity": 7, "total_revenue": 146.93, "avg_price": 20.99,
                       "unique_buyers": 2}
    assert len(rows) == 3


def test_keyed_pull_looks_up_one_row_and_quotes_its_key(ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    settings = Settings(ksqldb_url=ksqldb_double.url)
    rows = pull_by_key(settings, "user_transaction_summary", {"user_id": "user_00001", "TRANSACTION_TYPE": "purchase"})
    assert [(r["user_id"], r["transaction_type"], r["transaction_count"]) for r in rows] == [
        ("user_00001", "purchase", 2)]
    quoted = pull_by_key(settings, "USER_TRANSACTION_SUMMARY", {"USER_ID": "o'brien", "TRANSACTION_TYPE": "purchase"})
    assert quoted[0]["user_name"] == "Pat O'Brien"
    assert ksqldb_double.requests[-1]["body"]["ksql"] == (
        "SELECT * FROM USER_TRANSACTION_SUMMARY WHERE USER_ID = 'o''brien' AND TRANSACTION_TYPE = 'purchase';")
    with pytest.raises(LakehouseError, match="invalid ksqlDB stream or table name"):
        pull_by_key(settings, "USER_TRANSACTION_SUMMARY", {"USER_ID = 'x' OR 1=1 --": "y"})


@pytest.mark.parametrize(("drop_connection", "expected"), [
    (False, "ksqlDB /query answered with something that is not complete JSON"),
    (True, "the connection dropped before the answer was complete (IncompleteRead); nothing of it was used"),
])
def test_a_pull_answer_cut_short_is_refused_not_taken_as_complete(
        client: KsqlClient, ksqldb_double: KsqlDbDouble, drop_connection: bool, expected: str) -> None:  # noqa: F811
    assert len(client.pull("SELECT * FROM USER_TRANSACTION_SUMMARY;")) == 3
    ksqldb_double.cut_queries(rows=1, drop_connection=drop_connection)
    with pytest.raises(LakehouseError) as error:
        client.pull("SELECT * FROM USER_TRANSACTION_SUMMARY;")
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_header_schema_parsing_handles_decimals_and_structs() -> None:
    assert column_names("`ID` STRING KEY, `S` STRUCT<`A` INTEGER, `B` DECIMAL(4, 2)>, `T` DECIMAL(38, 2), "
                        "`M` MAP<STRING, ARRAY<INTEGER>>") == ["ID", "S", "T", "M"]


def test_unreachable_ksqldb_is_one_clear_error() -> None:
    with pytest.raises(LakehouseError, match=r"ksqlDB is not reachable at http://127.0.0.1:9 .*KSQLDB_URL"):
        pull_table(Settings(ksqldb_url="http://127.0.0.1:9"), "PRODUCT_PURCHASE_COUNTS")
    assert KsqlClient("http://127.0.0.1:9").reachable() is False


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_times_out(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(LakehouseError, match="not reachable.*timed out"):
        KsqlClient(silent_server, timeout=0.5).list_streams()
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------- the project commands, as a user runs them
def test_apply_ksql_creates_the_topology_then_is_a_no_op(
        env: dict[str, str], ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    env = {**env, "KSQLDB_URL": ksqldb_double.url}
    first = run_script("data_lake_config.py", "apply-ksql", env=env, check=True).stdout
    assert "8 statements applied" in first
    assert "CREATE TABLE IF NOT EXISTS PRODUCT_PURCHASE_COUNTS" in first
    assert "Created query with ID CTAS_PRODUCT_PURCHASE_COUNTS" in first
    statements = ksqldb_double.statements()
    prefix = env["LAKEHOUSE_TOPIC_PREFIX"]
    assert f"KAFKA_TOPIC = '{prefix}transaction_stream'" in statements[0]
    assert all(request["body"].get("commandSequenceNumber") for request in ksqldb_double.requests[1:])

    second = run_script("data_lake_config.py", "apply-ksql", env=env, check=True).stdout
    assert second.count("with the same name already exists") == 8
    assert "Created" not in second


def test_discover_marks_sources_that_are_not_feeds(env: dict[str, str], ksqldb_double: KsqlDbDouble) -> None:  # noqa: F811
    env = {**env, "KSQLDB_URL": ksqldb_double.url}
    run_script("data_lake_config.py", "init", env=env, check=True)
    out = run_script("data_lake_config.py", "discover", env=env, check=True).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("-", "name"))}
    assert "not yet feeds: HIGH_VALUE_TRANSACTIONS, KSQL_PROCESSING_LOG" in out
    assert lines["HIGH_VALUE_TRANSACTIONS"].split()[1:4] == ["stream", "high_value_transactions", "NO"]
    assert lines["PRODUCT_PURCHASE_COUNTS"].split()[1:4] == ["table", "product_purchase_counts", "yes"]
    assert "PRODUCT_ID STRING KEY, PRODUCT_NAME STRING" in lines["PRODUCT_PURCHASE_COUNTS"]
    # DECIMAL keeps its precision and scale: what the values carry, and what the warehouse must hold.
    assert "TOTAL_REVENUE DECIMAL(20, 2), AVG_PRICE DOUBLE" in lines["PRODUCT_PURCHASE_COUNTS"]
    assert lines["KSQL_PROCESSING_LOG"].split()[2] == "lakehouse_ksql_processing_log"  # <service id>ksql_processing_log


def test_commands_without_ksqldb_fail_with_one_line(env: dict[str, str]) -> None:
    for command in ("apply-ksql", "discover"):
        result = run_script("data_lake_config.py", command, env=env)
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
        assert "ksqlDB is not reachable at http://127.0.0.1:9" in result.stderr
