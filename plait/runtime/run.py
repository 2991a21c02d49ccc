"""Run a workflow in a workspace: the Python API behind `plait run` and `plait resume`.

A run: compile (unless given a plan) -> lock the workspace -> open its ledger -> decide from the
ledger what is already done -> run the rest through the scheduler on a joblib backend -> record
how it ended. Running again in the same workspace resumes; `fresh=True` forgets the ledger first.

The workspace lock is an `flock` on the workspace folder (its holder's PID in `.plait/lock`): the
kernel drops it when its process dies, however it dies, so a crashed run never leaves a lock
behind that needs removing by hand; a second run while one is going is refused with the first
one's PID.

SIGINT, SIGTERM and SIGHUP (on the main thread) stop the run gently: no new node starts, running
nodes finish, everything is recorded and the run ends as interrupted; a second signal stops at
once. A run that died without ending (SIGKILL, a power cut) is recorded as interrupted by the
next run in the workspace, and shown so by `plait status` as soon as no process holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from plait import collector
from plait.compiler import Plan, compile_workflow
from plait.limits import JOBS_PER_CORE, MAX_RESULT_BYTES, jobs_cap
from plait.runtime import output
from plait.runtime.backend_table import Backend
from plait.runtime.backend_table import backend as checked_backend
from plait.runtime.calls import calls_for
from plait.runtime.decide import grows, ledger_holds
from plait.runtime.execute import RunInfo
from plait.runtime.fingerprint import Fingerprinter, basis
from plait.runtime.journal import recover
from plait.runtime.lazy_backend import LazyBackend
from plait.runtime.ledger import LEDGER_NAME, Ledger, LedgerError, Prior, unfinished
from plait.runtime.outcome import SUCCEEDED, RunInterrupted
from plait.runtime.planned import PLANNED
from plait.runtime.progress import Progress
from plait.runtime.scheduler import Scheduler
from plait.runtime.selection import Selection, select
from plait.runtime.state import RunReport, RunState
from plait.runtime.trail import prepare as prepare_trail
from plait.runtime.writer import LedgerWriter
from plait.workspace import LOCK_NAME, state_dir

__all__ = ["RunResult", "WorkspaceBusy", "default_workspace", "describe", "run_workflow"]

LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[node]} | {message}"


class WorkspaceBusy(LedgerError):
    """Another plait run holds this workspace."""


@dataclass
class RunResult:
    """The outcome of a run: its report plus where to look."""

    report: RunReport
    workspace: Path
    log_file: Path | None  # from Python, empty until `loguru.logger.enable("plait")` (plait/__init__.py)

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
                 scheduler_address: str | None = None, max_result_bytes: int = MAX_RESULT_BYTES,
                 force_jobs: bool = False, rerun: Iterable[str] = (), until: Iterable[str] = (),
                 skip: Iterable[str] = ()) -> RunResult:
    """Run (or resume) a workflow; return its result. Raises WorkflowError, LedgerError, ValueError.

    `progress` is a stream to draw live progress on (None: no progress display). The run's log file
    gets records from `log_level` up: at INFO (the default) a successful node writes no line, each
    retry, failure and skip does; DEBUG adds a line per node. With `backend="dask"`, nodes run on the
    Dask cluster at `scheduler_address`, or on a LocalCluster of `jobs` workers started for the run
    (BackendUnavailable when the `dask` extra is missing or the cluster cannot be used). A node
    whose result takes more than `max_result_bytes` of JSON fails (docs/reliability.md). More
    worker processes than `plait.limits.jobs_cap()` are not started unless `force_jobs`, nor more than
    the plan has task nodes when none expands at run time. `rerun`
    names steps, nodes or node patterns to run again with everything downstream of them, `until`
    steps to stop at, `skip` steps, nodes or patterns not to run (plait.runtime.selection; ValueError
    for a name that matches nothing).
    """
    plan = workflow if isinstance(workflow, Plan) else compile_workflow(workflow, params)
    ws = Path(workspace) if workspace is not None else default_workspace(plan.workflow)
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, not {jobs}")
    if max_result_bytes < 1:
        raise ValueError(f"max_result_bytes must be 1 or more, not {max_result_bytes}")
    chosen = checked_backend(backend, scheduler_address)
    selection = select(plan, rerun, until, skip)
    if chosen.starts_processes(scheduler_address):
        jobs = min(jobs, _most_at_once(plan))
        if jobs > jobs_cap() and not force_jobs:
            logger.warning(f"{jobs} workers is more than {JOBS_PER_CORE} per core on this machine: starting "
                           f"{jobs_cap()} (insist with --force-jobs)")
            jobs = jobs_cap()
    options = _Options(jobs, chosen, scheduler_address, fresh, progress, seed, log_level, max_result_bytes, selection)
    with _locked(ws):
        return _run_locked(plan, ws, options)


def _most_at_once(plan: Plan) -> int:
    """Return the most nodes of `plan` that can run at once, as far as the plan tells: its task nodes, unless some
    expand at run time (then any number).

    A run starts no more worker processes than that: a workflow of three nodes on `--jobs 8` boots three, not eight
    (two at least on loky: `Backend.workers`).
    """
    counts = plan.node_counts()
    if any(kind == "deferred" for _, kind in counts):
        return sys.maxsize
    return max(1, sum(n for (_, kind), n in counts.items() if kind == "task"))


@dataclass(frozen=True)
class _Options:
    jobs: int
    backend: Backend
    scheduler_address: str | None
    fresh: bool
    progress: TextIO | None
    seed: int | None
    log_level: str
    max_result_bytes: int
    selection: Selection


def _run_locked(plan: Plan, ws: Path, options: _Options) -> RunResult:
    """Run a plan in a workspace whose lock this process holds: open, execute, close.

    Call tree:
        _run_locked
            _open        the run's log file; the ledger (set aside first with --fresh); the backend,
                         opened early on a thread when work is waiting; fingerprints and what the
                         ledger holds; the ledger writer; the crash trail; the scheduler, which
                         decides every node (`prepare`), unless the ledger holds this very plan
                         with every node done (`_all_done`: nothing to decide); the run's start
                         recorded
            _execute     the steps whose items come from what is done expanded and their items
                         decided (`look_ahead`), then what the run will do said; the scheduler's
                         loop under the signal handlers, with the progress display
            _close       the run's end recorded (as interrupted or failed if it raised), the writer
                         drained; then, whatever happened, every resource `_open` took, in reverse
    Every resource registers its own clean-up on one exit stack as it is opened, so the clean-up
    is written once and runs however the run ends.
    """
    with contextlib.ExitStack() as resources:
        try:
            run = _open(plan, ws, options, resources)
        except OSError as err:  # the workspace's disk: full, read-only, failing
            raise LedgerError(f"cannot set up the run in workspace '{ws}': {err}") from err
        try:
            report = _execute(run, options)
        except BaseException as err:  # the run is over all the same: never leave it recorded as running
            _record_end(run, "interrupted" if isinstance(err, KeyboardInterrupt) else "failed", raise_errors=False)
            raise
        _record_end(run, report.status, raise_errors=True)
        logger.info(f"run {report.run_id} {report.status}: {dict(report.counts)}")
        return RunResult(report, ws, run.log_file)


@dataclass
class _Run:
    """What an open run holds."""

    plan: Plan
    log_file: Path
    backend: LazyBackend
    writer: LedgerWriter
    scheduler: Scheduler | None  # None: every node is done already, and `report` says so (`_all_done`)
    report: RunReport  # the scheduler's, or the one of a run with nothing to do
    fingerprints: Fingerprinter
    signature: bytes | None  # the plan's signature when the ledger is to keep its basis (see `_begin_run`)


def _open(plan: Plan, ws: Path, options: _Options, resources: contextlib.ExitStack) -> _Run:
    """Open everything a run needs, registering each clean-up on `resources`; decide every node."""
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    resources.enter_context(_prompt_handoffs())
    state = state_dir(ws)
    path = state / LEDGER_NAME
    log_file = state / "logs" / f"{run_id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    run_log = resources.enter_context(_RunLog(log_file))
    sink = logger.add(run_log.write, level=options.log_level, format=LOG_FORMAT, filter=_with_node)
    resources.callback(logger.remove, sink)
    if options.fresh:
        _set_aside(path)
    backend = LazyBackend(options.backend, options.jobs, options.scheduler_address)
    resources.callback(backend.close)
    if options.backend.opens_early and options.selection.steps is None and unfinished(path):
        backend.open_early()  # joblib loads and the workers boot while this process sets the run up
    ledger = Ledger(path)
    resources.callback(ledger.close)
    ledger.claim(plan.workflow)
    for dead, moment in ledger.dead_runs():  # this process holds the workspace: a run still "running" died
        logger.warning(f"the last run {dead} died without ending (killed, or its machine stopped) after "
                       f"{time.strftime('%H:%M:%S', time.localtime(moment))}: recorded as interrupted; resuming "
                       "from what it recorded")
    workflow_dir = plan.workflow_dir
    fingerprints = Fingerprinter(plan.steps, workflow_dir, plan.params, workspace=ws.resolve(),
                                 recorded_files=ledger.file_hashes)
    _recover_journals(ledger, state)
    held = options.selection.everything and ledger_holds(ledger, plan, fingerprints)
    previous = ledger.previous(unfinished_only=held)
    if options.backend.opens_early and (bool(previous) if held else
                                        _work_waiting(plan, previous, options.selection.steps)):
        backend.open_early()
    writer = LedgerWriter(path)
    resources.push(lambda *exc: _drain(writer))
    for stale in state.glob("trail-*"):  # left by a run that was killed (this one holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    trail = state / f"trail-{run_id}"
    if options.backend.crash_trail or options.backend.journal:  # crash trails and journals (plait.runtime.journal)
        prepare_trail(trail)
        resources.callback(shutil.rmtree, trail, ignore_errors=True)
    stop_file = state / f"stop-{run_id}"
    resources.callback(stop_file.unlink, missing_ok=True)
    if held and not previous:  # the ledger holds this very plan, and no node of it is left to run
        report = _all_done(run_id, plan)
        logger.info(f"run {run_id} of {plan.workflow}: {describe(len(plan.nodes), report.plan_summary)}")
        signature = fingerprints.signature(plan.nodes.values())
        writer.submit(_begin_run, run_id, plan, os.getpid(), None, signature, None, [])
        return _Run(plan, log_file, backend, writer, None, report, fingerprints, signature)
    info = RunInfo(run_id=run_id, workspace=ws.resolve(), workflow_dir=workflow_dir, params=plan.params,
                   stop_file=str(stop_file), parent_pid=os.getpid(),
                   trail=str(trail) if options.backend.crash_trail else None,
                   journal=str(trail) if options.backend.journal else None, max_result_bytes=options.max_result_bytes,
                   run_number=ledger.runs_started() + 1)
    run_state = RunState(plan, info, load_results=ledger.results, seed=options.seed,
                         log_nodes=options.log_level in ("DEBUG", "TRACE"))
    scheduler = Scheduler(run_state, dispatch=backend, submit=writer.submit, previous=previous,
                          fingerprints=fingerprints, recorded_parts={} if held else ledger.step_parts(),
                          fingerprints_of=ledger.fingerprints, held=held, selection=options.selection,
                          calls=calls_for(options.backend.calls(options.jobs)))
    resources.enter_context(collector.during_run())
    output.install()  # nodes running in this process (sequential, threading) have their prints captured
    resources.callback(output.uninstall)
    summary = scheduler.prepare()
    # The plan's basis is kept when every succeeded row's fingerprint is current (nothing changed).
    current = not summary.get("changed") and not grows(plan) and options.selection.steps is None
    parts = None if held else {step: fingerprints.parts(step) for step in plan.steps}
    rerun = [nid for nid in run_state.decisions if nid in previous]
    signature = fingerprints.signature(plan.nodes.values()) if current else None
    writer.submit(_begin_run, run_id, plan, os.getpid(), None if held else previous, signature, parts, rerun)
    return _Run(plan, log_file, backend, writer, scheduler, scheduler.report, fingerprints, signature)


# How long a thread may hold the GIL while another waits for it, during a run (Python's default is 5 ms).
HANDOFF_SECONDS = 0.0005


@contextmanager
def _prompt_handoffs() -> Iterator[None]:
    """Hand the GIL between the run's threads ten times as often as Python does by default, for the block.

    The ledger writer releases the GIL around each SQLite step, and joblib's threads around each
    result they receive; each then waits for it back while the scheduler's thread settles or forms
    a wave, up to the switch interval each time: at 5 ms, the writer of a large run spent more of
    its time waiting for the GIL than writing, and it paces such a run (docs/performance.md).
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, HANDOFF_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _all_done(run_id: str, plan: Plan) -> RunReport:
    """Return the report of a run whose every node the ledger has as done with its fingerprint current: what the
    scheduler would report having restored them all, without deciding a million nodes one by one to say so.

    The ledger holding the plan's basis says that every node has a row whose fingerprint is the
    one this plan gives it (plait.runtime.ledger); with no row left that did not succeed, every
    node is done. A plan that grows, declares outputs, or runs a selection is never held.
    """
    done = len(plan.nodes)
    return RunReport(run_id, counts=Counter({SUCCEEDED: done}), restored=done, plan_summary={"done": done})


