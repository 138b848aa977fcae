"""Validating converters of warehouse values (lakehouse.warehouse.values): the exact text MySQL gets, or the reason.

The ISO shape with milliseconds and impossible dates in that shape are in tests/test_warehouse_pure.py; here are
the other inputs, and the agreement of the column form with the one-value form.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from lakehouse.kafka.records import BadRecord
from lakehouse.warehouse import values
from lakehouse.warehouse.values import count, identifier, money, text, timestamp


def outcome(converter, value: object) -> str | None:
    """The one-value result, or 'BAD: reason'."""
    try:
        return converter("col", value)
    except BadRecord as exc:
        return f"BAD: {exc}"


# ---------------------------------------------------------------- Timestamp
@pytest.mark.parametrize(("value", "stored"), [
    ("2026-09-07T12:00:00+02:00", "2026-09-07 10:00:00.000"),
    ("2026-09-07T01:30:00.5-05:00", "2026-09-07 06:30:00.500"),
    ("2026-09-07T10:00:00", "2026-09-07 10:00:00.000"),  # naive: UTC
    ("2026-12-31T23:30:00-01:00", "2027-01-01 00:30:00.000"),  # crosses the year in UTC
    ("2026-09-07T10:00:00.1239Z", "2026-09-07 10:00:00.123"),  # truncated to milliseconds, not rounded
    (1_788_775_200_123, "2026-09-07 10:00:00.123"),
    (0, "1970-01-01 00:00:00.000"),
    (datetime(2028, 2, 29, 23, 59, 59, 999_999), "2028-02-29 23:59:59.999"),
    (datetime(2026, 9, 7, 12, tzinfo=timezone(timedelta(hours=2))), "2026-09-07 10:00:00.000"),
    (None, None),
])
def test_timestamps_are_stored_as_utc_datetime3_text(value: object, stored: str | None) -> None:
    assert timestamp("at", value) == stored


@pytest.mark.parametrize(("value", "reason"), [
    ("2026-02-30T10:00:00Z", "at: '2026-02-30T10:00:00Z' is not a timestamp"),
    ("2026-13-45T10:00:00+01:00", "at: '2026-13-45T10:00:00+01:00' is not a timestamp"),
    ("2026-01-01T24:00:00", "at: '2026-01-01T24:00:00' is not a timestamp"),
    ("2027-02-29T00:00:00Z", "at: '2027-02-29T00:00:00Z' is not a timestamp"),
    ("yesterday", "at: 'yesterday' is not a timestamp"),
    (True, "at: True is not a timestamp"),
    (1.5, "at: 1.5 is not a timestamp"),
    (10**20, "at: 100000000000000000000 is not a timestamp"),
    ("0999-12-31T23:59:59+00:00", "at: '0999-12-31T23:59:59+00:00' is outside the DATETIME range"),
])
def test_a_value_that_is_no_real_instant_is_a_bad_record_with_its_reason(value: object, reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        timestamp("at", value)
    assert str(refused.value) == reason


# ---------------------------------------------------------------- Money, Count, Identifier, Text
@pytest.mark.parametrize(("places", "value", "stored"), [
    (2, 1.005, "1.01"),  # the decimal the JSON number reads as, rounded half-up
    (2, 2.675, "2.68"),
    (2, -1.005, "-1.01"),
    (2, 10, "10.00"),
    (2, "3.14159", "3.14"),
    (2, " 7.5 ", "7.50"),
    (2, "1e3", "1000.00"),
    (2, Decimal("0.125"), "0.13"),
    (4, 15.00005, "15.0001"),
    (2, 12.5, "12.5"),  # already within the scale: sent as it is
    (2, None, None),
])
def test_money_is_rounded_half_up_to_the_columns_scale(places: int, value: object, stored: str | None) -> None:
    assert money(18, places)("amt", value) == stored


@pytest.mark.parametrize(("value", "reason"), [
    ("abc", "amt: 'abc' is not a number"),
    (True, "amt: True is not a number"),
    ([1], "amt: [1] is not a number"),
    (float("nan"), "amt: nan is not a finite number"),
    ("Infinity", "amt: 'Infinity' is not a finite number"),
    (1e16, "amt: 1e+16 is too large for the money column"),
    ("-10000000000000000", "amt: '-10000000000000000' is too large for the money column"),
])
def test_money_that_is_no_finite_number_in_range_is_refused(value: object, reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        money(18, 2)("amt", value)
    assert str(refused.value) == reason


@pytest.mark.parametrize(("value", "stored"), [
    (5, "5"), (5.0, "5"), ("12", "12"), (1e3, "1000"), (-(2**63) + 1, "-9223372036854775807"),
    (2**63 - 1, "9223372036854775807"), (None, None),
])
def test_counts_are_whole_numbers_within_bigint(value: object, stored: str | None) -> None:
    assert count("n", value) == stored


@pytest.mark.parametrize(("value", "reason"), [
    (2**63, "n: 9223372036854775808 is out of the BIGINT range"),
    (True, "n: True is not a number"),
    ("x", "n: 'x' is not a number"),
    (2.5, "n: 2.5 is not a whole number"),
    ("1.5", "n: '1.5' is not a whole number"),
])
def test_a_count_that_is_not_a_bigint_is_refused(value: object, reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        count("n", value)
    assert str(refused.value) == reason


@pytest.mark.parametrize(("value", "result"), [
    ("abc", "abc"), (7, "7"), ("", "BAD: id: key must be 1 to 5 characters, got 0"),
    ("abcdef", "BAD: id: key must be 1 to 5 characters, got 6"), (True, "BAD: id: True is not a valid key value"),
    (None, "BAD: id: None is not a valid key value"), (1.5, "BAD: id: 1.5 is not a valid key value"),
])
def test_identifiers_are_required_short_text_or_integers(value: object, result: str) -> None:
    assert outcome(lambda column, v: identifier(5)("id", v), value) == result


@pytest.mark.parametrize(("value", "result"), [
    ("abc", "abc"), (12, "12"), (None, None), ("abcd", "BAD: name: text longer than 3 characters (4)"),
    ({"a": 1}, "BAD: name: expected text, got a JSON dict"), ([1], "BAD: name: expected text, got a JSON list"),
])
def test_text_is_optional_and_bounded(value: object, result: str | None) -> None:
    assert outcome(lambda column, v: text(3)("name", v), value) == result


# ---------------------------------------------------------------- the column form agrees with the one-value form
COLUMNS = [
    (timestamp, pa.array(["2026-09-07T10:00:00.000Z", None, "2026-09-07T10:00:00Z", "0999-01-01T00:00:00.000Z",
                          "2024-02-29T23:59:59.999Z"])),
    (money(18, 2), pa.array([1.5, 1.005, None, 2.0, -0.0, 1e20, 0.1, 123456.78])),
    (money(20, 4), pa.array([15.00005, 2.5, None])),
    (count, pa.array([1, None, -(2**63), 2**63 - 1, 0], pa.int64())),
    (identifier(5), pa.array(["abc", "", "abcdef", None, "ab"])),
    (identifier(5), pa.array([12, None, 123456], pa.int64())),
    (text(3), pa.array(["abc", "abcd", None, "é€x", "é€xy"])),
    (text(3), pa.nulls(3)),
]


@pytest.mark.parametrize(("converter", "column"), COLUMNS)
def test_the_column_form_decides_only_values_it_converts_exactly_as_the_one_value_form(converter, column) -> None:
    converted, unsure = converter.column(column)
    assert len(converted) == len(unsure) == len(column)
    decided = 0
    for value, result, needs_one_value_form in zip(column.to_pylist(), converted.to_pylist(), unsure, strict=True):
        if not needs_one_value_form:
            decided += 1
            single = outcome(converter, value)
            if isinstance(converter, values.Money) and result is not None:
                # the same DECIMAL: '2.5000' from the column form, '2.5' from the one-value form's fast path
                assert Decimal(result) == Decimal(single), f"column form disagrees on {value!r}"
                assert Decimal(result).as_tuple().exponent == -converter.places
            else:
                assert result == single, f"column form disagrees on {value!r}"
    assert decided > 0, "the column form decided nothing: the test checks nothing"


def test_the_column_form_leaves_to_the_one_value_form_exactly_the_values_that_need_it() -> None:
    _text, unsure = money(18, 2).column(pa.array([1.5, 1.005, None, -0.0, 1e20]))
    assert unsure.tolist() == [False, True, False, True, True]
    _text, unsure = identifier(5).column(pa.array(["abc", None]))
    assert unsure.tolist() == [False, True], "a NULL key is an error only the one-value form reports"
    _text, unsure = count.column(pa.array([1.0, 2.0]))
    assert unsure.tolist() == [True, True], "floats are not decided by the column form of a count"


def test_the_datetime_range_starts_at_year_1000_in_both_forms() -> None:
    converted, unsure = timestamp.column(pa.array(["1000-01-01T00:00:00.000Z", "0999-12-31T23:59:59.999Z"]))
    assert converted.to_pylist()[0] == "1000-01-01 00:00:00.000" and unsure.tolist() == [False, True]
    assert timestamp("at", "1000-01-01T00:00:00.000Z") == "1000-01-01 00:00:00.000"
