"""The three renderings of one collected status, without services: JSON against its documented schema, the text
with human sizes, the HTML page self-contained."""

from __future__ import annotations

import re

import jsonschema
import orjson
import pytest
from status_samples import DOCS, FAILING_CHECK, SCHEMA, empty_status, sample_status, validate

from lakehouse.errors import LakehouseError
from lakehouse.governance import status_json, status_report
from lakehouse.text_table import human_size


def schema_keys(schema: dict, prefix: str = "") -> set[str]:
    """Every key path the schema names: lake.root, feeds[].lag.lake, feeds[].days[].rows, ..."""
    keys = set()
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        keys.add(path)
        keys |= schema_keys(_resolved(child), path)
    if "items" in schema:
        keys |= schema_keys(_resolved(schema["items"]), f"{prefix}[]")
    return keys


def _resolved(schema: dict) -> dict:
    if "$ref" in schema:
        return SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_status_json_has_exactly_the_documented_keys() -> None:
    document = orjson.loads(orjson.dumps(status_json.document(sample_status())))  # as a reader parses it
    validate(document)
    validate(orjson.loads(orjson.dumps(status_json.document(empty_status()))))
    assert document["ok"] is False
    assert [c["result"] for c in document["reconciliation"]] == ["OK", "MISMATCH", "n/a"]
    feeds = {feed["name"]: feed for feed in document["feeds"]}
    stream, table = feeds["transaction_flattened"], feeds["payment_method_totals"]
    assert stream["days"][0] == {"date": "2026-09-05", "rows": 310, "files": 4, "bytes": 40_000}
    assert stream["versions"] is None and stream["lag"]["warehouse"] is None
    assert table["days"] is None and table["current_version"] == 3
    assert table["versions"][0]["created_at"] == "2026-09-05T01:16:00.000Z"
    assert document["warehouse"]["tables"][-1] == {"name": "sync_runs", "rows": None}

    # an undocumented key, or a documented one gone, is caught
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        validate({**document, "surprise": 1})
    del table["lag"]
    with pytest.raises(jsonschema.ValidationError, match="'lag' is a required property"):
        validate(document)


def test_every_key_of_the_schema_is_documented_in_docs_status_md() -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", (DOCS / "status.md").read_text(), flags=re.MULTILINE))
    assert documented == schema_keys(SCHEMA)


def test_text_status_shows_sizes_for_people_within_130_columns() -> None:
    text = sample_status().render()
    assert re.search(r"^transaction_stream\s+stream\s+3 days\s+1200\s+15\s+143\.6 KB\s", text, flags=re.MULTILINE)
    assert re.search(r"^payment_method_totals\s+table\s+3 versions \(v3\)\s+126\s+3\s+11\.7 KB\s", text,
                     flags=re.MULTILINE)
    # a long reconciliation detail wraps between its terms, under its column, losing nothing
    assert max(len(line) for line in text.splitlines()) <= 130
    assert re.search(r"^MISMATCH\s+warehouse fact_product_purchase_counts\s+= lake .*, purchase_count 597 != 596,\n"
                     r" {50,}total_quantity 1,778, total_revenue 391,292\.56$", text, flags=re.MULTILINE)
    assert [human_size(n) for n in (0, 1023, 1024, 1_600_000, 5 * 1024**3)] == [
        "0 B", "1023 B", "1.0 KB", "1.5 MB", "5.0 GB"]


def test_html_page_is_self_contained_and_marks_the_failing_check() -> None:
    html = status_report.page(sample_status())
    assert html.count("<svg") == 4
    # nothing to fetch: no script, no stylesheet or image link, no URL but the SVG namespace
    assert re.findall(r"(?:src|href)=\"(?!data:)[^\"]*\"", html) == []
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "<script" not in html
    failing = re.search(r'<tr class="fail">.*?</tr>', html)
    assert failing and FAILING_CHECK in failing.group(0)
    assert "1 reconciliation check failing" in html
    assert "nothing here yet" in status_report.page(empty_status())  # charts of an empty lake still render


def test_html_report_to_a_folder_that_does_not_exist_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(LakehouseError, match=r"cannot write the status report to .*/missing/status.html: "):
        status_report.write(sample_status(), str(tmp_path / "missing" / "status.html"))
    status_report.write(sample_status(), str(tmp_path / "status.html"))
    assert [p.name for p in tmp_path.iterdir()] == ["status.html"]  # no temporary file left behind
