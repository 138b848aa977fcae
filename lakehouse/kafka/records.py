"""Decoding Kafka records into rows, with a precise reason when a record is bad.

Shared by the lake consumer, the warehouse consumer, export and sync: all of them read the same
JSON values (ksqlDB writes upper-case column names and puts key columns in the record key).
"""

from __future__ import annotations

import re

import orjson

MAX_VALUE_BYTES = 1_048_576  # larger values are quarantined, not landed


class BadRecord(Exception):
    """A record that cannot be landed; its message is the quarantine reason."""


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """ksqlDB and producer column names -> lower-case snake_case (USER_ID, userId, 'user id' -> user_id)."""
    if not name.isupper():
        name = _CAMEL.sub("_", name)
    return _NON_WORD.sub("_", name).strip("_").lower()


def normalize_columns(row: dict) -> dict:
    """Top-level column names to snake_case; nested structs keep their own field names.

    Two names that become one column (userId, user_id, USER-ID) or a name with nothing left (é) would lose a
    value: the record is bad, its reason names the spellings. (Numbering the second one would make a column's
    name depend on which other names the batch holds.)
    """
    normalized = {}
    for key, value in row.items():
        name = snake_case(key)
        if not name:
            raise BadRecord(f"column name {key!r} has no letter or digit (A-Z, a-z, 0-9) to name a column")
        if name in normalized:
            first = next(other for other in row if snake_case(other) == name)
            raise BadRecord(f"column names {first!r} and {key!r} both become column {name!r}")
        normalized[name] = value
    return normalized


def decode_json(raw: bytes | None, what: str = "value") -> object:
    if raw is None:
        raise BadRecord(f"null {what}")
    if len(raw) > MAX_VALUE_BYTES:
        raise BadRecord(f"oversized {what}: {len(raw)} bytes > {MAX_VALUE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"{what} is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"{what} is not valid JSON: {exc}") from None


def decode_object(raw: bytes | None) -> dict:
    """A record value that must be a JSON object; column names normalized."""
    value = decode_json(raw)
    if not isinstance(value, dict):
        raise BadRecord(f"value is a JSON {type(value).__name__}, not an object")
    return normalize_columns(value)


def decode_table_key(raw: bytes | None, key_columns: list[str]) -> dict:
    """A ksqlDB table key: a JSON object of key columns, or (single key column) a bare JSON value or string."""
    if raw is None:
        raise BadRecord("table record has no key")
    if len(key_columns) == 1:
        try:
            value = decode_json(raw, "key")
        except BadRecord:
            value = raw.decode("utf-8", errors="strict") if _is_utf8(raw) else None
            if value is None:
                raise BadRecord("key is not valid UTF-8") from None
        if isinstance(value, dict):
            return _key_from_object(normalize_columns(value), key_columns)
        if value is None or isinstance(value, list):
            raise BadRecord(f"key must be a single value for column {key_columns[0]}")
        return {key_columns[0]: value}
    value = decode_json(raw, "key")
    if not isinstance(value, dict):
        raise BadRecord(f"key must be a JSON object with columns {', '.join(key_columns)}")
    return _key_from_object(normalize_columns(value), key_columns)


def decode_table_record(raw_key: bytes | None, raw_value: bytes | None,
                        key_columns: list[str]) -> tuple[tuple, dict | None]:
    """(key tuple, full row with key columns) for an upsert, or (key tuple, None) for a tombstone."""
    key = decode_table_key(raw_key, key_columns)
    key_tuple = tuple(key[column] for column in key_columns)
    if raw_value is None:
        return key_tuple, None
    row = decode_object(raw_value)
    row.update(key)
    return key_tuple, row


def _key_from_object(key: dict, key_columns: list[str]) -> dict:
    missing = [column for column in key_columns if key.get(column) is None]
    if missing:
        raise BadRecord(f"key is missing column(s): {', '.join(missing)}")
    return {column: key[column] for column in key_columns}


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
