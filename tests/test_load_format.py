"""The LOAD DATA file format the warehouse writes (pure: no server needed)."""

from __future__ import annotations

import pyarrow as pa

from lakehouse.warehouse.upsert import tsv


def test_file_of_a_slice_escapes_exactly_the_values_in_the_slice() -> None:
    table = pa.table({"name": ["a\tb", "plain", "back\\slash", None, "tail\n"], "city": ["x", "y", "z", "w", "\0"]})
    assert tsv(table).to_pybytes() == (b"a\\tb\tx\nplain\ty\nback\\\\slash\tz\n\\N\tw\ntail\\n\t\\0\n")
    assert tsv(table.slice(1, 1)).to_pybytes() == b"plain\ty\n"  # specials only outside the slice: none escaped
    assert tsv(table.slice(2, 2)).to_pybytes() == b"back\\\\slash\tz\n\\N\tw\n"
    assert tsv(pa.table({"empty": pa.array(["", ""], pa.string())})).to_pybytes() == b"\n\n"
