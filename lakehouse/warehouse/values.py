"""Validating converters: a JSON / Arrow value -> the exact text MySQL stores, or BadRecord with the reason.

The bulk path loads text, so every value is checked and normalized here (money rounded half-up to
the column's scale, timestamps to 'YYYY-MM-DD HH:MM:SS.fff' UTC) before the server sees it; a value
that does not fit is a bad record with a precise reason, never a silently mangled row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from lakehouse.events import parse_timestamp
from lakehouse.records import BadRecord

Converter = Callable[[str, object], "str | None"]

MONEY_DIGITS = 16  # DECIMAL(18, 2) and DECIMAL(20, 4) both hold 16 integer digits
BIGINT_MAX = 2**63 - 1
_MONEY_LIMIT = 10.0**MONEY_DIGITS
_ISO_MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")  # what ksqlDB and the producer write


def identifier(size: int) -> Converter:
    """A required business key: text (or an integer) of at most `size` characters."""
    def convert(column: str, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise BadRecord(f"{column}: {_show(value)} is not a valid key value")
        text_value = str(value)
        if not text_value or len(text_value) > size:
            raise BadRecord(f"{column}: key must be 1 to {size} characters, got {len(text_value)}")
        return text_value
    return convert


def text(size: int) -> Converter:
    """An optional attribute of at most `size` characters."""
    def convert(column: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise BadRecord(f"{column}: expected text, got a JSON {type(value).__name__}")
        text_value = value if isinstance(value, str) else str(value)
        if len(text_value) > size:
            raise BadRecord(f"{column}: text longer than {size} characters ({len(text_value)})")
        return text_value
    return convert


def money(places: int) -> Converter:
    """An optional DECIMAL: a JSON number (or numeric string) rounded half-up to `places` decimals."""
    quantum = Decimal(1).scaleb(-places)

    def convert(column: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, float) and abs(value) < _MONEY_LIMIT:
            shortest = repr(value)  # fast path: ksqlDB already rounds, so most values fit as they are
            if "e" not in shortest and len(shortest) - shortest.find(".") - 1 <= places:
                return shortest
        number = _decimal(column, value)
        if abs(number) >= Decimal(10) ** MONEY_DIGITS:
            raise BadRecord(f"{column}: {_show(value)} is too large for the money column")
        return str(number.quantize(quantum, rounding=ROUND_HALF_UP))
    return convert


def count(column: str, value: object) -> str | None:
    """An optional whole number (BIGINT)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        decimal_value = _decimal(column, value)
        if decimal_value != decimal_value.to_integral_value():
            raise BadRecord(f"{column}: {_show(value)} is not a whole number")
        number = int(decimal_value)
    if abs(number) > BIGINT_MAX:
        raise BadRecord(f"{column}: {number} is out of the BIGINT range")
    return str(number)


def timestamp(column: str, value: object) -> str | None:
    """An optional UTC instant: ISO-8601 text, epoch milliseconds or a datetime -> DATETIME(3) text."""
    if value is None:
        return None
    if isinstance(value, str) and _ISO_MILLIS.fullmatch(value):
        return f"{value[:10]} {value[11:23]}"
    try:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, int) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value / 1000, UTC)
        elif isinstance(value, str):
            moment = parse_timestamp(value)
        else:
            raise ValueError("not a timestamp")
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRecord(f"{column}: {_show(value)} is not a timestamp") from None
    if not 1000 <= moment.year <= 9999:
        raise BadRecord(f"{column}: {_show(value)} is outside the DATETIME range")
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _decimal(column: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise BadRecord(f"{column}: {_show(value)} is not a number")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise BadRecord(f"{column}: {_show(value)} is not a number") from None
    if not number.is_finite():
        raise BadRecord(f"{column}: {_show(value)} is not a finite number")
    return number


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
