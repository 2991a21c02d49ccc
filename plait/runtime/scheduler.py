"""The scheduler: decide which nodes run, dispatch them in waves, settle outcomes, write the ledger.

Task selection policy
    joblib cannot add work to a `Parallel` call that is running, so plait dispatches in waves:
    every node that is ready (all its dependencies settled) goes into one wave, ordered by plan
    order, and the wave's outcomes stream back unordered (`return_as="generator_unordered"`) and
    are settled as they arrive. Nodes made ready by a wave go into the next one. Two things keep
    waves from holding work back:
    - Per-item chains are fused: when `b` runs `for_each: a`, `b[k]` rides in the same dispatch
      unit as `a[k]` (when its other dependencies are already settled) and starts the moment
      `a[k]` succeeds, in the same worker, without waiting for the rest of `a`. Chains of any
      length fuse (`a[k] -> b[k] -> c[k]`).
    - Joins, deferred expansions and skips are settled in the parent at once, not dispatched.
    A node that depends on another one of the same wave across steps (not through for_each)
    waits for the wave to end: that is the price of joblib's fixed calls, paid only there.

Retries
    A failed attempt that the retry policy allows again is put on a timer (delay, backoff,
    jitter) and joins the first wave after it is due; it never holds a worker while it waits.

Failure policy
    A node's final failure is tolerated when its step's `max_failures` budget still covers it.
    A node whose dependency failed is skipped, unless that failure was tolerated and the node is
    a fan-in (it then sees None for the failed item); a per-item partner of a failed item is
    always skipped. An untolerated failure in an `on_error: fail` step stops dispatch: running
    nodes finish, nothing new starts, the run fails. Under `on_error: continue` the rest runs.

State
    All run state lives here (statuses, attempts, results as JSON text, counters), never in
    the plan. Only this process writes the ledger: each unit's outcomes go to the ledger writer's
    thread as they are settled, and it commits them in batches, at most half a second late
    (`plait.runtime.writer`), so a kill loses at most the outcomes not yet committed, whose nodes
    then run again.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from plait.compiler import NodeSpec, Plan, StepSpec, WorkflowError, expand_deferred
from plait.runtime.execute import NodeJob, RunInfo, StepCall
from plait.runtime.fingerprint import Fingerprinter
from plait.runtime.ledger import Ledger, NodeRecord
from plait.runtime.outcome import FAILED, NOT_STARTED, SKIPPED, SUCCEEDED, Outcome, error_record, retry_delay
from plait.runtime.writer import LedgerWriter
from plait.tasks.base import get_kind
from plait.templating import RENDER_ERRORS, has_template, render

__all__ = ["RunReport", "Scheduler"]

# Runs a wave: takes [(info, jobs), ...] and yields each unit's outcomes as they finish.
Dispatch = Callable[[list[tuple[RunInfo, tuple[NodeJob, ...]]]], Iterable[list[Outcome]]]


@dataclass
class RunReport:
    """What a run did, for the summary and the exit code."""

    run_id: str
    status: str = "succeeded"  # succeeded | failed | interrupted
    counts: Counter = field(default_factory=Counter)  # final statuses of every node, restored ones included
    restored: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # untolerated failure records
    plan_summary: dict[str, int] = field(default_factory=dict)


class Scheduler:
    """Runs one plan to the end (or until stopped) against a ledger, through a dispatch function."""

    def __init__(self, plan: Plan, ledger: Ledger, writer: LedgerWriter, info: RunInfo, dispatch: Dispatch,
                 previous: dict[str, tuple[str, str | None, bool]], on_settle: Callable[[str, str], None] | None = None,
                 seed: int | None = None, log_nodes: bool = False):
        self.plan = plan
        self.ledger = ledger  # read: results of nodes restored from earlier runs
        self.writer = writer  # write: everything this run records
        self.info = info
        self.dispatch = dispatch
        self.previous = previous
        self.on_settle = on_settle or (lambda step, status: None)
        self.log_nodes = log_nodes  # a DEBUG line per succeeded node (costs ~10 µs a node)
        self.rng = random.Random(seed)
        self.fingerprints = Fingerprinter(plan.steps, info.workflow_dir, plan.params)
        self.report = RunReport(info.run_id)
        self.status: dict[str, str] = {}
        self.tolerated: set[str] = set()  # failed or skipped nodes whose failure a budget covers
        self.skipped_for_failure: set[str] = set()
        self.results: dict[str, str | None] = {}  # node -> result JSON (restored nodes: loaded on demand)
        self.fp: dict[str, str] = {}
        self.remaining: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.failures: Counter = Counter()  # final failures per step
        self.ready: list[str] = []
        self.retries: list[tuple[float, int, str]] = []
        self.in_flight: set[str] = set()
        self.buffer: list[NodeRecord] = []
        self.stopping = False
        self._index()

    # -- set-up -----------------------------------------------------------------------------

    def _index(self) -> None:
        """(Re)build the per-plan lookups: node order, each step's items, per-step item totals."""
        self.order = {nid: i for i, nid in enumerate(self.plan.nodes)}
        self.members: dict[str, list[str]] = defaultdict(list)
        for node in self.plan.nodes.values():
            if node.kind == "task" and node.key is not None:
                self.members[node.step].append(node.id)
        self.step_calls = {s.name: self._step_call(s) for s in self.plan.steps.values()}
        self.paired = {s.for_each for s in self.plan.steps.values() if s.for_each}  # steps something pairs with

    def prepare(self) -> dict[str, int]:
        """Fingerprint every node, settle those the ledger already has, and say what will run."""
        summary: Counter = Counter()
        for nid, node in self.plan.nodes.items():
            self._prepare_node(nid, node, summary)
        self.report.plan_summary = dict(summary)
        return dict(summary)

    def _prepare_node(self, nid: str, node: NodeSpec, summary: Counter) -> None:
        preds = tuple(self.plan.graph.predecessors(nid))
        self.fp[nid] = fp = self.fingerprints.node(node, [self.fp[p] for p in preds])
        before = self.previous.get(nid)
        if before is None:
            summary["new"] += 1
        elif before[0] == SUCCEEDED and before[1] == fp and node.kind == "deferred":
            summary["done"] += 1  # its items are listed again when it expands; what they need runs then
        elif before[0] == SUCCEEDED and before[1] == fp:
            summary["done"] += 1
            self.status[nid] = SUCCEEDED
            self.report.counts[SUCCEEDED] += 1
            self.report.restored += 1
            return
        elif before[0] == SUCCEEDED:
            summary["changed"] += 1
        elif before[0] == FAILED:
            summary["failed"] += 1
        else:
            summary["pending"] += 1
        waiting = sum(1 for p in preds if p not in self.status)
        self.remaining[nid] = waiting
        if waiting == 0:
            self.ready.append(nid)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run until every node is settled or the run is stopped; return the report."""
        try:
            while not self.stopping:
                self._release_due_retries()
                units = self._next_wave()
                if units:
                    self._run_wave(units)
                elif self.retries:
                    self._sleep_until(self.retries[0][0])
                else:
                    break
        finally:
            self._flush()
        pending = len(self.plan.nodes) - len(self.status)
        if self.report.failed or pending:
            self.report.status = "interrupted" if self.stopping and not self.report.failed else "failed"
        if pending:
            self.report.counts["pending"] += pending
        return self.report

    def stop(self) -> None:
        """Stop dispatching: running nodes finish, nodes not started stay pending. Safe from a signal handler."""
        self.stopping = True
        with contextlib.suppress(OSError):
            Path(self.info.stop_file).touch()

    def _sleep_until(self, due: float) -> None:
        while not self.stopping and time.monotonic() < due:
            time.sleep(min(0.05, max(0.0, due - time.monotonic())))

    def _release_due_retries(self) -> None:
        now = time.monotonic()
        while self.retries and self.retries[0][0] <= now:
            self.ready.append(heapq.heappop(self.retries)[2])

    def _next_wave(self) -> list[tuple[RunInfo, tuple[NodeJob, ...]]]:
        """Settle joins, expansions and skips in place; return the units of task nodes to dispatch."""
        units = []
        while self.ready and not self.stopping:
            batch, self.ready = sorted(self.ready, key=self.order.__getitem__), []
            for nid in batch:
                if nid in self.status or nid in self.in_flight:
                    continue
                node = self.plan.nodes[nid]
                blocked = self._blocked(nid, node)
                if blocked:
                    self._settle_skip(nid, *blocked)
                elif node.kind == "join":
                    self._settle(nid, SUCCEEDED, self._join_result(nid), None, time.time(), time.time())
                elif node.kind == "deferred":
                    self._expand(nid, node)
                else:
                    units.append((self.info, self._unit(nid, node)))
        return units

    def _run_wave(self, units: list[tuple[RunInfo, tuple[NodeJob, ...]]]) -> None:
        self._flush()  # joins and skips settled while the wave was formed
        for outcomes in self.dispatch(units):
            for outcome in outcomes:
                self._take(outcome)
            self._flush()
        # A fused node whose feeder failed (or that was not started) came back without an outcome:
        # once its dependencies are settled it is decided like any other ready node.
        unsettled = [n for n in self.in_flight if n not in self.status]
        self.ready += [n for n in unsettled if self.remaining.get(n) == 0]
        if self.stopping:
            self._mark_interrupted(unsettled)
        self.in_flight.clear()

    def _mark_interrupted(self, nodes: list[str]) -> None:
        """Record dispatched nodes that the stopping run did not finish: still pending, noted "interrupted".

        A node a worker was running when a Ctrl-C broke the pool lands here too: it runs again on
        resume (at least once), and the ledger says why it is pending.
        """
        self.buffer += [(n, "pending", self.attempts.get(n, 0), self.fp.get(n), None, None, "interrupted", None, None)
                        for n in nodes]

    # -- units ------------------------------------------------------------------------------

    def _unit(self, nid: str, node: NodeSpec) -> tuple[NodeJob, ...]:
        """Build the dispatch unit rooted at `nid`: the node plus its fusable per-item chain."""
        jobs = [self._job(nid, node, None)]
        self.in_flight.add(nid)
        position = 0
        while position < len(jobs):
            parent = jobs[position]
            if parent.call.step not in self.paired:
                position += 1
                continue  # no step runs for_each over this one: nothing to fuse
            for succ in self.plan.graph.successors(parent.node):
                snode = self.plan.nodes[succ]
                if (snode.kind == "task" and self.plan.steps[snode.step].for_each == parent.call.step
                        and succ not in self.status and succ not in self.in_flight
                        and all(p == parent.node or self.status.get(p) == SUCCEEDED
                                for p in self.plan.graph.predecessors(succ))):
                    jobs.append(self._job(succ, snode, position))
                    self.in_flight.add(succ)
            position += 1
        return tuple(jobs)

    def _job(self, nid: str, node: NodeSpec, parent: int | None) -> NodeJob:
        return NodeJob(nid, self.step_calls[node.step], node.item, node.key, node.index,
                       self.attempts.get(nid, 0) + 1, self._upstream(node), parent)

    def _upstream(self, node: NodeSpec) -> dict[str, Any]:
        """Return what `steps.X` shows this node for each step it depends on."""
        step = self.plan.steps[node.step]
        if not step.depends_on:
            return _NOTHING
        view: dict[str, Any] = {}
        for dep in step.depends_on:
            dep_step = self.plan.steps[dep]
            if dep == step.for_each:
                partner = f"{dep}[{node.key}]" if node.key is not None else None
                if partner in self.status:
                    view[dep] = {"result": self._value(partner)}
            elif dep_step.kind == "single":
                view[dep] = {"result": self._value(dep)}
            elif dep in self.plan.nodes:  # a join (a batch behind a join, or an expanded deferred step)
                view[dep] = {"results": self._value(dep)}
            else:
                view[dep] = {"results": [self._value(m) for m in self.members[dep]]}
        return view

    def _value(self, nid: str) -> Any:
        if nid not in self.results:
            self.results.update({k: json.dumps(v) for k, v in self.ledger.results([nid]).items()})
        text = self.results.get(nid)
        return json.loads(text) if text is not None and self.status.get(nid) == SUCCEEDED else None

    def _join_result(self, nid: str) -> str:
        members = self.members[nid] or sorted(self.plan.graph.predecessors(nid), key=self.order.__getitem__)
        missing = [m for m in members if m not in self.results and self.status.get(m) == SUCCEEDED]
        if missing:
            self.results.update({k: json.dumps(v) for k, v in self.ledger.results(missing).items()})
        parts = [self.results.get(m) if self.status.get(m) == SUCCEEDED else None for m in members]
        return "[" + ",".join(p if p is not None else "null" for p in parts) + "]"

    def _step_call(self, step: StepSpec) -> StepCall | None:
        """Return what every job of `step` shares (None for a kind no longer registered)."""
        kind = get_kind(step.task)
        if kind is None:
            return None
        fields = kind.fields or {}
        modes = {name: f.render for name, f in fields.items() if f.render != "value"}
        templated = any(_has_template(v) for name, v in step.config.items() if modes.get(name) != "raw")
        total = len(self.members[step.name]) if step.kind != "single" else None
        return StepCall(step.name, kind.handler, step.config, modes, templated, step.condition, step.timeout,
                        kind.own_timeout, step.retry, total)

    # -- settling ---------------------------------------------------------------------------

    def _take(self, outcome: Outcome) -> None:
        """Settle one outcome that came back from a worker (one not asked for, e.g. of an aborted call, is dropped)."""
        nid = outcome.node
        if nid not in self.in_flight:
            return
        self.in_flight.discard(nid)
        for level, message in outcome.logs:
            logger.bind(node=nid).log(level, message)
        if outcome.status == NOT_STARTED:
            self._mark_interrupted([nid])
            return
        self.attempts[nid] = self.attempts.get(nid, 0) + 1
        if outcome.status == FAILED:
            node = self.plan.nodes[nid]
            if outcome.error["retryable"] and self.attempts[nid] < node.retry.max_attempts and not self.stopping:
                wait = retry_delay(node.retry, self.attempts[nid], self.rng)
                logger.bind(node=nid).warning(f"{nid}: attempt {self.attempts[nid]} failed "
                                              f"({outcome.error['error_type']}: {outcome.error['error']}); "
                                              f"retrying in {wait:.2f} s")
                heapq.heappush(self.retries, (time.monotonic() + wait, self.order[nid], nid))
                return
        self._settle(nid, outcome.status, outcome.result, outcome.error, outcome.started, outcome.ended)

    def _settle(self, nid: str, status: str, result: str | None, error: dict | None, started: float | None,
                ended: float | None, note: str | None = None) -> None:
        """Make `nid` final: record it, count it, and release its dependents."""
        node = self.plan.nodes[nid]
        self.status[nid] = status
        self.results[nid] = result
        if status == FAILED:
            self._judge_failure(nid, node, error)
        elif status == SKIPPED and note is None:
            note = "condition is false"
        self.report.counts[status] += 1
        self.buffer.append((nid, status, self.attempts.get(nid, 0), self.fp.get(nid), result,
                            json.dumps(error, default=str) if error else None, note, started, ended))
        if node.kind == "task":
            self.on_settle(node.step, status)
        if status == SUCCEEDED:
            if self.log_nodes:
                logger.bind(node=nid).debug(f"{nid} succeeded")
        elif status == SKIPPED:
            logger.bind(node=nid).info(f"{nid} skipped: {note}")
        for succ in self.plan.graph.successors(nid):
            if succ in self.status:
                continue  # restored from the ledger at start
            left = self.remaining[succ] = self.remaining[succ] - 1
            if left == 0 and succ not in self.in_flight:
                self.ready.append(succ)

    def _judge_failure(self, nid: str, node: NodeSpec, error: dict | None) -> None:
        step = self.plan.steps[node.step]
        self.failures[node.step] += 1
        budget = step.max_failures
        total = max(1, len(self.members[node.step]))
        if budget is not None and self.failures[node.step] <= (budget if isinstance(budget, int) else budget * total):
            self.tolerated.add(nid)
            logger.bind(node=nid).warning(f"{nid} failed within the step's failure budget: {error and error['error']}")
            return
        self.report.failed.append(error or {"node": nid})
        logger.bind(node=nid).error(f"{nid} failed: {error and error['error_type']}: {error and error['error']}")
        if step.on_error == "fail":
            self.stop()

    def _blocked(self, nid: str, node: NodeSpec) -> tuple[str, bool] | None:
        """Return (why, tolerated) when a failed dependency means `nid` must be skipped, else None."""
        for_each = self.plan.steps[node.step].for_each
        for pred in self.plan.graph.predecessors(nid):
            if self.status.get(pred) in (SUCCEEDED, None) or (
                    self.status[pred] == SKIPPED and pred not in self.skipped_for_failure):
                continue
            tolerated = pred in self.tolerated
            if not tolerated or self.plan.nodes[pred].step == for_each:
                return f"upstream {pred} failed" if self.status[pred] == FAILED else f"upstream {pred} was skipped", \
                    tolerated
        return None

    def _settle_skip(self, nid: str, why: str, tolerated: bool) -> None:
        self.skipped_for_failure.add(nid)
        if tolerated:
            self.tolerated.add(nid)
        now = time.time()
        self._settle(nid, SKIPPED, None, None, now, now, note=why)

    def _expand(self, nid: str, node: NodeSpec) -> None:
        """Expand a deferred step now that its upstream has run, and take its new nodes in."""
        step = self.plan.steps[node.step]
        context = {"params": self.plan.params, "args": self.plan.params, "steps": self._upstream(node),
                   "run": {"id": self.info.run_id}, "workspace": str(self.info.workspace)}
        try:
            items = render(step.items, context)
            plan = expand_deferred(self.plan, node.step, items)
        except (*RENDER_ERRORS, WorkflowError) as err:
            message = err.errors[0].message if isinstance(err, WorkflowError) else f"items template: {err}"
            error = error_record(ValueError(message), node=nid, item=None, attempt=1, policy=node.retry)
            self.attempts[nid] = self.attempts.get(nid, 0) + 1
            now = time.time()
            self._settle(nid, FAILED, None, error, now, now)
            return
        new = [n for n in plan.nodes.values() if n.id not in self.plan.nodes]
        joins = [n.id for n in plan.nodes.values()
                 if n.kind == "join" and self.plan.nodes.get(n.id, n).kind == "deferred"]
        self.writer.submit("add_nodes", [(n.id, n.step, n.key, n.kind) for n in plan.nodes.values()
                               if n.id not in self.plan.nodes or n.kind != self.plan.nodes[n.id].kind])
        self.plan = plan
        self._index()
        summary: Counter = Counter()
        for new_node in new:
            self._prepare_node(new_node.id, new_node, summary)
        for join in joins:
            self.remaining[join] = sum(1 for p in self.plan.graph.predecessors(join) if p not in self.status)
            if self.remaining[join] == 0:
                self.ready.append(join)
        logger.bind(node=nid).info(f"{node.step}: expanded into {len(new):,} nodes")

    # -- the ledger -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the settled outcomes to the ledger writer (which batches its commits)."""
        if self.buffer:
            self.writer.submit("record", self.info.run_id, self.buffer)
            self.buffer = []


_NOTHING: dict[str, Any] = {}


def _has_template(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return has_template(value)
