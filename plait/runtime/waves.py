"""Waves: turn the nodes that are ready into the jobs of one dispatch, as columns.

What a wave holds: joins, deferred expansions and skips are settled on the spot, and every task
node that is ready becomes a unit: itself, plus the per-item partners that can ride with it
(`b[k]` when `b` runs `for_each: a` and everything else `b[k]` needs has succeeded), so a chain
`a[k] -> b[k] -> c[k]` runs in one worker without waiting for the rest of `a`.

A wave is one `Chunk` whose columns list every job of every unit, unit after unit, plus the
position of each unit's first job; the dispatcher cuts it into chunks at those positions. A wave
takes at most `MOST_IN_A_WAVE` of the ready nodes (each with the partners that ride with it), the
first in plan order; the rest stay ready for the next wave, which starts as soon as this one's
chunks are all handed to the workers (`plait.runtime.calls`). A wave of a million ready nodes held
ten columns of a million entries each, and as many in its running call's books, for the whole of
the run (docs/performance.md).

What all nodes of a step share (handler, config, policies) is one `StepCall` (`RunState.step_calls`),
pickled once per chunk; a job adds only its node ID, item, key, index, attempt and what it sees
of upstream steps (one shared empty view for steps that read none). That view is `{result}` for a
plain step that succeeded, and `{result: null, status, error}` for one that did not (`status` is
failed or skipped, `error` the failure's record or null), so a step that reads a tolerated
failure can tell it from a success whose result is null.

Lanes: how `max_parallel: N` holds
    The nodes of a step with `max_parallel: N` that are ready in a wave go into at most N lanes,
    dealt round-robin in plan order (so the first N start first); a lane is one unit of several
    jobs that follow no feeder, and the dispatcher sends it whole as one chunk, whose jobs run one
    after another in one worker (`plait.runtime.chunks`). So at most N of the step's nodes run at
    once, on any backend, with no lock, semaphore or waiting worker: the other workers take the
    wave's other chunks meanwhile. Waves may overlap (`plait.runtime.calls`), so the bound holds
    for the whole run by counting each step's lanes in the running calls (`RunState.lanes`): a
    new wave deals a step's nodes only into the lanes left free, and with none free they stay
    ready until a lane comes back. A retried node, and the nodes an expansion adds
    (deferred or per-parent), are ready in a later wave and go into its lanes. A limited step's
    node never rides in another's unit, nor carries partners of its own: a partner would run more
    than N at once, or hold a lane back.
    Lanes come at the end of the wave's columns (the dispatcher sends them first: they are the
    long chunks). The price: a lane's outcomes come back when its last node ends (a worker
    journals what it finished meanwhile, `plait.runtime.journal`), and nodes of uneven length can
    leave one lane running alone at the end of a wave.

Every function here takes the `RunState` it reads and changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from itertools import chain, filterfalse
from operator import attrgetter
from typing import Any, NamedTuple

from plait.compiler import NodeSpec, node_scope
from plait.runtime.execute import Chunk
from plait.runtime.outcome import SKIPPED, SUCCEEDED
from plait.runtime.settling import all_succeeded, blocked, settle, settle_skip
from plait.runtime.state import RunState

__all__ = ["MOST_IN_A_WAVE", "Wave", "group_scope", "next_wave", "settle_join", "upstream_view", "value"]

MOST_IN_A_WAVE = 100_000  # ready nodes a wave takes (each with its fused partners); the rest wait for the next

_NOTHING: dict[str, Any] = {}
_STEP, _KIND = attrgetter("step"), attrgetter("kind")
_TASKS = frozenset({"task"})

# Expands placeholder nodes (id, node) found ready together, now that what each waits for has settled.
Expand = Callable[[list[tuple[str, NodeSpec]]], None]


class Views(NamedTuple):
    """What the nodes of one wave see of their parents and groups, each view made once."""

    parents: dict[str, Mapping[str, Any]]  # parent -> the `parent` view its children in this wave share
    groups: dict[str, Mapping[str, Any]]  # group node -> its `group` view, made before the wave (`group_scope`)


class Wave(NamedTuple):
    """The jobs of one dispatch, and where its units start."""

    jobs: Chunk
    starts: list[int]  # the position of each unit's first job
    lanes: int  # how many of the last units are lanes

    def lane_nodes(self) -> list[tuple[str, set[str]]]:
        """Return each lane's step and nodes."""
        ends = [*self.starts[len(self.starts) - self.lanes + 1:], len(self.jobs.nodes)]
        return [(self.jobs.calls[start].step, set(self.jobs.nodes[start:end]))
                for start, end in zip(self.starts[len(self.starts) - self.lanes:], ends)] if self.lanes else []


