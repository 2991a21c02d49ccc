"""Run chunks of jobs in a worker: render each node's config, call its handler, return outcomes.

This is the only runtime code that runs in worker processes. It never writes the ledger and never
raises for a failing node: every node ends as an outcome (failures become the one error record),
so one bad item cannot abort joblib's whole `Parallel` call.

Chunks, as columns
    One joblib call carries a `Chunk` of many jobs (`plait.runtime.chunks` sizes them), as a few
    lists, one per field, rather than one object per job: pickling a list of 5,000 strings or
    numbers is one C loop, while 5,000 small objects cost a Python-level reducer call each (loky
    pickles with cloudpickle). The outcomes come back the same way (`Results`): statuses, result
    JSON texts and times as lists; error records and log lines, which are rare, by job position.

Fused chains
    A chunk holds whole units: one node, or a short per-item chain (`a[k] -> b[k]` where b runs
    `for_each: a`) that the scheduler fused so the chain runs without waiting for the rest of a.
    A job names the job feeding it by how many jobs back it sits (`feeders`, 0 for none), so a
    chunk cut from a wave at unit boundaries needs no renumbering. A node of a chain runs only
    when the node feeding it succeeded (or was skipped by its condition); otherwise its status
    stays None (not run) and the parent decides what follows.

The hot path
    Results travel as JSON text: the worker serialises once, and the parent stores that text as it
    is. A result that is not JSON, or bigger than `RunInfo.max_result_bytes`, is the node's failure,
    here, where it happened: one node's gigabyte never reaches the parent or the ledger. A step
    without templates is not rendered; a config of plain values is copied, not thawed deep; the
    node's logger is bound only if the handler uses it.

Timeouts
    A handler that enforces its own (`own_timeout`, e.g. shell kills its process group) does;
    otherwise, on a process's main thread, SIGALRM interrupts the node; on any other thread the
    node runs in a helper thread that is abandoned when the time is up.

Stopping
    The run asks workers to stop by creating a file (`stop_file`): before each node a chunk checks
    it (at most every `STOP_CHECK_EVERY` seconds, so trivial nodes do not each pay a `stat`; after
    a node that ran longer than that, the check always happens), and reports the nodes it did not
    start as `not_started`. It works across processes, and lets the nodes already running finish.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from loguru import logger

from plait.compiler import RetryPolicy, StepSpec, resolve_on_error, thaw
from plait.compiler.on_error import error_message
from plait.limits import MAX_RESULT_BYTES, size_text
from plait.runtime import output
from plait.runtime.outcome import FAILED, NOT_STARTED, SKIPPED, SUCCEEDED, RunInterrupted, error_record
from plait.runtime.worker import PROCESS
from plait.tasks.base import TaskContext, get_kind
from plait.templating import has_template, render, render_limits, render_shell, render_value

if TYPE_CHECKING:
    from plait.runtime.fingerprint import Fingerprint

__all__ = ["Chunk", "ResultTooLarge", "Results", "RunInfo", "StepCall", "prepare_process",
           "run_chunk", "start_worker", "step_call"]

STOP_CHECK_EVERY = 0.005  # seconds
_FALSE_TEXT = {"", "false", "no", "off", "0", "none"}


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What every node of a run shares."""

    run_id: str
    workspace: Path
    workflow_dir: Path
    params: Mapping[str, Any]
    stop_file: str
    parent_pid: int
    trail: str | None = None  # the folder where local workers keep their crash trails (plait.runtime.trail)
    journal: str | None = None  # the folder where local workers journal what they finished (plait.runtime.journal)
    max_result_bytes: int = MAX_RESULT_BYTES
    run_number: int | None = None  # this run's count among the runs of the workspace's ledger, from 1


class ResultTooLarge(ValueError):
    """A node's result is bigger than a run lets one node return (its JSON text, in bytes)."""


class StepCall(NamedTuple):
    """What every node of a step shares: built once per step, sent by reference (pickle memoises it)."""

    step: str
    handler: Callable[..., Any]
    config: Mapping[str, Any]
    modes: Mapping[str, str]  # input fields rendered other than as values: "shell" or "raw"
    templated: bool  # whether any input other than a raw one holds a template (else no rendering at all)
    flat: bool  # whether every config value is a scalar (then a shallow copy is a thawed one)
    condition: str | None
    timeout: float | None
    own_timeout: bool
    retry: RetryPolicy
    total: int | None  # the number of items in the step
    on_error: str | None = None  # the step's on_error template, rendered for a node that fails
    max_parallel: int | None = None  # at most this many of the step's nodes at once: they travel in lanes (waves)
    error_message: str | None = None  # the step's error_message template, rendered for a node that fails


