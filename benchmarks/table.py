"""The one table: every figure beside the floor it is measured against, and the growth line.

A row is one figure at one N: a time (seconds) or a size (bytes), the floor it is compared with,
the ratio figure/floor, and what each item adds beyond the floor, (figure − floor) / N: µs per
item for a time, bytes per node for a size. Floors are measured in the same run, next to what
they floor, because absolute times drift on shared machines while ratios hold. Rows print
grouped by what they measure with N ascending, so scaling reads down the page.

The growth line takes every time measured at both 10,000 and 100,000 (floors included) and
prints time(100,000) / time(10,000): about 10 is linear, less means fixed costs still dominate
at 10,000, more means something grows faster than the items.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GROWTH_FROM", "GROWTH_TO", "Row", "growth", "render", "render_growth"]

GROWTH_FROM, GROWTH_TO = 10_000, 100_000


@dataclass(frozen=True)
class Row:
    """One figure at one N, with its floor (`floor` names it; see the suite's FLOORS)."""

    section: str  # "compile", "run", "report" or "peers"
    what: str
    n: int
    unit: str  # "s" or "B"
    value: float
    floor: str | None = None
    floor_value: float | None = None

    @property
    def ratio(self) -> float | None:
        """Return figure / floor, or None without a (non-zero) floor."""
        return self.value / self.floor_value if self.floor_value else None

    @property
    def per_item(self) -> float | None:
        """Return (figure − floor) / N: what each item adds beyond the floor."""
        return None if self.floor_value is None else (self.value - self.floor_value) / self.n

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "per_item": self.per_item}


def render(rows: Iterable[Row], floors: Mapping[str, str]) -> str:
    """Return the table: rows grouped by section and figure, N ascending, then the floors' legend."""
    rows = list(rows)
    order = {key: i for i, key in enumerate(dict.fromkeys((r.section, r.what) for r in rows))}
    rows.sort(key=lambda r: (order[(r.section, r.what)], r.n))
    width = max([len(r.what) for r in rows] + [4])
    lines = [f"{'what':<{width}}  {'N':>9}  {'figure':>10}  {'floor':>10} {'':<13}  {'× floor':>8}  "
             f"{'beyond floor/item':>17}"]
    section = None
    for r in rows:
        if r.section != section:
            lines.append(f"-- {r.section} " + "-" * (width + 73 - len(r.section)))
            section = r.section
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        per = _per_item(r.per_item, r.unit) if r.per_item is not None else "—"
        figure, floor = _figure(r.value, r.unit), _figure(r.floor_value, r.unit)
        lines.append(f"{r.what:<{width}}  {r.n:>9,}  {figure:>10}  {floor:>10} {r.floor or '':<13}  {ratio:>8}  "
                     f"{per:>17}")
    used = dict.fromkeys(r.floor for r in rows if r.floor)
    lines += [f"floor {name:<13} {floors[name]}" for name in used]
    return "\n".join(lines)


def growth(rows: Iterable[Row], small_n: int = GROWTH_FROM, large_n: int = GROWTH_TO) -> dict[str, float]:
    """Return time(large_n) / time(small_n) for every time (and time floor) measured at both sizes."""
    times: dict[tuple[str, int], float] = {}
    for r in rows:
        if r.unit != "s":
            continue
        times[(r.what, r.n)] = r.value
        if r.floor:
            times.setdefault((f"floor {r.floor}", r.n), r.floor_value or 0.0)
    return {what: times[(what, large_n)] / small for (what, n), small in times.items()
            if n == small_n and (what, large_n) in times and small}


def render_growth(ratios: Mapping[str, float]) -> str:
    """Return the growth line, wrapped."""
    if not ratios:
        return f"growth: nothing measured at both {GROWTH_FROM:,} and {GROWTH_TO:,}"
    body = "; ".join(f"{what} {ratio:.1f}×" for what, ratio in ratios.items())
    head = f"growth, time({GROWTH_TO:,}) / time({GROWTH_FROM:,}) (and to 1,000,000 / 100,000), linear ≈ 10: "
    return textwrap.fill(head + body, width=120, subsequent_indent="  ")


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.3f} s" if value < 100 else f"{value:,.1f} s"
    if abs(value) < 10_000:
        return f"{value:,.0f} B"
    if abs(value) < 10_000_000:
        return f"{value / 1e3:,.1f} kB"
    return f"{value / 1e6:,.1f} MB"


def _per_item(value: float, unit: str) -> str:
    if unit != "s":
        return _figure(value, unit)
    if abs(value) < 1e-3:
        return f"{value * 1e6:,.1f} µs"
    return f"{value * 1e3:,.1f} ms" if abs(value) < 1 else f"{value:,.2f} s"
