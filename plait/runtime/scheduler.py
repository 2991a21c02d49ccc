"""The scheduler: decide which nodes run, dispatch them in waves, settle outcomes, hand records to the ledger.

Lifecycle: `prepare` (decide every node: restore it from the ledger, or make it wait for its
predecessors) -> `run` (waves dispatched as calls, their outcomes settled, until every node is
settled or the run stops) -> the `RunReport`. All run state is one `RunState`
(`plait.runtime.state`), changed only in the scheduler's thread; wave forming
(`plait.runtime.waves`) and settling (`plait.runtime.settling`) are functions of it. The
scheduler does not know joblib: it is handed a `dispatch` function (`plait.runtime.backends`
builds one over joblib; tests hand it a fake one and a fake clock), and `calls`, which run each
dispatch in this thread or on a thread of its own (`plait.runtime.calls`).

Task selection policy
    joblib cannot add work to a `Parallel` call that is running, so plait dispatches in waves:
    every node that is ready (all its dependencies settled) goes into one wave, ordered by plan
    order (up to `plait.runtime.waves.MOST_IN_A_WAVE` of them; the rest into the next), dispatched
    as one call, and its outcomes stream back unordered and are settled as they arrive. The
    nodes they make ready go into the next wave, which, where the backend lets calls
    overlap (loky, threading, dask), is dispatched as soon as every call in flight has handed all its
    chunks to the workers, while those calls run on: a parent's children start while its
    siblings still run. Two things keep waves from holding work back further:
    - Per-item chains are fused: when `b` runs `for_each: a`, `b[k]` rides in the same dispatch
      unit as `a[k]` (when its other dependencies are already settled) and starts the moment
      `a[k]` succeeds, in the same worker, without waiting for the rest of `a`. Chains of any
      length fuse (`a[k] -> b[k] -> c[k]`).
    - Joins, deferred expansions and skips are settled in the parent at once, not dispatched.
    - What a wave would do in the parent is done before it where it can, while no new call may
      start: ready placeholders whose parents are all back grow, ready joins whose members all
      succeeded are settled, and ready group nodes' views are made (`Scheduler._ahead`), so the
      next wave is ready the moment a call may start, not formed with the workers idle. Before
      the first wave, the same is done until nothing is left (`look_ahead`): a step whose items
      come from what the ledger holds as done has them decided before the run says what it will do.
    A step's `max_parallel: N` is kept by wave forming: its nodes travel in at most N lanes, each
    one chunk run in one worker, counted across the calls in flight (`plait.runtime.waves`).

Retries
    A failed attempt that the retry policy allows again is put on a timer (delay, backoff,
    jitter) and joins the first wave after it is due; it never holds a worker while it waits.

Recording
    Only this process writes the ledger: each chunk's outcomes go to the ledger writer's thread
    as they are settled, and it commits them in batches, a tenth of a second late at most
    (`plait.runtime.writer`); what a worker finished while its chunk still runs is journaled
    (`plait.runtime.journal`), so a kill loses only the work of the last fraction of a second.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

from loguru import logger

from plait.compiler import Grown, NodeSpec, WorkflowError, grow_parents, grow_step, parent_of
from plait.runtime.calls import DRAINED, ENDED, RAISED, Event, InlineCalls, ThreadedCalls
from plait.runtime.decide import Decision, Explainer, decide
from plait.runtime.execute import Chunk, Results, RunInfo
from plait.runtime.fingerprint import Fingerprint, Fingerprinter
from plait.runtime.ledger import Prior
from plait.runtime.outcome import FAILED, SKIPPED, SUCCEEDED, error_record
from plait.runtime.planned import PLANNED
from plait.runtime.selection import Selection
from plait.runtime.settling import all_succeeded, settle, take
from plait.runtime.state import (
    Dispatched,
    RunReport,
    RunState,
    due_retries,
    interrupted,
    restore,
    run_again,
    wait_for_predecessors,
)
from plait.runtime.waves import Wave, group_scope, next_wave, settle_join, upstream_view, value
from plait.templating import RENDER_ERRORS, render_value, template_context

__all__ = ["Dispatch", "Scheduler"]

_ID, _KIND, _STEP = attrgetter("id"), attrgetter("kind"), attrgetter("step")
_AHEAD = frozenset({"deferred", "join"})  # the kinds of ready node `Scheduler._ahead` takes while no call may start

# Runs a wave: takes (info, wave, unit starts, how many of the last units are lanes, a callback to call once
# every chunk is handed to the backend) and yields (chunk, results) as chunks finish.
Dispatch = Callable[[RunInfo, Chunk, list[int], int, Callable[[], None]], Iterable[tuple[Chunk, Results]]]
# Hands ledger writes to the writer: ("record", run_id, records) or ("add_nodes", rows).
Submit = Callable[..., None]


class Scheduler:
    """Runs one plan to the end (or until stopped) through a dispatch function, from one `RunState`."""

    def __init__(self, state: RunState, *, dispatch: Dispatch, submit: Submit, previous: Mapping[str, Prior],
                 fingerprints: Fingerprinter, recorded_parts: Mapping[str, Any],
                 fingerprints_of: Callable[[Iterable[str]], Mapping[str, Fingerprint | None]], held: bool = False,
                 selection: Selection | None = None, calls: InlineCalls | ThreadedCalls | None = None) -> None:
        """`previous`: what the ledger holds of each node; with `held`, only of those that did not succeed
        (the ledger holds this very plan, up to date: the rest are done, and `fingerprints_of` reads
        theirs). `recorded_parts`: each step's signature parts as the ledger last recorded them.
        `selection`: nodes forced to run again and the steps the run is limited to (plait.runtime.selection).
        `calls`: where the waves' calls run and how many at once (`plait.runtime.calls`; by default one at a
        time, in this thread)."""
        self.state = state
        self.dispatch = dispatch
        self.calls = calls or InlineCalls()
        self.submit = submit
        self.previous = previous
        self.fingerprints = fingerprints
        self.fingerprints_of = fingerprints_of
        self.selection = selection or Selection()
        self.held = held and self.selection.everything  # forcing or leaving out needs every node decided
        self.forced_run: set[str] = set()  # nodes forced to run, the targets and everything downstream of them
        # The nodes --rerun names: the selection's, and what a placeholder it names expands into (`_expand`).
        self.forced: set[str] = set(self.selection.forced)
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
        if state.left_out:
            summary["left out"] = len(state.left_out)
        state.report.plan_summary = dict(+summary)
        return dict(state.report.plan_summary)

    def look_ahead(self) -> dict[str, int]:
        """Expand the ready placeholders and settle the ready joins, again for what that makes ready, until none is
        left, as the first waves would (`_ahead`); return `prepare`'s count with the nodes this grew. Mutates.

        Called once the run's start is submitted (a growth records its nodes after it): a step
        whose upstream is done has its items listed and decided before the run says what it will
        do, so its header (and a dry run) counts them as done or as run and why, not the step as
        done while its edited items run.
        """
        state = self.state
        before = state.plan.nodes
        while self._ahead():
            pass
        summary = Counter(state.report.plan_summary)
        if state.plan.nodes is not before:
            for nid in state.plan.nodes.keys() - before.keys():
                decision = state.decisions.get(nid)
                summary[decision.reason if decision is not None else "done" if nid in state.status else "left out"] += 1
        state.report.plan_summary = dict(summary)
        return dict(summary)

    def _decide(self, nodes: list[str]) -> Counter:
        """Fingerprint and decide nodes in plan order: restore the done, make the rest wait or ready. Mutates."""
        if nodes and self.selection.everything and self.previous.keys().isdisjoint(nodes):
            summary = self._decide_new(nodes)
            if summary is not None:
                return summary
        state, previous, explainer = self.state, self.previous, self.explainer
        fp, pred, nodes_of = state.fp, state.pred, state.plan.nodes
        node_fp = self.fingerprints.node
        summary: Counter = Counter()
        done: list[str] = []
        waiting: list[str] = []
        steps, forced, forced_run = self.selection.steps, self.forced, self.forced_run
        skips = self.selection.skips if self.selection.skips_any else None
        for nid in nodes:
            node = nodes_of[nid]
            if steps is not None and node.step not in steps:
                state.left_out.add(nid)  # --until: not this run's to run
                continue
            preds = pred[nid]
            fingerprint = fp[nid] = node_fp(node, [fp[p] for p in preds] if preds else ())
            prior = previous.get(nid)
            decision = decide(node, prior, fingerprint, explainer)
            if forced and (nid in forced or (preds and not forced_run.isdisjoint(preds))):
                forced_run.add(nid)
                upstream = None if nid in forced else next(p for p in preds if p in forced_run)
                decision = Decision(True, "forced", f"upstream: {upstream}" if upstream else "--rerun")
            elif prior is not None and not decision.run and prior.fingerprint != fingerprint:
                fp[nid] = prior.fingerprint  # only its code changed, ignored: what follows sees no change
            if decision.run and skips is not None and skips(node):
                decision = Decision(True, "skipped", "--skip")  # settled skipped when it comes up (next_wave)
                state.skipping.add(nid)
            summary[decision.reason] += 1
            if decision.run or node.kind == "deferred":  # a deferred step lists its items again
                state.decisions[nid] = decision
                if preds:
                    waiting.append(nid)
                else:
                    state.ready.append(nid)
            else:
                done.append(nid)
        restore(state, done)
        wait_for_predecessors(state, waiting)  # once every done node is settled, so that none is waited for
        return summary

    def _decide_new(self, nodes: list[str]) -> Counter | None:
        """Decide nodes the ledger has never seen, in a run that selects nothing (a fresh run, a growth's new nodes):
        what `_decide` does for them, with no Python per node (`Fingerprinter.fill`). Mutates.

        With no prior, `decide` gives every node the one decision (new, run); should it ever not
        run such a node, this returns None, having only fingerprinted them, and `_decide` decides
        them one by one.
        """
        state = self.state
        fp = state.fp
        specs = list(map(state.plan.nodes.__getitem__, nodes))
        preds = list(map(state.pred.__getitem__, nodes))
        self.fingerprints.fill(fp, nodes, specs, preds)
        decision = decide(specs[0], None, fp[nodes[0]], self.explainer)
        if not decision.run:
            return None
        state.decisions.update(dict.fromkeys(nodes, decision))
        if state.status.keys() >= set(chain.from_iterable(preds)):  # a growth's children: their parents are done
            state.ready += nodes
        else:
            state.ready += [nid for nid, before in zip(nodes, preds) if not before]
            wait_for_predecessors(state, [nid for nid, before in zip(nodes, preds) if before])
        return Counter({decision.reason: len(nodes)})

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run until every node is settled or the run is stopped; return the report. Mutates.

        The loop: start a call for the nodes that are ready whenever the calls in flight allow one
        (`plait.runtime.calls`), take the next event of a call and settle it, and when no call is in
        flight wait for the next retry, or end.
        """
        state, calls = self.state, self.calls
        try:
            while True:
                if not state.stopping:
                    due_retries(state)
                    wave = next_wave(state, self._expand) if calls.may_start() else None
                    if wave is not None:
                        self._start(wave)
                        continue
                    if calls.busy and self._ahead():
                        continue
                if calls.busy:
                    self._take(calls.next(self._until_retry()))
                elif state.retries and not state.stopping:
                    self._wait_for(state.retries[0][0])
                else:
                    break
        finally:
            calls.close()
            self._flush()
        report = state.report
        pending = len(state.plan.nodes) - len(state.status) - len(state.left_out)
        if report.failed or pending:
            report.status = "interrupted" if state.stopping and not report.failed else "failed"
        if pending:
            report.counts["pending"] += pending
        return report

    def _ahead(self) -> bool:
        """While no new call may start, expand the ready placeholders whose parents are all back, settle the ready
        joins and make the ready group nodes' views; return whether any was. Mutates.

        What `next_wave` would do once a call may start, done while the calls in flight run: a
        fan-out's parents that came back late would otherwise grow only once those calls drain,
        and the joins of the children back meanwhile be settled then, all of it with the workers
        idle; done now, the next wave is ready the moment a call may start. A step's placeholders
        wait until none of its parents is in flight, so that they grow together (a growth has a
        part that grows with the plan) rather than one per outcome. Only nodes whose predecessors
        all succeeded are taken: a skip or a failed upstream stays for `next_wave` to settle. Each
        node that became ready is looked at once (`RunState.looked` and `RunState.ahead`).
        """
        state = self.state
        ready, nodes = state.ready, state.plan.nodes
        seen, start = state.looked
        fresh = ready[start:] if seen is ready else ready
        state.looked = (ready, len(ready))
        if fresh and not _AHEAD.isdisjoint(map(_KIND, map(nodes.__getitem__, fresh))):
            state.ahead.update(dict.fromkeys(nid for nid in fresh if nodes[nid].kind in _AHEAD))
        viewed = self._view_groups(fresh) if fresh else False
        if not state.ahead:
            return viewed
        status, in_flight, skipping, remaining = state.status, state.in_flight, state.skipping, state.remaining
        state.ahead = {nid: None for nid in state.ahead  # (a placeholder grown since waits for its children)
                         if nodes[nid].kind in _AHEAD and nid not in status and not remaining.get(nid)}
        placeholders, joins = [], []
        parents_back: dict[str, bool] = {}  # a fan-out step -> whether none of its parents is in flight
        for nid in state.ahead:
            node = nodes[nid]
            if nid in in_flight or nid in skipping:
                continue
            if node.kind == "deferred":
                back = parents_back.get(node.step)
                if back is None:
                    spec = state.plan.steps[node.step]
                    back = parents_back[node.step] = not spec.fans_out or in_flight.isdisjoint(
                        state.members[spec.for_each])
                if not back:
                    continue
            if not all_succeeded(state, state.pred[nid]):
                continue
            if node.kind == "join":
                joins.append(nid)
            else:
                placeholders.append((nid, node))
        if not placeholders and not joins:
            return viewed
        taken = {*joins, *(nid for nid, _ in placeholders)}
        state.ready = [nid for nid in ready if nid not in taken]
        state.looked = (state.ready, len(state.ready))  # what settling and growing ready next is looked at next
        for nid in taken:
            del state.ahead[nid]
        joins.sort(key=state.order.__getitem__)
        for join in joins:
            settle_join(state, join)
        if placeholders:
            placeholders.sort(key=lambda pair: state.order[pair[0]])
            self._expand(placeholders)
        return True

    def _view_groups(self, fresh: list[str]) -> bool:
        """Make the views of the group nodes among `fresh` (ready) whose members all succeeded, for the wave they
        join (`plait.runtime.waves.group_scope`); return whether any was made. Mutates.

        A group's view reads and parses its members' results: made while the calls before its
        wave run, not while the workers wait for that wave (a thousand groups at the end of
        their members' wave).
        """
        state = self.state
        nodes, steps = state.plan.nodes, state.plan.steps
        grouped = {name for name, spec in steps.items() if spec.group_by is not None}
        if not grouped or grouped.isdisjoint(map(_STEP, map(nodes.__getitem__, fresh))):
            return False
        status, in_flight, skipping, views = state.status, state.in_flight, state.skipping, state.group_views
        made = False
        for nid in fresh:
            node = nodes[nid]
            if (node.step in grouped and node.kind == "task" and nid not in views and nid not in status
                    and nid not in in_flight and nid not in skipping and all_succeeded(state, state.pred[nid])):
                views[nid] = group_scope(state, nid)
                made = True
        return made

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

    def _until_retry(self) -> float | None:
        """Return how long the next event may be waited for: until the next retry is due (None: no retry waits)."""
        state = self.state
        if not state.retries or state.stopping:
            return None
        return max(0.0, state.retries[0][0] - state.clock.monotonic())

    def _start(self, wave: Wave) -> None:
        """Dispatch a wave as a call of its own, and note what it holds. Mutates."""
        state = self.state
        self._flush()  # joins and skips settled while the wave was formed
        jobs, starts, lanes = wave.jobs, wave.starts, wave.lanes
        number = self.calls.start(lambda drained: self.dispatch(state.info, jobs, starts, lanes, drained))
        state.calls[number] = Dispatched(set(jobs.nodes), wave.lane_nodes())

    def _take(self, event: Event | None) -> None:
        """Settle what a call sent: an outcome, or its end; raise the error it failed with. Mutates."""
        if event is None or event.kind == DRAINED:
            return  # a retry may be due, or a new call may start
        state = self.state
        if event.kind == RAISED:
            raise event.error
        if event.kind == ENDED:
            self._ended(event.call)
            return
        chunk, results = event.chunk, event.results
        take(state, chunk, results)
        call = state.calls[event.call]
        back = (chunk.nodes if None not in results.statuses  # else a fused node whose feeder did not succeed
                else [n for n, status in zip(chunk.nodes, results.statuses) if status is not None])  # is still out
        call.waiting.difference_update(back)
        if chunk.calls[0].max_parallel is not None:
            for step, left in call.lanes:
                if left:
                    left.difference_update(back)
                    if not left:  # the lane is back: its step may have another
                        state.lanes[step] -= 1
        if state.stopping:
            self._raise_stop_flag()
        self._flush()

    def _ended(self, number: int) -> None:
        """Close the books of a call that ended: free its lanes still out, decide the nodes not brought back. Mutates.

        A fused node whose feeder failed (or that was not started) came back without an outcome:
        once its dependencies are settled it is decided like any other ready node.
        """
        state = self.state
        call = state.calls.pop(number)
        for step, left in call.lanes:
            if left:
                state.lanes[step] -= 1
        unsettled = sorted((n for n in call.waiting if n in state.in_flight and n not in state.status),
                           key=state.order.__getitem__)
        state.in_flight.difference_update(unsettled)
        if state.stopping:
            interrupted(state, unsettled)
        else:
            run_again(state, unsettled)
        self._flush()

    def _expand(self, placeholders: list[tuple[str, NodeSpec]]) -> None:
        """Expand the placeholders a wave found ready, now that what they wait for has run; decide the new nodes.

        A deferred step's placeholder expands into the step's items, rendered from its upstream
        results; a per-parent placeholder (`process[a.txt]`) into that parent's children, from the
        parent's result (`plait.compiler.grow`). Either becomes the join of what it expanded into;
        nodes already in the plan that the new ones feed (a group gathering new members) wait for
        them too. Bad items fail the placeholder with the compiler's located error. The parents
        of one fan-out step that finished together grow the plan once (`grow_parents`), and the
        run's lookups are updated by what the growths of a wave added (`RunState.grow`), from the
        growths' own account of it rather than a scan of the whole plan. Mutates.
        """
        state = self.state
        before = state.plan
        grown: list[Grown] = []
        parents: dict[str, dict[str, Any]] = {}  # per-parent fan-out step -> {parent: its result}
        for nid, node in placeholders:
            parent = parent_of(before, nid)
            if parent is None:
                try:
                    context = template_context(before.params, steps=upstream_view(state, node),
                                               run_id=state.info.run_id, run_number=state.info.run_number,
                                               workspace=state.info.workspace, workflow_dir=state.info.workflow_dir)
                    plan = grown[-1].plan if grown else before
                    grown.append(grow_step(plan, node.step, render_value(before.steps[node.step].items, context)))
                except (*RENDER_ERRORS, WorkflowError) as err:
                    self._not_expanded(nid, node, err)
            elif state.status.get(parent) != SUCCEEDED:
                now = state.clock.wall()
                settle(state, nid, SKIPPED, None, None, now, now, note=f"parent {parent} was skipped")
            else:
                parents.setdefault(node.step, {})[parent] = value(state, parent)
        for step, results in parents.items():
            grown.append(grow_parents(grown[-1].plan if grown else before, results, step=step))
            for nid, err in grown[-1].failed.items():
                self._not_expanded(nid, before.nodes[nid], err)
        if not grown or not any(g.new or g.joins for g in grown):
            return
        plan = grown[-1].plan
        new = grown[0].new if len(grown) == 1 else [n for g in grown for n in g.new]
        joins = [j for g in grown for j in g.joins]
        fed = sorted({n for g in grown for n in g.fed}.difference(map(_ID, new)))
        self.submit("add_nodes", [*map(PLANNED, new), *map(PLANNED, map(plan.nodes.__getitem__, joins))])
        for g in grown:
            for parent, children in g.parents.items():
                state.parents.update(dict.fromkeys(children, parent))
        state.grow(plan, new)
        joins.sort(key=state.order.__getitem__)
        ids = list(map(_ID, new))
        forced = self.forced.intersection(joins)  # --rerun named the step, or this placeholder: its new nodes too
        if forced:
            self.forced.update(nid for nid in ids if not forced.isdisjoint(state.succ[nid]))
        self._decide(ids)
        if state.on_grow is not None:
            state.on_grow([plan.nodes[join].step for join in joins], new, state.status)
        waiting = [n for n in [*joins, *fed] if n not in state.status]
        ready = set(waiting).intersection(state.ready) if waiting else ()  # (not a set of every ready node)
        wait_for_predecessors(state, [n for n in waiting if n not in ready])
        fanned: dict[str, list[int]] = {}  # a fan-out step -> [placeholders grown, their nodes]: one line for them all
        for join in joins:
            node = plan.nodes[join]
            if node.key is None:
                logger.bind(node=join).info(f"{node.step}: expanded into {len(state.pred[join]):,} nodes")
            else:
                tally = fanned.setdefault(node.step, [0, 0])
                tally[0] += 1
                tally[1] += len(state.pred[join])
        for step, (placeholders, grew) in fanned.items():
            logger.info(f"{step}: {placeholders:,} of its placeholders expanded into {grew:,} nodes")

    def _not_expanded(self, nid: str, node: NodeSpec, err: Exception) -> None:
        """Fail a placeholder whose items could not be listed, with the compiler's located error. Mutates."""
        state = self.state
        message = str(err.errors[0]) if isinstance(err, WorkflowError) else f"items template: {err}"
        error = error_record(ValueError(message), node=nid, item=None, attempt=1, policy=node.retry)
        state.attempts[nid] = state.attempts.get(nid, 0) + 1
        now = state.clock.wall()
        settle(state, nid, FAILED, None, error, now, now)

    def _flush(self) -> None:
        """Hand the settled outcomes (and retried attempts) to the ledger writer, which batches its commits."""
        state = self.state
        if state.earlier_attempts:
            self.submit("add_attempts", state.earlier_attempts)
            state.earlier_attempts = []
        if state.buffer:
            self.submit("record", state.info.run_id, state.buffer)
            state.buffer = []