def _execute(run: _Run, options: _Options) -> RunReport:
    """Say what the run will do, once the steps fed by what is done have their items decided (`look_ahead`); run the
    scheduler's loop under the signal handlers, drawing progress; close the backend after it."""
    scheduler = run.scheduler
    if scheduler is not None:  # the run's start is recorded: stopped from here on, it is recorded as interrupted
        summary = scheduler.look_ahead()
        logger.info(f"run {run.report.run_id} of {run.plan.workflow}: "
                    f"{describe(len(scheduler.state.plan.nodes), summary)}")
    display = None
    if options.progress:
        done = _done_by_step(scheduler.state.plan, scheduler.state.status) if scheduler else Counter(
            {step: n for (step, kind), n in run.plan.node_counts().items() if kind == "task"})
        display = Progress(scheduler.state.plan if scheduler else run.plan, done, options.progress)
        if scheduler:
            display.attach(scheduler.state)
    try:
        if scheduler is None:
            return run.report
        with _signals_stop(scheduler):
            report = scheduler.run()
    finally:
        run.backend.close()  # a backend still opening on its thread is closed only once it is open
        if display:
            display.close()  # however the run ended: the live block's clock stops
    return report


def _record_end(run: _Run, status: str, *, raise_errors: bool) -> None:
    """Record how the run ended and what it did, and drain the writer; a failed write raises LedgerError if asked."""
    report = run.report
    counts = {k: n for k, n in {**report.counts, "restored": report.restored}.items() if n}
    learned = run.fingerprints.tracked.hashes.learned()
    with contextlib.suppress(*(() if raise_errors else (LedgerError,))):
        if learned:
            run.writer.submit("keep_file_hashes", learned)
        run.writer.submit(_end_run, report.run_id, status, counts, run.plan, run.signature)
        run.writer.close()


