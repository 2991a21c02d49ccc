"""The scheduler: decide which nodes run, dispatch them in waves, settle outcomes, hand records to the ledger.

Lifecycle: `prepare` (decide every node: restore it from the ledger, or make it wait for its
predecessors) -> `run` (wave after wave until every node is settled or the run stops) -> the
`RunReport`. All run state is one `RunState` (`plait.runtime.state`); wave forming
(`plait.runtime.waves`) and settling (`plait.runtime.settling`) are functions of it. The
scheduler does not know joblib: it is handed a `dispatch` function (`plait.runtime.backends`
builds one over joblib; tests hand it a fake one and a fake clock).

Task selection policy
    joblib cannot add work to a `Parallel` call that is running, so plait dispatches in waves:
    every node that is ready (all its dependencies settled) goes into one wave, ordered by plan
    order, and the wave's outcomes stream back unordered and are settled as they arrive. Nodes
    made ready by a wave go into the next one. Two things keep waves from holding work back:
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

Recording
    Only this process writes the ledger: each chunk's outcomes go to the ledger writer's thread
    as they are settled, and it commits them in batches, at most half a second late
    (`plait.runtime.writer`), so a kill loses at most the outcomes not yet committed, whose
    nodes then run again.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from plait.compiler import NodeSpec, WorkflowError, expand_deferred
from plait.runtime.decide import Explainer, decide
from plait.runtime.execute import Chunk, Results, RunInfo
from plait.runtime.fingerprint import Fingerprinter
from plait.runtime.ledger import Prior
from plait.runtime.outcome import FAILED, error_record
from plait.runtime.settling import settle, take
from plait.runtime.state import RunReport, RunState, due_retries, interrupted, restore, wait_for_predecessors
from plait.runtime.waves import next_wave, upstream_view
from plait.templating import RENDER_ERRORS, render, template_context

__all__ = ["Dispatch", "Scheduler"]

# Runs a wave: takes (info, wave, unit starts) and yields (chunk, results) as chunks finish.
Dispatch = Callable[[RunInfo, Chunk, list[int]], Iterable[tuple[Chunk, Results]]]
# Hands ledger writes to the writer: ("record", run_id, records) or ("add_nodes", rows).
Submit = Callable[..., None]


class Scheduler:
    """Runs one plan to the end (or until stopped) through a dispatch function, from one `RunState`."""

    def __init__(self, state: RunState, *, dispatch: Dispatch, submit: Submit, previous: Mapping[str, Prior],
                 fingerprints: Fingerprinter, recorded_parts: Mapping[str, Any],
                 fingerprints_of: Callable[[Iterable[str]], Mapping[str, str | None]], held: bool = False) -> None:
        """`previous`: what the ledger holds of each node; with `held`, only of those that did not succeed
        (the ledger holds this very plan, up to date: the rest are done, and `fingerprints_of` reads
        theirs). `recorded_parts`: each step's signature parts as the ledger last recorded them."""
        self.state = state
        self.dispatch = dispatch
        self.submit = submit
        self.previous = previous
        self.fingerprints = fingerprints
        self.fingerprints_of = fingerprints_of
        self.held = held
        self.explainer = Explainer(fingerprints, recorded_parts, lambda nid: list(state.pred[nid]),
                                   state.decisions.__contains__)

    @property
    def report(self) -> RunReport:
        return self.state.report

    # -- deciding ---------------------------------------------------------------------------

    def prepare(self) -> dict[str, int]:
        """Decide every node of the plan; return how many nodes are done or run, by reason. Mutates."""
        state = self.state
        summary: Counter = Counter()
        if self.held:
            unfinished = [nid for nid in state.plan.nodes if nid in self.previous]
            known = {p for nid in unfinished for p in state.pred[nid]} - self.previous.keys()
            state.fp.update(self.fingerprints_of(known))
            summary["done"] += restore(state, (nid for nid in state.plan.nodes if nid not in self.previous))
        else:
            unfinished = list(state.plan.nodes)
        summary += self._decide(unfinished)
        state.report.plan_summary = dict(+summary)
        return dict(state.report.plan_summary)

    def _decide(self, nodes: Iterable[str]) -> Counter:
        """Fingerprint and decide nodes in plan order: restore the done, make the rest wait or ready. Mutates."""
        state, previous, explainer = self.state, self.previous, self.explainer
        fp, pred, nodes_of = state.fp, state.pred, state.plan.nodes
        node_fp = self.fingerprints.node
        summary: Counter = Counter()
        done: list[str] = []
        waiting: list[str] = []
        for nid in nodes:
            node = nodes_of[nid]
            preds = pred[nid]
            fingerprint = fp[nid] = node_fp(node, [fp[p] for p in preds] if preds else ())
            decision = decide(node, previous.get(nid), fingerprint, explainer)
            summary["pending" if decision.reason == "interrupted" else decision.reason] += 1
            if decision.run or node.kind == "deferred":  # a deferred step lists its items again
                state.decisions[nid] = decision
                if preds:
                    waiting.append(nid)
                else:
                    state.ready.append(nid)
            else:
                done.append(nid)
        restore(state, done)
        for nid in waiting:  # once every done node is settled, so that none is waited for
            wait_for_predecessors(state, nid)
        return summary

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run until every node is settled or the run is stopped; return the report. Mutates."""
        state = self.state
        try:
            while not state.stopping:
                due_retries(state)
                wave = next_wave(state, self._expand)
                if wave:
                    self._run_wave(*wave)
                elif state.retries:
                    self._wait_for(state.retries[0][0])
                else:
                    break
        finally:
            self._flush()
        report = state.report
        pending = len(state.plan.nodes) - len(state.status)
        if report.failed or pending:
            report.status = "interrupted" if state.stopping and not report.failed else "failed"
        if pending:
            report.counts["pending"] += pending
        return report

    def stop(self) -> None:
        """Stop dispatching: running nodes finish, nodes not started stay pending. Safe from a signal handler."""
        self.state.stopping = True
        self._raise_stop_flag()

    def _raise_stop_flag(self) -> None:
        """Tell the workers (through the stop file) to start no more nodes of the chunks they hold."""
        with contextlib.suppress(OSError):
            Path(self.state.info.stop_file).touch()

    def _wait_for(self, due: float) -> None:
        """Wait until `due` (the next retry), waking often enough to notice a stop."""
        clock = self.state.clock
        while not self.state.stopping and clock.monotonic() < due:
            clock.sleep(min(0.05, max(0.0, due - clock.monotonic())))

    def _run_wave(self, wave: Chunk, starts: list[int]) -> None:
        state = self.state
        self._flush()  # joins and skips settled while the wave was formed
        for chunk, results in self.dispatch(state.info, wave, starts):
            take(state, chunk, results)
            if state.stopping:
                self._raise_stop_flag()
            self._flush()
        # A fused node whose feeder failed (or that was not started) came back without an outcome:
        # once its dependencies are settled it is decided like any other ready node.
        unsettled = [n for n in state.in_flight if n not in state.status]
        state.ready += [n for n in unsettled if state.remaining.get(n) == 0]
        if state.stopping:
            interrupted(state, unsettled)
        state.in_flight.clear()

    def _expand(self, nid: str, node: NodeSpec) -> None:
        """Expand a deferred step now that its upstream has run, and decide its new nodes. Mutates."""
        state = self.state
        step = state.plan.steps[node.step]
        context = template_context(state.plan.params, steps=upstream_view(state, node), run_id=state.info.run_id,
                                   run_number=state.info.run_number,
                                   workspace=state.info.workspace)
        try:
            items = render(step.items, context)
            plan = expand_deferred(state.plan, node.step, items)
        except (*RENDER_ERRORS, WorkflowError) as err:
            message = err.errors[0].message if isinstance(err, WorkflowError) else f"items template: {err}"
            error = error_record(ValueError(message), node=nid, item=None, attempt=1, policy=node.retry)
            state.attempts[nid] = state.attempts.get(nid, 0) + 1
            now = state.clock.wall()
            settle(state, nid, FAILED, None, error, now, now)
            return
        before = state.plan.nodes
        new = [n.id for n in plan.nodes.values() if n.id not in before]
        joins = [n.id for n in plan.nodes.values() if n.kind == "join" and before.get(n.id, n).kind == "deferred"]
        self.submit("add_nodes", [(n.id, n.step, n.key, n.kind) for n in plan.nodes.values()
                                  if n.id not in before or n.kind != before[n.id].kind])
        state.index(plan)
        self._decide(new)
        for join in joins:
            wait_for_predecessors(state, join)
        logger.bind(node=nid).info(f"{node.step}: expanded into {len(new):,} nodes")

    def _flush(self) -> None:
        """Hand the settled outcomes to the ledger writer (which batches its commits)."""
        state = self.state
        if state.buffer:
            self.submit("record", state.info.run_id, state.buffer)
            state.buffer = []
