"""Executor backends: joblib runs the waves the scheduler hands it.

The scheduler never sees joblib: it gets a `dispatch(info, wave, starts, lanes, drained)` function
that yields (chunk, results) pairs as chunks of the wave finish. `open_backend` builds it over
`joblib.Parallel` objects kept open for the whole run, with `return_as="generator_unordered"`, all
over the same workers (reused from wave to wave); waves may be dispatched from several threads at
once (`plait.runtime.calls`), each call on a `Parallel` of its own (`_Dispatcher`). The wave travels
in chunks of many jobs each, sized as they go (`plait.runtime.chunks`), so 100,000 trivial nodes
cost a few dozen joblib calls, not 100,000.

`sequential` runs in this process (for debugging and for tests that step through), `threading`
in threads of this process, `loky` (the default) in worker processes, and `dask` on a Dask
cluster through joblib's `dask` backend (`plait.runtime.dask_backend` connects to one, or starts a
`LocalCluster`). Every backend goes through the same `dispatch`, and all but `sequential` through
the same `Parallel`; only what `Parallel` is given differs (`plait.runtime.shared_workers`).
`sequential` runs each task in the calling thread as it is asked for (`_InThisThread`), which is
what joblib's `Parallel` of one job does, without importing joblib (and numpy with it, where it is
installed: 0.15-0.2 s of a run's start, docs/performance.md).

Worker loss
    A worker process that dies (a segfault, `os._exit`) makes joblib abort the whole call, dropping
    the results of the other chunks in flight without saying which chunk killed it: loky raises
    `TerminatedWorkerError`; on Dask, the cluster first runs the dead worker's tasks again itself
    and, once a task has killed `allowed-failures` + 1 workers, fails it with `KilledWorker`, which
    the dask backend hands on as `WorkerLost`. Both lead here. The chunks that had not come back are
    suspects. Under loky each worker keeps a crash trail (`plait.runtime.trail`): the job it was
    running when the pool broke runs alone, and the rest of its chunk and the other suspects run
    together again (what is left of a lane, `plait.runtime.waves`, as one chunk, so that it never runs
    beside itself); the innocent come back normally (at-least-once: a node cut short runs again),
    and a culprit runs twice in all, once in the pool and once alone. Without a trail (Dask, or a
    worker that died before its first job) the oldest suspect (the first dispatched, so the
    likeliest to hold the culprit) runs alone, and the rest together. A suspect chunk that kills
    its worker again when alone is halved, each half run alone, until the unit that does is alone:
    a few crashes (log2 of the chunk's units), not one per suspect, and the first chunks of a wave
    hold one unit each (the probe), so a node that crashes at once is found at once. A single node
    that kills its worker when alone is the culprit; a fused chain that does is run node by node
    (in order, each node handed its feeder's result), and the node that kills its worker is. The
    culprit alone gets a `WorkerCrashed` failure, which its retry policy may retry. Calls are
    numbered, so a result that a reused `Parallel` hands back from the call it aborted is never
    taken for another's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool  # loky's is a kind of it
from contextlib import contextmanager
from functools import partial
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any

from loguru import logger

from plait.runtime.backend_table import Backend, BackendUnavailable
from plait.runtime.chunks import ChunkSizer, cut_wave
from plait.runtime.execute import Chunk, Results, RunInfo, run_chunk, start_worker
from plait.runtime.outcome import FAILED, SKIPPED, SUCCEEDED, error_record
from plait.runtime.trail import fence, last_jobs
from plait.runtime.worker import PROCESS

if TYPE_CHECKING:
    from joblib import Parallel

    from plait.runtime.shared_workers import Prepare

__all__ = ["WorkerCrashed", "WorkerLost", "open_backend"]

class WorkerCrashed(OSError):
    """The worker process running a node died."""


class WorkerLost(Exception):
    """A worker died while running units of a call (a backend's `TerminatedWorkerError`, in plait's words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A pool broken by a worker's death (TerminatedWorkerError is one kind of BrokenProcessPool).
_LOST = (BrokenProcessPool, WorkerLost)


def _run_tagged(call: int, index: int, info: RunInfo, chunk: Chunk) -> tuple[int, int, Results]:
    trail = PROCESS.trail_in(info.trail) if info.trail else None
    mark = partial(trail.mark, call, index) if trail is not None else None
    return call, index, run_chunk(info, chunk, mark)


@contextmanager
def open_backend(backend: Backend, n_jobs: int, *, scheduler_address: str | None = None) -> Iterator[Any]:
    """Yield a dispatch function running units on `backend` (checked by `backend_table.backend`) with `n_jobs` workers.

    For a cluster backend, `scheduler_address` names the cluster to use (else a LocalCluster of
    `n_jobs` workers lives as long as this context). Closing it while calls run aborts them.
    Raises BackendUnavailable.
    """
    if backend.one_worker:
        dispatcher = _Dispatcher(_InThisThread, lambda: None, None, 1)
        try:
            yield dispatcher.dispatch
        finally:
            dispatcher.close()
        return
    from joblib import Parallel

    from plait.runtime.shared_workers import shared_workers

    # Worker processes started for the run ignore Ctrl-C (the parent decides) and watch for the parent's death.
    extra = {"initializer": start_worker, "initargs": (os.getpid(),)} if backend.own_workers else {}
    with shared_workers(backend, n_jobs, scheduler_address) as (joblib_backend, prepare):
        dispatcher = _Dispatcher(partial(Parallel, n_jobs=backend.workers(n_jobs),
                                         pre_dispatch=backend.in_flight(n_jobs), return_as="generator_unordered",
                                         batch_size=1, **extra),
                                 joblib_backend, prepare, n_jobs, renew=backend.own_workers)
        try:
            if extra:
                with dispatcher.parallel() as parallel:
                    _start_workers(parallel, backend.workers(n_jobs))
            yield dispatcher.dispatch
        finally:
            dispatcher.close()


class _InThisThread:
    """What `Parallel` is for the sequential backend: each task runs in the calling thread as it is asked for.

    Made as a `Parallel` is (`_Dispatcher.parallel`), given what would be its `backend`: none here.
    """

    def __init__(self, backend: None) -> None:
        self._managed_backend = False

    def __enter__(self) -> _InThisThread:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, tasks: Iterable[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]) -> Iterator[Any]:
        return (function(*args, **kwargs) for function, args, kwargs in tasks)

    def _abort(self) -> None:
        """Nothing runs beside the caller: the task under way ends with it."""


