"""The raw transaction event contract and a deterministic generator for it.

Same seed, start and options -> byte-identical events (timestamps included): every random choice
comes from one seeded generator, and serialization has a fixed key order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import orjson

TRANSACTION_TYPES = ("purchase", "refund", "transfer", "withdrawal", "deposit")
STATUSES = ("completed", "pending", "failed")
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
PAYMENT_METHODS = ("credit_card", "debit_card", "paypal", "bank_transfer", "apple_pay", "google_pay")
PRODUCT_TYPES = ("purchase", "refund")  # transaction types that carry a product

# Fixed conversion rates to EUR (what the anonymized stream and the *_eur tables use).
EUR_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1.0"),
    "USD": Decimal("0.92"),
    "GBP": Decimal("1.17"),
    "CHF": Decimal("1.05"),
    "JPY": Decimal("0.0062"),
}
# Cities whose events go to transaction_stream_blacklisted.
BLACKLISTED_CITIES = ("Pyongyang", "Tehran", "Damascus")

_CITIES = (
    ("DE", "Berlin"), ("DE", "Munich"), ("FR", "Paris"), ("FR", "Lyon"), ("GB", "London"),
    ("GB", "Manchester"), ("US", "New York"), ("US", "Chicago"), ("CH", "Zurich"), ("CH", "Geneva"),
    ("JP", "Tokyo"), ("ES", "Madrid"), ("IT", "Milan"), ("NL", "Amsterdam"), ("KP", "Pyongyang"),
    ("IR", "Tehran"), ("SY", "Damascus"),
)
_FIRST = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
          "Radia", "Tim", "Hedy", "John", "Katherine", "Niklaus")
_LAST = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
         "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Johnson", "Wirth")
_CATEGORIES = ("electronics", "books", "groceries", "fashion", "home", "sports", "toys", "beauty")
_PRODUCT_COUNT = 50
_CENT = Decimal("0.01")
_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class GeneratorOptions:
    messages: int = 1000
    seed: int = 42
    users: int = 100
    days: int = 1
    start: date | None = None  # default: `days` days before today, UTC midnight


def default_start(days: int, today: date | None = None) -> date:
    return (today or datetime.now(UTC).date()) - timedelta(days=days)


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_eur(amount: Decimal | float | str, currency: str) -> Decimal:
    return (Decimal(str(amount)) * EUR_RATES[currency]).quantize(_CENT, rounding=ROUND_HALF_UP)


def _money(value: float) -> float:
    return float(Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP))


def _users(rng: random.Random, count: int) -> list[dict]:
    users = []
    for index in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        country, city = rng.choice(_CITIES)
        users.append({
            "user_id": f"user_{index:05d}",
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{index}@example.com",
            "country": country,
            "city": city,
        })
    return users


def _products(rng: random.Random) -> list[dict]:
    products = []
    for index in range(1, _PRODUCT_COUNT + 1):
        category = rng.choice(_CATEGORIES)
        products.append({
            "product_id": f"prod_{index:04d}",
            "name": f"{category.title()} item {index}",
            "category": category,
            "unit_price": _money(rng.uniform(2, 500)),
        })
    return products


def generate_events(options: GeneratorOptions) -> Iterator[dict]:
    """Yield `options.messages` raw events, spread uniformly at random over `options.days` days."""
    rng = random.Random(options.seed)
    users = _users(rng, max(1, options.users))
    products = _products(rng)
    start = datetime.combine(options.start or default_start(options.days), datetime.min.time(), UTC)
    start_ms = int(start.timestamp() * 1000)
    span_ms = max(1, options.days) * 86_400_000
    day_prefix: dict[int, str] = {}
    random_float, random_bits = rng.random, rng.getrandbits  # hot loop: plain indexing beats rng.choice
    for _ in range(options.messages):
        moment_ms = start_ms + int(random_float() * span_ms)
        transaction_type = TRANSACTION_TYPES[int(random_float() * len(TRANSACTION_TYPES))]
        product = None
        if transaction_type in PRODUCT_TYPES:
            item = products[int(random_float() * len(products))]
            quantity = 1 + int(random_float() * 5)
            product = {**item, "quantity": quantity}
            amount = round(item["unit_price"] * quantity, 2)
        else:
            amount = round(1 + random_float() * 1999, 2)
        yield {
            "transaction_id": _uuid4(random_bits(128)),
            "timestamp": _format_epoch_ms(moment_ms, day_prefix),
            "user": dict(users[int(random_float() * len(users))]),
            "transaction_type": transaction_type,
            "status": STATUSES[int(random_float() * len(STATUSES))],
            "amount": max(amount, 0.01),
            "currency": CURRENCIES[int(random_float() * len(CURRENCIES))],
            "payment_method": PAYMENT_METHODS[int(random_float() * len(PAYMENT_METHODS))],
            "product": product,
        }


def _uuid4(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (what uuid.UUID(int=..., version=4) gives, faster)."""
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _format_epoch_ms(epoch_ms: int, day_prefix: dict[int, str]) -> str:
    """ISO-8601 UTC with milliseconds (2026-11-26T14:03:07.123Z), the date part cached per day (hot loop)."""
    day, ms_of_day = divmod(epoch_ms, 86_400_000)
    prefix = day_prefix.get(day)
    if prefix is None:
        prefix = day_prefix[day] = (_EPOCH_DAY + timedelta(days=day)).strftime("%Y-%m-%dT")
    seconds, millis = divmod(ms_of_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def serialize(event: dict) -> bytes:
    return orjson.dumps(event)