def next_wave(state: RunState, expand: Expand) -> Wave | None:
    """Settle joins, expansions and skips in place; return the wave of task nodes to dispatch (None: none). Mutates.

    A limited step's nodes go into the lanes its running calls leave free; with none free they
    stay ready for a later wave. Group nodes' views made before (`RunState.group_views`) are
    taken from it as their nodes join the wave.
    """
    wave = Chunk([], [], [], [], [], [], [], [], [], [])
    starts: list[int] = []
    limited: dict[str, list[NodeSpec]] = {}  # a limited step's ready nodes, in the order taken: its lanes' jobs
    held: list[str] = []  # ready nodes of limited steps whose every lane is in a running call
    views = Views({}, state.group_views)
    skipping = state.skipping
    taken = 0  # ready nodes taken: past `MOST_IN_A_WAVE`, the nodes left stay ready for the next wave
    while state.ready and not state.stopping and taken < MOST_IN_A_WAVE:
        batch, state.ready = sorted(state.ready, key=state.order.__getitem__), []
        if taken + len(batch) > MOST_IN_A_WAVE:
            state.ready, batch = batch[MOST_IN_A_WAVE - taken:], batch[:MOST_IN_A_WAVE - taken]
        taken += len(batch)
        specs = list(map(state.plan.nodes.__getitem__, batch))
        if _all_alone(state, batch, specs):
            _add_alone(state, wave, starts, specs, views)
            continue
        alone: list[NodeSpec] = []  # consecutive plain units: added together, column by column
        placeholders: list[tuple[str, NodeSpec]] = []  # expanded together, once the batch is seen
        for nid, node in zip(batch, specs):
            if nid in state.status or nid in state.in_flight:
                continue
            if (node.kind == "task" and node.step in state.plain and nid not in skipping
                    and all_succeeded(state, state.pred[nid])):  # (read anew: a growth renews it)
                alone.append(node)  # nothing to fuse, no lane, nothing upstream that failed
                continue
            _add_alone(state, wave, starts, alone, views)
            why = blocked(state, nid, node) if state.pred[nid] else None
            if why:
                settle_skip(state, nid, *why)
            elif nid in skipping:
                now = state.clock.wall()
                settle(state, nid, SKIPPED, None, None, now, now, note="--skip")
            elif node.kind == "join":
                settle_join(state, nid)
            elif node.kind == "deferred":
                placeholders.append((nid, node))
            elif node.step in state.limits:
                if state.lanes[node.step] >= state.limits[node.step]:
                    held.append(nid)
                    continue
                limited.setdefault(node.step, []).append(node)
                state.in_flight.add(nid)  # taken: a lane of this wave holds it
            else:
                starts.append(len(wave.nodes))
                _add_unit(state, wave, nid, node, views)
        _add_alone(state, wave, starts, alone, views)
        if placeholders:
            expand(placeholders)  # their new nodes are ready in the next pass of this loop
    state.ready += held
    lanes = _add_lanes(state, wave, starts, limited, views) if limited else 0
    return Wave(wave, starts, lanes) if starts else None


def _all_alone(state: RunState, batch: list[str], specs: list[NodeSpec]) -> bool:
    """Say whether every node of `batch` (nodes `specs`) is a unit of one job to add in bulk, checked by C-level
    passes: each once, none settled or taken, a task of a plain step, not skipped, its predecessors all succeeded
    (a first step's items, or a parent's children, the most of a big wave)."""
    status = state.status
    return (_TASKS.issuperset(map(_KIND, specs)) and state.plain.issuperset(map(_STEP, specs))
            and status.keys().isdisjoint(batch) and state.in_flight.isdisjoint(batch)
            and state.skipping.isdisjoint(batch)
            and all_succeeded(state, chain.from_iterable(map(state.pred.__getitem__, batch)))
            and len(set(batch)) == len(batch))


