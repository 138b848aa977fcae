"""`data_lake_config.py status --html FILE`: the collected status as one self-contained HTML page for people.

Everything is inline (CSS and SVG charts, no script, no font or image to fetch), so the page opens from a file, a
mail attachment or a static web server without network. Sections: a headline (reconciled or not), the charts
(rows and files per day per stream feed, table versions over time, lag per feed), the reconciliation table with
failing lines in red, the feeds table, the warehouse tables and any notes.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path

from lakehouse.errors import LakehouseError
from lakehouse.governance import charts
from lakehouse.governance.status import Check, FeedStatus, Status
from lakehouse.text_table import human_size

MAX_DAY_AXIS = 366  # days charts show every day of the range up to a year; beyond, only the days that have data

_CSS = """
:root { color-scheme: light; --ok: #1b7f3b; --fail: #b00020; --na: #666; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 12px; }
.headline { display: inline-block; padding: 6px 12px; border-radius: 6px; font-weight: 600; color: #fff; }
.headline.ok { background: var(--ok); } .headline.fail { background: var(--fail); }
.headline.na { background: var(--na); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
.chart { width: 100%; height: auto; border: 1px solid #eee; border-radius: 8px; background: #fff; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fde2e2; color: var(--fail); } tr.fail td.result { font-weight: 700; }
tr.ok td.result { color: var(--ok); font-weight: 600; } tr.na td { color: var(--na); }
.notes li { color: #8a5a00; }
"""


def write(status: Status, path: str) -> None:
    """Write the page to `path` atomically: a browser or web server never sees half a page."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # created under the umask, like `target`
    try:
        temporary.write_text(page(status), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise LakehouseError(f"cannot write the status report to {path}: {exc.strerror or exc}") from None


def page(status: Status) -> str:
    streams = [s for s in status.feeds if s.feed.kind == "stream"]
    tables = [s for s in status.feeds if s.feed.kind == "table"]
    when = status.collected_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    days = _day_axis(streams)
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>Lakehouse status {escape(when)}</title><style>{_CSS}</style></head><body>",
        "<h1>Lakehouse status</h1>",
        f'<p class="meta">lake {escape(status.lake_root)} · warehouse {escape(status.warehouse)} · {when}</p>',
        _headline(status.checks),
        _cards(status),
        "<h2>Lake</h2>",
        '<div class="charts">',
        charts.bar_chart("Rows per day, per stream feed", [d.isoformat() for d in days],
                         _per_day(streams, days, "rows"), "rows"),
        charts.bar_chart("Files per day, per stream feed", [d.isoformat() for d in days],
                         _per_day(streams, days, "files"), "files"),
        charts.timeline("Table versions over time", [
            (s.feed.name, [(_time(v.created_at), f"v{v.version}") for v in s.versions]) for s in tables]),
        charts.lag_bars("Lag per feed (records not processed yet)", ["lake lag", "warehouse lag"], [
            (s.feed.name, {"lake lag": s.lake_lag} if s.feed.kind == "stream"
             else {"lake lag": s.lake_lag, "warehouse lag": s.warehouse_lag}) for s in status.feeds]),
        "</div>",
        "<h2>Reconciliation</h2>",
        _reconciliation(status.checks),
        "<h2>Feeds</h2>",
        _feeds_table(status.feeds),
        f"<h2>Warehouse {escape(status.warehouse)}</h2>",
        _table(["table", "rows"], [[name, f"{rows:,}" if isinstance(rows, int) else rows]
                                   for name, rows in status.tables], numeric={1})
        if status.tables is not None else "<p>n/a</p>",
        _notes(status.notes),
        "</body></html>",
    ])


def _headline(checks: list[Check]) -> str:
    failing = sum(1 for check in checks if check.ok is False)
    passing = sum(1 for check in checks if check.ok)
    unknown = f", {len(checks) - passing} n/a" if len(checks) > passing else ""
    if failing:
        return f'<span class="headline fail">{failing} reconciliation check{"s" if failing != 1 else ""} failing</span>'
    if passing:
        return f'<span class="headline ok">{passing} reconciliation checks OK{unknown}</span>'
    return '<span class="headline na">nothing reconciled yet</span>'


def _cards(status: Status) -> str:
    streams = [s for s in status.feeds if s.feed.kind == "stream"]
    lags = [s.lake_lag for s in status.feeds if s.lake_lag is not None]
    figures = [("feeds", f"{len(status.feeds)}"), ("stream rows", f"{sum(s.rows for s in streams):,}"),
               ("lake size", human_size(sum(s.bytes for s in status.feeds))),
               ("quarantined", f"{sum(s.quarantined for s in status.feeds):,}"),
               ("lake lag", f"{sum(lags):,}" if lags else "n/a")]
    return '<div class="cards">' + "".join(
        f'<div class="card">{escape(label)}<b>{escape(value)}</b></div>' for label, value in figures) + "</div>"


def _day_axis(streams: list[FeedStatus]) -> list[date]:
    """Every day from the first to the last one with data (gaps show as gaps), or only the days with data when
    that range is longer than MAX_DAY_AXIS."""
    present = sorted({d.day for s in streams for d in s.days})
    if not present or (present[-1] - present[0]).days >= MAX_DAY_AXIS:
        return present
    return [present[0] + timedelta(days=n) for n in range((present[-1] - present[0]).days + 1)]


def _per_day(streams: list[FeedStatus], days: list[date], figure: str) -> list[charts.Series]:
    return [(s.feed.name, [getattr(by_day[d], figure) if d in by_day else None for d in days])
            for s in streams for by_day in [{d.day: d for d in s.days}]]


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None  # a hand-edited metadata file: the version is counted as untimed


def _reconciliation(checks: list[Check]) -> str:
    if not checks:
        return "<p>nothing to reconcile yet</p>"
    rows = "".join(
        f'<tr class="{"na" if c.ok is None else "ok" if c.ok else "fail"}"><td class="result">{c.verdict}</td>'
        f"<td>{escape(c.label)}</td><td>{escape(c.detail)}</td></tr>" for c in checks)
    return f"<table><thead><tr><th>result</th><th>check</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>"


def _feeds_table(feeds: list[FeedStatus]) -> str:
    def na(value: int | None) -> str:
        return "n/a" if value is None else f"{value:,}"

    return _table(
        ["feed", "kind", "days/versions", "rows", "files", "size", "quarantined", "in topic", "lake lag",
         "warehouse lag"],
        [[s.feed.name, s.feed.kind, s.parts_label, f"{s.rows:,}", f"{s.files:,}", human_size(s.bytes),
          f"{s.quarantined:,}", na(s.topic_records), na(s.lake_lag),
          na(s.warehouse_lag) if s.feed.kind == "table" else "-"] for s in feeds],
        numeric=set(range(3, 10)))


def _table(headers: list[str], rows: list[list[object]], numeric: set[int]) -> str:
    def cell(tag: str, n: int, value: object) -> str:
        return f'<{tag}{" class=num" if n in numeric else ""}>{escape(str(value))}</{tag}>'

    head = "".join(cell("th", n, h) for n, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", n, v) for n, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    return '<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>"
