"""Draw a run's timeline: a Gantt chart of node attempts per worker, readable from ten nodes to a million.

Rows are workers when the ledger records who ran each attempt; otherwise attempts are packed into
slots by time (an attempt takes the first slot free when it starts), which shows the run's
concurrency as the workers saw it, though a slot may stand for different workers over time.

Up to `EACH_MAX` attempts, each is one bar, coloured by its step (red when it failed), with its
node, duration and worker on hover. Past that, one bar per node would be thousands of bars a pixel
wide, unreadable and slow to draw, so time is cut into `BINS` bins and each cell (row × bin) is one
rectangle: coloured by the step that kept the row busiest in that bin, as opaque as the row was
busy, with a red mark where attempts failed. Busy time per bin is summed exactly (an attempt that
spans bins counts in each for its overlap, through a difference array), so the cost is linear in
the attempts and the picture has at most `MAX_ROWS` × `BINS` cells whatever the run's size. Below
the rows, a histogram of attempts ended per bin, by outcome, shows the run's pace.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate

from plait.report.data import UNKNOWN_WORKER, TraceRow
from plait.report.text import STATUS_COLOURS, count, esc, seconds, step_colour

__all__ = ["BINS", "EACH_MAX", "MAX_ROWS", "timeline_html"]

EACH_MAX = 2_000  # attempts drawn one by one; past this, binned
BINS = 200
MAX_ROWS = 32  # rows drawn; more workers or slots share a row
LABEL_W, PLOT_W, AXIS_H, PACE_H = 120, 1000, 26, 60


def timeline_html(rows: Sequence[TraceRow], steps: Sequence[str], run_id: str | None) -> str:
    """Return the timeline of `run_id`'s attempts (from the trace) as a caption, an SVG and a legend."""
    timed = [r for r in rows if r.run == run_id and r.start is not None and r.end is not None and r.end >= r.start
             and r.status != "skipped"]
    if not timed:
        return ('<p class="note">No node ran in this run (every node was already done, or none has ended '
                'yet), so there is no timeline to draw.</p>')
    colours = {name: step_colour(i) for i, name in enumerate(steps)}
    for row in timed:
        colours.setdefault(row.step, step_colour(len(colours)))
    lanes, names, by_worker = _lanes(timed)
    group = math.ceil(len(names) / MAX_ROWS)
    members = [names[i:i + group] for i in range(0, len(names), group)]
    labels = [row[0] if len(row) == 1 else f"{row[0]} +{len(row) - 1}" for row in members]
    t0 = min(r.start for r in timed)
    span = max(max(r.end for r in timed) - t0, 1e-6)
    lane_h = 28 if len(labels) <= 4 else 18 if len(labels) <= 16 else max(8, 320 // len(labels))
    top = AXIS_H
    height = top + len(labels) * lane_h + 12 + PACE_H + 22
    x = PLOT_W / span
    parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + PLOT_W + 10}" '
             f'height="{height}" viewBox="0 0 {LABEL_W + PLOT_W + 10} {height}" role="img" '
             f'aria-label="timeline of the run\'s node attempts">']
    parts += _axis(span, top, top + len(labels) * lane_h)
    for i, label in enumerate(labels):
        y = top + i * lane_h
        fill = "#f8f9fa" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{PLOT_W}" height="{lane_h}" fill="{fill}"/>'
                     f'<text x="{LABEL_W - 6}" y="{y + lane_h / 2 + 4:.1f}" class="lane">{esc(label)}'
                     f'<title>{esc(", ".join(members[i]))}</title></text>')
    drawn = [(lanes[i] // group, r) for i, r in enumerate(timed)]
    if len(timed) <= EACH_MAX:
        parts += _each(drawn, t0, x, top, lane_h, colours, by_worker)
    else:
        parts += _binned(drawn, t0, span, top, lane_h, colours, [min(group, len(names) - i * group)
                                                                   for i in range(len(labels))], labels)
    parts += _pace(timed, t0, span, top + len(labels) * lane_h + 12)
    parts.append("</svg>")
    what = "worker" if by_worker else "slot"
    rows_note = f"{count(len(names))} {what}{'s' if len(names) > 1 else ''}" + (
        f", {group} to a row" if group > 1 else "")
    mode = ("each a bar" if len(timed) <= EACH_MAX else
            f"in {BINS} bins of {seconds(span / BINS)}: a cell's colour is the step that kept its row busiest, its "
            "strength how busy the row was, and red marks failures")
    caption = f"Run {esc(run_id)}: {count(len(timed))} attempts over {seconds(span)} on {rows_note}, {mode}."
    if not by_worker:
        caption += (" The ledger does not record which worker ran a node, so attempts are packed into slots "
                    "by time.")
    legend = "".join(f'<span class="key"><i style="background:{colour}"></i>{esc(step)}</span>'
                     for step, colour in colours.items() if any(r.step == step for r in timed))
    legend += f'<span class="key"><i style="background:{STATUS_COLOURS["failed"]}"></i>failed</span>'
    return f'<p class="note">{caption}</p><div class="scroll">{"".join(parts)}</div><p class="legend">{legend}</p>'


def _lanes(rows: Sequence[TraceRow]) -> tuple[list[int], list[str], bool]:
    """Return each row's lane, the lanes' names, and whether lanes are workers (else slots packed by time)."""
    if any(r.worker != UNKNOWN_WORKER for r in rows):
        first: dict[str, float] = {}
        for r in rows:
            first[r.worker] = min(first.get(r.worker, r.start), r.start)
        names = sorted(first, key=lambda w: (first[w], _natural(w)))
        index = {w: i for i, w in enumerate(names)}
        return [index[r.worker] for r in rows], [f"worker {w}" for w in names], True
    order = sorted(range(len(rows)), key=lambda i: (rows[i].start, rows[i].end))
    lane = [0] * len(rows)
    free: list[tuple[float, int]] = []  # (when it frees, slot)
    slots = 0
    for i in order:
        if free and free[0][0] <= rows[i].start:
            _, slot = heapq.heappop(free)
        else:
            slot, slots = slots, slots + 1
        lane[i] = slot
        heapq.heappush(free, (rows[i].end, slot))
    return lane, [f"slot {i + 1}" for i in range(slots)], False


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Return a sort key that orders the numbers in a name by value: host:2 before host:10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _axis(span: float, top: int, bottom: int) -> list[str]:
    """Return the time axis: ticks at 1, 2 or 5 × a power of ten seconds, about eight of them."""
    raw = span / 8
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    parts = []
    for k in range(int(span / step) + 1):
        x = LABEL_W + k * step * PLOT_W / span
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#dee2e6"/>'
                     f'<text x="{x:.1f}" y="{top - 8}" class="tick">{"0" if k == 0 else seconds(k * step)}</text>')
    return parts


def _each(drawn: Iterable[tuple[int, TraceRow]], t0: float, x: float, top: int, lane_h: int,
          colours: Mapping[str, str], by_worker: bool) -> list[str]:
    """Return one bar per attempt."""
    parts = []
    for row, r in drawn:
        colour = STATUS_COLOURS["failed"] if r.status == "failed" else colours[r.step]
        width = max(1.0, (r.end - r.start) * x)
        who = f", worker {r.worker}" if by_worker else ""
        title = f"{r.id}: {r.status} in {seconds(r.end - r.start)}, attempt {r.attempt}{who}"
        parts.append(f'<rect x="{LABEL_W + (r.start - t0) * x:.1f}" y="{top + row * lane_h + 2}" width="{width:.1f}" '
                     f'height="{lane_h - 4}" fill="{colour}"><title>{esc(title)}</title></rect>')
    return parts


def _binned(drawn: Sequence[tuple[int, TraceRow]], t0: float, span: float, top: int, lane_h: int,
            colours: Mapping[str, str], per_row: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Return one cell per (row, bin) with work in it: the busiest step's colour, opacity by how busy."""
    width = span / BINS
    partial: dict[tuple[int, str], list[float]] = {}
    whole: dict[tuple[int, str], list[int]] = {}  # a difference array of bins fully covered
    started = [[0] * BINS for _ in per_row]
    failed = [[0] * BINS for _ in per_row]
    for row, r in drawn:
        key = (row, r.step)
        part = partial.get(key)
        if part is None:
            part = partial[key] = [0.0] * BINS
            whole[key] = [0] * (BINS + 1)
        first = min(BINS - 1, int((r.start - t0) / width))
        last = min(BINS - 1, int((r.end - t0) / width))
        if first == last:
            part[first] += r.end - r.start
        else:
            part[first] += t0 + (first + 1) * width - r.start
            part[last] += r.end - (t0 + last * width)
            whole[key][first + 1] += 1
            whole[key][last] -= 1
        started[row][first] += 1
        if r.status == "failed":
            failed[row][last] += 1
    busy: dict[int, dict[str, list[float]]] = {}
    for (row, step), part in partial.items():
        covered = accumulate(whole[(row, step)][:BINS])
        busy.setdefault(row, {})[step] = [p + c * width for p, c in zip(part, covered)]
    cell = PLOT_W / BINS
    parts = []
    for row, by_step in sorted(busy.items()):
        y = top + row * lane_h
        for b in range(BINS):
            total = sum(times[b] for times in by_step.values())
            if total <= 0 and not failed[row][b]:
                continue
            step = max(by_step, key=lambda s: by_step[s][b])
            share = min(1.0, total / (width * per_row[row]))
            when = f"{seconds(b * width)}–{seconds((b + 1) * width)}"
            title = (f"{labels[row]}, {when}: busy {share:.0%}, mostly {step}; {count(started[row][b])} started"
                     + (f", {count(failed[row][b])} failed" if failed[row][b] else ""))
            x = LABEL_W + b * cell
            parts.append(f'<rect x="{x:.1f}" y="{y + 1}" width="{cell + 0.4:.1f}" height="{lane_h - 2}" '
                         f'fill="{colours[step]}" fill-opacity="{0.15 + 0.85 * share:.2f}"><title>{esc(title)}</title>'
                         "</rect>")
            if failed[row][b]:
                parts.append(f'<rect x="{x:.1f}" y="{y + lane_h - 5}" width="{cell + 0.4:.1f}" height="4" '
                             f'fill="{STATUS_COLOURS["failed"]}"/>')
    return parts


def _pace(rows: Sequence[TraceRow], t0: float, span: float, top: int) -> list[str]:
    """Return a histogram of attempts ended per bin (at most `BINS`), stacked by outcome."""
    bins = min(BINS, max(20, len(rows) // 5))
    width = span / bins
    ended: dict[str, list[int]] = {}
    for r in rows:
        b = min(bins - 1, int((r.end - t0) / width))
        ended.setdefault("failed" if r.status == "failed" else "succeeded", [0] * bins)[b] += 1
    peak = max(max(c) for c in ended.values())
    cell = PLOT_W / bins
    parts = [f'<text x="{LABEL_W - 6}" y="{top + PACE_H / 2 + 4:.0f}" class="lane">ended</text>',
             f'<line x1="{LABEL_W}" y1="{top + PACE_H}" x2="{LABEL_W + PLOT_W}" y2="{top + PACE_H}" stroke="#adb5bd"/>',
             f'<text x="{LABEL_W + PLOT_W}" y="{top + PACE_H + 16}" class="tick end">peak {count(peak)} per '
             f'{seconds(width)}</text>']
    for b in range(bins):
        base = 0.0
        for status in ("succeeded", "failed"):
            n = ended.get(status, [0] * bins)[b]
            if not n:
                continue
            h = PACE_H * n / peak
            parts.append(f'<rect x="{LABEL_W + b * cell:.1f}" y="{top + PACE_H - base - h:.1f}" '
                         f'width="{max(cell - 0.5, 0.5):.1f}" height="{h:.1f}" fill="{STATUS_COLOURS[status]}">'
                         f"<title>{seconds(b * width)}–{seconds((b + 1) * width)}: {count(n)} {status}</title></rect>")
            base += h
    return parts
