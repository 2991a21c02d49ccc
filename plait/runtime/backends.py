"""Executor backends: joblib runs the waves the scheduler hands it.

The scheduler never sees joblib: it gets a `dispatch(units)` function that yields each unit's
outcomes as they finish. `open_backend` builds it over one `joblib.Parallel` kept open for the
whole run (its workers are reused from wave to wave), with `return_as="generator_unordered"`
and joblib's automatic batching, so trivial nodes travel to workers in batches.

`sequential` runs in this process (for debugging and for tests that step through), `threading`
in threads of this process, `loky` (the default) in worker processes.

A worker process that dies (a segfault, `os._exit`) makes joblib abort the whole call with
`TerminatedWorkerError`, dropping the results of the other units in flight without saying which
unit killed it. The units that had not come back are suspects: each is run again alone, the
innocent come back normally (at-least-once: a unit cut short runs again). A unit that kills its
worker again is run node by node (a fused chain in order, each node handed its feeder's result),
and the node that kills its worker is the culprit: it alone gets a `WorkerCrashed` failure.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from plait.runtime.execute import NodeJob, RunInfo, run_unit
from plait.runtime.outcome import FAILED, SKIPPED, SUCCEEDED, Outcome, error_record

__all__ = ["BACKENDS", "WorkerCrashed", "open_backend"]

BACKENDS = ("loky", "threading", "sequential")

Unit = tuple[RunInfo, tuple[NodeJob, ...]]


class WorkerCrashed(OSError):
    """The worker process running a node died."""


def _run_indexed(index: int, info: RunInfo, jobs: tuple[NodeJob, ...]) -> tuple[int, list[Outcome]]:
    return index, run_unit(info, jobs)


@contextmanager
def open_backend(name: str, n_jobs: int) -> Iterator[Any]:
    """Yield a dispatch function running units on backend `name` with `n_jobs` workers."""
    if name not in BACKENDS:
        raise ValueError(f"backend '{name}' is not one of {', '.join(BACKENDS)}")
    workers = 1 if name == "sequential" else n_jobs
    with Parallel(n_jobs=workers, backend=name, return_as="generator_unordered") as parallel:

        def dispatch(units: list[Unit]) -> Iterator[list[Outcome]]:
            returned: set[int] = set()
            try:
                for index, outcomes in parallel(delayed(_run_indexed)(i, *u) for i, u in enumerate(units)):
                    returned.add(index)
                    yield outcomes
            except TerminatedWorkerError:
                for index, unit in enumerate(units):
                    if index not in returned:
                        yield from _isolated(parallel, unit)

        yield dispatch


def _isolated(parallel: Parallel, unit: Unit) -> Iterator[list[Outcome]]:
    """Run one suspect unit alone; if it kills its worker again, find the node that does and charge it."""
    try:
        for _, outcomes in parallel([delayed(_run_indexed)(0, *unit)]):
            yield outcomes
    except TerminatedWorkerError:
        yield from _one_by_one(parallel, unit)


def _one_by_one(parallel: Parallel, unit: Unit) -> Iterator[list[Outcome]]:
    """Run a unit's jobs one per call, in chain order, handing each its feeder's result."""
    info, jobs = unit
    passed: dict[int, Any] = {}
    for index, job in enumerate(jobs):
        steps = job.steps
        if job.parent is not None:
            if job.parent not in passed:
                continue
            steps = {**steps, jobs[job.parent].call.step: {"result": passed[job.parent]}}
        alone = job._replace(steps=steps, parent=None)
        try:
            [(_, outcomes)] = list(parallel([delayed(_run_indexed)(0, info, (alone,))]))
        except TerminatedWorkerError as err:
            crash = WorkerCrashed(f"the worker process died while running {job.node}: {_reason(err)}")
            record = error_record(crash, node=job.node, item=job.item, attempt=job.attempt, policy=job.call.retry)
            now = time.time()
            yield [Outcome(job.node, FAILED, None, record, now, now)]
            return
        if outcomes and outcomes[0].status in (SUCCEEDED, SKIPPED):
            passed[index] = json.loads(outcomes[0].result)
        yield outcomes


def _reason(err: TerminatedWorkerError) -> str:
    """Return loky's account of the death ("SIGSEGV(-11)", "EXIT(3)"), or a plain one."""
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(err))
    return found.group(1) if found else "it was terminated"
