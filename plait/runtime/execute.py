"""Run one dispatch unit in a worker: render each node's config, call its handler, return outcomes.

This is the only runtime code that runs in worker processes. It never writes the ledger and never
raises for a failing node: every node ends as an `Outcome` (failures become the one error record),
so one bad item cannot abort joblib's whole `Parallel` call.

A unit is one node, or a short per-item chain (`a[k] -> b[k]` where b runs `for_each: a`) that the
scheduler fused so the chain runs without waiting for the rest of a. A node of the chain runs
only when the node feeding it succeeded (or was skipped by its condition).

Results travel as JSON text: the worker serialises once (and a result that is not JSON is the
node's failure, here, where it happened), and the parent stores that text as it is.

Timeouts: a handler that enforces its own (`own_timeout`, e.g. shell kills its process group)
does; otherwise, on a process's main thread, SIGALRM interrupts the node; on any other thread
the node runs in a helper thread that is abandoned when the time is up.

The run asks workers to stop by creating a file (`stop_file`): a unit checks it before each node
and reports the nodes it did not start as `not_started`. It works across processes, and lets the
nodes already running finish.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from loguru import logger

from plait.compiler import RetryPolicy, thaw
from plait.runtime.outcome import FAILED, NOT_STARTED, SKIPPED, SUCCEEDED, Outcome, error_record
from plait.tasks.base import TaskContext
from plait.templating import render, render_shell, render_value

__all__ = ["NodeJob", "RunInfo", "StepCall", "prepare_process", "run_unit", "start_worker"]

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


class StepCall(NamedTuple):
    """What every node of a step shares: built once per step, sent by reference (pickle memoises it)."""

    step: str
    handler: Callable[..., Any]
    config: Mapping[str, Any]
    modes: Mapping[str, str]  # input fields rendered other than as values: "shell" or "raw"
    templated: bool  # whether any input other than a raw one holds a template (else no rendering at all)
    condition: str | None
    timeout: float | None
    own_timeout: bool
    retry: RetryPolicy
    total: int | None  # the number of items in the step


class NodeJob(NamedTuple):
    """One node to run, as the parent sends it: small, since 100,000 of them may travel."""

    node: str
    call: StepCall
    item: Any
    key: Any
    index: int | None
    attempt: int
    steps: Mapping[str, Any]  # upstream results, as templates see them under `steps`
    parent: int | None = None  # in a fused chain: the index of the job that feeds this one


_captured: list[tuple[str, str]] = []
_configured_for: str | None = None


def _capture(message: Any) -> None:
    _captured.append((message.record["level"].name, message.record["message"]))


def prepare_process(info: RunInfo) -> None:
    """In a worker process, send loguru's records to the outcome instead of the worker's stderr. Mutates."""
    global _configured_for
    if os.getpid() == info.parent_pid or _configured_for == info.run_id:
        return
    logger.remove()
    logger.add(_capture, level="DEBUG", format="{message}")
    logger.enable("plait")
    if threading.current_thread() is threading.main_thread():  # signals can only be set there
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    _configured_for = info.run_id


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


def run_unit(info: RunInfo, jobs: tuple[NodeJob, ...]) -> list[Outcome]:
    """Run a unit's jobs in order and return one outcome per job."""
    prepare_process(info)
    outcomes: list[Outcome] = []
    passed: dict[int, str] = {}  # job index -> its result JSON, for the jobs it feeds
    for index, job in enumerate(jobs):
        steps = job.steps
        if job.parent is not None:
            if job.parent not in passed:
                continue  # the node feeding this one did not succeed: the parent decides what follows
            steps = {**steps, jobs[job.parent].call.step: {"result": json.loads(passed[job.parent])}}
        if os.path.exists(info.stop_file):
            now = time.time()
            outcomes.append(Outcome(job.node, NOT_STARTED, None, None, now, now))
            continue
        outcome = run_node(info, job, steps)
        if outcome.status in (SUCCEEDED, SKIPPED):
            passed[index] = outcome.result
        outcomes.append(outcome)
    return outcomes


def run_node(info: RunInfo, job: NodeJob, steps: Mapping[str, Any]) -> Outcome:
    """Run one attempt at one node; never raises for the node's own failure."""
    started = time.time()
    call = job.call
    ctx = TaskContext(
        workspace=info.workspace, run_id=info.run_id, step=call.step, node_id=job.node, attempt=job.attempt,
        retry=call.retry, logger=logger.bind(node=job.node), workflow_dir=info.workflow_dir,
        timeout=call.timeout, params=info.params, steps=steps, key=job.key, index=job.index, total=call.total)
    status, result, error = SUCCEEDED, None, None
    try:
        context = ctx.template_context(job.item) if call.templated or call.condition is not None else None
        if call.condition is not None and not _truthy(render(call.condition, context)):
            status = SKIPPED
            result = "null"
        else:
            config = _render_config(call, context) if call.templated else thaw(call.config)
            value = _call(call, job, config, ctx)
            result = json.dumps(value)
    except Exception as exc:
        status, result = FAILED, None
        error = error_record(exc, node=job.node, item=job.item, attempt=job.attempt, policy=call.retry)
    logs = tuple(_captured)
    _captured.clear()
    return Outcome(job.node, status, result, error, started, time.time(), logs)


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


def _call(call: StepCall, job: NodeJob, config: dict[str, Any], ctx: TaskContext) -> Any:
    if call.timeout is None or call.own_timeout:
        return call.handler(config, job.item, ctx)
    if threading.current_thread() is threading.main_thread():
        return _call_with_alarm(call, job, config, ctx)
    return _call_in_thread(call, job, config, ctx)


def _call_with_alarm(call: StepCall, job: NodeJob, config: dict[str, Any], ctx: TaskContext) -> Any:
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"node {job.node} timed out after {call.timeout:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, call.timeout)
    try:
        return call.handler(config, job.item, ctx)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(call: StepCall, job: NodeJob, config: dict[str, Any], ctx: TaskContext) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call.handler(config, job.item, ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"plait-{job.node}", daemon=True)
    thread.start()
    thread.join(call.timeout)
    if thread.is_alive():
        raise TimeoutError(f"node {job.node} timed out after {call.timeout:g} s (abandoned, still running)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
