"""Draw the workflow's steps as an SVG graph coloured by status: one box per step, whatever its item count.

A batch step of 100,000 items is one box with its counts and a bar of done / failed / skipped /
pending, so the picture has as many boxes as the workflow has steps. The layout is layered, left
to right: a step's column is the longest path to it from a step with no upstream, and within a
column steps are ordered by the mean row of their upstream steps (the barycenter rule), which
keeps most edges short and uncrossed for the shapes workflows have. A workflow has tens of steps,
not thousands, so nothing cleverer is needed; and no Graphviz, so the report stays one file that
plait writes on its own. Edges: `for_each` (item to item) bold, `after` (order only) dashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plait.report.text import STATUS_COLOURS, count, esc

__all__ = ["step_state", "step_svg"]

BOX_W, BOX_H = 220, 74
GAP_X, GAP_Y = 70, 22
PAD = 12
NAME_CHARS = 26
BAR_STATUSES = ("succeeded", "failed", "skipped", "running", "pending")
TINTS = {"succeeded": "#ebfbee", "failed": "#fff5f5", "skipped": "#fff9db", "running": "#e7f5ff",
         "pending": "#f8f9fa"}


def step_state(step: Mapping[str, Any], live: bool) -> str:
    """Return the one status a step's box is coloured by: any failure wins, then unfinished work, then skipped."""
    nodes = step["nodes"]
    if step["failed"]:
        return "failed"
    if step["pending"] or step["running"] or not nodes:
        started = step["running"] or step["succeeded"] or step["skipped"]
        return "running" if live and started else "pending"
    return "skipped" if step["skipped"] == nodes else "succeeded"


def step_svg(steps: Sequence[Mapping[str, Any]], edges: Sequence[tuple[str, str, str]], live: bool = False) -> str:
    """Return the steps and their edges as an SVG element."""
    names = [s["name"] for s in steps]
    place = _layout(names, edges)
    columns = max((c for c, _ in place.values()), default=0) + 1
    rows = max((r for _, r in place.values()), default=0) + 1
    width = PAD * 2 + columns * BOX_W + (columns - 1) * GAP_X
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y

    def corner(name: str) -> tuple[float, float]:
        column, row = place[name]
        return PAD + column * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y)

    parts = [f'<svg class="steps" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="the steps, coloured by status">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#868e96"/></marker></defs>']
    for source, target, kind in edges:
        if source not in place or target not in place:
            continue
        (x1, y1), (x2, y2) = corner(source), corner(target)
        x1, y1, y2 = x1 + BOX_W, y1 + BOX_H / 2, y2 + BOX_H / 2
        bend = max(GAP_X / 2, (x2 - x1) / 2)
        style = {"for_each": ' stroke-width="2.6"', "after": ' stroke-dasharray="5 4"'}.get(kind, "")
        parts.append(f'<path d="M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2 - 2:.0f},'
                     f'{y2:.0f}" fill="none" stroke="#868e96" stroke-width="1.4"{style} marker-end="url(#arrow)">'
                     f'<title>{esc(source)} → {esc(target)}{_EDGE_TITLES[kind]}</title></path>')
    for step in steps:
        parts.append(_box(step, *corner(step["name"]), step_state(step, live)))
    parts.append("</svg>")
    return "\n".join(parts)


_EDGE_TITLES = {"depends": "", "for_each": " (per item)", "after": " (order only)"}


def _box(step: Mapping[str, Any], x: float, y: float, state: str) -> str:
    name, nodes = step["name"], step["nodes"]
    shown = name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + "…"
    size = f"× {count(nodes)}" if step["kind"] != "single" else "1 node"
    what = f"{step['task']} {size}" if step.get("task") else size
    counts = [f"{count(step[s])} {s}" for s in BAR_STATUSES if step[s]]
    title = f"{name}: {what}; {', '.join(counts) or 'no nodes yet'}"
    parts = [f'<g class="step" data-step="{esc(name)}" data-state="{state}"><title>{esc(title)}</title>',
             f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{TINTS[state]}" '
             f'stroke="{STATUS_COLOURS[state]}" stroke-width="2"/>',
             f'<text x="{x + 10:.0f}" y="{y + 20:.0f}" class="name">{esc(shown)}</text>',
             f'<text x="{x + 10:.0f}" y="{y + 37:.0f}" class="what">{esc(what)}</text>']
    bar_x, bar_y, bar_w = x + 10, y + 46, BOX_W - 20
    if nodes:
        offset = 0.0
        for status in BAR_STATUSES:
            if step[status]:
                w = bar_w * step[status] / nodes
                parts.append(f'<rect x="{bar_x + offset:.1f}" y="{bar_y:.0f}" width="{w:.1f}" height="8" '
                             f'fill="{STATUS_COLOURS[status]}"/>')
                offset += w
    else:
        parts.append(f'<rect x="{bar_x:.0f}" y="{bar_y:.0f}" width="{bar_w}" height="8" fill="none" '
                     f'stroke="{STATUS_COLOURS["pending"]}"/>')
    short = " · ".join(f"{count(step[s])} {_SHORT[s]}" for s in BAR_STATUSES if step[s]) or "not expanded yet"
    parts.append(f'<text x="{bar_x:.0f}" y="{y + 67:.0f}" class="counts">{esc(short)}</text></g>')
    return "".join(parts)


_SHORT = {"succeeded": "done", "failed": "failed", "skipped": "skipped", "running": "running", "pending": "to do"}


def _layout(names: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """Return {step: (column, row)}: columns by longest path from a source, rows by the barycenter rule."""
    known = set(names)
    upstream: dict[str, list[str]] = {n: [] for n in names}
    for source, target, _ in edges:
        if source in known and target in known and source != target:
            upstream[target].append(source)
    column: dict[str, int] = {}
    for name in _topological(names, upstream):
        column[name] = 1 + max((column.get(u, -1) for u in upstream[name]), default=-1)
    place: dict[str, tuple[int, int]] = {}
    order = {n: i for i, n in enumerate(names)}

    def centre(name: str) -> tuple[float, int]:
        """Return the mean row of a step's upstream steps (placed already: they sit in earlier columns)."""
        rows = [place[u][1] for u in upstream[name] if u in place]
        return (sum(rows) / len(rows) if rows else order[name], order[name])

    for c in range(max(column.values(), default=-1) + 1):
        members = sorted((n for n in names if column[n] == c), key=centre)
        for row, name in enumerate(members):
            place[name] = (c, row)
    return place


def _topological(names: Sequence[str], upstream: Mapping[str, list[str]]) -> list[str]:
    """Return the steps with each after its upstream steps, ties in the given order (Kahn's algorithm)."""
    waiting = {n: len(set(upstream[n])) for n in names}
    downstream: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for u in set(upstream[name]):
            downstream[u].append(name)
    ready = [n for n in names if not waiting[n]]
    done: list[str] = []
    while ready:
        name = ready.pop(0)
        done.append(name)
        for d in downstream[name]:
            waiting[d] -= 1
            if not waiting[d]:
                ready.append(d)
    finished = set(done)
    return done + [n for n in names if n not in finished]  # a plan has no cycle; were there one, keep every step
