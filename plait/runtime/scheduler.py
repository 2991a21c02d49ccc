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
    A wave travels in chunks of many units (`plait.runtime.waves` forms it, `plait.runtime.chunks`
    sizes the chunks). A node that depends on another one of the same wave across steps (not through for_each)
    waits for the wave to end: that is the price of joblib's fixed calls, paid only there.

Retries
    A failed attempt that the retry policy allows again is put on a timer (delay, backoff,
    jitter) and joins the first wave after it is due; it never holds a worker while it waits.

Failure policy
    A node's final failure is tolerated when its step's `max_failures` budget still covers it.
    A node whose dependency failed is skipped, unless that failure was tolerated and the node is
    a fan-in (it then sees None for the failed item); a per-item partner of a failed item is
    always skipped. A step that only runs `after` another is never skipped for it: it waits for
    that step to end, however it ended. An untolerated failure in an `on_error: fail` step stops
    dispatch: running nodes finish, nothing new starts, the run fails. Under `on_error: continue`
    the rest runs.

Outcomes are settled by `plait.runtime.settling` (mixed in, like the wave forming).

State
    All run state lives here (statuses, attempts, results as JSON text, counters), never in
    the plan. Only this process writes the ledger: each chunk's outcomes go to the ledger writer's
    thread as they are settled, and it commits them in batches, at most half a second late
    (`plait.runtime.writer`), so a kill loses at most the outcomes not yet committed, whose nodes
    then run again.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from plait.compiler import NodeSpec, Plan, WorkflowError, expand_deferred
from plait.runtime.execute import Chunk, Results, RunInfo
from plait.runtime.fingerprint import Fingerprinter
from plait.runtime.ledger import Ledger, NodeRecord
from plait.runtime.outcome import FAILED, SUCCEEDED, error_record
from plait.runtime.settling import Settling
from plait.runtime.waves import WaveForming
from plait.runtime.writer import LedgerWriter
from plait.templating import RENDER_ERRORS, render, template_context

__all__ = ["RunReport", "Scheduler"]

# Runs a wave: takes (info, wave, unit starts) and yields (chunk, results) as chunks finish.
Dispatch = Callable[[RunInfo, Chunk, list[int]], Iterable[tuple[Chunk, Results]]]
# Counts settled task nodes: (step, status, how many).
OnSettle = Callable[[str, str, int], None]


@dataclass
class RunReport:
    """What a run did, for the summary and the exit code."""

    run_id: str
    status: str = "succeeded"  # succeeded | failed | interrupted
    counts: Counter = field(default_factory=Counter)  # final statuses of every node, restored ones included
    restored: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # untolerated failure records
    plan_summary: dict[str, int] = field(default_factory=dict)


