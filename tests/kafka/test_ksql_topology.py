"""ksql/*.sql: the topology as code, checked without a ksqlDB server (none can be installed here)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from support import REPO

from lakehouse.catalog import builtin_feeds
from lakehouse.kafka.ksqldb import describe_fields, prefixed_topics, split_statements, topology_files
from lakehouse.produce.events import BLACKLISTED_CITIES, EUR_RATES
from lakehouse.settings import Settings

CREATE = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(STREAM|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
# The data contract's columns (common.md), key columns included.
FLATTENED = ["TRANSACTION_ID", "TIMESTAMP", "USER_ID", "USER_NAME", "USER_EMAIL", "USER_COUNTRY", "USER_CITY",
             "TRANSACTION_TYPE", "STATUS", "AMOUNT", "CURRENCY", "PAYMENT_METHOD", "PRODUCT_ID", "PRODUCT_NAME",
             "PRODUCT_CATEGORY", "PRODUCT_UNIT_PRICE", "PRODUCT_QUANTITY"]
CONTRACT_COLUMNS = {
    "TRANSACTION_FLATTENED": FLATTENED,
    "TRANSACTION_STREAM_ANONYMIZED": ["TRANSACTION_ID", "TIMESTAMP", "USER_PSEUDONYM", "USER_COUNTRY",
                                      "TRANSACTION_TYPE", "STATUS", "AMOUNT_EUR", "PAYMENT_METHOD", "PRODUCT_ID",
                                      "PRODUCT_QUANTITY"],
    "USER_TRANSACTION_SUMMARY": ["USER_ID", "TRANSACTION_TYPE", "USER_NAME", "USER_EMAIL", "USER_COUNTRY",
                                 "USER_CITY", "TOTAL_AMOUNT", "TRANSACTION_COUNT", "AVG_AMOUNT", "MIN_AMOUNT",
                                 "MAX_AMOUNT", "LAST_TRANSACTION_AT"],
    "USER_TRANSACTION_SUMMARY_EUR": ["USER_ID", "TRANSACTION_TYPE", "TOTAL_AMOUNT_EUR", "TRANSACTION_COUNT",
                                     "AVG_AMOUNT_EUR", "MIN_AMOUNT_EUR", "MAX_AMOUNT_EUR", "LAST_TRANSACTION_AT"],
    "PAYMENT_METHOD_TOTALS": ["PAYMENT_METHOD", "TOTAL_AMOUNT_EUR", "TRANSACTION_COUNT", "AVG_AMOUNT_EUR"],
    "PRODUCT_PURCHASE_COUNTS": ["PRODUCT_ID", "PRODUCT_NAME", "PRODUCT_CATEGORY", "PURCHASE_COUNT",
                                "TOTAL_QUANTITY", "TOTAL_REVENUE", "AVG_PRICE", "UNIQUE_BUYERS"],
}

# The types ksqlDB 0.29 gives these columns of ksql/*.sql (its source: SUM keeps its input's type, COUNT is BIGINT,
# MIN/MAX keep their input's, ROUND(double, n) is a DOUBLE and ROUND(decimal, n) keeps the input's type,
# DECIMAL(12, 2) * DECIMAL(10, 4) is DECIMAL(23, 6), ARRAY_LENGTH is an INTEGER). The double's recordings must agree.
KSQLDB_TYPES = {
    "TRANSACTION_STREAM_ANONYMIZED": {"AMOUNT_EUR": "DECIMAL(23, 6)"},
    "USER_TRANSACTION_SUMMARY": {"TOTAL_AMOUNT": "DECIMAL(20, 2)", "TRANSACTION_COUNT": "BIGINT",
                                 "AVG_AMOUNT": "DOUBLE", "MIN_AMOUNT": "DECIMAL(12, 2)",
                                 "MAX_AMOUNT": "DECIMAL(12, 2)"},
    "USER_TRANSACTION_SUMMARY_EUR": {"TOTAL_AMOUNT_EUR": "DECIMAL(20, 2)", "TRANSACTION_COUNT": "BIGINT",
                                     "AVG_AMOUNT_EUR": "DOUBLE", "MIN_AMOUNT_EUR": "DECIMAL(23, 6)",
                                     "MAX_AMOUNT_EUR": "DECIMAL(23, 6)"},
    "PAYMENT_METHOD_TOTALS": {"TOTAL_AMOUNT_EUR": "DECIMAL(20, 2)", "TRANSACTION_COUNT": "BIGINT",
                              "AVG_AMOUNT_EUR": "DOUBLE"},
    "PRODUCT_PURCHASE_COUNTS": {"PURCHASE_COUNT": "BIGINT", "TOTAL_QUANTITY": "BIGINT",
                                "TOTAL_REVENUE": "DECIMAL(20, 2)", "AVG_PRICE": "DOUBLE", "UNIQUE_BUYERS": "INTEGER"},
}
FIXTURES = REPO / "tests" / "fixtures" / "ksqldb"


def _statements() -> list[str]:
    return [s for path in topology_files(REPO / "ksql") for s in split_statements(path.read_text())]


def _property(statement: str, name: str) -> str | None:
    match = re.search(rf"\b{name}\s*=\s*'?([^',)\s]+)'?", statement, re.IGNORECASE)
    return match.group(1) if match else None


def _creates() -> dict[str, tuple[str, str]]:
    """ksqlDB name -> (STREAM|TABLE, statement)."""
    found = {}
    for statement in _statements():
        match = CREATE.match(statement)
        assert match, f"not a CREATE statement: {statement[:80]}"
        found[match.group(2).upper()] = (match.group(1).upper(), statement)
    return found


def test_every_statement_is_terminated_and_idempotent() -> None:
    statements = _statements()
    assert len(statements) == 8
    for statement in statements:
        assert statement.endswith(";")
        assert re.match(r"CREATE\s+(OR\s+REPLACE\s|(STREAM|TABLE)\s+IF\s+NOT\s+EXISTS\s)", statement, re.I), statement


def test_sources_match_the_catalog_names_topics_kinds_and_formats() -> None:
    creates = _creates()
    feeds = {feed.ksql_name: feed for feed in builtin_feeds()}
    assert set(creates) == set(feeds)
    for name, (kind, statement) in creates.items():
        feed = feeds[name]
        assert kind.lower() == feed.kind, name
        assert _property(statement, "KAFKA_TOPIC") == feed.topic, name
        assert _property(statement, "PARTITIONS") == "6", name
        if kind == "STREAM":  # key = transaction id as plain bytes, value JSON
            assert (_property(statement, "KEY_FORMAT"), _property(statement, "VALUE_FORMAT")) == ("KAFKA", "JSON")
        else:  # key and value JSON, as the table contract says
            assert _property(statement, "FORMAT") == "JSON", name


@pytest.mark.parametrize("name", sorted(CONTRACT_COLUMNS))
def test_derived_sources_produce_the_contract_columns(name: str) -> None:
    _kind, statement = _creates()[name]
    select = statement[re.search(r"\bAS\s+SELECT\b", statement, re.I).end():re.search(r"\bFROM\b", statement).start()]
    for column in CONTRACT_COLUMNS[name]:
        assert re.search(rf"(\bAS\s+|^\s*|,\s*)`?{column}`?\s*(,|$)", select, re.M), f"{name} lacks {column}"


def test_blacklisted_stream_has_every_flattened_column_and_the_configured_cities() -> None:
    _kind, statement = _creates()["TRANSACTION_STREAM_BLACKLISTED"]
    assert re.search(r"SELECT \*\s+FROM TRANSACTION_FLATTENED", statement)
    cities = re.search(r"USER_CITY IN \(([^)]*)\)", statement).group(1)
    assert sorted(re.findall(r"'([^']*)'", cities)) == sorted(BLACKLISTED_CITIES)


def test_every_eur_conversion_uses_the_configured_rates() -> None:
    cases = [case for statement in _statements() for case in re.findall(r"CASE (.*?) END", statement, re.S)]
    assert len(cases) == 5  # anonymized stream once, user summary in EUR four times (no subqueries in ksqlDB)
    for case in cases:
        # ksqlDB types 1.0 and 0.0062 as different DECIMALs and wants every THEN of a CASE to have one type.
        rates = {currency: Decimal(rate) for currency, rate in
                 re.findall(r"CURRENCY = '(\w+)' THEN CAST\(([0-9.]+) AS DECIMAL\(10, 4\)\)", case)}
        assert rates == EUR_RATES
        assert case.count("THEN") == len(rates)


def test_apply_prefixes_every_topic_of_the_environment() -> None:
    statement = _creates()["PRODUCT_PURCHASE_COUNTS"][1]
    rewritten = prefixed_topics(statement, Settings(topic_prefix="t_abc_"))
    assert _property(rewritten, "KAFKA_TOPIC") == "t_abc_product_purchase_counts"
    assert rewritten.replace("t_abc_", "") == statement


def _call_arguments(statement: str, function: str) -> list[str]:
    """The argument text of every call of `function` in the statement (parentheses balanced)."""
    found = []
    for call in re.finditer(rf"\b{function}\(", statement):
        depth = 1
        for index in range(call.end(), len(statement)):
            depth += {"(": 1, ")": -1}.get(statement[index], 0)
            if depth == 0:
                found.append(statement[call.end():index])
                break
    return found


def test_sums_cannot_overflow_and_no_decimal_is_divided() -> None:
    # SUM keeps its input's type: DECIMAL(12, 2) overflows at 10^10 and an INT sum wraps silently.
    sums = [argument for statement in _statements() for argument in _call_arguments(statement, "SUM")]
    assert len(sums) == 10
    for argument in sums:
        assert re.fullmatch(r"CAST\(.* AS (DECIMAL\(20, 2\)|BIGINT)\)", argument, re.S), argument
    # A DECIMAL quotient that does not terminate fails ("Rounding necessary") and ksqlDB writes NULL.
    dividends = [left for statement in _statements() for left in re.findall(r"(\S+\s+\S+)\s/\s", statement)]
    assert len(dividends) == 4
    assert all(left.endswith("AS DOUBLE)") for left in dividends), dividends


def _recorded_types() -> list[tuple[str, dict[str, str]]]:
    """(source, {column: type}) of every DESCRIBE / LIST … EXTENDED entity and /query header the double answers."""
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        for exchange in json.loads(path.read_text()):
            body = exchange["response"]["body"]
            for entity in body if isinstance(body, list) else []:
                descriptions = entity.get("sourceDescriptions") or [entity.get("sourceDescription")]
                for description in filter(None, descriptions):
                    columns = re.findall(r"(\w+) (DECIMAL\(\d+, \d+\)|\w+)",
                                         describe_fields(description["fields"]))
                    found.append((description["name"], dict(columns)))
                if "header" in entity:
                    source = re.search(r"FROM (\w+)", exchange["request"]["ksql"]).group(1)
                    columns = re.findall(r"`(\w+)` (DECIMAL\(\d+, \d+\)|\w+)", entity["header"]["schema"])
                    found.append((source, dict(columns)))
    return found


def test_the_doubles_recordings_carry_the_types_ksqldb_gives_the_topology() -> None:
    recorded = [(source, columns) for source, columns in _recorded_types() if source in KSQLDB_TYPES]
    assert {source for source, _ in recorded} == set(KSQLDB_TYPES)
    for source, columns in recorded:
        assert {column: columns.get(column) for column in KSQLDB_TYPES[source]} == KSQLDB_TYPES[source], source
