"""Validating converters: a JSON / Arrow value -> the exact text MySQL stores, or BadRecord with the reason.

The bulk path loads text, so every value is checked and normalized here (money rounded half-up to
the column's scale, timestamps to 'YYYY-MM-DD HH:MM:SS.fff' UTC) before the server sees it; a value
that does not fit is a bad record with a precise reason, never a silently mangled row.

Every converter works on one value (`converter(column, value)`) and on a whole Arrow column
(`converter.column(values)`). The column form only decides the common, provably equivalent cases
(text within its size, a float that already has the column's decimals, ISO timestamps as ksqlDB writes
them ...) and marks every other value `unsure`: those rows go through the one-value form, so a batch
gets exactly the outcomes (values and reasons) of converting its rows one by one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.kafka.records import BadRecord
from lakehouse.produce.events import parse_timestamp

BIGINT_MAX = 2**63 - 1
# Column form of money: a float whose scaled value is below this has exactly one decimal with the column's
# places that reads back as that float (its spacing is far below 10^-places), so that decimal is the value.
_EXACT_SCALED_LIMIT = 2.0**49
_ISO_MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")  # what ksqlDB and the producer write
# The same shape in RE2, which reads \d as ASCII only: a subset of Python's \d, so a match is also a fast-path match.
_ISO_MILLIS_RE2 = r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}\.\d{3})Z$"

Column = tuple[pa.Array, np.ndarray]  # (text, null = NULL or unsure; unsure: a numpy bool mask)


class Converter:
    """One column's rule; subclasses give the one-value form and, where it pays, a column form."""

    optional = True  # NULL is a valid value

    def __call__(self, column: str, value: object) -> str | None:
        raise NotImplementedError

    def column(self, values: pa.Array) -> Column:
        """Text for the values this form can decide, `unsure` where the one-value form must decide."""
        if pa.types.is_null(values.type) and self.optional:
            return values.cast(pa.string()), np.zeros(len(values), dtype=bool)
        return pa.nulls(len(values), pa.string()), np.ones(len(values), dtype=bool)


def _decided(text: pa.Array, ok: pa.Array | np.ndarray, values: pa.Array) -> Column:
    """Keep `text` where `ok`; NULL inputs are decided (NULL), other inputs without `ok` are unsure."""
    ok_mask = ok if isinstance(ok, np.ndarray) else pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    present = values.is_valid().to_numpy(zero_copy_only=False)
    return pc.if_else(pa.array(ok_mask), text, pa.scalar(None, pa.string())), present & ~ok_mask


class Identifier(Converter):
    """A required business key: text (or an integer) of at most `size` characters."""

    optional = False

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, column: str, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise BadRecord(f"{column}: {_show(value)} is not a valid key value")
        text_value = str(value)
        if not text_value or len(text_value) > self.size:
            raise BadRecord(f"{column}: key must be 1 to {self.size} characters, got {len(text_value)}")
        return text_value

    def column(self, values: pa.Array) -> Column:
        if pa.types.is_integer(values.type):
            values = values.cast(pa.string())  # str(int) and Arrow's integer text are the same digits
        if not pa.types.is_string(values.type):
            return super().column(values)
        length = pc.utf8_length(values)
        text, unsure = _decided(values, pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, self.size)),
                                values)
        return text, unsure | ~values.is_valid().to_numpy(zero_copy_only=False)  # a NULL key is an error