def _start_workers(parallel: Parallel, workers: int) -> None:
    """Start loky's workers now, with SIGINT blocked, so none can die of Ctrl-C while it boots.

    A signal mask is inherited across fork and exec, and by the threads created while it holds, so
    the workers (and loky's manager thread, which respawns them) start with SIGINT blocked until
    `start_worker` ignores it. Without this, Ctrl-C at a terminal kills a worker still importing,
    and joblib aborts the call with the nodes in flight. Python 3.11's multiprocessing resource
    tracker, started by the first lock loky makes, unblocks SIGINT in the thread that starts it
    (it ends with SIG_UNBLOCK, not the mask it found): it is started first, before the block.
    """
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        list(parallel((os.getpid, (), {}) for _ in range(workers)))
    except (OSError, BrokenProcessPool) as err:  # fork refused (a limit on processes), or workers dying as they boot
        parallel._backend.abort_everything(ensure_ready=False)  # kill the ones that started, before they boot on
        raise BackendUnavailable(f"could not start {workers} worker processes ({err}); this machine or its "
                                 "limits (ulimit -u, a container's pids limit) allow fewer: run with fewer --jobs") \
            from err
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _Dispatcher:
    """Run waves in chunks on `Parallel` calls that may overlap, recovering from worker loss (see the module docstring).

    Concurrency
        Each wave's dispatch may run on a thread of its own (`plait.runtime.calls`), and joblib runs
        one call at a time per `Parallel`: a call takes an idle `Parallel` or opens one, all over the
        same workers. Under loky, a `Parallel` that was idle or running when a worker died may hold
        a broken executor, so it is not used again (`losses` counts deaths; each `Parallel` is
        tagged with the count it started with); under Dask the one client goes on, and a new
        `Parallel` would only probe a cluster that may be losing workers. Worker-loss bookkeeping
        (the fence, the trails) is done under one lock, each call for its own number; and a
        suspect runs alone (`_call(alone=True)`) only once no other call is in flight, and no
        other call starts until it is back: a death then is its own.
    """

    def __init__(self, make: Callable[..., Parallel], joblib_backend: Callable[[], Any], prepare: Prepare,
                 workers: int, *, renew: bool = False) -> None:
        self.make = make
        self.renew = renew  # replace a Parallel that saw a worker die (loky's executor breaks; Dask's client not)
        self.joblib_backend = joblib_backend
        self.prepare = prepare
        self.prepared: set[str] = set()
        self.workers = workers
        self.per_job: float | None = None  # the last measure of a job's time, for the next wave's chunks
        self.numbers = itertools.count(1)  # calls are numbered from 1 (a trail's 0 means no call)
        self.lock = threading.Lock()  # the pools of Parallels, preparing, and the worker-loss bookkeeping
        self.gate = threading.Condition()  # calls in flight, and a suspect running alone
        self.in_flight = 0
        self.alone = False
        self.losses = 0
        self.idle: list[tuple[Parallel, int]] = []  # Parallels not running a call, with the losses they started at
        self.running: set[Parallel] = set()
        self.opened: list[Parallel] = []
        self.closed = False

    @contextmanager
    def parallel(self) -> Iterator[Parallel]:
        """Lend a `Parallel` no call is running on: an idle one opened since the last worker loss, or a new one."""
        with self.lock:
            losses = self.losses
            while self.idle:
                parallel, seen = self.idle.pop()
                if seen == losses or not self.renew:
                    break
            else:
                parallel = self.make(backend=self.joblib_backend())
                parallel.__enter__()
                self.opened.append(parallel)
            self.running.add(parallel)
        try:
            yield parallel
        finally:
            with self.lock:
                self.running.discard(parallel)
                self.idle.append((parallel, losses))

    def close(self) -> None:
        """Abort the calls still running (the run was cut short), and close every `Parallel`. Mutates."""
        with self.lock:
            self.closed = True
            running = list(self.running)
        for parallel in running:  # as joblib aborts a call itself, but leaving no executor to start again
            parallel._managed_backend = False
            with contextlib.suppress(Exception):
                parallel._abort()  # its callbacks stop at once, and the call's thread ends, read by nobody
        for parallel in self.opened:
            with contextlib.suppress(Exception):
                parallel.__exit__(None, None, None)

    def dispatch(self, info: RunInfo, wave: Chunk, starts: list[int], lanes: int,
                 drained: Callable[[], None] = lambda: None) -> Iterator[tuple[Chunk, Results]]:
        """Yield (chunk, its results) as chunks of the wave finish; a lost worker's suspects run again.

        `starts` holds the position of each unit's first job in the wave; the last `lanes` units
        are lanes (`plait.runtime.waves`), each sent whole. `drained` is called once every chunk
        of the wave has been handed to joblib.
        """
        if self.prepare is not None:
            with self.lock:
                if info.run_id not in self.prepared:
                    self.prepare(info)
                    self.prepared.add(info.run_id)
        sizer = ChunkSizer(self.workers, self.per_job)
        unsent: Iterator[Chunk] = _then(cut_wave(wave, starts, sizer, lanes), drained)
        while True:
            sent: list[Chunk | None] = []  # a chunk that came back is forgotten: a million jobs' columns need not wait
            call = next(self.numbers)
            try:
                for index, results in self._call(call, info, unsent, sent):
                    sizer.measure(results)
                    self.per_job = sizer.per_job
                    chunk, sent[index] = sent[index], None
                    yield chunk, results
                return
            except _LOST as err:
                if self.closed:
                    raise
                suspects = {index: chunk for index, chunk in enumerate(sent) if chunk is not None}
                logger.warning(f"a worker died ({_reason(err)}); {sum(len(c.nodes) for c in suspects.values()):,} "
                               "node(s) that had not come back run again")
                marks: dict[int, int] = {}
                with self.lock:
                    self.losses += 1
                    if info.trail:  # no worker starts another job of this call; then, which job each was on
                        fence(info.trail, call)
                        marks = last_jobs(info.trail, call)
                running = {index: marks[index] for index in suspects if index in marks}
                if not running and suspects:  # no trail says which job: the oldest chunk is the likeliest
                    running = {min(suspects): None}
                rest, alone = [], []
                for index, chunk in sorted(suspects.items()):
                    if index in running:
                        before, unit, after = _around(chunk, running[index])
                        # What is left of a lane stays one chunk, so it never runs beside itself.
                        rest += [_joined(before, after)] if chunk.calls[0].max_parallel else [before, after]
                        alone.append(unit)
                    else:
                        rest.append(chunk)
                unsent = iter([*(chunk for chunk in rest if chunk.nodes), *unsent])
                for unit in alone:
                    yield from self._alone(info, unit)

    def _call(self, call: int, info: RunInfo, chunks: Iterator[Chunk], sent: list[Chunk | None], *,
              alone: bool = False) -> Iterator[tuple[int, Results]]:
        """Run chunks in one `Parallel` call numbered `call`; yield (index in `sent`, results) as each finishes.

        joblib takes the chunks from `chunks` as workers free up (from its callback thread), and
        each is appended to `sent` as it is taken. After a worker died, a reused `Parallel` may
        hand back, from its next call, a result of the call it aborted: calls are numbered, and a
        result of another call is dropped (its chunk was a suspect, so it runs again or already did).
        `alone`: wait until no other call is in flight, and hold off the others until this one ends.
        """

        def tasks() -> Iterator[Any]:
            for chunk in chunks:
                sent.append(chunk)
                yield _run_tagged, (call, len(sent) - 1, info, chunk), {}  # what joblib's `delayed` makes

        with self._slot(alone), self.parallel() as parallel:
            for tag, index, results in parallel(tasks()):
                if tag == call:
                    yield index, results

    @contextmanager
    def _slot(self, alone: bool) -> Iterator[None]:
        """Hold a place among the calls in flight; `alone`, the only place, taken once the others are back."""
        with self.gate:
            while self.alone or (alone and self.in_flight):
                self.gate.wait()
            self.in_flight += 1
            self.alone = alone
        try:
            yield
        finally:
            with self.gate:
                self.in_flight -= 1
                if alone:
                    self.alone = False
                self.gate.notify_all()

    def _alone(self, info: RunInfo, chunk: Chunk) -> Iterator[tuple[Chunk, Results]]:
        """Run one suspect chunk alone; while it kills its worker again, halve it until the culprit is alone."""
        try:
            for _, results in self._call(next(self.numbers), info, iter([chunk]), [], alone=True):
                yield chunk, results
        except _LOST as err:
            if self.closed:
                raise
            with self.lock:
                self.losses += 1
            starts = [i for i, back in enumerate(chunk.feeders) if back == 0]
            if len(starts) > 1:
                middle = starts[len(starts) // 2]
                yield from self._alone(info, chunk.cut(0, middle))
                yield from self._alone(info, chunk.cut(middle, len(chunk.nodes)))
            elif len(chunk.nodes) == 1:  # alone and a single node: it is the culprit, no need to kill a worker again
                yield chunk, _crashed(chunk, err)
            else:
                yield from self._one_by_one(info, chunk)

    def _one_by_one(self, info: RunInfo, chain: Chunk) -> Iterator[tuple[Chunk, Results]]:
        """Run a fused chain's jobs one per call, in order, handing each its feeder's result."""
        passed: dict[int, Any] = {}
        for i, back in enumerate(chain.feeders):
            job = chain.cut(i, i + 1)
            if back:
                if i - back not in passed:
                    continue
                steps = {**chain.steps[i], chain.calls[i - back].step: {"result": passed[i - back]}}
                job = job._replace(steps=[steps], feeders=[0])
            try:
                [(_, results)] = list(self._call(next(self.numbers), info, iter([job]), [], alone=True))
            except _LOST as err:
                if self.closed:
                    raise
                with self.lock:
                    self.losses += 1
                yield job, _crashed(job, err)
                return
            if results.statuses[0] in (SUCCEEDED, SKIPPED):
                passed[i] = json.loads(results.results[0])
            yield job, results


def _then(chunks: Iterator[Chunk], done: Callable[[], None]) -> Iterator[Chunk]:
    """Yield `chunks`, then call `done` (when the one asking for chunks asks past the last)."""
    yield from chunks
    done()


def _around(chunk: Chunk, job: int | None) -> tuple[Chunk, Chunk, Chunk]:
    """Cut a chunk into the units before job `job`'s unit, that unit, and the units after it.

    A fused chain travels whole: its unit runs from its first job (no feeder) to the next unit's.
    No job (no trail said which) makes the whole chunk the suspect.
    """
    if job is None or not 0 <= job < len(chunk.nodes):
        return chunk.cut(0, 0), chunk, chunk.cut(0, 0)
    start = job
    while chunk.feeders[start]:
        start -= 1
    end = job + 1
    while end < len(chunk.nodes) and chunk.feeders[end]:
        end += 1
    return chunk.cut(0, start), chunk.cut(start, end), chunk.cut(end, len(chunk.nodes))


def _joined(first: Chunk, second: Chunk) -> Chunk:
    """Return two chunks of whole units as one (a feeder is counted back from its job, so none moves)."""
    return Chunk(*(a + b for a, b in zip(first, second)))


def _crashed(job: Chunk, err: BaseException) -> Results:
    """Return the failure of the one-job chunk whose worker died under it."""
    node = job.nodes[0]
    crash = WorkerCrashed(f"the worker process died while running {node}: {_reason(err)}")
    record = error_record(crash, node=node, item=job.items[0], attempt=job.attempts[0], policy=job.calls[0].retry)
    now = time.time()
    return Results([FAILED], [None], [now], [now], {0: record}, {}, {}, "?")


def _reason(err: BaseException) -> str:
    """Return the backend's account of the death: loky's "SIGSEGV(-11)", "EXIT(3)", Dask's, or a plain one."""
    if isinstance(err, WorkerLost):
        return err.reason
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(err))
    return found.group(1) if found else "it was terminated"