def _add_lanes(state: RunState, wave: Chunk, starts: list[int], limited: dict[str, list[NodeSpec]],
               views: Views) -> int:
    """Append each limited step's ready nodes to `wave` in the lanes it has free; return how many. Mutates."""
    count = 0
    for step, nodes in limited.items():
        nodes.sort(key=lambda node: state.order[node.id])
        lanes = min(state.limits[step] - state.lanes[step], len(nodes))
        for lane in range(lanes):
            starts.append(len(wave.nodes))
            for node in nodes[lane::lanes]:
                _add_job(state, wave, node.id, node, 0, views)
        state.lanes[step] += lanes
        count += lanes
    return count


def _add_alone(state: RunState, wave: Chunk, starts: list[int], alone: list[NodeSpec], views: Views) -> None:
    """Append units of one job each (nothing to fuse, no lane) to `wave` in bulk, and empty `alone`. Mutates.

    The same columns `_add_job` fills, a list comprehension per column, so a wave of a first
    step's items, or of a parent's children, is formed without many Python calls per node.
    """
    if not alone:
        return
    ids = [node.id for node in alone]
    starts += range(len(wave.nodes), len(wave.nodes) + len(ids))
    wave.nodes.extend(ids)
    wave.calls.extend([state.step_calls[node.step] for node in alone])
    wave.items.extend([node.item for node in alone])
    wave.keys.extend([node.key for node in alone])
    wave.indexes.extend([node.index for node in alone])
    wave.attempts.extend([state.attempts.get(nid, 0) + 1 for nid in ids])
    wave.steps.extend([upstream_view(state, node) if node.step in state.reads_upstream else _NOTHING
                       for node in alone])
    wave.feeders.extend([0] * len(ids))
    wave.scopes.extend(_scopes(state, alone, ids, views))
    wave.fingerprints.extend([state.fp[nid] for nid in ids])
    state.in_flight.update(ids)
    alone.clear()


def _add_unit(state: RunState, wave: Chunk, nid: str, node: NodeSpec, views: Views) -> None:
    """Append the unit rooted at `nid` to `wave`: the node plus its fusable per-item chain. Mutates."""
    _add_job(state, wave, nid, node, 0, views)
    position = len(wave.nodes) - 1
    while position < len(wave.nodes):
        feeder, step = wave.nodes[position], wave.calls[position].step
        if step in state.paired:  # else no step runs for_each over this one: nothing to fuse
            for succ in state.succ[feeder]:
                snode = state.plan.nodes[succ]
                if (snode.kind == "task" and state.plan.steps[snode.step].for_each == step
                        and snode.step not in state.limits and succ not in state.status and succ not in state.in_flight
                        and succ not in state.skipping and succ not in state.left_out
                        and all(p == feeder or state.status.get(p) == SUCCEEDED for p in state.pred[succ])):
                    _add_job(state, wave, succ, snode, len(wave.nodes) - position, views)
        position += 1


def _add_job(state: RunState, wave: Chunk, nid: str, node: NodeSpec, back: int, views: Views) -> None:
    """Append one job to `wave`; `back` is how many jobs back its feeder is (0: none). Mutates."""
    wave.nodes.append(nid)
    wave.calls.append(state.step_calls[node.step])
    wave.items.append(node.item)
    wave.keys.append(node.key)
    wave.indexes.append(node.index)
    wave.attempts.append(state.attempts.get(nid, 0) + 1)
    wave.steps.append(upstream_view(state, node) if node.step in state.reads_upstream else _NOTHING)
    wave.feeders.append(back)
    wave.scopes.append(_scope(state, node, views))
    wave.fingerprints.append(state.fp[nid])
    state.in_flight.add(nid)


def _scopes(state: RunState, nodes: list[NodeSpec], ids: list[str], views: Views) -> list[Mapping[str, Any]]:
    """Return what each of `nodes` (IDs `ids`) sees as `group` or `parent` (`_scope`). Mutates `views`.

    The children of a grown fan-out, a parent's hundreds a wave, find their views in C-level
    passes over the columns: their parents (`RunState.parents`), each parent's view made once.
    """
    if state.scoped.isdisjoint(map(_STEP, nodes)):
        return [_NOTHING] * len(nodes)
    owners = list(map(state.parents.get, ids))
    parents = views.parents
    for parent, child in dict(zip(owners, ids)).items():
        if parent is not None and parent not in parents:
            parents[parent] = node_scope(state.plan, child, lambda nid: value(state, nid))
    seen = list(map(parents.get, owners))
    if None not in seen:
        return seen
    return [view if view is not None else _scope(state, node, views) for view, node in zip(seen, nodes)]


