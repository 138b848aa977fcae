"""The HTML status report in a real headless Chromium: it loads cleanly, offline, with its charts, not blank."""

from __future__ import annotations

import io
from pathlib import Path

from headless_chromium import visit
from PIL import Image
from status_samples import FAILING_CHECK, sample_status

from lakehouse.governance import status_report

COUNTS = {
    "charts": "document.querySelectorAll('svg.chart').length",
    "bars": "document.querySelectorAll('svg.chart rect.bar').length",
    "version dots": "document.querySelectorAll('svg.chart circle.mark').length",
    "failing row": "[...document.querySelectorAll('tr.fail td')].map(td => td.textContent).join(' | ')",
    "failing colour": "getComputedStyle(document.querySelector('tr.fail td')).backgroundColor",
    "page width": "document.documentElement.scrollWidth",
}


def test_the_report_loads_offline_without_errors_with_its_charts_and_is_not_blank(tmp_path: Path) -> None:
    page = tmp_path / "status.html"
    status_report.write(sample_status(), str(page))
    seen = visit(page, tmp_path / "profile", list(COUNTS.values()))
    values = {name: seen.values[expression] for name, expression in COUNTS.items()}

    assert seen.errors == []
    assert seen.requests == [page.resolve().as_uri()]  # the page itself and nothing else: it needs no network
    assert values["charts"] == 4  # rows per day, files per day, table versions, lag
    # rows and files: 3 days x 4 stream feeds but one day missing for one feed (a gap, no bar);
    # lag: a lake bar per feed and a warehouse bar per table feed
    assert values["bars"] == 2 * (3 * 4 - 1) + 8 + 4
    assert values["version dots"] == 4 * 3
    assert FAILING_CHECK in values["failing row"] and values["failing row"].startswith("MISMATCH")
    assert values["failing colour"] == "rgb(253, 226, 226)"  # the failing line is red
    assert values["page width"] <= 1200  # nothing overflows a common window width

    screenshot = Image.open(io.BytesIO(seen.screenshot)).convert("RGB")
    colours = screenshot.getcolors(maxcolors=1 << 20)
    assert screenshot.size == (1200, 1600)
    assert colours is not None and len(colours) > 50  # text, bars in several colours, the red line: not blank
    assert (253, 226, 226) in {colour for _count, colour in colours}


def test_the_browser_check_does_see_errors_and_requests(tmp_path: Path) -> None:
    """The check above is only worth something if it catches a broken page: it does."""
    broken = tmp_path / "broken.html"
    broken.write_text('<!doctype html><html><head><link rel="icon" href="data:,"></head><body>'
                      '<img src="http://127.0.0.1:9/missing.png">'
                      '<script>console.error("drawn wrong"); notDefined();</script></body></html>')
    seen = visit(broken, tmp_path / "profile", ["document.querySelectorAll('svg').length"])
    assert any("drawn wrong" in error for error in seen.errors)
    assert any("notDefined is not defined" in error for error in seen.errors)
    assert any("missing.png" in error for error in seen.errors)  # the failed load
    assert "http://127.0.0.1:9/missing.png" in seen.requests
    assert seen.values == {"document.querySelectorAll('svg').length": 0}
