"""Waves: turn the nodes that are ready into the jobs of one dispatch, as columns.

The half of the scheduler that decides what a wave holds (its state lives in `Scheduler`, which
mixes this in): joins, deferred expansions and skips are settled on the spot, and every task node
that is ready becomes a unit: itself, plus the per-item partners that can ride with it (`b[k]`
when `b` runs `for_each: a` and everything else `b[k]` needs has succeeded), so a chain
`a[k] -> b[k] -> c[k]` runs in one worker without waiting for the rest of `a`.

A wave is one `Chunk` whose columns list every job of every unit, unit after unit, plus the
position of each unit's first job; the dispatcher cuts it into chunks at those positions. What
all nodes of a step share (handler, config, policies) is one `StepCall`, built once per step and
pickled once per chunk; a job adds only its node ID, item, key, index, attempt and what it sees
of upstream steps (one shared empty view for steps that read none).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plait.compiler import NodeSpec, StepSpec
from plait.runtime.execute import Chunk, StepCall
from plait.runtime.outcome import SUCCEEDED
from plait.tasks.base import get_kind
from plait.templating import has_template

if TYPE_CHECKING:
    from plait.runtime.scheduler import Scheduler

__all__ = ["WaveForming"]

_NOTHING: dict[str, Any] = {}


class WaveForming:
    """Forms waves for `Scheduler` (a mixin: every attribute used here is the scheduler's)."""

    def _next_wave(self: Scheduler) -> tuple[Chunk, list[int]] | None:
        """Settle joins, expansions and skips in place; return the wave of task nodes to dispatch (None: none)."""
        wave = Chunk([], [], [], [], [], [], [], [])
        starts: list[int] = []
        while self.ready and not self.stopping:
            batch, self.ready = sorted(self.ready, key=self.order.__getitem__), []
            alone: list[NodeSpec] = []  # consecutive plain units: added together, column by column
            for nid in batch:
                if nid in self.status or nid in self.in_flight:
                    continue
                node = self.plan.nodes[nid]
                if node.kind == "task" and not self.pred[nid] and node.step not in self.paired:
                    alone.append(node)
                    continue
                self._add_alone(wave, starts, alone)
                blocked = self._blocked(nid, node) if self.pred[nid] else None
                if blocked:
                    self._settle_skip(nid, *blocked)
                elif node.kind == "join":
                    self._settle(nid, SUCCEEDED, self._join_result(nid), None, time.time(), time.time())
                elif node.kind == "deferred":
                    self._expand(nid, node)
                else:
                    starts.append(len(wave.nodes))
                    self._add_unit(wave, nid, node)
            self._add_alone(wave, starts, alone)
        return (wave, starts) if starts else None

    def _add_alone(self: Scheduler, wave: Chunk, starts: list[int], alone: list[NodeSpec]) -> None:
        """Append units of one job each (no predecessor, nothing to fuse) to `wave` in bulk, and empty `alone`. Mutates.

        The same columns `_add_job` fills, a list comprehension per column: a wave of 100,000
        items of a first step is formed in tens of milliseconds.
        """
        if not alone:
            return
        ids = [node.id for node in alone]
        starts += range(len(wave.nodes), len(wave.nodes) + len(ids))
        wave.nodes.extend(ids)
        wave.calls.extend([self.step_calls[node.step] for node in alone])
        wave.items.extend([node.item for node in alone])
        wave.keys.extend([node.key for node in alone])
        wave.indexes.extend([node.index for node in alone])
        wave.attempts.extend([self.attempts.get(nid, 0) + 1 for nid in ids])
        wave.steps.extend([self._upstream(node) if node.step in self.reads_upstream else _NOTHING for node in alone])
        wave.feeders.extend([0] * len(ids))
        self.in_flight.update(ids)
        alone.clear()

    def _add_unit(self: Scheduler, wave: Chunk, nid: str, node: NodeSpec) -> None:
        """Append the unit rooted at `nid` to `wave`: the node plus its fusable per-item chain. Mutates."""
        self._add_job(wave, nid, node, 0)
        position = len(wave.nodes) - 1
        while position < len(wave.nodes):
            feeder, step = wave.nodes[position], wave.calls[position].step
            if step in self.paired:  # else no step runs for_each over this one: nothing to fuse
                for succ in self.succ[feeder]:
                    snode = self.plan.nodes[succ]
                    if (snode.kind == "task" and self.plan.steps[snode.step].for_each == step
                            and succ not in self.status and succ not in self.in_flight
                            and all(p == feeder or self.status.get(p) == SUCCEEDED for p in self.pred[succ])):
                        self._add_job(wave, succ, snode, len(wave.nodes) - position)
            position += 1

    def _add_job(self: Scheduler, wave: Chunk, nid: str, node: NodeSpec, back: int) -> None:
        """Append one job to `wave`; `back` is how many jobs back its feeder is (0: none). Mutates."""
        wave.nodes.append(nid)
        wave.calls.append(self.step_calls[node.step])
        wave.items.append(node.item)
        wave.keys.append(node.key)
        wave.indexes.append(node.index)
        wave.attempts.append(self.attempts.get(nid, 0) + 1)
        wave.steps.append(self._upstream(node) if node.step in self.reads_upstream else _NOTHING)
        wave.feeders.append(back)
        self.in_flight.add(nid)

    def _upstream(self: Scheduler, node: NodeSpec) -> dict[str, Any]:
        """Return what `steps.X` shows this node for each step it depends on."""
        step = self.plan.steps[node.step]
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

    def _value(self: Scheduler, nid: str) -> Any:
        if nid not in self.results:
            self.results.update({k: json.dumps(v) for k, v in self.ledger.results([nid]).items()})
        text = self.results.get(nid)
        return json.loads(text) if text is not None and self.status.get(nid) == SUCCEEDED else None

    def _join_result(self: Scheduler, nid: str) -> str:
        members = self.members[nid] or sorted(self.pred[nid], key=self.order.__getitem__)
        missing = [m for m in members if m not in self.results and self.status.get(m) == SUCCEEDED]
        if missing:
            self.results.update({k: json.dumps(v) for k, v in self.ledger.results(missing).items()})
        parts = [self.results.get(m) if self.status.get(m) == SUCCEEDED else None for m in members]
        return "[" + ",".join(p if p is not None else "null" for p in parts) + "]"

    def _step_call(self: Scheduler, step: StepSpec) -> StepCall | None:
        """Return what every job of `step` shares (None for a kind no longer registered)."""
        kind = get_kind(step.task)
        if kind is None:
            return None
        fields = kind.fields or {}
        modes = {name: f.render for name, f in fields.items() if f.render != "value"}
        templated = any(_has_template(v) for name, v in step.config.items() if modes.get(name) != "raw")
        flat = not any(isinstance(v, (Mapping, list, tuple)) for v in step.config.values())
        total = len(self.members[step.name]) if step.kind != "single" else None
        return StepCall(step.name, kind.handler, step.config, modes, templated, flat, step.condition, step.timeout,
                        kind.own_timeout, step.retry, total)


def _has_template(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return has_template(value)
