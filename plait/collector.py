"""Python's cyclic garbage collector, handled in one place for compiling and for running.

A plan is a few long-lived objects per node, and a run allocates a few hundred thousand
short-lived tuples and lists (ledger rows, wave columns) that trigger collections, each of which
rescans every object alive: the plan's and the run's. Neither makes reference cycles of its
own, so the collector only costs time here (docs/performance.md has the figures):
- `paused` while a plan is built (compiled, or grown by a run-time expansion): nothing built is
  garbage, so nothing is lost by waiting; and when the block built much (`FREEZE_AFTER`
  allocations), what it built is frozen as it ends (`gc.freeze`): else the first collections
  after it would scan every object of the plan, all of them in the youngest generation, and
  promote them generation by generation, each time scanning them again;
- `during_run` while a plan runs: the plan is frozen out of the collector's sight (`gc.freeze`)
  and collections run a hundred times less often; a handler on the threading backend that
  makes cycles still has them collected, in fewer, larger collections.
Both undo what they change on the way out, but for the freeze of a large build, which the next
`during_run` undoes (it unfreezes everything as it ends); a process that only compiles keeps its
plan frozen, which costs nothing: the plan holds no reference cycle for the collector to find.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["during_run", "paused"]

LESS_OFTEN = 100  # the first generation's threshold is multiplied by this during a run
FREEZE_AFTER = 100_000  # allocations in a paused block past which what it built is frozen


@contextmanager
def paused() -> Iterator[None]:
    """Pause the collector (if it was on) for the block; freeze what it built if that was much."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_AFTER:  # the youngest generation counts allocations, paused or not
            gc.freeze()
        if was_enabled:
            gc.enable()


@contextmanager
def during_run() -> Iterator[None]:
    """Freeze what is alive now (the plan) and collect less often for the block."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(before[0] * LESS_OFTEN, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
