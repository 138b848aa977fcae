"""Small inline SVG charts for the HTML status report: no script, no network, no chart library.

  bar_chart       grouped vertical bars: a value per category (a day) and series (a feed)
  lag_bars        horizontal bars per feed, one bar per kind of lag, n/a where it cannot be measured
  timeline        one lane per table feed, a dot per version at the time it was written

Every chart is an <svg> element sized by its viewBox (it scales with the page), with a <title> for screen
readers and a <title> on each mark, which browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

WIDTH = 760
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")  # Okabe-Ito
_LEFT, _RIGHT, _TOP = 64, 16, 34
_AXIS, _GRID, _MUTED = "#444", "#ddd", "#666"

Series = tuple[str, Sequence[float | None]]  # name, one value per category (None: none there)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: str) -> str:
    """Grouped bars; labels of many categories are thinned out so they never overlap."""
    legend = _legend([name for name, _values in series])
    height, bottom = 236 + 40 + legend.height, 40 + legend.height
    if not categories or not series:
        return _empty(title, height)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, height - _TOP - bottom
    top, ticks = _ticks(max((v or 0) for _name, values in series for v in values))
    group = plot_w / len(categories)
    bar = max(group * 0.8 / len(series), 0.5)
    parts = _frame(title, height) + _y_axis(ticks, top, plot_h, plot_w)
    for c, category in enumerate(categories):
        for s, (name, values) in enumerate(series):
            value = values[c]
            if value is None:  # no partition that day: no bar, a gap
                continue
            bar_h = plot_h * value / top
            x = _LEFT + c * group + group * 0.1 + s * bar
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - bar_h:.1f}" width="{bar:.1f}" '
                         f'height="{bar_h:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                         f'<title>{escape(name)} · {escape(category)}: {value:,.0f} {escape(unit)}</title></rect>')
    every = math.ceil(len(categories) / 10)
    for c in range(0, len(categories), every):
        x = _LEFT + (c + 0.5) * group
        parts.append(f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" font-size="11" '
                     f'fill="{_MUTED}">{escape(categories[c])}</text>')
    parts.append(legend.svg(height - legend.height))
    return "".join(parts) + "</svg>"


def lag_bars(title: str, names: Sequence[str], feeds: Sequence[tuple[str, dict[str, float | None]]]) -> str:
    """Per feed a bar for each of `names` it has: None is drawn as "n/a", a name it lacks as nothing."""
    row_h, label_w = 18, 230
    legend = _legend(names)
    if not feeds:
        return _empty(title, 160)
    height = _TOP + sum(row_h * (len(values) + 0.6) for _feed, values in feeds) + 12 + legend.height
    plot_w = WIDTH - label_w - _RIGHT - 60
    top, _ = _ticks(max((v or 0) for _feed, values in feeds for v in values.values()))
    parts = _frame(title, height)
    y = float(_TOP)
    for feed, values in feeds:
        parts.append(f'<text x="{label_w - 8}" y="{y + row_h * len(values) / 2 + 4:.1f}" text-anchor="end" '
                     f'font-size="12">{escape(feed)}</text>')
        for row, (name, value) in enumerate(values.items()):
            bar_y = y + row * row_h + 2
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{bar_y + 11:.1f}" font-size="11" fill="{_MUTED}">'
                             f'{escape(name)}: n/a</text>')
                continue
            bar_w = plot_w * value / top
            parts.append(f'<rect class="bar" x="{label_w}" y="{bar_y:.1f}" width="{bar_w:.1f}" height="{row_h - 4}" '
                         f'fill="{PALETTE[names.index(name) % len(PALETTE)]}"><title>{escape(feed)} · '
                         f'{escape(name)}: {value:,.0f} records</title></rect><text x="{label_w + bar_w + 4:.1f}" '
                         f'y="{bar_y + 11:.1f}" font-size="11">{value:,.0f}</text>')
        y += row_h * (len(values) + 0.6)
    parts.append(f'<line x1="{label_w}" y1="{_TOP - 4}" x2="{label_w}" y2="{y:.1f}" stroke="{_AXIS}"/>')
    parts.append(legend.svg(height - legend.height))
    return "".join(parts) + "</svg>"


def timeline(title: str, lanes: Sequence[tuple[str, Sequence[tuple[datetime | None, str]]]]) -> str:
    """One lane per name, a dot per (time, label); marks without a time are counted in the lane's label."""
    lane_h, label_w = 34, 230
    height = _TOP + max(1, len(lanes)) * lane_h + 40
    times = [when for _name, marks in lanes for when, _label in marks if when is not None]
    if not times:
        return _empty(title, 160)
    first, last = min(times), max(times)
    if last - first < timedelta(minutes=2):  # one moment: give it a window to sit in the middle of
        first, last = first - timedelta(hours=1), last + timedelta(hours=1)
    plot_w = WIDTH - label_w - _RIGHT - 50  # room for the last tick's label, centred under it

    def x_of(when: datetime) -> float:
        return label_w + 10 + plot_w * (when - first) / (last - first)

    parts = _frame(title, height)
    bottom = _TOP + len(lanes) * lane_h
    for tick in range(5):
        when = first + (last - first) * tick / 4
        label = when.strftime("%H:%M" if last - first <= timedelta(days=1) else "%b %d %H:%M")
        parts.append(f'<line x1="{x_of(when):.1f}" y1="{_TOP}" x2="{x_of(when):.1f}" y2="{bottom}" '
                     f'stroke="{_GRID}"/><text x="{x_of(when):.1f}" y="{bottom + 16}" text-anchor="middle" '
                     f'font-size="11" fill="{_MUTED}">{label}</text>')
    parts.append(f'<text x="{WIDTH - _RIGHT}" y="{bottom + 32}" text-anchor="end" font-size="11" fill="{_MUTED}">'
                 f'time written (UTC), {_dates(first, last)}</text>')
    for n, (name, marks) in enumerate(lanes):
        y = _TOP + n * lane_h + lane_h / 2
        untimed = sum(1 for when, _label in marks if when is None)
        suffix = f" (+{untimed} untimed)" if untimed else ""
        parts.append(f'<line x1="{label_w}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}" stroke="{_GRID}"/>'
                     f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">'
                     f'{escape(name + suffix)}</text>')
        labelled_at = -math.inf
        for when, label in sorted(((w, text) for w, text in marks if w is not None), key=lambda mark: mark[0]):
            x = x_of(when)
            parts.append(f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{PALETTE[n % len(PALETTE)]}">'
                         f'<title>{escape(name)} {escape(label)} · {when:%Y-%m-%d %H:%M:%S} UTC</title></circle>')
            if x - labelled_at >= 24:  # label a dot only where it does not overlap the previous label
                parts.append(f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" font-size="10">'
                             f'{escape(label)}</text>')
                labelled_at = x
    return "".join(parts) + "</svg>"