def _drain(writer: LedgerWriter) -> None:
    """Finish the writer's queue whatever happened (an error is already on its way out, or was raised)."""
    with contextlib.suppress(LedgerError):
        writer.close()


def _recover_journals(ledger: Ledger, state: Path) -> None:
    """Record what runs that died had finished but not recorded, from their workers' journals (plait.runtime.journal).

    Called while this process holds the workspace, so a run folder left behind is a dead run's.
    """
    for folder in sorted(state.glob("trail-*")):
        dead = folder.name.removeprefix("trail-")
        found = list(recover(folder))
        if found:
            kept = ledger.recover(dead, found)
            logger.info(f"recovered {kept:,} outcome(s) that run {dead} finished but did not record before it died")


def _begin_run(ledger: Ledger, run_id: str, plan: Plan, pid: int, previous: Mapping[str, Prior] | None,
               signature: bytes | None, step_parts: Mapping[str, Any] | None, rerun: list[str]) -> None:
    """Record the run's start, on the writer thread, which also hashes the plan's digest.

    `previous` None: the ledger holds the plan already (nothing to keep or mark). A signature
    (`Fingerprinter.signature`): the plan's basis is kept with it, now if every node of the plan has
    a row, else by `_end_run` if they all have one then (a node gets its row when it settles); None:
    the ledger's basis is removed.
    """
    planned = map(PLANNED, plan.nodes.values()) if previous is not None and plan.nodes else ()
    kept = basis(plan.digest, signature) if signature is not None else None
    ledger.begin_run(run_id, plan.workflow, plan.digest, plan.source, plan.params, pid, planned, previous or {}, kept,
                     step_parts, rerun, json.dumps(plan.step_graph()))


