"""Executor backends: joblib runs the waves the scheduler hands it.

The scheduler never sees joblib: it gets a `dispatch(units)` function that yields each unit's
outcomes as they finish. `open_backend` builds it over one `joblib.Parallel` kept open for the
whole run (its workers are reused from wave to wave), with `return_as="generator_unordered"`
and joblib's automatic batching, so trivial nodes travel to workers in batches.

`sequential` runs in this process (for debugging and for tests that step through), `threading`
in threads of this process, `loky` (the default) in worker processes, and `dask` on a Dask
cluster through joblib's `dask` backend (`plait.runtime.dask_backend` connects to one, or starts a
`LocalCluster`). Every backend goes through the same `Parallel` and the same `dispatch`; only
what `Parallel` is given differs.

Worker loss
    A worker process that dies (a segfault, `os._exit`) makes joblib abort the whole call, dropping
    the results of the other units in flight without saying which unit killed it: loky raises
    `TerminatedWorkerError`; on Dask, the cluster first runs the dead worker's tasks again itself
    and, once a task has killed `allowed-failures` + 1 workers, fails it with `KilledWorker`, which
    the dask backend hands on as `WorkerLost`. Both lead here. The units that had not come back are
    suspects; the oldest of them (the first dispatched, so the likeliest culprit) runs alone, and
    the rest run together again: the innocent come back normally (at-least-once: a unit cut short
    runs again), and every crash takes at least one suspect out of the pool, so recovering costs
    two calls per crash, not one call per suspect. A single node that kills its worker when alone
    is the culprit; a fused chain that does is run node by node (in order, each node handed its
    feeder's result), and the node that kills its worker is. The culprit alone gets a
    `WorkerCrashed` failure, which its retry policy may retry. Calls are numbered, so a result
    that a reused `Parallel` hands back from the call it aborted is never taken for another's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import BrokenProcessPool
from loguru import logger

from plait.runtime import BACKENDS
from plait.runtime.execute import NodeJob, RunInfo, run_unit, start_worker
from plait.runtime.outcome import FAILED, SKIPPED, SUCCEEDED, Outcome, error_record

__all__ = ["BackendUnavailable", "WorkerCrashed", "WorkerLost", "check_backend", "open_backend"]

Unit = tuple[RunInfo, tuple[NodeJob, ...]]
Prepare = Callable[[RunInfo], None] | None  # a backend's set-up for a run, before its first wave


class WorkerCrashed(OSError):
    """The worker process running a node died."""


class WorkerLost(Exception):
    """A worker died while running units of a call (a backend's `TerminatedWorkerError`, in plait's words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BackendUnavailable(RuntimeError):
    """The backend cannot run here: its package is missing, or its cluster cannot be reached or used."""


# A pool broken by a worker's death (TerminatedWorkerError is one kind of BrokenProcessPool).
_LOST = (BrokenProcessPool, WorkerLost)


def check_backend(name: str, scheduler_address: str | None = None) -> None:
    """Check a backend choice before a run starts. Raises ValueError, BackendUnavailable."""
    if name not in BACKENDS:
        raise ValueError(f"backend '{name}' is not one of {', '.join(BACKENDS)}")
    if scheduler_address is not None and name != "dask":
        raise ValueError(f"a scheduler address ({scheduler_address}) is only for backend 'dask', not '{name}'")
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as err:
            raise BackendUnavailable(f"backend 'dask' needs plait's 'dask' extra, which is not installed here ({err}); "
                                     "install it with `pip install 'plait[dask]'`, which brings `distributed`") from err


def _run_tagged(call: int, index: int, info: RunInfo, jobs: tuple[NodeJob, ...]) -> tuple[int, int, list[Outcome]]:
    return call, index, run_unit(info, jobs)


@contextmanager
def open_backend(name: str, n_jobs: int, *, scheduler_address: str | None = None) -> Iterator[Any]:
    """Yield a dispatch function running units on backend `name` with `n_jobs` workers.

    For `dask`, `scheduler_address` names the cluster to use (else a LocalCluster of `n_jobs`
    workers lives as long as this context). Raises ValueError, BackendUnavailable.
    """
    check_backend(name, scheduler_address)
    # loky workers start ignoring Ctrl-C (the parent decides) and watching for the parent's death.
    extra = {"initializer": start_worker, "initargs": (os.getpid(),)} if name == "loky" else {}
    with _joblib_backend(name, n_jobs, scheduler_address) as (backend, workers, prepare), \
            Parallel(n_jobs=workers, backend=backend, return_as="generator_unordered", **extra) as parallel:
        if name == "loky":
            _start_workers(parallel, workers)
        yield _Dispatcher(parallel, prepare).dispatch


def _start_workers(parallel: Parallel, workers: int) -> None:
    """Start loky's workers now, with SIGINT blocked, so none can die of Ctrl-C while it boots.

    A signal mask is inherited across fork and exec, and by the threads created while it holds, so
    the workers (and loky's manager thread, which respawns them) start with SIGINT blocked until
    `start_worker` ignores it. Without this, Ctrl-C at a terminal kills a worker still importing,
    and joblib aborts the call with the nodes in flight.
    """
    if threading.current_thread() is not threading.main_thread():
        list(parallel(delayed(os.getpid)() for _ in range(workers)))
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        list(parallel(delayed(os.getpid)() for _ in range(workers)))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextmanager
def _joblib_backend(name: str, n_jobs: int, scheduler_address: str | None) -> Iterator[tuple[Any, int, Prepare]]:
    """Yield what `Parallel` takes as `backend` and `n_jobs` for backend `name`, and how to prepare for a run."""
    if name == "dask":
        from plait.runtime.dask_backend import dask_backend

        with dask_backend(n_jobs, scheduler_address) as backend:
            yield backend, -1, backend.prepare  # -1: the cluster's size decides
    else:
        yield name, 1 if name == "sequential" else n_jobs, None


class _Dispatcher:
    """Run waves on one open `Parallel`, recovering from worker loss (see the module docstring)."""

    def __init__(self, parallel: Parallel, prepare: Prepare) -> None:
        self.parallel = parallel
        self.prepare = prepare
        self.prepared: set[str] = set()
        self.calls = 0

    def dispatch(self, units: list[Unit]) -> Iterator[list[Outcome]]:
        """Yield each unit's outcomes as it finishes; a lost worker's suspects run again."""
        if self.prepare is not None:
            for info in {u[0].run_id: u[0] for u in units if u[0].run_id not in self.prepared}.values():
                self.prepare(info)
                self.prepared.add(info.run_id)
        pending = list(units)
        while pending:
            returned: set[int] = set()
            try:
                for index, outcomes in self._call(pending):
                    returned.add(index)
                    yield outcomes
                return
            except _LOST as err:
                pending = [unit for index, unit in enumerate(pending) if index not in returned]
                logger.warning(f"a worker died ({_reason(err)}); {len(pending):,} unit(s) that had not come back "
                               "run again")
                yield from self._alone(pending.pop(0))

    def _call(self, units: list[Unit]) -> Iterator[tuple[int, list[Outcome]]]:
        """Run units in one `Parallel` call; yield (index in `units`, outcomes) as each finishes.

        After a worker died, the reused `Parallel` may hand back, from its next call, a result of
        the call it aborted: calls are numbered, and a result of another call is dropped (its unit
        was a suspect, so it runs again or already did).
        """
        self.calls += 1
        call = self.calls
        for tag, index, outcomes in self.parallel(delayed(_run_tagged)(call, i, *u) for i, u in enumerate(units)):
            if tag == call:
                yield index, outcomes

    def _alone(self, unit: Unit) -> Iterator[list[Outcome]]:
        """Run one suspect unit alone; if it kills its worker again, find the node that does and charge it."""
        try:
            for _, outcomes in self._call([unit]):
                yield outcomes
        except _LOST as err:
            jobs = unit[1]
            if len(jobs) == 1:  # alone and a single node: it is the culprit, no need to kill a worker again
                yield [_crashed(jobs[0], err)]
            else:
                yield from self._one_by_one(unit)

    def _one_by_one(self, unit: Unit) -> Iterator[list[Outcome]]:
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
                [(_, outcomes)] = list(self._call([(info, (alone,))]))
            except _LOST as err:
                yield [_crashed(job, err)]
                return
            if outcomes and outcomes[0].status in (SUCCEEDED, SKIPPED):
                passed[index] = json.loads(outcomes[0].result)
            yield outcomes


def _crashed(job: NodeJob, err: BaseException) -> Outcome:
    """Return the failure of the node whose worker died under it."""
    crash = WorkerCrashed(f"the worker process died while running {job.node}: {_reason(err)}")
    record = error_record(crash, node=job.node, item=job.item, attempt=job.attempt, policy=job.call.retry)
    now = time.time()
    return Outcome(job.node, FAILED, None, record, now, now)


def _reason(err: BaseException) -> str:
    """Return the backend's account of the death: loky's "SIGSEGV(-11)", "EXIT(3)", Dask's, or a plain one."""
    if isinstance(err, WorkerLost):
        return err.reason
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(err))
    return found.group(1) if found else "it was terminated"