# ---------------------------------------------------------------- shared pieces
def _dates(first: datetime, last: datetime) -> str:
    return f"{first:%Y-%m-%d}" if first.date() == last.date() else f"{first:%Y-%m-%d} – {last:%Y-%m-%d}"


def _frame(title: str, height: float) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'role="img" font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
            f'<text x="{_LEFT}" y="20" font-size="14" font-weight="600">{escape(title)}</text>']


def _empty(title: str, height: float) -> str:
    return "".join(_frame(title, height)) + (f'<text x="{WIDTH / 2}" y="{height / 2 + 10}" text-anchor="middle" '
                                             f'fill="{_MUTED}">nothing here yet</text></svg>')


def _ticks(largest: float) -> tuple[float, list[float]]:
    """A round top for the axis (at least 1) and its 4-5 round ticks: 0, 250, 500, 750, 1000."""
    if largest <= 0:
        return 1.0, [0.0, 1.0]
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))  # counts: whole steps
    top = step * math.ceil(largest / step)
    return top, [step * i for i in range(round(top / step) + 1)]


def _y_axis(ticks: list[float], top: float, plot_h: float, plot_w: float) -> list[str]:
    parts = []
    for tick in ticks:
        y = _TOP + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="{_GRID}"/>'
                     f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{_MUTED}">'
                     f'{tick:,.0f}</text>')
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
                 f'stroke="{_AXIS}"/>')
    return parts


@dataclass(frozen=True)
class _Legend:
    """Swatches and names, wrapped onto as many rows as the width needs."""
    entries: list[tuple[float, int, str]]  # x, row, name

    @property
    def height(self) -> int:
        return 20 * (max((row for _x, row, _name in self.entries), default=0) + 1) + 4

    def svg(self, top: float) -> str:
        return "".join(
            f'<rect x="{x:.1f}" y="{top + row * 20 + 2:.1f}" width="12" height="12" '
            f'fill="{PALETTE[n % len(PALETTE)]}"/><text x="{x + 16:.1f}" y="{top + row * 20 + 12:.1f}" '
            f'font-size="12">{escape(name)}</text>' for n, (x, row, name) in enumerate(self.entries))


def _legend(names: Sequence[str]) -> _Legend:
    entries, x, row = [], float(_LEFT), 0
    for name in names:
        width = 28 + 7 * len(name)  # swatch, gap and the name at ~7 px a character
        if x + width > WIDTH - _RIGHT and x > _LEFT:
            x, row = float(_LEFT), row + 1
        entries.append((x, row, name))
        x += width
    return _Legend(entries)