class Scheduler(WaveForming, Settling):
    """Runs one plan to the end (or until stopped) against a ledger, through a dispatch function."""

    def __init__(self, plan: Plan, ledger: Ledger, writer: LedgerWriter, info: RunInfo, dispatch: Dispatch,
                 previous: dict[str, tuple[str, str | None, bool]], fingerprints: Fingerprinter,
                 held: bool = False, on_settle: OnSettle | None = None, seed: int | None = None,
                 log_nodes: bool = False):
        self.plan = plan
        self.ledger = ledger  # read: results of nodes restored from earlier runs
        self.writer = writer  # write: everything this run records
        self.info = info
        self.dispatch = dispatch
        self.previous = previous
        self.held = held  # the ledger holds this plan whole and up to date: `previous` lists only what did not succeed
        self.on_settle = on_settle
        self.log_nodes = log_nodes  # a DEBUG line per succeeded node (costs ~10 µs a node)
        self.rng = random.Random(seed)
        self.fingerprints = fingerprints
        self.report = RunReport(info.run_id)
        self.status: dict[str, str] = {}
        self.tolerated: set[str] = set()  # failed or skipped nodes whose failure a budget covers
        self.skipped_for_failure: set[str] = set()
        self.results: dict[str, str | None] = {}  # node -> result JSON (restored nodes: loaded on demand)
        self.fp: dict[str, str] = {}
        self.remaining: dict[str, int] = {}
        self.attempts: dict[str, int] = {}  # attempts made, for nodes not settled in bulk
        self.failures: Counter = Counter()  # final failures per step
        self.ready: list[str] = []
        self.retries: list[tuple[float, int, str]] = []
        self.in_flight: set[str] = set()
        self.buffer: list[NodeRecord] = []
        self.stopping = False
        self._index()

    # -- set-up -----------------------------------------------------------------------------

    def _index(self) -> None:
        """(Re)build the per-plan lookups: node order, edges, each step's items, per-step job parts. Mutates."""
        self.order = {nid: i for i, nid in enumerate(self.plan.nodes)}
        graph = self.plan.graph
        self.succ = dict(graph.adjacency())  # node -> {successor: {}}: networkx's own dicts, no views
        self.pred = dict(graph.reverse(copy=False).adjacency())
        self.members: dict[str, list[str]] = defaultdict(list)
        for node in self.plan.nodes.values():
            if node.kind == "task" and node.key is not None:
                self.members[node.step].append(node.id)
        self.step_calls = {s.name: self._step_call(s) for s in self.plan.steps.values()}
        self.paired = {s.for_each for s in self.plan.steps.values() if s.for_each}  # steps something pairs with
        self.reads_upstream = {s.name for s in self.plan.steps.values() if s.depends_on}

    def prepare(self) -> dict[str, int]:
        """Fingerprint every node, settle those the ledger already has, and say what will run.

        The two common cases, a node the ledger has succeeded with the same fingerprint and a new
        node with nothing upstream, are decided inline: this loop visits every node of the plan.
        """
        if self.held:
            return self._prepare_held()
        summary: Counter = Counter()
        fp, pred, previous, status, remaining, ready = \
            self.fp, self.pred, self.previous, self.status, self.remaining, self.ready
        node_fp = self.fingerprints.node
        restored = new = 0
        for nid, node in self.plan.nodes.items():
            preds = pred[nid]
            fingerprint = fp[nid] = node_fp(node, [fp[p] for p in preds] if preds else ())
            before = previous.get(nid)
            if before is None and not preds:
                new += 1
                remaining[nid] = 0
                ready.append(nid)
            elif before is not None and before[0] == SUCCEEDED and before[1] == fingerprint and node.kind != "deferred":
                status[nid] = SUCCEEDED
                restored += 1
            else:
                self._decide(nid, node, before, summary)
        summary["done"] += restored
        summary["new"] += new
        self.report.counts[SUCCEEDED] += restored
        self.report.restored += restored
        self.report.plan_summary = dict(+summary)  # the causes that occur, as before
        return dict(self.report.plan_summary)

    def _prepare_held(self) -> dict[str, int]:
        """Prepare a plan the ledger holds whole and up to date: what `previous` does not list is done.

        Only the nodes to run again are fingerprinted (their fingerprints go in their records),
        from their predecessors' fingerprints, which the ledger has for those that succeeded.
        """
        summary: Counter = Counter()
        fp, pred, previous, status = self.fp, self.pred, self.previous, self.status
        node_fp = self.fingerprints.node
        fp.update(self.ledger.fingerprints({p for nid in previous if nid in pred for p in pred[nid]} - previous.keys()))
        restored = 0
        for nid, node in self.plan.nodes.items():
            before = previous.get(nid)
            if before is None:
                status[nid] = SUCCEEDED
                restored += 1
            else:
                preds = pred[nid]
                fp[nid] = node_fp(node, [fp[p] for p in preds] if preds else ())
                self._decide(nid, node, before, summary)
        summary["done"] += restored
        self.report.counts[SUCCEEDED] += restored
        self.report.restored += restored
        self.report.plan_summary = dict(+summary)
        return dict(self.report.plan_summary)

    def _prepare_node(self, nid: str, node: NodeSpec, summary: Counter) -> None:
        """Fingerprint a node added to the plan while running (an expansion), and decide it. Mutates."""
        preds = self.pred[nid]
        self.fp[nid] = self.fingerprints.node(node, [self.fp[p] for p in preds] if preds else ())
        before = self.previous.get(nid)
        if before is not None and before[0] == SUCCEEDED and before[1] == self.fp[nid] and node.kind != "deferred":
            summary["done"] += 1
            self.status[nid] = SUCCEEDED
            self.report.counts[SUCCEEDED] += 1
            self.report.restored += 1
        else:
            self._decide(nid, node, before, summary)

    def _decide(self, nid: str, node: NodeSpec, before: tuple[str, str | None, bool] | None,
                summary: Counter) -> None:
        """Count a node that is to run (or, deferred, to expand) by why, and make it ready or waiting. Mutates."""
        if before is None:
            summary["new"] += 1
        elif before[0] == SUCCEEDED and before[1] == self.fp[nid]:
            summary["done"] += 1  # a deferred step: its items are listed again when it expands; what they need runs
        elif before[0] == SUCCEEDED:
            summary["changed"] += 1
        elif before[0] == FAILED:
            summary["failed"] += 1
        else:
            summary["pending"] += 1
        waiting = sum(1 for p in self.pred[nid] if p not in self.status)
        self.remaining[nid] = waiting
        if waiting == 0:
            self.ready.append(nid)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run until every node is settled or the run is stopped; return the report."""
        try:
            while not self.stopping:
                self._release_due_retries()
                wave = self._next_wave()
                if wave:
                    self._run_wave(*wave)
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

    def _run_wave(self, wave: Chunk, starts: list[int]) -> None:
        self._flush()  # joins and skips settled while the wave was formed
        for chunk, results in self.dispatch(self.info, wave, starts):
            self._take(chunk, results)
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

    def _expand(self, nid: str, node: NodeSpec) -> None:
        """Expand a deferred step now that its upstream has run, and take its new nodes in."""
        step = self.plan.steps[node.step]
        context = template_context(self.plan.params, steps=self._upstream(node), run_id=self.info.run_id,
                                   workspace=self.info.workspace)
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
            self.remaining[join] = sum(1 for p in self.pred[join] if p not in self.status)
            if self.remaining[join] == 0:
                self.ready.append(join)
        logger.bind(node=nid).info(f"{node.step}: expanded into {len(new):,} nodes")

    # -- the ledger -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the settled outcomes to the ledger writer (which batches its commits)."""
        if self.buffer:
            self.writer.submit("record", self.info.run_id, self.buffer)
            self.buffer = []