def step_call(step: StepSpec, total: int | None) -> StepCall | None:
    """Return what every job of `step` shares (None for a task kind no longer registered).

    `total` is the number of items in the step (None for a plain step).
    """
    kind = get_kind(step.task)
    if kind is None:
        return None
    fields = kind.fields or {}
    modes = {name: f.render for name, f in fields.items() if f.render != "value"}
    templated = any(_has_template(v) for name, v in step.config.items() if modes.get(name) != "raw")
    flat = not any(isinstance(v, (Mapping, list, tuple)) for v in step.config.values())
    return StepCall(step.name, kind.handler, step.config, modes, templated, flat, step.condition, step.timeout,
                    kind.own_timeout, step.retry, total, step.on_error_template, step.max_parallel,
                    step.error_message)


def _has_template(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return has_template(value)


class Chunk(NamedTuple):
    """Jobs to run in one call, as columns: job i is (nodes[i], calls[i], items[i], ...)."""

    nodes: list[str]
    calls: list[StepCall]
    items: list[Any]
    keys: list[Any]
    indexes: list[int | None]
    attempts: list[int]
    steps: list[Mapping[str, Any]]  # upstream results, as templates see them under `steps`
    feeders: list[int]  # in a fused chain: how many jobs back the job feeding this one is (0: none)
    scopes: list[Mapping[str, Any]]  # `group` or `parent` a job's templates see (plait.compiler.scopes)
    fingerprints: list[Fingerprint]  # each job's fingerprint, for the worker's journal (plait.runtime.journal)

    def cut(self, start: int, stop: int) -> Chunk:
        """Return jobs [start, stop) as a chunk of their own (cut at unit boundaries only)."""
        return Chunk(*(column[start:stop] for column in self))


class Results(NamedTuple):
    """What a chunk's jobs gave, as columns in job order."""

    statuses: list[str | None]  # succeeded | failed | skipped (condition false) | not_started | None (not run)
    results: list[str | None]  # result JSON text
    started: list[float]
    ended: list[float]
    errors: dict[int, dict[str, Any]]  # job position -> error record
    logs: dict[int, tuple[tuple[str, str], ...]]  # job position -> (level, message) lines it logged
    outputs: dict[int, str]  # job position -> what it printed, as JSON text (plait.runtime.output)
    worker: str  # who ran the chunk: a process id, and the thread's name when not a process's main thread


def prepare_process(info: RunInfo) -> None:
    """In a worker process, send loguru's records to the outcome instead of the worker's stderr. Mutates."""
    PROCESS.prepare(info.run_id, info.parent_pid)


def start_worker(parent_pid: int) -> None:
    """Set up a worker process as it starts: ignore Ctrl-C, and exit when its parent dies.

    Ctrl-C at a terminal reaches every process of the group; an idle worker that died of it would
    break the pool under a run that means to stop gently. A worker whose parent was killed
    (SIGKILL leaves no time to stop it) would otherwise live on, running nodes nobody records.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while it started (backends)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="plait-orphan-watch", daemon=True).start()


def run_chunk(info: RunInfo, chunk: Chunk, mark: Callable[[int], bool] | None = None) -> Results:
    """Run a chunk's jobs in order and return their outcomes.

    `mark(i)` is told before job i starts; when it says False (the call was aborted), the chunk's
    remaining jobs are not started.
    """
    prepare_process(info)
    count = len(chunk.nodes)
    out = Results([None] * count, [None] * count, [0.0] * count, [0.0] * count, {}, {}, {}, _worker())
    journalist = PROCESS.journalist(info.journal) if info.journal else None
    slot = journalist.begin(chunk, out) if journalist else [None, None, 0, 0]
    statuses, results = out.statuses, out.results
    checked = 0.0
    stopping = False
    for i in range(count):
        steps = chunk.steps[i]
        back = chunk.feeders[i]
        if back:
            if statuses[i - back] not in (SUCCEEDED, SKIPPED):
                continue  # the node feeding this one did not succeed: the parent decides what follows
            steps = {**steps, chunk.calls[i - back].step: {"result": json.loads(results[i - back])}}
        now = time.monotonic()
        if not stopping and now - checked >= STOP_CHECK_EVERY:
            stopping, checked = os.path.exists(info.stop_file), now
        if not stopping and mark is not None:
            stopping = not mark(i)
        if stopping:
            statuses[i] = NOT_STARTED
            out.started[i] = out.ended[i] = time.time()
            continue
        _run_node(info, chunk, i, steps, out)
        slot[2] = i + 1  # done: the journalist may write it down
    if journalist:
        journalist.end()
    return out


def _run_node(info: RunInfo, chunk: Chunk, i: int, steps: Mapping[str, Any], out: Results) -> None:
    """Run one attempt at job `i` and write its outcome into `out`; never raises for the node's own failure. Mutates."""
    started = time.time()
    call, node, item, scope = chunk.calls[i], chunk.nodes[i], chunk.items[i], chunk.scopes[i]
    ctx = TaskContext(info.workspace, info.run_id, call.step, node, chunk.attempts[i], call.retry, _NodeLogger(node),
                      info.workflow_dir, call.timeout, info.params, steps, chunk.keys[i], chunk.indexes[i], call.total,
                      scope.get("group"), scope.get("parent"), info.max_result_bytes, info.run_number)
    output.begin()
    try:
        if call.templated or call.condition is not None:
            with render_limits(call.timeout):  # a template that loops fails as the node's timeout would
                context = ctx.template_context(item)
                skip = call.condition is not None and not _truthy(render(call.condition, context))
                config = None if skip or not call.templated else _render_config(call, context)
        else:
            skip, config = False, None
        if skip:
            out.statuses[i], out.results[i] = SKIPPED, "null"
        else:
            if config is None:
                config = dict(call.config) if call.flat else thaw(call.config)
            text = _json(_call(call, node, item, config, ctx))
            if len(text) > info.max_result_bytes:
                raise ResultTooLarge(f"the result of {node} is {size_text(len(text))} of JSON, more than the "
                                     f"{size_text(info.max_result_bytes)} one node may return (--max-result-size); "
                                     "write large data to a file in the workspace and return its path")
            out.results[i] = text
            out.statuses[i] = SUCCEEDED
    except RunInterrupted:
        raise
    except BaseException as exc:  # anything a task raises is its own failure (plait.runtime.outcome)
        out.statuses[i], out.results[i] = FAILED, None
        out.errors[i] = error_record(exc, node=node, item=item, attempt=chunk.attempts[i], policy=call.retry)
        if call.on_error is not None:  # decided per node: the parent's settling reads it from the record
            out.errors[i]["on_error"], note = resolve_on_error(call.on_error, ctx.template_context(item))
            if note:
                out.errors[i]["on_error_note"] = note
        if call.error_message is not None:  # the failure in the user's words (plait.compiler.on_error)
            out.errors[i]["message"] = error_message(call.error_message, ctx.template_context(item), out.errors[i])
    printed = output.end()
    if printed is not None:
        out.outputs[i] = printed
    if PROCESS.captured:
        out.logs[i] = PROCESS.take_logs()
    out.started[i], out.ended[i] = started, time.time()


class _NodeLogger:
    """A node's loguru logger, bound on first use: most nodes never log, and binding costs a microsecond."""

    __slots__ = ("_bound", "_node")

    def __init__(self, node: str) -> None:
        self._node = node
        self._bound: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._bound is None:
            self._bound = logger.bind(node=self._node)
        return getattr(self._bound, name)


def _json(value: Any) -> str:
    """Return `value` as JSON text; integers, strings and None skip the encoder (the hot path)."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    return json.dumps(value)


def _worker() -> str:
    """Return who runs this chunk: the process, and its thread when it is not the process's main thread."""
    thread = threading.current_thread()
    return str(os.getpid()) if thread is threading.main_thread() else f"{os.getpid()}/{thread.name}"



def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


def _render_config(call: StepCall, context: Mapping[str, Any]) -> dict[str, Any]:
    config = {}
    for name, value in call.config.items():
        mode = call.modes.get(name, "value")
        if mode == "raw":
            config[name] = thaw(value)
        elif mode == "shell" and isinstance(value, str):
            config[name] = render_shell(value, context)
        else:
            config[name] = render_value(value, context)
    return config


def _call(call: StepCall, node: str, item: Any, config: dict[str, Any], ctx: TaskContext) -> Any:
    if isinstance(item, (dict, list, tuple)):  # a plan's item is immutable and shared: the task gets its own copy
        item = thaw(item)
    if call.timeout is None or call.own_timeout:
        return call.handler(config, item, ctx)
    if threading.current_thread() is threading.main_thread():
        return _call_with_alarm(call, node, item, config, ctx)
    return _call_in_thread(call, node, item, config, ctx)


def _call_with_alarm(call: StepCall, node: str, item: Any, config: dict[str, Any], ctx: TaskContext) -> Any:
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"node {node} timed out after {call.timeout:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, call.timeout)
    try:
        return call.handler(config, item, ctx)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(call: StepCall, node: str, item: Any, config: dict[str, Any], ctx: TaskContext) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call.handler(config, item, ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"plait-{node}", daemon=True)
    thread.start()
    thread.join(call.timeout)
    if thread.is_alive():
        raise TimeoutError(f"node {node} timed out after {call.timeout:g} s (abandoned, still running)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
