"""Run a workflow in a workspace: the Python API behind `plait run` and `plait resume`.

A run: compile (unless given a plan) -> lock the workspace -> open its ledger -> decide from the
ledger what is already done -> run the rest through the scheduler on a joblib backend -> record
how it ended. Running again in the same workspace resumes; `fresh=True` forgets the ledger first.

The workspace lock is an `flock` on `<workspace>/.plait/lock`: the kernel drops it when its
process dies, however it dies, so a crashed run never leaves a lock behind that needs removing
by hand; a second run while one is going is refused with the first one's PID.

SIGINT and SIGTERM (on the main thread) stop the run gently: no new node starts, running nodes
finish, everything is recorded and the run ends as interrupted; a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import secrets
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from plait.compiler import Plan, compile_workflow
from plait.runtime.backend_check import check_backend
from plait.runtime.execute import RunInfo
from plait.runtime.fingerprint import Fingerprinter, basis
from plait.runtime.ledger import LEDGER_NAME, Ledger, LedgerError, state_dir, unfinished
from plait.runtime.progress import Progress
from plait.runtime.scheduler import RunReport, Scheduler
from plait.runtime.trail import prepare as prepare_trail
from plait.runtime.writer import LedgerWriter

__all__ = ["RunResult", "WorkspaceBusy", "default_workspace", "run_workflow"]

LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[node]} | {message}"


class WorkspaceBusy(LedgerError):
    """Another plait run holds this workspace."""


@dataclass
class RunResult:
    """The outcome of a run: its report plus where to look."""

    report: RunReport
    workspace: Path
    log_file: Path | None

    @property
    def ok(self) -> bool:
        return self.report.status == "succeeded"

    @property
    def run_id(self) -> str:
        return self.report.run_id


def default_workspace(workflow: str) -> Path:
    """Return the default workspace of a workflow: runs/<name> under the current folder."""
    return Path("runs") / workflow


def run_workflow(workflow: str | Path | Plan, *, workspace: str | Path | None = None, jobs: int = 2,
                 backend: str = "loky", params: Mapping[str, Any] | None = None, fresh: bool = False,
                 progress: TextIO | None = None, seed: int | None = None, log_level: str = "INFO",
                 scheduler_address: str | None = None) -> RunResult:
    """Run (or resume) a workflow; return its result. Raises WorkflowError, LedgerError, ValueError.

    `progress` is a stream to draw live progress on (None: no progress display). The run's log file
    gets records from `log_level` up: at INFO (the default) a successful node writes no line, each
    retry, failure and skip does; DEBUG adds a line per node. With `backend="dask"`, nodes run on the
    Dask cluster at `scheduler_address`, or on a LocalCluster of `jobs` workers started for the run
    (BackendUnavailable when the `dask` extra is missing or the cluster cannot be used).
    """
    plan = workflow if isinstance(workflow, Plan) else compile_workflow(workflow, params)
    ws = Path(workspace) if workspace is not None else default_workspace(plan.workflow)
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, not {jobs}")
    check_backend(backend, scheduler_address)
    with _locked(ws):
        return _run_locked(plan, ws, jobs, backend, fresh, progress, seed, log_level, scheduler_address)


def _run_locked(plan: Plan, ws: Path, jobs: int, backend: str, fresh: bool, progress: TextIO | None,
                seed: int | None, log_level: str, scheduler_address: str | None) -> RunResult:
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    state = state_dir(ws)
    log_file = state / "logs" / f"{run_id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sink = logger.add(log_file, level=log_level, format=LOG_FORMAT, filter=_with_node)
    ledger = writer = None
    backend_scope = contextlib.ExitStack()
    collections = contextlib.ExitStack()
    dispatch = _Opener(backend_scope, backend, jobs, scheduler_address)
    try:
        if fresh:
            _set_aside(state / LEDGER_NAME)
        if backend == "loky" and unfinished(state / LEDGER_NAME):
            dispatch.open_early()  # joblib loads and the workers boot while this process sets the run up
        ledger = Ledger(state / LEDGER_NAME)
        ledger.claim(plan.workflow)
        workflow_dir = Path(plan.source).parent if plan.source else Path.cwd()
        fingerprints = Fingerprinter(plan.steps, workflow_dir, plan.params)
        held = _holds(ledger, plan, fingerprints)
        previous = ledger.previous(unfinished_only=held)
        if backend == "loky" and dispatch.idle and (bool(previous) if held else _work_waiting(plan, previous)):
            dispatch.open_early()
        writer = LedgerWriter(state / LEDGER_NAME)
        for stale in state.glob("trail-*"):  # left by a run that was killed (this one holds the lock)
            shutil.rmtree(stale, ignore_errors=True)
        trail = state / f"trail-{run_id}"
        if backend == "loky":  # workers on this machine keep a crash trail (plait.runtime.trail)
            prepare_trail(trail)
        info = RunInfo(run_id=run_id, workspace=ws.resolve(), workflow_dir=workflow_dir, params=plan.params,
                       stop_file=str(state / f"stop-{run_id}"), parent_pid=os.getpid(),
                       trail=str(trail) if backend == "loky" else None)
        scheduler = Scheduler(plan, ledger, writer, info, dispatch=dispatch, previous=previous,
                              fingerprints=fingerprints, held=held, seed=seed,
                              log_nodes=log_level in ("DEBUG", "TRACE"))
        collections.enter_context(_collecting_less())
        summary = scheduler.prepare()
        logger.info(f"run {run_id} of {plan.workflow}: {describe(len(plan.nodes), summary)}")
        # The plan's basis is kept when every succeeded row's fingerprint is current (nothing changed).
        current = not summary.get("changed") and not _grows(plan)
        writer.submit(_begin_run, run_id, plan, os.getpid(), None if held else previous,
                      fingerprints.steps_signature() if current else None)
        display = Progress(plan, _done_by_step(plan, scheduler.status), progress) if progress else None
        if display:
            scheduler.on_settle = display.update
        try:
            try:
                with _signals_stop(scheduler):
                    report = scheduler.run()
            finally:
                dispatch.join()  # a backend still opening on its thread is closed only once it is open
                backend_scope.close()
        except BaseException as err:  # the run is over all the same: never leave it recorded as running
            with contextlib.suppress(LedgerError):
                writer.submit("end_run", run_id, "interrupted" if isinstance(err, KeyboardInterrupt) else "failed")
            raise
        if display:
            display.close()
        writer.submit("end_run", run_id, report.status)
        writer.close()
        logger.info(f"run {run_id} {report.status}: {dict(report.counts)}")
        return RunResult(report, ws, log_file)
    finally:
        dispatch.join()
        backend_scope.close()
        collections.close()
        if writer is not None:
            with contextlib.suppress(LedgerError):  # already raised, or an exception is on its way out
                writer.close()
        if ledger is not None:
            ledger.close()
        logger.remove(sink)
        Path(state / f"stop-{run_id}").unlink(missing_ok=True)
        shutil.rmtree(state / f"trail-{run_id}", ignore_errors=True)


def _begin_run(ledger: Ledger, run_id: str, plan: Plan, pid: int,
               previous: Mapping[str, tuple[str, str | None, bool]] | None, steps_signature: bytes | None) -> None:
    """Record the run's start, on the writer thread, which also hashes the plan (0.05 s at 100,000 nodes).

    `previous` None: the ledger holds the plan already (no row to add or mark). A steps signature:
    the plan's basis is kept with it; None: the ledger's basis is removed.
    """
    planned = [] if previous is None else [(n.id, n.step, n.key, n.kind) for n in plan.nodes.values()]
    kept = basis(plan.digest, steps_signature) if steps_signature is not None else None
    ledger.begin_run(run_id, plan.workflow, plan.digest, plan.source, plan.params, pid, planned, previous or {}, kept)


def _holds(ledger: Ledger, plan: Plan, fingerprints: Fingerprinter) -> bool:
    """Say whether the ledger holds this very plan whole and up to date (its basis is this plan's).

    Then only the nodes that did not succeed need reading and fingerprinting. Costs the plan's
    digest (0.05 s at 100,000 nodes), which the run records anyway, and only when the ledger has
    a basis to compare with.
    """
    kept = ledger.basis()
    return kept is not None and not _grows(plan) and kept == basis(plan.digest, fingerprints.steps_signature())


def _grows(plan: Plan) -> bool:
    """Say whether the plan adds nodes as it runs (a deferred step): not one the ledger can hold whole."""
    return any(step.kind == "deferred" for step in plan.steps.values())


@contextmanager
def _collecting_less() -> Iterator[None]:
    """Run the cyclic garbage collector a hundred times less often while the run goes on.

    A 100,000-node run allocates a few hundred thousand short-lived tuples and lists (ledger
    rows, wave columns), which trigger hundreds of collections, each rescanning the run's big
    lists: about 0.2 s of a 1.5 s run. The run itself makes no reference cycles; a handler on
    the threading backend may, and its garbage still goes, only in fewer, larger collections.
    """
    before = gc.get_threshold()
    gc.set_threshold(before[0] * 100, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _work_waiting(plan: Plan, previous: Mapping[str, tuple[str, str | None, bool]]) -> bool:
    """Guess from the ledger, before fingerprinting, whether nodes will run: some new, or some not succeeded.

    A no-op resume says no, so it starts no workers; a changed step is not seen here (its nodes
    then start the workers at the first wave, as without a guess).
    """
    return any(nid not in previous for nid in plan.nodes) or any(
        status != "succeeded" for status, _, in_plan in previous.values() if in_plan)


class _Opener:
    """The run's dispatch function: opens the backend (inside `scope`) at the first wave, or earlier on a thread.

    Opened only when a wave comes, a run with nothing left to do (a no-op resume) never starts
    workers or a cluster, nor imports joblib (0.1 s). Opened early (`open_early`), joblib loads
    and loky's workers boot, which takes a few tenths of a second, while this process reads the
    ledger, fingerprints the plan and forms the first wave.
    """

    def __init__(self, scope: contextlib.ExitStack, backend: str, jobs: int, address: str | None) -> None:
        self.scope = scope
        self.backend, self.jobs, self.address = backend, jobs, address
        self.dispatch: Any = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def idle(self) -> bool:
        """Whether the backend is neither open nor opening."""
        return self.dispatch is None and self.thread is None and self.error is None

    def open(self) -> Any:
        """Open the backend in `scope`; return its dispatch function (the first use of joblib in the run)."""
        from plait.runtime.backends import open_backend

        return self.scope.enter_context(open_backend(self.backend, self.jobs, scheduler_address=self.address))

    def open_early(self) -> None:
        """Start opening the backend on a thread, with SIGINT blocked so the workers it starts inherit that. Mutates."""
        def open_here() -> None:
            try:
                self.dispatch = self.open()
            except BaseException as err:  # raised in the main thread, at the first wave
                self.error = err

        main = threading.current_thread() is threading.main_thread()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            self.thread = threading.Thread(target=open_here, name="plait-backend-open", daemon=True)
            self.thread.start()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def join(self) -> None:
        """Wait for an early opening to finish (its error, if any, is kept for the first wave). Mutates."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def __call__(self, *wave: Any) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        if self.dispatch is None:
            self.dispatch = self.open()
        return self.dispatch(*wave)


def _set_aside(path: Path) -> None:
    """Start a ledger over (--fresh): move the old one (and its WAL) aside as `<name>.<time>.old`.

    Moving rather than deleting keeps what was recorded, and works for a damaged file too.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{path}{suffix}")
        if old.exists():
            old.rename(f"{path}.{stamp}.old{suffix}")


def describe(total: int, summary: Mapping[str, int]) -> str:
    """Say what a run will do: '1,204 nodes: 1,180 done, 20 to retry (failed), 4 changed'."""
    labels = (("done", "done"), ("failed", "to retry (failed)"), ("changed", "changed"), ("new", "new"),
              ("pending", "not run yet"))
    parts = [f"{summary[k]:,} {label}" for k, label in labels if summary.get(k)]
    return f"{total:,} nodes: " + (", ".join(parts) if parts else "nothing to do")


def _with_node(record: Any) -> bool:
    record["extra"].setdefault("node", "-")
    return True


def _done_by_step(plan: Plan, status: Mapping[str, str]) -> Counter:
    return Counter(plan.nodes[n].step for n in status if plan.nodes[n].kind == "task")


@contextmanager
def _locked(ws: Path) -> Iterator[None]:
    state = state_dir(ws)
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / "lock", "a+")  # noqa: SIM115  (held open for the whole run: it is the lock)
    except OSError as err:
        raise LedgerError(f"cannot use workspace '{ws}': {err.strerror}; choose a writable --workspace") from err
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = _holder(handle) or "another process"
            raise WorkspaceBusy(f"workspace '{ws}' is in use by another plait run ({holder}); wait for it to "
                                "finish, or use another --workspace") from err
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def _holder(handle: TextIO) -> str:
    """Return what the lock's holder wrote ("pid N"), waiting a little: it writes just after it takes the lock."""
    deadline = time.monotonic() + 0.5
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if holder or time.monotonic() > deadline:
            return holder
        time.sleep(0.01)


@contextmanager
def _signals_stop(scheduler: Scheduler) -> Iterator[None]:
    """On SIGINT/SIGTERM stop the scheduler; a second signal interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if scheduler.stopping:
            raise KeyboardInterrupt
        logger.warning(f"{signal.Signals(signum).name}: stopping; running nodes finish (signal again to stop now)")
        scheduler.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
