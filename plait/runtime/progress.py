"""Live progress per step: done / failed / skipped of each step's total, elapsed time, rate and ETA.

On an interactive terminal the step lines are a live block (`plait.screen.Screen`): redrawn
in place at most ten times a second, and once a second while nothing settles, so the elapsed
time moves; log lines print above it. Anywhere else (a CI log, a pipe) one plain line is printed
every `PLAIN_EVERY` seconds and a last one at the end, so a long run's log stays short. Drawing
is throttled because a 100,000-item run settles tens of thousands of nodes a second and must not
spend its time printing.

What is counted
    Task nodes only: a placeholder (a deferred step's, a per-parent fan-out's) and a join are
    plait's bookkeeping, not work. Nodes the ledger has as done count as done. A step that
    expands at run time shows `?` as its total until it has expanded, then its real total (`+`
    after it while some of its placeholders have not expanded yet): the scheduler announces
    each expansion (`grow`).

Rate and ETA
    The rate is measured from the first node that settled in this run, not from the start (which
    includes starting the workers), and only once a node settled at least `RATE_AFTER` seconds
    after that first one: before then it is not known, and neither rate nor ETA is shown. There
    is no ETA while a step's total is unknown. The last line of a finished run says how long it
    took and how many nodes it ran, with a rate only when it ran some.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from plait.compiler import NodeSpec, Plan
from plait.screen import Screen

if TYPE_CHECKING:
    from plait.runtime.state import RunState

__all__ = ["Progress"]

PLAIN_EVERY = 10.0
REDRAW_EVERY = 0.1
TICK_EVERY = 1.0
RATE_AFTER = 1.0
NAME_WIDTH = 24  # a longer step name is cut in the live block, so that its counts fit beside it


class Progress:
    """Counts settled task nodes per step and draws them (see the module docstring)."""

    def __init__(self, plan: Plan, already_done: Counter, stream: TextIO | Screen | None = None,
                 interactive: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.screen = stream if isinstance(stream, Screen) else Screen(stream or sys.stderr, interactive)
        self.live = self.screen.live
        self.clock = clock
        self.totals: Counter = Counter()
        self.open: Counter = Counter()  # step -> placeholders not expanded yet
        for node in plan.nodes.values():
            if node.kind == "task":
                self.totals[node.step] += 1
            elif node.kind == "deferred":
                self.open[node.step] += 1
        self.steps = list(plan.steps)
        self.done = Counter(already_done)
        self.failed: Counter = Counter()
        self.skipped: Counter = Counter()
        self.start = clock()
        self.settled_now = 0
        self.first: tuple[float, int] | None = None  # (when, how many) the first settlement of this run
        self.last_settle = 0.0
        self.last_draw = float("-inf")
        self.finished = False  # the run is over: the last line says how long it took
        self.closed = False
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        if self.live:
            threading.Thread(target=self._tick, name="plait-progress", daemon=True).start()

    def attach(self, state: RunState) -> None:
        """Have a run's scheduler tell this display what settles and what expands. Mutates `state`."""
        state.on_settle = self.update
        state.on_grow = self.grow

    def update(self, step: str, status: str, count: int = 1) -> None:
        """Count `count` settled task nodes of `step` with final `status`. Mutates."""
        with self.lock:
            counter = self.failed if status == "failed" else self.skipped if status == "skipped" else self.done
            counter[step] += count
            now = self.clock()
            if self.first is None:
                self.first = (now, count)
            self.settled_now += count
            self.last_settle = now
            due = now - self.last_draw >= (REDRAW_EVERY if self.live else PLAIN_EVERY)
        if due:
            self.draw(now)

    def grow(self, expanded: Sequence[str], new: Sequence[NodeSpec], status: Mapping[str, str]) -> None:
        """Count the nodes placeholders expanded into (`expanded`: the step of each placeholder): new task
        nodes (those the ledger has as done among them, on a resume), new placeholders. Mutates."""
        with self.lock:
            self.open.subtract(expanded)
            for node in new:
                if node.kind == "task":
                    self.totals[node.step] += 1
                    if status.get(node.id) == "succeeded":
                        self.done[node.step] += 1
                elif node.kind == "deferred":
                    self.open[node.step] += 1

    def draw(self, now: float | None = None) -> None:
        """Draw the current counts: the live block, or one plain line (nothing once closed)."""
        with self.lock:
            if self.closed:
                return
            now = self.clock() if now is None else now
            self.last_draw = now
            if self.live:
                self.screen.show(self.lines(now))
            else:
                counts = "; ".join(f"{step} {done}{rest}" for step, done, rest in self._rows())
                self.screen.write(f"progress: {counts} ({self._pace(now)})\n")
                self.screen.flush()

    def close(self) -> None:
        """Draw the final counts and stop drawing."""
        self.stopped.set()
        with self.lock:
            self.finished = True
        self.draw()
        with self.lock:
            self.closed = True
        if self.live:
            self.screen.close()

    def lines(self, now: float) -> list[str]:
        """Return the live block's lines: one per step, its counts aligned, then elapsed time, rate and ETA."""
        rows = [(step if len(step) <= NAME_WIDTH else step[:NAME_WIDTH - 1] + "…", done, rest)
                for step, done, rest in self._rows()]
        width = max((len(step) for step, _, _ in rows), default=0)
        digits = max((len(f"{n:,}") for n in (*self.done.values(), *self.totals.values())), default=1)
        return [*(f"  {step:<{width}}  {done:>{digits}}{rest}" for step, done, rest in rows), "  " + self._pace(now)]

    def _rows(self) -> list[tuple[str, str, str]]:
        """Return (step, "12", "/30 done, 1 failed, 2 skipped") for each step that has nodes, in plan order."""
        return [(step, *self._count(step)) for step in self.steps
                if self.totals[step] or self.open[step] > 0 or self._settled(step)]

    def _settled(self, step: str) -> int:
        return self.done[step] + self.failed[step] + self.skipped[step]

    def _count(self, step: str) -> tuple[str, str]:
        """Return ("12", "/30 done, 1 failed, 2 skipped") for a step."""
        total, open_ = self.totals[step], self.open[step] > 0
        shown = "?" if open_ and not total else f"{total:,}+" if open_ else f"{total:,}"
        extra = "".join(f", {n:,} {what}" for n, what in ((self.failed[step], "failed"),
                                                           (self.skipped[step], "skipped")) if n)
        return f"{self.done[step]:,}", f"/{shown} done{extra}"

    def _pace(self, now: float) -> str:
        """Return 'elapsed 12 s, 1,204 nodes/s, ETA 3 s' (no rate or ETA before they are known)."""
        elapsed = now - self.start
        parts = [f"{_seconds(elapsed)} elapsed" if not self.finished else f"finished in {_seconds(elapsed)}"]
        rate = self._rate()
        if self.finished:
            ran = self.settled_now - sum(self.skipped.values())  # skipped nodes settled, but did not run
            parts.append(f"{ran:,} node{'s' if ran != 1 else ''} run" if ran else "no node run")
            if ran and rate and rate >= 1:
                parts[-1] += f" ({rate:,.0f} nodes/s)"
        elif rate:
            parts.append(f"{rate:,.0f} nodes/s" if rate >= 1 else f"{60 * rate:,.1f} nodes/min")
            left = sum(self.totals.values()) - sum(map(self._settled, self.totals))
            if left > 0 and not any(n > 0 for n in self.open.values()):  # counts down between settlements
                parts.append(f"ETA {_seconds(max(0.0, left / rate - (now - self.last_settle)))}")
        return ", ".join(parts)

    def _rate(self) -> float | None:
        """Nodes settled per second since the first settlement; None until `RATE_AFTER` seconds of it."""
        if self.first is None:
            return None
        since, counted = self.first
        span = self.last_settle - since
        if span < RATE_AFTER or self.settled_now <= counted:
            return None
        return (self.settled_now - counted) / span

    def _tick(self) -> None:
        """Redraw once a second while nothing settles, so the elapsed time moves (live block only)."""
        while not self.stopped.wait(TICK_EVERY):
            if self.screen.closed:
                return
            if self.clock() - self.last_draw >= TICK_EVERY:
                self.draw()


def _seconds(value: float) -> str:
    """Return '0.4 s', '12 s', '3 min 05 s', '2 h 03 min'."""
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

