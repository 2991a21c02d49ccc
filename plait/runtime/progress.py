"""Live progress per step: done / failed / total, rate and ETA.

On a terminal the block of step lines is redrawn in place at most ten times a second; anywhere
else (a CI log, a pipe) one plain line is printed every `PLAIN_EVERY` seconds and a last one at
the end, so a long run's log stays short. Drawing is throttled because a 100,000-item run settles
tens of thousands of nodes a second and must not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from plait.compiler import Plan

__all__ = ["Progress"]

PLAIN_EVERY = 10.0
REDRAW_EVERY = 0.1


class Progress:
    """Counts settled task nodes per step and draws them."""

    def __init__(self, plan: Plan, already_done: Counter, stream: TextIO | None = None,
                 interactive: bool | None = None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.totals = Counter(n.step for n in plan.nodes.values() if n.kind == "task")
        self.deferred = {n.step for n in plan.nodes.values() if n.kind == "deferred"}
        self.done = Counter(already_done)
        self.failed: Counter = Counter()
        self.start = time.monotonic()
        self.settled_now = 0
        self.last_draw = 0.0
        self.lines_drawn = 0

    def update(self, step: str, status: str, count: int = 1) -> None:
        """Count `count` settled nodes of `step`. Mutates."""
        if status == "failed":
            self.failed[step] += count
        else:
            self.done[step] += count
        self.settled_now += count
        now = time.monotonic()
        if now - self.last_draw >= (REDRAW_EVERY if self.interactive else PLAIN_EVERY):
            self.draw(now)

    def draw(self, now: float | None = None) -> None:
        """Draw the current counts."""
        now = time.monotonic() if now is None else now
        self.last_draw = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.settled_now / elapsed
        total = sum(self.totals.values())
        left = total - sum(self.done.values()) - sum(self.failed.values())
        eta = f"ETA {left / rate:,.0f} s" if rate > 0 and left > 0 and not self.deferred else ""
        if not self.interactive:
            parts = [f"{s} {self._count(s)}" for s in self._steps()]
            self.stream.write(f"progress: {'; '.join(parts)} ({rate:,.0f} nodes/s) {eta}\n".rstrip() + "\n")
            self.stream.flush()
            return
        lines = [f"  {s:<20} {self._count(s)}" for s in self._steps()]
        lines.append(f"  {rate:,.0f} nodes/s  {eta}")
        up = f"\x1b[{self.lines_drawn}A" if self.lines_drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.lines_drawn = len(lines)

    def close(self) -> None:
        """Draw the final counts."""
        self.draw()

    def _steps(self) -> list[str]:
        return list(dict.fromkeys([*self.totals, *self.deferred, *self.done, *self.failed]))

    def _count(self, step: str) -> str:
        total = f"{self.totals[step]:,}" if self.totals[step] or step not in self.deferred else "?"
        failed = f", {self.failed[step]:,} failed" if self.failed[step] else ""
        return f"{self.done[step]:,}/{total} done{failed}"