def _end_run(ledger: Ledger, run_id: str, status: str, counts: Mapping[str, int], plan: Plan,
             signature: bytes | None) -> None:
    """Record the run's end, and keep the plan's basis if every node of it has a row by now (see `_begin_run`)."""
    ledger.end_run(run_id, status, counts, basis=basis(plan.digest, signature) if signature is not None else None)


def _work_waiting(plan: Plan, previous: Mapping[str, Prior], steps: frozenset[str] | None) -> bool:
    """Guess from the ledger, before fingerprinting, whether nodes of `steps` (None: all) will run: some new, or
    some not succeeded.

    A no-op resume says no, so it starts no workers, and so does an `--until` run whose steps are
    done; a changed step is not seen here (its nodes then start the workers at the first wave, as
    without a guess).
    """
    if steps is not None:
        return any(node.step in steps and (nid not in previous or previous[nid].status != "succeeded")
                   for nid, node in plan.nodes.items())
    return any(nid not in previous for nid in plan.nodes) or any(
        prior.status != "succeeded" for prior in previous.values() if prior.in_plan)


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
    """Say what a run will do, by reason: '1,204 nodes: 1,180 done, 20 to retry (failed), 4 changed'."""
    labels = {"done": "done", "failed": "to retry (failed)", "changed": "changed", "output missing": "output missing",
              "new": "new", "interrupted": "interrupted", "pending": "not run yet", "forced": "forced (--rerun)",
              "skipped": "skipped (--skip)", "left out": "left out (--until)"}
    ordered = [*labels, *(k for k in summary if k not in labels)]
    parts = [f"{summary[k]:,} {labels.get(k, k)}" for k in ordered if summary.get(k)]
    return f"{total:,} node{'' if total == 1 else 's'}: " + (", ".join(parts) if parts else "nothing to do")


