"""Decoding one stream feed: Kafka values -> Arrow rows, and the bad ones with their reason.

Values are decoded in bulk (pyarrow's JSON reader, with the feed's fixed schema); a batch the bulk reader cannot
take as it is (a bad record, a new field) is split and decoded record by record, which quarantines the bad ones
with their reason and evolves the schema (stored in the feed's metadata, with its history).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from lakehouse.catalog import Feed
from lakehouse.kafka import clients
from lakehouse.kafka.records import MAX_VALUE_BYTES, BadRecord, decode_object, snake_case
from lakehouse.lake import lineage
from lakehouse.lake import schema as lake_schema
from lakehouse.lake.metadata import FeedMetadata, utc_now_iso
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

_JSON_BLOCK = 1 << 20  # bulk JSON parse block; a record larger than half of it goes record by record
_RECORD_BY_RECORD = 256  # records: a rejected batch is split down to this size before going record by record
# Epoch milliseconds that have a calendar date (Python's years 1 to 9999): the event day of any other is undefined.
_FIRST_DATED_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_END_DATED_MS = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000) + 86_400_000


class FeedDecoder:
    """Kafka values of one stream feed -> Arrow rows, plus the bad ones with their reason."""

    def __init__(self, feed: Feed, metadata: FeedMetadata) -> None:
        self.feed = feed
        self.metadata = metadata
        self.required = lake_schema.required_fields(feed)
        self.schema: lake_schema.Schema = lake_schema.schema_from_json(metadata.read().get("schema", []))
        # column -> the producer's spelling (USER_ID, userId); a stored schema starts with its own names,
        # the first batch corrects them if the bulk reader finds other spellings
        self.source_names: dict[str, str] = {name: name for name in self.schema}

    @property
    def arrow_schema(self) -> pa.Schema:
        return lake_schema.to_arrow(self.schema)

    def decode(self, values: list[bytes | None]) -> tuple[pa.Table, list[int] | None, dict[int, str]]:
        """(good rows, their indexes in `values` or None when all are good, index -> reason of bad ones)."""
        return self._without_dateless_events(*self._decode_split(values))

    def _decode_split(self, values: list[bytes | None]) -> tuple[pa.Table, list[int] | None, dict[int, str]]:
        """A batch the bulk reader rejects is split in halves, down to small chunks decoded record by record:
        a bad record or a new field costs a few bulk attempts, not a whole batch in Python."""
        table = self._decode_bulk(values)
        if table is not None:
            return table, None, {}
        if len(values) <= _RECORD_BY_RECORD:
            return self._decode_each(values)
        half = len(values) // 2
        first, first_good, first_bad = self._decode_split(values[:half])
        second, second_good, second_bad = self._decode_split(values[half:])
        schema = self.arrow_schema  # the second half may have evolved it
        table = pa.concat_tables([lake_schema.conform(first, schema), lake_schema.conform(second, schema)])
        if first_good is None and second_good is None:
            return table, None, {}
        good = (list(range(half)) if first_good is None else first_good) + [
            half + index for index in (range(len(values) - half) if second_good is None else second_good)]
        return table, good, {**first_bad, **{half + index: reason for index, reason in second_bad.items()}}

    def _without_dateless_events(self, table: pa.Table, good: list[int] | None,
                                 bad: dict[int, str]) -> tuple[pa.Table, list[int] | None, dict[int, str]]:
        """Rows whose event time has no calendar date in UTC move to `bad`: no day partition holds them.

        Epoch milliseconds can be anything; ISO-8601 text has a four-digit year, but an offset can still move
        its UTC instant out of years 1 to 9999 ('9999-12-31T23:30:00-01:00'), so text dated on the first or
        last day of the calendar is parsed and checked too.
        """
        name = self.feed.timestamp_field
        if name not in table.column_names:
            return table, good, bad
        times = table.column(name)
        if pa.types.is_integer(times.type):
            millis, shown = times, "{} (epoch milliseconds)"
        elif pa.types.is_string(times.type):
            edge = pc.or_(pc.starts_with(times, "0001-01-01"), pc.starts_with(times, "9999-12-31"))
            if not pc.any(edge).as_py():
                return table, good, bad
            # unparsable text falls back to the Kafka time later: 0 here keeps it in the calendar
            millis, shown = lineage.event_millis(times, pa.repeat(pa.scalar(0, pa.int64()), len(times)))[0], "{!r}"
        else:
            return table, good, bad
        dateless = pc.fill_null(pc.or_(pc.less(millis, _FIRST_DATED_MS), pc.greater_equal(millis, _END_DATED_MS)),
                                False)
        if not pc.any(dateless).as_py():
            return table, good, bad
        indexes = list(range(table.num_rows)) if good is None else good
        outside = dateless.to_pylist()
        reasons = dict(bad)
        for index, value, without_date in zip(indexes, times.to_pylist(), outside, strict=True):
            if without_date:
                reasons[index] = (f"{name}: {shown.format(value)} is outside the dates the lake can "
                                  "partition by (years 1 to 9999)")
        kept = [index for index, without_date in zip(indexes, outside, strict=True) if not without_date]
        return table.filter(pc.invert(dateless)), kept, reasons

    def _decode_bulk(self, values: list[bytes | None]) -> pa.Table | None:
        """All values at once through pyarrow's JSON reader, or None when the batch needs a closer look.

        Every check here is one the record-by-record path makes too, so both land the same rows.
        """
        if not self.schema or not self.source_names.keys() >= self.schema.keys() or None in values:
            return None
        longest = max(map(len, values))
        if longest * 2 > _JSON_BLOCK or longest > MAX_VALUE_BYTES:
            return None
        joined = b"\n".join(values)
        if joined.count(b"\n") != len(values) - 1:  # a value with a raw newline would split into two rows
            return None
        explicit = pa.schema([pa.field(self.source_names[name], type_) for name, type_ in self.schema.items()])
        try:
            table = pa_json.read_json(
                io.BytesIO(joined), read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK),
                parse_options=pa_json.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="error"))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        if table.num_rows != len(values) or table.column_names != explicit.names:
            return None  # blank values, several objects in one value
        table = table.rename_columns(list(self.schema))
        if any(table.column(name).null_count for name in self.required):
            return None
        return table

    def _decode_each(self, values: list[bytes | None]) -> tuple[pa.Table, list[int], dict[int, str]]:
        rows: list[dict | None] = []
        bad: dict[int, str] = {}
        for index, value in enumerate(values):
            try:
                rows.append(decode_object(value))
            except BadRecord as exc:
                rows.append(None)
                bad[index] = str(exc)
        while True:  # converges: the stored schema only ever grows
            evolved, reasons = lake_schema.check_rows(rows, self.schema, self.required)
            if evolved == self.schema:
                break
            self.schema = self._persist(evolved)
        for index, reason in enumerate(reasons):
            if reason:
                bad[index] = reason
        good = [index for index, reason in enumerate(reasons) if reason is None]
        self._learn_source_names([values[index] for index in good])
        table = pa.Table.from_pylist([rows[index] for index in good], schema=self.arrow_schema)
        return table, good, bad

    def _learn_source_names(self, values: list[bytes]) -> None:
        """The producer's spelling of each column, for the bulk reader (slow path only: parses again)."""
        spellings = set(self.source_names.values())
        for value in values:
            for name in orjson.loads(value):
                if name not in spellings:
                    spellings.add(name)
                    self.source_names[snake_case(name)] = name

    def _persist(self, schema: lake_schema.Schema) -> lake_schema.Schema:
        """Store an evolved schema (merged with what other consumers stored); returns the merged one."""
        merged: dict[str, lake_schema.Schema] = {}

        def change(document: dict) -> None:
            merged["schema"] = record_schema(document, schema)

        self.metadata.update(change)
        log.info("feed %s schema: %s", self.feed.name, ", ".join(f"{n} {t}" for n, t in merged["schema"].items()))
        return merged["schema"]


