"""How the report writes numbers, times and colours: one place, so the page, the graph and the timeline agree.

Colours: one per node status (the graphs, bars and chips), and a palette for steps on the timeline
that leaves out red and green, which mean failed and succeeded everywhere else in the report.
"""

from __future__ import annotations

import html
import time

__all__ = ["STATUS_COLOURS", "STEP_PALETTE", "clock", "count", "esc", "seconds", "step_colour"]

STATUS_COLOURS = {"succeeded": "#2f9e44", "failed": "#e03131", "skipped": "#f59f00", "running": "#1c7ed6",
                  "pending": "#ced4da"}
STEP_PALETTE = ("#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1", "#9c755f", "#edc948", "#5a6fd6", "#86bcb6",
                "#bab0ac", "#d37295")


def esc(value: object) -> str:
    """Return a value as text safe in HTML and SVG (quotes too, for attributes)."""
    return html.escape(str(value), quote=True)


def count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def seconds(value: float | None) -> str:
    """Return a duration as a person reads it: 850 µs, 12.3 ms, 4.56 s, 3 min 20 s, 2 h 05 min."""
    if value is None:
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 60:
        return f"{value:.2f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def clock(timestamp: float | None) -> str:
    """Return a Unix time as local date and time with the offset from UTC."""
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(timestamp))


def step_colour(index: int) -> str:
    return STEP_PALETTE[index % len(STEP_PALETTE)]
