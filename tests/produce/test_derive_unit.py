"""The ksqlDB stand-in's pure logic (lakehouse.produce.derive): derived stream rows and the four table aggregates.

Expected values are worked out by hand from the events below (EUR rates: USD 0.92, GBP 1.17, EUR 1).
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.produce import derive


def book(quantity: int, unit_price: float = 5.0) -> dict:
    return {"product_id": "p1", "name": "Book", "category": "books", "unit_price": unit_price, "quantity": quantity}


def event(tid: str, user: str, kind: str, amount: float, currency: str, method: str, at: str,
          product: dict | None = None, city: str = "Berlin") -> dict:
    return {"transaction_id": tid, "timestamp": at,
            "user": {"user_id": user, "name": f"Name {user}", "email": f"{user}@example.com", "country": "DE",
                     "city": city},
            "transaction_type": kind, "status": "completed", "amount": amount, "currency": currency,
            "payment_method": method, "product": product}


EVENTS = [
    event("t1", "u1", "purchase", 10.00, "USD", "paypal", "2026-09-07T10:00:00.000Z", book(2)),
    event("t2", "u1", "purchase", 20.01, "EUR", "paypal", "2026-09-07T09:00:00.000Z", book(3, 6.67)),
    event("t3", "u2", "refund", 5.55, "GBP", "credit_card", "2026-09-08T00:00:00.000Z", book(1, 5.55)),
    event("t4", "u2", "purchase", 4.00, "EUR", "credit_card", "2026-09-08T01:00:00.000Z", book(1, 4.0)),
]


def changelog(events: list[dict], buyers: dict[str, set[str]] | None = None) -> dict[str, dict]:
    tables = derive.DerivedTables(buyers or {})
    for item in events:
        tables.fold(item)
    result: dict[str, dict] = {}
    for topic, key, value in tables.changelog_records():
        result.setdefault(topic, {})[key] = orjson.loads(value)
    return result


# ---------------------------------------------------------------- tables
def test_user_summary_sums_counts_and_keeps_the_latest_event_time_not_the_last_arrived() -> None:
    summary = changelog(EVENTS)["user_transaction_summary"]
    assert summary[b'{"USER_ID":"u1","TRANSACTION_TYPE":"purchase"}'] == {
        "USER_NAME": "Name u1", "USER_EMAIL": "u1@example.com", "USER_COUNTRY": "DE", "USER_CITY": "Berlin",
        "TOTAL_AMOUNT": 30.01, "TRANSACTION_COUNT": 2, "AVG_AMOUNT": 15.005, "MIN_AMOUNT": 10.0,
        "MAX_AMOUNT": 20.01, "LAST_TRANSACTION_AT": "2026-09-07T10:00:00.000Z"}
    assert sorted(summary) == [b'{"USER_ID":"u1","TRANSACTION_TYPE":"purchase"}',
                               b'{"USER_ID":"u2","TRANSACTION_TYPE":"purchase"}',
                               b'{"USER_ID":"u2","TRANSACTION_TYPE":"refund"}']


def test_eur_summary_converts_each_amount_before_aggregating() -> None:
    eur = changelog(EVENTS)["user_transaction_summary_eur"]
    # 10.00 USD -> 9.20 EUR, plus 20.01 EUR
    assert eur[b'{"USER_ID":"u1","TRANSACTION_TYPE":"purchase"}'] == {
        "TOTAL_AMOUNT_EUR": 29.21, "TRANSACTION_COUNT": 2, "AVG_AMOUNT_EUR": 14.605, "MIN_AMOUNT_EUR": 9.2,
        "MAX_AMOUNT_EUR": 20.01, "LAST_TRANSACTION_AT": "2026-09-07T10:00:00.000Z"}
    # 5.55 GBP * 1.17 = 6.4935 -> 6.49
    assert eur[b'{"USER_ID":"u2","TRANSACTION_TYPE":"refund"}']["TOTAL_AMOUNT_EUR"] == 6.49


def test_payment_method_totals_are_in_eur_keyed_by_the_bare_method() -> None:
    totals = changelog(EVENTS)["payment_method_totals"]
    assert totals == {
        b'"credit_card"': {"TOTAL_AMOUNT_EUR": 10.49, "TRANSACTION_COUNT": 2, "AVG_AMOUNT_EUR": 5.245},
        b'"paypal"': {"TOTAL_AMOUNT_EUR": 29.21, "TRANSACTION_COUNT": 2, "AVG_AMOUNT_EUR": 14.605},
    }


def test_product_counts_take_purchases_only_with_distinct_buyers() -> None:
    products = changelog(EVENTS)["product_purchase_counts"]
    # purchases t1, t2 (u1) and t4 (u2); the refund t3 is not counted
    assert products == {b'"p1"': {
        "PRODUCT_NAME": "Book", "PRODUCT_CATEGORY": "books", "PURCHASE_COUNT": 3, "TOTAL_QUANTITY": 6,
        "TOTAL_REVENUE": 34.01, "AVG_PRICE": 5.6683, "UNIQUE_BUYERS": 2}}


def test_a_purchase_without_a_product_is_not_a_product_purchase() -> None:
    tables = changelog([event("t9", "u9", "purchase", 3.0, "EUR", "paypal", "2026-09-07T10:00:00Z")])
    assert "product_purchase_counts" not in tables
    assert tables["payment_method_totals"] == {b'"paypal"': {"TOTAL_AMOUNT_EUR": 3.0, "TRANSACTION_COUNT": 1,
                                                             "AVG_AMOUNT_EUR": 3.0}}


def test_new_buyer_pairs_are_emitted_once_as_state_records() -> None:
    tables = derive.DerivedTables({})
    for item in EVENTS:  # u1 buys p1 twice, u2 once (u2's refund is no purchase)
        tables.fold(item)
    assert list(tables.state_records()) == [
        (derive.BUYERS_STATE_TOPIC, b'{"PRODUCT_ID":"p1","USER_ID":"u1"}', b"{}"),
        (derive.BUYERS_STATE_TOPIC, b'{"PRODUCT_ID":"p1","USER_ID":"u2"}', b"{}")]


def test_an_aggregate_continues_exactly_from_a_restored_table_value() -> None:
    totals = derive.PaymentMethodTotals()
    restored = totals.restore({"payment_method": "paypal", "total_amount_eur": 100.1, "transaction_count": 4})
    updated = totals.add(restored, event("t5", "u5", "deposit", 10.00, "USD", "paypal", "2026-09-07T10:00:00Z"))
    assert totals.value(updated) == {"TOTAL_AMOUNT_EUR": 109.3, "TRANSACTION_COUNT": 5, "AVG_AMOUNT_EUR": 21.86}


def test_product_counts_continue_from_the_table_and_the_buyer_state_without_recounting_a_buyer() -> None:
    counts = derive.ProductPurchaseCounts({"p1": {"u1", "u7"}})
    restored = counts.restore({"product_id": "p1", "product_name": "Book", "product_category": "books",
                               "purchase_count": 3, "total_quantity": 4, "total_revenue": 20.0, "unique_buyers": 2})
    for item in (EVENTS[0], EVENTS[3]):  # u1 again (2 books for 10.00), then u2 for the first time (1 for 4.00)
        restored = counts.add(restored, item)
    assert counts.value(restored) == {
        "PRODUCT_NAME": "Book", "PRODUCT_CATEGORY": "books", "PURCHASE_COUNT": 5, "TOTAL_QUANTITY": 7,
        "TOTAL_REVENUE": 34.0, "AVG_PRICE": 4.8571, "UNIQUE_BUYERS": 3}
    assert counts.new_buyers == [("p1", "u2")]


def test_restoring_product_counts_refuses_a_buyer_state_that_disagrees_with_the_table() -> None:
    counts = derive.ProductPurchaseCounts({"p1": {"u1"}})
    row = {"product_id": "p1", "product_name": "Book", "product_category": "books", "purchase_count": 3,
           "total_quantity": 4, "total_revenue": 20.0, "unique_buyers": 2}
    with pytest.raises(LakehouseError, match=r"holds 1 buyer\(s\) of p1 but product_purchase_counts says 2"):
        counts.restore(row)


def test_amount_stats_are_exact_decimals_rounded_half_up_only_when_written() -> None:
    stats = derive.AmountStats()
    for amount in ("0.1", "0.2", "0.005"):
        stats.add(Decimal(amount))
    assert (stats.total, stats.count, stats.minimum, stats.maximum) == (Decimal("0.305"), 3, Decimal("0.005"),
                                                                        Decimal("0.2"))
    assert derive._money(stats.total) == 0.31  # half-up, not banker's rounding (0.30)
    assert stats.average == 0.1017  # 0.305 / 3 = 0.101666... -> 4 decimals


@pytest.mark.parametrize(("key_columns", "key", "encoded"), [
    (["payment_method"], ("paypal",), b'"paypal"'),
    (["product_id"], (7,), b"7"),
    (["user_id", "transaction_type"], ("u1", "refund"), b'{"USER_ID":"u1","TRANSACTION_TYPE":"refund"}'),
])
def test_table_keys_are_written_as_ksqldb_json_keys(key_columns: list[str], key: tuple, encoded: bytes) -> None:
    assert derive.table_key(key_columns, key) == encoded


# ---------------------------------------------------------------- streams
def test_flatten_gives_one_column_per_nested_field_and_nulls_without_a_product() -> None:
    flat = derive.flatten(EVENTS[0])
    assert (flat["USER_ID"], flat["USER_CITY"], flat["PRODUCT_ID"], flat["PRODUCT_QUANTITY"],
            flat["PRODUCT_UNIT_PRICE"]) == ("u1", "Berlin", "p1", 2, 5.0)
    no_product = derive.flatten(event("t8", "u8", "deposit", 1.0, "EUR", "paypal", "2026-09-07T10:00:00Z"))
    assert [no_product[name] for name in ("PRODUCT_ID", "PRODUCT_NAME", "PRODUCT_CATEGORY", "PRODUCT_UNIT_PRICE",
                                          "PRODUCT_QUANTITY")] == [None] * 5
    assert len(flat) == 17


def test_anonymize_drops_name_email_and_raw_id_and_converts_the_amount_to_eur() -> None:
    row = derive.anonymize(EVENTS[0])
    assert row["AMOUNT_EUR"] == 9.2
    assert row["USER_PSEUDONYM"] == derive.pseudonymize("u1") == "e2250b8de33101b5"
    assert not {"USER_ID", "USER_NAME", "USER_EMAIL", "AMOUNT"} & set(row)
    assert "u1" not in orjson.dumps(row).decode()


def test_only_events_from_blacklisted_cities_reach_the_blacklisted_stream() -> None:
    tehran = event("t6", "u6", "transfer", 50.0, "EUR", "paypal", "2026-09-07T10:00:00Z", city="Tehran")
    assert [topic for topic, _row in derive.stream_rows(tehran)] == [derive.FLATTENED, derive.ANONYMIZED,
                                                                     derive.BLACKLISTED]
    assert [topic for topic, _row in derive.stream_rows(EVENTS[0])] == [derive.FLATTENED, derive.ANONYMIZED]
    assert derive.stream_key(tehran) == b"t6"