class Text(Converter):
    """An optional attribute of at most `size` characters."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, column: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise BadRecord(f"{column}: expected text, got a JSON {type(value).__name__}")
        text_value = value if isinstance(value, str) else str(value)
        if len(text_value) > self.size:
            raise BadRecord(f"{column}: text longer than {self.size} characters ({len(text_value)})")
        return text_value

    def column(self, values: pa.Array) -> Column:
        if not pa.types.is_string(values.type):
            return super().column(values)
        return _decided(values, pc.less_equal(pc.utf8_length(values), self.size), values)


class Money(Converter):
    """An optional DECIMAL(precision, places): a JSON number (or numeric string) rounded half-up to `places`
    decimals, refused when its integer part does not fit."""

    def __init__(self, precision: int, places: int) -> None:
        self.places = places
        self.quantum = Decimal(1).scaleb(-places)
        self.limit = 10 ** (precision - places)  # an int: compares exactly with floats (NaN too) and Decimals

    def __call__(self, column: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, float) and abs(value) < self.limit:
            shortest = repr(value)  # fast path: ksqlDB already rounds, so most values fit as they are
            if "e" not in shortest and len(shortest) - shortest.find(".") - 1 <= self.places:
                return shortest
        number = _decimal(column, value)
        if abs(number) >= self.limit:
            raise BadRecord(f"{column}: {_show(value)} is too large for the money column")
        return str(number.quantize(self.quantum, rounding=ROUND_HALF_UP))

    def column(self, values: pa.Array) -> Column:
        """Floats that already have at most `places` decimals (what ksqlDB sends); the rest is unsure."""
        if not pa.types.is_float64(values.type):
            return super().column(values)
        number = values.to_numpy(zero_copy_only=False)  # NULL -> NaN, never `ok`
        factor = 10.0**self.places
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(number * factor)
            # n / 10^places == x exactly means the decimal n·10^-places reads back as x: it is the value.
            ok = (np.abs(scaled) < _EXACT_SCALED_LIMIT) & (scaled / factor == number)
        ok &= ~((number == 0) & np.signbit(number))  # -0.0: let the one-value form say what it says
        units = np.where(ok, scaled, 0).astype(np.int64)
        words = np.empty((len(units), 2), dtype=np.int64)  # decimal128: little-endian two's complement
        words[:, 0], words[:, 1] = units, units >> 63
        decimals = pa.Array.from_buffers(pa.decimal128(38, self.places), len(units), [None, pa.py_buffer(words)])
        return _decided(decimals.cast(pa.string()), ok, values)


class Count(Converter):
    """An optional whole number (BIGINT)."""

    def __call__(self, column: str, value: object) -> str | None:
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

    def column(self, values: pa.Array) -> Column:
        if not (pa.types.is_signed_integer(values.type) or values.type in (pa.uint8(), pa.uint16(), pa.uint32())):
            return super().column(values)
        numbers = values.cast(pa.int64())
        return _decided(numbers.cast(pa.string()), pc.not_equal(numbers, -BIGINT_MAX - 1), values)


class Timestamp(Converter):
    """An optional UTC instant: ISO-8601 text, epoch milliseconds or a datetime -> DATETIME(3) text."""

    def __call__(self, column: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and _ISO_MILLIS.fullmatch(value) and _is_datetime(value[:19]):
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

    def column(self, values: pa.Array) -> Column:
        if not pa.types.is_string(values.type):
            return super().column(values)
        # The shape says nothing about the values ('2026-13-45T99:99:99.000Z'). Arrow's ISO parser checks the
        # calendar (02-30, 24:00 fail) but fails the whole cast: then every value goes to the one-value form,
        # which says which ones do not fit and why. Years before 1000 are outside DATETIME.
        shaped = pc.match_substring_regex(values, _ISO_MILLIS_RE2)
        wall = pc.utf8_slice_codeunits(values, 0, 19)
        try:
            pc.cast(pc.if_else(shaped, wall, pa.scalar(None, pa.string())), pa.timestamp("s"))
        except pa.ArrowInvalid:
            return super().column(values)
        ok = pc.and_(shaped, pc.greater_equal(wall, "1000"))
        return _decided(pc.replace_substring_regex(values, _ISO_MILLIS_RE2, r"\1 \2"), ok, values)


def identifier(size: int) -> Converter:
    return Identifier(size)


def text(size: int) -> Converter:
    return Text(size)


def money(precision: int, places: int) -> Converter:
    return Money(precision, places)


count = Count()
timestamp = Timestamp()


def _is_datetime(wall: str) -> bool:
    """True when 'YYYY-MM-DDTHH:MM:SS' is a date and time DATETIME holds (a real day and time, year 1000 on)."""
    try:
        return datetime.fromisoformat(wall).year >= 1000
    except ValueError:
        return False


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
