"""Calls in flight: the dispatches of waves that have not ended, and how their outcomes reach the scheduler.

The scheduler hands each wave to the dispatch function, which returns an iterator of (chunk,
results): a *call*. The run state belongs to the scheduler's thread, and every outcome is settled
there; what this module decides is where calls run and in what order their outcomes arrive:

- `InlineCalls` iterates calls in the scheduler's own thread, one outcome at a time, taking from
  each call in flight in turn. With one call at a time, waves never overlap: the sequential
  backend runs so, and the test harness, which can also let a few calls overlap in a fixed order
  to test the rules that overlapping needs.
- `ThreadedCalls` runs each call on a thread of its own, which puts what the call yields on one
  queue that the scheduler reads, as dask's local scheduler feeds its queue from its pool's
  callbacks. joblib takes no new work into a running `Parallel` call, but it runs another call on
  the same workers meanwhile; so a node made ready while a call runs (the children of a parent that
  finished) starts in a call of its own, beside the first, instead of waiting for it to end.

When a new call may start
    Once every call in flight has handed its last chunk to the backend (it is *drained*), and
    while fewer than `most` calls run. Before that the workers still have chunks of the earlier
    calls queued, so the new nodes would only wait behind them while paying a call's fixed cost;
    once drained, a worker that frees up would otherwise go idle. A dispatch says it is drained
    through the `drained` callback it is given (from whatever thread feeds its backend).

Events
    `next` returns one `Event` at a time: an outcome (a chunk and its results), that a call is
    drained (threads only: a new call may start now), the end of a call, or a call's failure
    (the exception the dispatch raised, which the scheduler raises in its own thread).

Why threads, and not one call fed as nodes become ready
    joblib asks for a call's next chunk from its callback thread, holding its lock: an input
    that waited there for new nodes would stall the results of the call itself. Submitting
    chunks to the executors without `Parallel` would leave joblib's backends (and Dask's fixes in
    `plait.runtime.dask_backend`) behind. A `Parallel` call has a fixed cost (docs/performance.md),
    and a call starts only once those in flight are drained, so there are few.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import NamedTuple

from plait.runtime.execute import Chunk, Results

__all__ = ["DRAINED", "ENDED", "OUTCOME", "RAISED", "Call", "Event", "InlineCalls", "ThreadedCalls", "calls_for"]

# A call: given the `drained` callback, returns the iterator of what its wave's chunks gave.
Call = Callable[[Callable[[], None]], Iterable[tuple[Chunk, Results]]]

OUTCOME, DRAINED, ENDED, RAISED = "outcome", "drained", "ended", "raised"


class Event(NamedTuple):
    """What a call sent: an outcome (`chunk`, `results`), that it is drained, its end, or its failure (`error`)."""

    call: int
    kind: str  # OUTCOME | DRAINED | ENDED | RAISED
    chunk: Chunk | None = None
    results: Results | None = None
    error: BaseException | None = None


class _Calls:
    """What both kinds of calls keep: how many may run, their numbers, those in flight and those drained."""

    running: Collection[int]

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self.numbers = itertools.count(1)
        self.drained: set[int] = set()

    @property
    def busy(self) -> bool:
        """Whether a call is in flight."""
        return bool(self.running)

    def may_start(self) -> bool:
        """Whether a new call may start now: every call in flight is drained, and fewer than `most` run."""
        return len(self.running) < self.most and self.drained.issuperset(self.running)


class InlineCalls(_Calls):
    """Calls iterated in this thread, one outcome at a time from each in turn (see the module docstring)."""

    def __init__(self, most: int = 1) -> None:
        super().__init__(most)
        self.running: dict[int, Iterator[tuple[Chunk, Results]]] = {}  # in the order they are taken from

    def start(self, call: Call) -> int:
        """Start `call`; return its number. Mutates."""
        number = next(self.numbers)
        self.running[number] = iter(call(lambda: self.drained.add(number)))
        return number

    def next(self, timeout: float | None = None) -> Event:
        """Return the next event: the next outcome of the call whose turn it is, or its end. Mutates."""
        number, calls = next(iter(self.running.items()))
        del self.running[number]  # its turn is over: it goes to the back, if it goes on
        try:
            chunk, results = next(calls)
        except StopIteration:
            self.drained.discard(number)
            return Event(number, ENDED)
        except Exception as err:
            self.drained.discard(number)
            return Event(number, RAISED, error=err)
        self.running[number] = calls
        return Event(number, OUTCOME, chunk, results)

    def close(self) -> None:
        """Drop the calls still in flight (their iterators are closed, which aborts what they run). Mutates."""
        for calls in self.running.values():
            close = getattr(calls, "close", None)
            if close is not None:
                close()
        self.running.clear()


class ThreadedCalls(_Calls):
    """Calls run on threads of their own, their events on one queue (see the module docstring)."""

    def __init__(self, most: int) -> None:
        super().__init__(most)
        self.running: set[int] = set()
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def start(self, call: Call) -> int:
        """Start `call` on a thread of its own; return its number. Mutates."""
        number = next(self.numbers)
        put = self.events.put

        def drained() -> None:
            put(Event(number, DRAINED))

        def run(calls: Iterable[tuple[Chunk, Results]]) -> None:
            try:
                for chunk, results in calls:
                    put(Event(number, OUTCOME, chunk, results))
            except BaseException as err:  # handed to the scheduler's thread, which raises it
                put(Event(number, RAISED, error=err))
            else:
                put(Event(number, ENDED))

        calls = call(drained)  # made here: a dispatch that opens its backend does it in this thread
        self.running.add(number)
        threading.Thread(target=run, args=(calls,), name=f"plait-call-{number}", daemon=True).start()
        return number

    def next(self, timeout: float | None = None) -> Event | None:
        """Return the next outcome, end or failure of a call; None when `timeout` seconds pass first. Mutates."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                return None
            if event.kind == DRAINED:
                if event.call in self.running:
                    self.drained.add(event.call)
                    return Event(event.call, DRAINED)
                continue
            if event.kind != OUTCOME:
                self.running.discard(event.call)
                self.drained.discard(event.call)
            return event

    def close(self) -> None:
        """Forget the calls still in flight: their threads end with them (the backend's closing aborts them)."""
        self.running.clear()
        self.drained.clear()


def calls_for(most: int) -> InlineCalls | ThreadedCalls:
    """Return where a run's calls go: on threads, `most` at once; or, for one, in the scheduler's thread."""
    return ThreadedCalls(most) if most > 1 else InlineCalls()
