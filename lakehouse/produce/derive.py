"""The stand-in for ksqlDB where none runs: the derived streams and the four tables, serialized as ksqlDB does.

Streams: pure functions from one raw event to one output row. Record key = TRANSACTION_ID as plain UTF-8
(KAFKA key format), value = JSON object with upper-case column names, nulls written out.

Tables: `DerivedTables` keeps each aggregate per key. Like ksqlDB restoring its state stores, it starts
from the state the table topics already hold (latest value per key) and folds new events in; it then
emits the final value of every key changed since loading (what a ksqlDB table with record caching
emits). Keys as ksqlDB writes them with FORMAT='JSON': one key column -> the bare JSON value, several ->
a JSON object with upper-case names; the value holds the non-key columns only.

Distinct buyers cannot be continued from a count alone. Like ksqlDB's own
`..._Aggregate-Materialize-changelog` topics, the buyer sets live in an internal compacted topic,
BUYERS_STATE_TOPIC: one record per (product, buyer) pair, written once when the pair first appears,
key {"PRODUCT_ID": ..., "USER_ID": ...}, value {}. The state is published before the tables; a run
that fails half-way can leave the two disagreeing, and the next run then refuses to continue rather
than publish wrong distinct counts.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Generic, TypeVar

import orjson

from lakehouse.catalog import Feed, builtin_feeds
from lakehouse.errors import LakehouseError
from lakehouse.kafka.changelog import TableState, materialize_topic
from lakehouse.kafka.records import BadRecord
from lakehouse.produce.events import BLACKLISTED_CITIES, parse_timestamp, to_eur
from lakehouse.settings import Settings

FLATTENED = "transaction_flattened"
ANONYMIZED = "transaction_stream_anonymized"
BLACKLISTED = "transaction_stream_blacklisted"
STREAM_TOPICS = (FLATTENED, ANONYMIZED, BLACKLISTED)
BUYERS_STATE_TOPIC = "_lakehouse_derive_state_product_buyers"

_CENT = Decimal("0.01")
_AVERAGE_STEP = Decimal("0.0001")
Acc = TypeVar("Acc")  # the per-key accumulator of one aggregate


# ------------------------------------------------------------------ streams
def pseudonymize(user_id: str) -> str:
    """The one pseudonym of a user id everywhere: first 16 hex chars of sha256('lakehouse:' + user_id)."""
    return hashlib.sha256(f"lakehouse:{user_id}".encode()).hexdigest()[:16]


def flatten(event: dict) -> dict:
    """transaction_flattened: one column per nested field (product columns null when there is no product)."""
    user, product = event["user"], event.get("product") or {}
    return {
        "TRANSACTION_ID": event["transaction_id"],
        "TIMESTAMP": event["timestamp"],
        "USER_ID": user["user_id"],
        "USER_NAME": user["name"],
        "USER_EMAIL": user["email"],
        "USER_COUNTRY": user["country"],
        "USER_CITY": user["city"],
        "TRANSACTION_TYPE": event["transaction_type"],
        "STATUS": event["status"],
        "AMOUNT": event["amount"],
        "CURRENCY": event["currency"],
        "PAYMENT_METHOD": event["payment_method"],
        "PRODUCT_ID": product.get("product_id"),
        "PRODUCT_NAME": product.get("name"),
        "PRODUCT_CATEGORY": product.get("category"),
        "PRODUCT_UNIT_PRICE": product.get("unit_price"),
        "PRODUCT_QUANTITY": product.get("quantity"),
    }


def anonymize(event: dict) -> dict:
    """transaction_stream_anonymized: no name, no email, no raw user id; amount converted to EUR."""
    product = event.get("product") or {}
    return {
        "TRANSACTION_ID": event["transaction_id"],
        "TIMESTAMP": event["timestamp"],
        "USER_PSEUDONYM": pseudonymize(event["user"]["user_id"]),
        "USER_COUNTRY": event["user"]["country"],
        "TRANSACTION_TYPE": event["transaction_type"],
        "STATUS": event["status"],
        "AMOUNT_EUR": float(to_eur(event["amount"], event["currency"])),
        "PAYMENT_METHOD": event["payment_method"],
        "PRODUCT_ID": product.get("product_id"),
        "PRODUCT_QUANTITY": product.get("quantity"),
    }


def is_blacklisted(event: dict) -> bool:
    return event["user"]["city"] in BLACKLISTED_CITIES


def stream_rows(event: dict) -> list[tuple[str, dict]]:
    """(stream topic name, value row) for every derived stream the event appears in."""
    flat = flatten(event)
    rows = [(FLATTENED, flat), (ANONYMIZED, anonymize(event))]
    if is_blacklisted(event):
        rows.append((BLACKLISTED, flat))
    return rows


def stream_key(event: dict) -> bytes:
    return event["transaction_id"].encode()


# ------------------------------------------------------------------ table serialization
def table_key(key_columns: list[str], key: tuple) -> bytes:
    """A ksqlDB JSON table key: the bare value for one key column, else an object with upper-case names."""
    if len(key_columns) == 1:
        return orjson.dumps(key[0])
    return orjson.dumps({column.upper(): value for column, value in zip(key_columns, key, strict=True)})


def _decimal(number: object) -> Decimal:
    return Decimal(str(number))


def _money(value: Decimal) -> float:
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _average(total: Decimal, count: int) -> float:
    # As ksqlDB's ROUND(CAST(SUM(…) AS DOUBLE) / COUNT(*), 4) in ksql/03_tables.sql: the double quotient, rounded
    # half-up from its shortest decimal form (ROUND reads a double through BigDecimal.valueOf).
    return float(Decimal(repr(float(total) / count)).quantize(_AVERAGE_STEP, rounding=ROUND_HALF_UP))


def _latest(first: str, second: str) -> str:
    """The later of two ISO timestamps (parsed, so a differently formatted restored value still compares)."""
    return second if parse_timestamp(second) > parse_timestamp(first) else first


# ------------------------------------------------------------------ aggregates
@dataclass
class AmountStats:
    """Sum, count, min and max of amounts; exact (Decimal), so continuing from a table value loses nothing."""

    total: Decimal = Decimal(0)
    count: int = 0
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    @classmethod
    def restore(cls, total: object, count: object, minimum: object = None, maximum: object = None) -> AmountStats:
        return cls(_decimal(total), int(count),
                   None if minimum is None else _decimal(minimum), None if maximum is None else _decimal(maximum))

    def add(self, amount: Decimal) -> None:
        self.total += amount
        self.count += 1
        self.minimum = amount if self.minimum is None else min(self.minimum, amount)
        self.maximum = amount if self.maximum is None else max(self.maximum, amount)

    @property
    def average(self) -> float:
        return _average(self.total, self.count)


@dataclass
class UserSummary:
    user: dict
    stats: AmountStats
    last_at: str


@dataclass
class ProductCounts:
    name: str
    category: str
    purchases: int = 0
    quantity: int = 0
    revenue: Decimal = Decimal(0)
    buyers: set[str] = field(default_factory=set)


class Aggregate(ABC, Generic[Acc]):
    """One ksqlDB table: which key an event updates, how it folds in, how the value is written."""

    feed: str  # table name, also its topic name

    def __init__(self) -> None:
        self.key_columns = next(f.key_columns for f in builtin_feeds() if f.name == self.feed)

    @abstractmethod
    def key(self, event: dict) -> tuple | None:
        """The key the event updates, or None when the table does not count it."""

    @abstractmethod
    def restore(self, row: dict) -> Acc:
        """The accumulator behind a row read back from the table topic (snake_case names, key included)."""

    @abstractmethod
    def add(self, accumulator: Acc | None, event: dict) -> Acc:
        """Fold one event into the accumulator of its key (None for a new key); returns the accumulator."""

    @abstractmethod
    def value(self, accumulator: Acc) -> dict:
        """The table value (non-key columns, upper-case, in ksqlDB's projection order)."""


class UserTransactionSummary(Aggregate[UserSummary]):
    """Per user and transaction type, amounts as sent, latest user attributes, latest event time."""

    feed = "user_transaction_summary"

    def key(self, event: dict) -> tuple:
        return event["user"]["user_id"], event["transaction_type"]

    def restore(self, row: dict) -> UserSummary:
        user = {"name": row["user_name"], "email": row["user_email"], "country": row["user_country"],
                "city": row["user_city"]}
        stats = AmountStats.restore(row["total_amount"], row["transaction_count"], row["min_amount"],
                                    row["max_amount"])
        return UserSummary(user, stats, row["last_transaction_at"])

    def add(self, accumulator: UserSummary | None, event: dict) -> UserSummary:
        summary = accumulator or UserSummary(event["user"], AmountStats(), event["timestamp"])
        summary.user = event["user"]
        summary.stats.add(_decimal(event["amount"]))
        summary.last_at = _latest(summary.last_at, event["timestamp"])
        return summary

    def value(self, summary: UserSummary) -> dict:
        stats = summary.stats
        return {
            "USER_NAME": summary.user["name"], "USER_EMAIL": summary.user["email"],
            "USER_COUNTRY": summary.user["country"], "USER_CITY": summary.user["city"],
            "TOTAL_AMOUNT": _money(stats.total), "TRANSACTION_COUNT": stats.count, "AVG_AMOUNT": stats.average,
            "MIN_AMOUNT": _money(stats.minimum), "MAX_AMOUNT": _money(stats.maximum),
            "LAST_TRANSACTION_AT": summary.last_at,
        }


class UserTransactionSummaryEur(Aggregate[UserSummary]):
    """Per user and transaction type, each amount converted to EUR before aggregating."""

    feed = "user_transaction_summary_eur"

    def key(self, event: dict) -> tuple:
        return event["user"]["user_id"], event["transaction_type"]

    def restore(self, row: dict) -> UserSummary:
        stats = AmountStats.restore(row["total_amount_eur"], row["transaction_count"], row["min_amount_eur"],
                                    row["max_amount_eur"])
        return UserSummary({}, stats, row["last_transaction_at"])

    def add(self, accumulator: UserSummary | None, event: dict) -> UserSummary:
        summary = accumulator or UserSummary({}, AmountStats(), event["timestamp"])
        summary.stats.add(to_eur(event["amount"], event["currency"]))
        summary.last_at = _latest(summary.last_at, event["timestamp"])
        return summary

    def value(self, summary: UserSummary) -> dict:
        stats = summary.stats
        return {
            "TOTAL_AMOUNT_EUR": _money(stats.total), "TRANSACTION_COUNT": stats.count,
            "AVG_AMOUNT_EUR": stats.average, "MIN_AMOUNT_EUR": _money(stats.minimum),
            "MAX_AMOUNT_EUR": _money(stats.maximum),
            "LAST_TRANSACTION_AT": summary.last_at,
        }


class PaymentMethodTotals(Aggregate[AmountStats]):
    feed = "payment_method_totals"

    def key(self, event: dict) -> tuple:
        return (event["payment_method"],)

    def restore(self, row: dict) -> AmountStats:
        return AmountStats.restore(row["total_amount_eur"], row["transaction_count"])

    def add(self, accumulator: AmountStats | None, event: dict) -> AmountStats:
        stats = accumulator or AmountStats()
        stats.add(to_eur(event["amount"], event["currency"]))
        return stats

    def value(self, stats: AmountStats) -> dict:
        return {"TOTAL_AMOUNT_EUR": _money(stats.total), "TRANSACTION_COUNT": stats.count,
                "AVG_AMOUNT_EUR": stats.average}


class ProductPurchaseCounts(Aggregate[ProductCounts]):
    """Per product, purchases only; the distinct buyers come from (and go to) BUYERS_STATE_TOPIC."""

    feed = "product_purchase_counts"

    def __init__(self, buyers: dict[str, set[str]]) -> None:
        super().__init__()
        self.buyers = buyers  # product id -> buyer ids, as held by the state topic
        self.new_buyers: list[tuple[str, str]] = []  # (product id, user id) pairs seen first in this run

    def key(self, event: dict) -> tuple | None:
        if event["transaction_type"] != "purchase" or not event.get("product"):
            return None
        return (event["product"]["product_id"],)

    def restore(self, row: dict) -> ProductCounts:
        product_id = row["product_id"]
        buyers = self.buyers.get(product_id, set())
        if len(buyers) != row["unique_buyers"]:
            raise self.state_mismatch(product_id, len(buyers), row["unique_buyers"])
        return ProductCounts(row["product_name"], row["product_category"], int(row["purchase_count"]),
                             int(row["total_quantity"]), _decimal(row["total_revenue"]), set(buyers))

    def state_mismatch(self, product_id: str, state_buyers: int, table_buyers: int) -> LakehouseError:
        return LakehouseError(
            f"{BUYERS_STATE_TOPIC} holds {state_buyers} buyer(s) of {product_id} but {self.feed} says "
            f"{table_buyers}; the derive state was lost or a run failed half-way, so the distinct buyers "
            "cannot be continued (recreate the derived topics and produce again)")

    def add(self, accumulator: ProductCounts | None, event: dict) -> ProductCounts:
        product = event["product"]
        counts = accumulator or ProductCounts(product["name"], product["category"])
        counts.name, counts.category = product["name"], product["category"]
        counts.purchases += 1
        counts.quantity += product["quantity"]
        counts.revenue += _decimal(event["amount"])
        buyer = event["user"]["user_id"]
        if buyer not in counts.buyers:
            counts.buyers.add(buyer)
            self.new_buyers.append((product["product_id"], buyer))
        return counts

    def value(self, counts: ProductCounts) -> dict:
        return {
            "PRODUCT_NAME": counts.name, "PRODUCT_CATEGORY": counts.category,
            "PURCHASE_COUNT": counts.purchases, "TOTAL_QUANTITY": counts.quantity,
            "TOTAL_REVENUE": _money(counts.revenue), "AVG_PRICE": _average(counts.revenue, counts.quantity),
            "UNIQUE_BUYERS": len(counts.buyers),
        }


TABLE_TOPICS = (UserTransactionSummary.feed, UserTransactionSummaryEur.feed, PaymentMethodTotals.feed,
                ProductPurchaseCounts.feed)
_BUYERS_STATE_KEYS = ["product_id", "user_id"]


class DerivedTables:
    """The four tables: restored from their topics, updated event by event, emitted as changelog records."""

    def __init__(self, buyers: dict[str, set[str]]) -> None:
        self.products = ProductPurchaseCounts(buyers)
        self.aggregates: list[Aggregate] = [UserTransactionSummary(), UserTransactionSummaryEur(),
                                            PaymentMethodTotals(), self.products]
        self.states: dict[str, dict[tuple, object]] = {aggregate.feed: {} for aggregate in self.aggregates}
        self.changed: dict[str, set[tuple]] = {aggregate.feed: set() for aggregate in self.aggregates}

    @classmethod
    def load(cls, settings: Settings) -> DerivedTables:
        """Continue from what the table topics and the buyer state topic hold now (the topics must exist)."""
        buyers: dict[str, set[str]] = {}
        for product_id, user_id in _read_table(settings, _buyers_state_feed()).by_key:
            buyers.setdefault(product_id, set()).add(user_id)
        tables = cls(buyers)
        feeds = {feed.name: feed for feed in builtin_feeds()}
        for aggregate in tables.aggregates:
            rows = _read_table(settings, feeds[aggregate.feed]).by_key
            tables.states[aggregate.feed] = {key: aggregate.restore(row) for key, row in rows.items()}
        unknown = sorted(set(buyers) - {product_id for (product_id,) in tables.states[ProductPurchaseCounts.feed]})
        if unknown:  # buyers of a product the table never counted
            raise tables.products.state_mismatch(unknown[0], len(buyers[unknown[0]]), 0)
        return tables

    def fold(self, event: dict) -> None:
        for aggregate in self.aggregates:
            key = aggregate.key(event)
            if key is None:
                continue
            state = self.states[aggregate.feed]
            state[key] = aggregate.add(state.get(key), event)
            self.changed[aggregate.feed].add(key)

    def state_records(self) -> Iterator[tuple[str, bytes, bytes]]:
        """(topic name, key, value) of the buyer pairs first seen since loading; publish before the tables."""
        for pair in self.products.new_buyers:
            yield BUYERS_STATE_TOPIC, table_key(_BUYERS_STATE_KEYS, pair), b"{}"

    def changelog_records(self) -> Iterator[tuple[str, bytes, bytes]]:
        """(topic name, key, value): the final value of every key changed since loading, in key order."""
        for aggregate in self.aggregates:
            state = self.states[aggregate.feed]
            for key in sorted(self.changed[aggregate.feed]):
                value = aggregate.value(state[key])
                yield aggregate.feed, table_key(aggregate.key_columns, key), orjson.dumps(value)


def _buyers_state_feed() -> Feed:
    return Feed(name=BUYERS_STATE_TOPIC, kind="table", topic=BUYERS_STATE_TOPIC, key_columns=_BUYERS_STATE_KEYS)


def _read_table(settings: Settings, feed: Feed) -> TableState:
    try:
        return materialize_topic(settings, feed)
    except BadRecord as exc:
        raise LakehouseError(
            f"topic {settings.topic(feed.topic)} holds a record ksqlDB could not have written ({exc}); "
            "cannot continue its aggregate") from None