class _RunLog:
    """The run's log file: a loguru sink that goes quiet, and says so once, when the file cannot be written.

    loguru prints a traceback to stderr for every record a failing sink refuses; on a full disk
    that is hundreds of them. This sink writes and flushes each line (a log line is rare: a failure,
    a retry, a skip) and stops at the first error.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: TextIO | None = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115

    def write(self, message: str) -> None:
        if self.file is None:
            return
        try:
            self.file.write(message)
            self.file.flush()
        except OSError as err:
            self.close()
            sys.stderr.write(f"plait: warning: the run log {self.path} cannot be written ({err.strerror}); "
                             "the run goes on without it\n")

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None

    def __enter__(self) -> _RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_node(record: Any) -> bool:
    record["extra"].setdefault("node", "-")
    return True


def _done_by_step(plan: Plan, status: Mapping[str, str]) -> Counter:
    return Counter(plan.nodes[n].step for n in status if plan.nodes[n].kind == "task")


@contextmanager
def _locked(ws: Path) -> Iterator[None]:
    """Hold the workspace for this process: an `flock` on the workspace folder itself, and our PID in `.plait/lock`.

    The lock is on the folder, not on a file in `.plait/`, so that a task deleting `.plait/lock`
    cannot let a second run in; the file only says who holds the workspace, for the message.
    """
    state = state_dir(ws)
    lock = state / LOCK_NAME
    try:
        state.mkdir(parents=True, exist_ok=True)
        folder = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise LedgerError(f"cannot use workspace '{ws}': {err.strerror}; choose a writable --workspace") from err
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = _holder(lock) or "another process"
            raise WorkspaceBusy(f"workspace '{ws}' is in use by another plait run ({holder}); wait for it to "
                                "finish, or use another --workspace") from err
        try:
            lock.write_text(f"pid {os.getpid()}", encoding="utf-8")
        except OSError as err:
            raise LedgerError(f"cannot use workspace '{ws}': {err.strerror}; choose a writable --workspace") from err
        yield
    finally:
        os.close(folder)


def _holder(lock: Path) -> str:
    """Return what the lock's holder wrote ("pid N"), waiting a little: it writes just after it takes the lock."""
    deadline = time.monotonic() + 0.5
    while True:
        try:
            holder = lock.read_text(encoding="utf-8").strip()
        except OSError:
            holder = ""
        if holder or time.monotonic() > deadline:
            return holder
        time.sleep(0.01)


@contextmanager
def _signals_stop(scheduler: Scheduler) -> Iterator[None]:
    """On SIGINT, SIGTERM or SIGHUP (a closed terminal) stop the scheduler; a second signal interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if scheduler.state.stopping:
            raise RunInterrupted(f"{signal.Signals(signum).name} again: stopping at once")
        logger.warning(f"{signal.Signals(signum).name}: stopping; running nodes finish (signal again to stop now)")
        scheduler.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
