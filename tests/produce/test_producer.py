"""kafka_producer.py: the raw event contract, determinism, --derive (the ksqlDB stand-in), failures."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from support import ksqldb_average, run_script, unique

from lakehouse.kafka import clients
from lakehouse.produce.derive import DerivedTables
from lakehouse.produce.events import (
    BLACKLISTED_CITIES,
    CURRENCIES,
    PAYMENT_METHODS,
    STATUSES,
    TRANSACTION_TYPES,
    GeneratorOptions,
    generate_events,
    to_eur,
)
from lakehouse.produce.producer import RecordSender
from lakehouse.settings import Settings

Record = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value

FLATTENED_COLUMNS = [
    "TRANSACTION_ID", "TIMESTAMP", "USER_ID", "USER_NAME", "USER_EMAIL", "USER_COUNTRY", "USER_CITY",
    "TRANSACTION_TYPE", "STATUS", "AMOUNT", "CURRENCY", "PAYMENT_METHOD", "PRODUCT_ID", "PRODUCT_NAME",
    "PRODUCT_CATEGORY", "PRODUCT_UNIT_PRICE", "PRODUCT_QUANTITY",
]
ANONYMIZED_COLUMNS = [
    "TRANSACTION_ID", "TIMESTAMP", "USER_PSEUDONYM", "USER_COUNTRY", "TRANSACTION_TYPE", "STATUS", "AMOUNT_EUR",
    "PAYMENT_METHOD", "PRODUCT_ID", "PRODUCT_QUANTITY",
]
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CENT = Decimal("0.01")


# ------------------------------------------------------------------ reading topics back
def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record of a (never compacted, non-transactional) topic, by partition and offset."""
    consumer = clients.consumer(settings, unique("test-read"))
    try:
        ends = clients.end_offsets(consumer, topic, clients.topic_partitions(settings, topic))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
        records: list[Record] = []
        deadline = time.monotonic() + 60
        while len(records) < sum(ends.values()) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                assert message.error() is None, message.error()
                if message.offset() < ends[message.partition()]:
                    records.append((message.partition(), message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    assert len(records) == sum(ends.values()), f"read {len(records)} of {sum(ends.values())} records of {topic}"
    return sorted(records)


def latest_per_key(records: list[Record]) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for _partition, _offset, key, value in records:  # sorted by partition, offset; a key has one partition
        latest[key] = value
    return latest


# ------------------------------------------------------------------ the raw contract
def assert_contract(event: dict) -> None:
    assert list(event) == ["transaction_id", "timestamp", "user", "transaction_type", "status", "amount",
                           "currency", "payment_method", "product"]
    assert isinstance(event["transaction_id"], str) and event["transaction_id"]
    assert TIMESTAMP.match(event["timestamp"]), event["timestamp"]
    user = event["user"]
    assert sorted(user) == ["city", "country", "email", "name", "user_id"]
    assert all(isinstance(value, str) and value for value in user.values())
    assert event["transaction_type"] in TRANSACTION_TYPES
    assert event["status"] in STATUSES
    assert isinstance(event["amount"], float | int) and event["amount"] > 0
    assert Decimal(str(event["amount"])) == Decimal(str(event["amount"])).quantize(CENT)
    assert event["currency"] in CURRENCIES
    assert event["payment_method"] in PAYMENT_METHODS
    if event["transaction_type"] in ("purchase", "refund"):
        product = event["product"]
        assert sorted(product) == ["category", "name", "product_id", "quantity", "unit_price"]
        assert isinstance(product["product_id"], str) and isinstance(product["name"], str)
        assert isinstance(product["category"], str) and isinstance(product["unit_price"], float | int)
        assert isinstance(product["quantity"], int) and product["quantity"] >= 1
    else:
        assert event["product"] is None


def test_produces_seeded_events_with_every_contract_field(env: dict[str, str], settings_for: Settings) -> None:
    result = run_script("kafka_producer.py", "--messages", "10000", "--seed", "7", "--days", "3",
                        "--start", "2026-01-01", env=env, check=True)
    topic = settings_for.topic("transaction_stream")
    assert re.fullmatch(rf"sent 10000 events to {topic} in [\d.]+ s \([\d,]+ events/s\)",
                        result.stdout.strip().splitlines()[-1])

    records = read_topic(settings_for, topic)
    assert len(records) == 10_000
    assert {partition for partition, *_ in records} == set(range(6))  # --partitions default
    events = [json.loads(value) for *_, value in records]
    assert len({event["transaction_id"] for event in events}) == 10_000
    for (_partition, _offset, key, _value), event in zip(records, events, strict=True):
        assert key == event["transaction_id"].encode()
        assert_contract(event)
    days = {event["timestamp"][:10] for event in events}
    assert days == {"2026-01-01", "2026-01-02", "2026-01-03"}


def test_same_seed_gives_the_same_bytes(env: dict[str, str], settings_for: Settings) -> None:
    options = ["--messages", "2000", "--seed", "11", "--users", "20", "--days", "2", "--start", "2026-02-01"]
    for topic in ("first", "second"):
        run_script("kafka_producer.py", "--topic", topic, *options, env=env, check=True)
    run_script("kafka_producer.py", "--topic", "other_seed", *options[:2], "--seed", "12", *options[4:],
               env=env, check=True)

    first, second, other = (read_topic(settings_for, settings_for.topic(name))
                            for name in ("first", "second", "other_seed"))
    assert len(first) == 2000
    assert first == second  # same partition, offset, key and value bytes
    assert {value for *_, value in first}.isdisjoint({value for *_, value in other})


# ------------------------------------------------------------------ --derive: the four tables
def _money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _avg(total: Decimal, count: int) -> float:
    return float(ksqldb_average(total, count))


def expected_tables(runs: list[list[dict]]) -> dict[str, dict]:
    """The four tables recomputed from the raw events of each run, in run order (later runs are 'latest')."""
    groups: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for events in runs:
        for event in events:
            user, kind = event["user"], event["transaction_type"]
            groups["user"][(user["user_id"], kind)].append(event)
            groups["payment"][event["payment_method"]].append(event)
            if kind == "purchase":
                groups["product"][event["product"]["product_id"]].append(event)

    def stats(amounts: list[Decimal], suffix: str, with_extremes: bool = True) -> dict:
        total = sum(amounts, Decimal(0))
        values = {f"TOTAL_AMOUNT{suffix}": _money(total), "TRANSACTION_COUNT": len(amounts),
                  f"AVG_AMOUNT{suffix}": _avg(total, len(amounts))}
        if with_extremes:
            values.update({f"MIN_AMOUNT{suffix}": _money(min(amounts)), f"MAX_AMOUNT{suffix}": _money(max(amounts))})
        return values

    def eur(event: dict) -> Decimal:
        return to_eur(event["amount"], event["currency"])

    summary, summary_eur, payment, product = {}, {}, {}, {}
    for key, events in groups["user"].items():
        latest_user, last_at = events[-1]["user"], max(e["timestamp"] for e in events)
        summary[key] = {"USER_NAME": latest_user["name"], "USER_EMAIL": latest_user["email"],
                        "USER_COUNTRY": latest_user["country"], "USER_CITY": latest_user["city"],
                        **stats([Decimal(str(e["amount"])) for e in events], ""), "LAST_TRANSACTION_AT": last_at}
        summary_eur[key] = {**stats([eur(e) for e in events], "_EUR"), "LAST_TRANSACTION_AT": last_at}
    for key, events in groups["payment"].items():
        payment[key] = stats([eur(e) for e in events], "_EUR", with_extremes=False)
    for key, events in groups["product"].items():
        revenue = sum((Decimal(str(e["amount"])) for e in events), Decimal(0))
        quantity = sum(e["product"]["quantity"] for e in events)
        product[key] = {"PRODUCT_NAME": events[-1]["product"]["name"],
                        "PRODUCT_CATEGORY": events[-1]["product"]["category"], "PURCHASE_COUNT": len(events),
                        "TOTAL_QUANTITY": quantity, "TOTAL_REVENUE": _money(revenue),
                        "AVG_PRICE": _avg(revenue, quantity),
                        "UNIQUE_BUYERS": len({e["user"]["user_id"] for e in events})}
    return {"user_transaction_summary": summary, "user_transaction_summary_eur": summary_eur,
            "payment_method_totals": payment, "product_purchase_counts": product}


def decode_table(latest: dict[bytes, bytes | None]) -> dict:
    """ksqlDB JSON table records -> {key: value}; a composite key is an object of upper-case key columns."""
    table = {}
    for raw_key, raw_value in latest.items():
        key = json.loads(raw_key)
        if isinstance(key, dict):
            assert list(key) == ["USER_ID", "TRANSACTION_TYPE"], key
            key = (key["USER_ID"], key["TRANSACTION_TYPE"])
        else:
            assert isinstance(key, str) and raw_key.startswith(b'"'), raw_key  # the bare JSON value
        table[key] = json.loads(raw_value)
    return table


def raw_events_by_run(records: list[Record], run_ends: list[dict[int, int]]) -> list[list[dict]]:
    """Split the raw topic into runs using the end offsets seen after each run."""
    runs: list[list[dict]] = [[] for _ in run_ends]
    for partition, offset, _key, value in records:
        run = next(index for index, ends in enumerate(run_ends) if offset < ends.get(partition, 0))
        runs[run].append(json.loads(value))
    return runs


def test_derive_tables_continue_and_equal_the_aggregate_over_every_run(env: dict[str, str],
                                                                       settings_for: Settings) -> None:
    table_names = list(expected_tables([[]]))
    runs = [("1", "30", "2026-03-01"), ("2", "50", "2026-03-02")]  # different seeds: new users and products
    run_ends, changelog_counts = [], []
    for seed, users, start in runs:
        result = run_script("kafka_producer.py", "--derive", "--messages", "3000", "--seed", seed, "--users", users,
                            "--days", "2", "--start", start, env=env, check=True)
        assert result.stdout.strip().splitlines()[-1].startswith("sent 3000 events")
        run_ends.append(clients.topic_end_offsets(settings_for, settings_for.topic("transaction_stream")))
        changelog_counts.append({name: sum(clients.topic_end_offsets(settings_for, settings_for.topic(name)).values())
                                 for name in table_names})

    raw = read_topic(settings_for, settings_for.topic("transaction_stream"))
    runs_events = raw_events_by_run(raw, run_ends)
    assert [len(events) for events in runs_events] == [3000, 3000]
    expected = expected_tables(runs_events)
    per_run = [expected_tables([events]) for events in runs_events]
    for name in table_names:
        actual = decode_table(latest_per_key(read_topic(settings_for, settings_for.topic(name))))
        assert actual == expected[name], name
        for key, value in actual.items():
            assert list(value) == list(expected[name][key]), f"{name}: column order"
        # One record per key changed in a run (its final value), not one per event.
        assert changelog_counts[0][name] == len(per_run[0][name])
        assert changelog_counts[1][name] - changelog_counts[0][name] == len(per_run[1][name])

    buyer_pairs = {(e["product"]["product_id"], e["user"]["user_id"])
                   for events in runs_events for e in events if e["transaction_type"] == "purchase"}
    state = read_topic(settings_for, settings_for.topic("_lakehouse_derive_state_product_buyers"))
    assert len(state) == len(buyer_pairs)  # each pair written once, when first seen
    assert {tuple(json.loads(key).values()) for *_, key, _value in state} == buyer_pairs


def test_derive_averages_are_the_ones_ksqldb_computes() -> None:
    """ksqlDB averages through a DOUBLE (a DECIMAL quotient that does not terminate is NULL there): 40 EUR events
    totalling 0.41 average 0.01025 exactly, but 0.41 / 40 as a double is 0.0102499…, which ksqlDB rounds to 0.0102."""
    template = next(iter(generate_events(GeneratorOptions(messages=1, start=date(2026, 3, 1)))))
    tables = DerivedTables({})
    for amount in [0.01] * 39 + [0.02]:
        tables.fold({**template, "transaction_type": "deposit", "currency": "EUR", "amount": amount})
    values = {(topic, key): json.loads(value) for topic, key, value in tables.changelog_records()}
    summary_key = json.dumps({"USER_ID": template["user"]["user_id"], "TRANSACTION_TYPE": "deposit"},
                             separators=(",", ":")).encode()
    summary = values[("user_transaction_summary", summary_key)]
    assert (summary["TOTAL_AMOUNT"], summary["TRANSACTION_COUNT"], summary["AVG_AMOUNT"]) == (0.41, 40, 0.0102)
    assert values[("user_transaction_summary_eur", summary_key)]["AVG_AMOUNT_EUR"] == 0.0102


def test_derive_refuses_to_continue_when_its_buyer_state_disagrees(env: dict[str, str],
                                                                   settings_for: Settings) -> None:
    run_script("kafka_producer.py", "--derive", "--messages", "500", env=env, check=True)
    # What a run that failed between publishing the buyer state and the tables leaves behind.
    sender = RecordSender(settings_for)
    sender.send(settings_for.topic("_lakehouse_derive_state_product_buyers"),
                b'{"PRODUCT_ID":"prod_0001","USER_ID":"user_99999"}', b"{}")
    sender.flush()
    table = settings_for.topic("product_purchase_counts")
    before = sum(clients.topic_end_offsets(settings_for, table).values())

    result = run_script("kafka_producer.py", "--derive", "--messages", "500", "--seed", "2", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and "Traceback" not in result.stderr
    assert "buyer(s) of prod_0001" in result.stderr
    assert sum(clients.topic_end_offsets(settings_for, table).values()) == before  # nothing wrong was published


# ------------------------------------------------------------------ --derive: the three streams
def test_derive_streams_have_the_contract_columns_and_rows(env: dict[str, str], settings_for: Settings) -> None:
    run_script("kafka_producer.py", "--derive", "--messages", "3000", "--seed", "5", env=env, check=True)
    raw = {key: json.loads(value) for *_, key, value in read_topic(settings_for, settings_for.topic(
        "transaction_stream"))}
    flattened, anonymized, blacklisted = (
        {key: json.loads(value) for *_, key, value in read_topic(settings_for, settings_for.topic(name))}
        for name in ("transaction_flattened", "transaction_stream_anonymized", "transaction_stream_blacklisted"))

    assert flattened.keys() == anonymized.keys() == raw.keys()
    for key, event in raw.items():
        user, product = event["user"], event["product"] or {}
        flat = flattened[key]
        assert list(flat) == FLATTENED_COLUMNS
        assert flat == {
            "TRANSACTION_ID": key.decode(), "TIMESTAMP": event["timestamp"], "USER_ID": user["user_id"],
            "USER_NAME": user["name"], "USER_EMAIL": user["email"], "USER_COUNTRY": user["country"],
            "USER_CITY": user["city"], "TRANSACTION_TYPE": event["transaction_type"], "STATUS": event["status"],
            "AMOUNT": event["amount"], "CURRENCY": event["currency"], "PAYMENT_METHOD": event["payment_method"],
            "PRODUCT_ID": product.get("product_id"), "PRODUCT_NAME": product.get("name"),
            "PRODUCT_CATEGORY": product.get("category"), "PRODUCT_UNIT_PRICE": product.get("unit_price"),
            "PRODUCT_QUANTITY": product.get("quantity")}

        anon = anonymized[key]
        assert list(anon) == ANONYMIZED_COLUMNS
        assert anon["USER_PSEUDONYM"] == hashlib.sha256(f"lakehouse:{user['user_id']}".encode()).hexdigest()[:16]
        assert anon["AMOUNT_EUR"] == float(to_eur(event["amount"], event["currency"]))
        assert anon["PRODUCT_QUANTITY"] == product.get("quantity")
        text = json.dumps(anon)
        assert user["name"] not in text and user["email"] not in text and user["user_id"] not in text

    expected_blacklisted = {key for key, event in raw.items() if event["user"]["city"] in BLACKLISTED_CITIES}
    assert expected_blacklisted and blacklisted.keys() == expected_blacklisted
    assert all(row == flattened[key] for key, row in blacklisted.items())


# ------------------------------------------------------------------ throttling and failures
def test_rate_throttles_the_producer(env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run_script("kafka_producer.py", "--messages", "30", "--rate", "20", env=env, check=True)
    assert time.monotonic() - started >= 29 / 20
    assert result.stdout.strip().splitlines()[-1].startswith("sent 30 events")


def test_delivery_failures_are_counted_not_dropped(settings_for: Settings) -> None:
    missing_topic = settings_for.topic("never_created")  # auto-create is off: every record fails
    sender = RecordSender(settings_for, **{"message.timeout.ms": 2000})
    assert sender.send_all(missing_topic, ((b"k%d" % i, b"{}") for i in range(50))) == 50
    sender.flush()
    assert sender.failed[missing_topic] == 50
    assert sender.delivered() == {missing_topic: 0}
    assert sender.first_error is not None and missing_topic in sender.first_error


def test_unreachable_broker_gives_a_one_line_error(env: dict[str, str]) -> None:
    result = run_script("kafka_producer.py", "--messages", "10",
                        env={**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kafka is not reachable at 127.0.0.1:1"), lines