def record_schema(document: dict, schema: lake_schema.Schema) -> lake_schema.Schema:
    """Merge `schema` into a feed.json document, with a history entry when it changes; returns the merge."""
    stored = lake_schema.schema_from_json(document.get("schema", []))
    merged = lake_schema.merge_schemas(stored, schema)
    changes = lake_schema.describe_changes(stored, merged)
    if changes:
        history = document.setdefault("schema_history", [])
        history.append({"version": len(history) + 1, "at": utc_now_iso(), "changes": changes})
        document["schema"] = lake_schema.schema_to_json(merged)
    return merged


def decoded(settings: Settings, decoder: FeedDecoder, topic: str, start: dict[int, int | None],
             stop: dict[int, int]) -> Iterator[tuple[pa.Table, pa.Array, int]]:
    """(good rows with lineage, their event days, number of bad records) per batch, decoded like the consumer."""
    feed = decoder.feed
    for messages in clients.read_range(settings, topic, start, stop):
        table, good, bad = decoder.decode([m.value() for m in messages])
        kept = messages if good is None else [messages[index] for index in good]
        table, days, _fallbacks = lineage.stamp_rows(
            table, feed.timestamp_field, topic, pa.array([m.partition() for m in kept], pa.int32()),
            pa.array([m.offset() for m in kept], pa.int64()), pa.array([m.timestamp()[1] for m in kept], pa.int64()),
            datetime.now(UTC))
        yield table, days, len(bad)
