"""Calls in flight (plait.runtime.calls): when a new call may start, and what reaches the scheduler's thread.

The calls here are fakes: iterators whose order of events the test decides with events and queues,
never by sleeping.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plait.runtime.calls import DRAINED, ENDED, OUTCOME, RAISED, Event, InlineCalls, ThreadedCalls

WAIT = 60  # seconds: a bound on a hang, not a timing


def nodes(event: Event | None) -> tuple[int, str, Any] | None:
    """Return an event as (call, kind, its chunk's nodes or its error's text)."""
    if event is None:
        return None
    return event.call, event.kind, event.chunk if event.error is None else str(event.error)


def scripted(outcomes: list[Any], drained_after: int = 0) -> Callable[[Callable[[], None]], Iterator[Any]]:
    """Return a call that says it is drained after `drained_after` outcomes, then yields the rest; an exception
    in `outcomes` is raised where it stands."""

    def call(drained: Callable[[], None]) -> Iterator[Any]:
        for position, outcome in enumerate(outcomes):
            if position == drained_after:
                drained()
            if isinstance(outcome, Exception):
                raise outcome
            yield outcome, None
        if drained_after >= len(outcomes):
            drained()

    return call


def test_inline_calls_take_one_outcome_from_each_call_in_turn_and_start_only_when_all_are_drained() -> None:
    calls = InlineCalls(most=2)
    first = calls.start(scripted(["a1", "a2"], drained_after=1))
    assert (calls.may_start(), nodes(calls.next())) == (False, (first, OUTCOME, "a1"))
    assert calls.may_start() is False  # drained only once it is asked past its first outcome
    assert nodes(calls.next()) == (first, OUTCOME, "a2")
    assert calls.may_start() is True
    second = calls.start(scripted(["b1"]))
    assert calls.may_start() is False  # two in flight: the most
    assert [nodes(calls.next()) for _ in range(3)] == [(first, ENDED, None), (second, OUTCOME, "b1"),
                                                       (second, ENDED, None)]
    assert (calls.busy, calls.may_start()) == (False, True)


def test_inline_calls_hand_on_what_a_call_raises() -> None:
    calls = InlineCalls()
    number = calls.start(scripted(["a1", ValueError("broken")]))
    assert [nodes(calls.next()) for _ in range(2)] == [(number, OUTCOME, "a1"), (number, RAISED, "broken")]
    assert calls.busy is False


def gated(gate: queue.SimpleQueue) -> Callable[[Callable[[], None]], Iterator[Any]]:
    """Return a call that yields what the test puts on `gate`, one at a time, until it puts None; "drained"
    makes it say it is drained, and an exception is raised."""

    def call(drained: Callable[[], None]) -> Iterator[Any]:
        while (step := gate.get(timeout=WAIT)) is not None:
            if step == "drained":
                drained()
            elif isinstance(step, Exception):
                raise step
            else:
                yield step, None

    return call


def test_threaded_calls_overlap_once_drained_and_their_events_reach_this_thread() -> None:
    calls = ThreadedCalls(most=2)
    one, two = queue.SimpleQueue(), queue.SimpleQueue()
    first = calls.start(gated(one))
    one.put("a1")
    assert (nodes(calls.next(WAIT)), calls.may_start()) == ((first, OUTCOME, "a1"), False)
    one.put("drained")
    assert (nodes(calls.next(WAIT)), calls.may_start()) == ((first, DRAINED, None), True)
    second = calls.start(gated(two))  # while the first still runs: its thread waits on the test
    two.put("b1")
    assert nodes(calls.next(WAIT)) == (second, OUTCOME, "b1")
    two.put(RuntimeError("lost"))
    assert nodes(calls.next(WAIT)) == (second, RAISED, "lost")
    one.put(None)
    assert (nodes(calls.next(WAIT)), calls.busy) == ((first, ENDED, None), False)


def test_threaded_calls_wait_no_longer_than_asked() -> None:
    calls = ThreadedCalls(most=2)
    gate: queue.SimpleQueue = queue.SimpleQueue()
    calls.start(gated(gate))
    assert calls.next(0.0) is None  # nothing has happened yet: the scheduler gets on with a retry that is due
    gate.put(None)
    assert nodes(calls.next(WAIT))[1] == ENDED


@pytest.mark.parametrize("make", [InlineCalls, lambda: ThreadedCalls(2)])
def test_a_call_is_made_in_the_thread_that_starts_it(make: Callable[[], Any]) -> None:
    made_in: list[threading.Thread] = []

    def call(drained: Callable[[], None]) -> Iterator[Any]:
        made_in.append(threading.current_thread())  # a dispatch that opens its backend does it here
        return iter([])

    calls = make()
    calls.start(call)
    assert made_in == [threading.current_thread()]
    while calls.busy:
        calls.next(WAIT)