def _scope(state: RunState, node: NodeSpec, views: Views) -> Mapping[str, Any]:
    """Return the `group` or `parent` a node of a group_by or per-parent fan-out step sees (else nothing).

    The children of one parent share one `parent` view (`views.parents`, for one wave: read and
    parsed once, pickled once per chunk); a group's results are parsed in one go, or were while
    the calls before this wave ran (`views.groups`, `group_scope`).
    """
    parent = state.parents.get(node.id)  # a child the run grew: its parent is known
    if parent is None:
        if node.step not in state.scoped:
            return _NOTHING
        step = state.plan.steps[node.step]
        if step.group_by is not None:
            return views.groups.pop(node.id, None) or group_scope(state, node.id)
        parent = next(p for p in state.pred[node.id] if state.plan.nodes[p].step == step.for_each)  # grown before
    view = views.parents.get(parent)
    if view is None:
        view = views.parents[parent] = node_scope(state.plan, node.id, lambda nid: value(state, nid))
    return view


def group_scope(state: RunState, nid: str) -> Mapping[str, Any]:
    """Return what group node `nid` sees (`{"group": ...}`), its members' results read from the run."""
    return node_scope(state.plan, nid, lambda member: value(state, member), state.order,
                      lambda members: _results(state, members))


def upstream_view(state: RunState, node: NodeSpec) -> dict[str, Any]:
    """Return what `steps.X` shows this node for each step it depends on (its group or parent: `_scope`)."""
    step = state.plan.steps[node.step]
    view: dict[str, Any] = {}
    for dep in step.depends_on:
        if dep == step.group_by or (step.fans_out and dep == step.for_each):
            continue  # seen as `group` or `parent`, a node's own part of that step
        dep_step = state.plan.steps[dep]
        if dep == step.for_each:
            partner = f"{dep}[{node.key}]" if node.key is not None else None
            if partner in state.status:
                view[dep] = _one(state, partner)
        elif dep_step.kind == "single":
            view[dep] = _one(state, dep)
        elif dep in state.plan.nodes:  # a join (a batch behind a join, or an expanded deferred step)
            view[dep] = {"results": value(state, dep)}
        else:
            view[dep] = {"results": [value(state, m) for m in state.members[dep]]}
    return view


def _one(state: RunState, nid: str) -> dict[str, Any]:
    """Return `steps.X` of one node: its result, or, when it did not succeed, also its status and error."""
    status = state.status.get(nid)
    if status == SUCCEEDED:
        return {"result": value(state, nid)}
    return {"result": None, "status": status, "error": state.errors.get(nid)}


def value(state: RunState, nid: str) -> Any:
    """Return a settled node's result as a value (None for a node that did not succeed)."""
    text = state.result_text(nid)
    return json.loads(text) if text is not None and state.status.get(nid) == SUCCEEDED else None


def settle_join(state: RunState, nid: str) -> None:
    """Settle a join whose members are all settled: it succeeds, its result its members' (`join_result`). Mutates."""
    now = state.clock.wall()
    settle(state, nid, SUCCEEDED, join_result(state, nid), None, now, now)


def join_result(state: RunState, nid: str) -> str:
    """Return a join's result as JSON text: its members' results in item order, null for those that did not succeed."""
    return _results_text(state, state.members.get(nid) or sorted(state.pred[nid], key=state.order.__getitem__))


def _results(state: RunState, members: list[str]) -> list[Any]:
    """Return the results of `members` as values, None for those that did not succeed: one parse for them all."""
    return json.loads(_results_text(state, members))


def _results_text(state: RunState, members: list[str]) -> str:
    """Return the results of `members` as one JSON list, null for those that did not succeed."""
    status, results = state.status, state.results
    missing = [m for m in filterfalse(results.__contains__, members) if status.get(m) == SUCCEEDED]
    if missing:  # restored nodes: their results are read from the ledger once
        results.update({k: json.dumps(v) for k, v in state.load_results(missing).items()})
    if all_succeeded(state, members):  # the common case, in C-level passes
        parts = list(map(results.get, members))
    else:
        parts = [results.get(m) if status.get(m) == SUCCEEDED else None for m in members]
    if None in parts:
        parts = [p if p is not None else "null" for p in parts]
    return "[" + ",".join(parts) + "]"
