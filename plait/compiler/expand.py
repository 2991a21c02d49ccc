"""Expand checked steps into nodes and wire the node graph; expand deferred steps at run time.

Wiring, for a step S that depends on a step U:
- S runs `for_each: U`: item to item, `U[k] -> S[k]` (a per-item chain never waits for all of U);
  when S also has items from each parent's result (a fan-out), `U[k] -> S[k]` too, `S[k]` being
  the placeholder of U[k]'s children until U[k] has run;
- S groups U (`group_by`): member to group, `U[k] -> S[g]` for each item k of group g;
- U is a plain step, or a deferred step placeholder: `U -> every node of S`;
- U is a batch and S one node (a fan-in): `U[k] -> S` for every k;
- U is a batch and S a batch too: through a join node `U` (`U[k] -> U -> S[j]`), so two batches
  of n and m items cost n + m edges and not n × m.
A step whose nodes cannot be known yet is one placeholder named after the step (a deferred
step, a step over one, a group over items known later); a step that fans out per parent has one
placeholder per parent node instead, when the parents are known (see `plait.compiler.plan`).

`expand_deferred` is the same expansion for a step placeholder once its upstream has run. It
returns a new plan (plans are immutable); steps that run `for_each` over the expanded step, or
group it, expand with it (`plait.compiler.grow`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.draft import StepDraft
from plait.compiler.graph import node_graph
from plait.compiler.groups import Members, assign_groups, parent_only
from plait.compiler.items import node_ids
from plait.compiler.nodes import item_keys, make_node, make_nodes
from plait.compiler.plan import FrozenDict, NodeSpec, Plan, StepSpec, freeze

__all__ = ["build_plan", "expand_deferred", "item_keys"]


class _Wiring:
    """The plan being built: nodes, edges, and what later steps need to know of earlier ones."""

    def __init__(self, params: Mapping[str, Any], workflow_dir: Any):
        self.params = params
        self.workflow_dir = workflow_dir
        self.errors: list[Diagnostic] = []
        self.steps: dict[str, StepSpec] = {}
        self.built: dict[str, list[NodeSpec]] = {}  # step -> its nodes, in item order
        self.joins: dict[str, NodeSpec] = {}  # a batch step -> its join node, when a later step waits for all of it
        self.members: dict[str, list[str]] = {}  # step -> its nodes: items, per-parent placeholders, or its one node
        self.keyed: dict[str, tuple[list, list]] = {}  # a batch of task nodes known now -> (items, keys)
        self.fanned: dict[str, list] = {}  # a step of per-parent placeholders -> their keys (its parents' keys)
        self.edges: list[tuple[str, str]] = []

    def add(self, draft: StepDraft) -> None:
        """Add one step's nodes and the edges into them (steps come in dependency order). Mutates."""
        linked, kind, shape = self._shape(draft)
        spec = self.steps[draft.name] = _step_spec(draft, kind)
        if shape is None:
            ids = [draft.name]
            self.built[draft.name] = [make_node(spec, draft.name, "deferred" if kind == "deferred" else "task")]
        else:
            node_kind, keys, items = shape
            ids = node_ids(draft.name, keys)
            self.built[draft.name] = make_nodes(spec, node_kind, ids, keys, items)
            if node_kind == "task":
                self.keyed[draft.name] = (items, keys)
            else:
                self.fanned[draft.name] = keys
        self.members[draft.name] = ids
        for upstream in (*spec.depends_on, *spec.after):
            if upstream == linked:
                continue  # wired by _shape: pairs, or members into their groups
            self.edges += ((u, n) for u in self._whole(upstream, ids) for n in ids)

    def _shape(self, draft: StepDraft) -> tuple[str | None, str, tuple[str, list, list] | None]:
        """Return (the step wired item by item, step kind, (node kind, keys, items) or None for one node). Mutates.

        Pairs (`for_each`) and group members are wired here, the step's other upstreams by `add`.
        """
        source = draft.for_each or draft.group_by
        if draft.group_by is not None:
            groups = self._groups(draft)
            if groups is None:
                return None, "deferred", None
            keys = list(groups)
            members = self.members[source]
            for group, nid in zip(keys, node_ids(draft.name, keys)):  # each group's edges by C-level passes
                self.edges += zip(map(members.__getitem__, groups[group]), repeat(nid))
            return source, "batch", ("task", keys, keys)
        if draft.for_each in self.keyed:
            items, keys = self.keyed[draft.for_each]
            node_kind, items = ("deferred", [None] * len(keys)) if draft.fans_out else ("task", items)
        elif draft.for_each in self.fanned:
            keys = self.fanned[draft.for_each]
            node_kind, items = "deferred", [None] * len(keys)
        elif draft.for_each is not None or draft.deferred_items is not None:
            return None, "deferred", None
        elif draft.is_batch:
            items, keys = draft.items or [], self._keys(draft)
            if not items and not draft.allow_empty:
                self.errors.append(Diagnostic(draft.items_loc or draft.loc, f"step '{draft.name}' has no items",
                                              "check the items source, or set `allow_empty: true`"))
            return None, "batch", ("task", keys, items)
        else:
            return None, "single", None
        ids = node_ids(draft.name, keys)
        self.edges += zip(self.members[source], ids)
        return source, "batch" if node_kind == "task" else "deferred", (node_kind, keys, items)

    def _groups(self, draft: StepDraft) -> dict[Any, list[int]] | None:
        """Return the groups of a group_by step by member position, or None when known only at run time."""
        grouped = draft.group_by
        if grouped in self.keyed:
            items, keys = self.keyed[grouped]
            members = Members(keys, items, range(len(keys)))
        elif grouped in self.fanned and self.steps[grouped].fans_out and parent_only(draft.group_key):
            parent_items, parent_keys = self.keyed.get(self.steps[grouped].for_each, ([], []))
            if len(parent_keys) != len(self.fanned[grouped]):
                return None  # a fan-out over a fan-out: its parents are known only at run time
            members = Members(parent_keys, [None] * len(parent_keys), range(len(parent_keys)),
                              [{"key": k, "item": item} for k, item in zip(parent_keys, parent_items)])
        else:
            return None
        try:
            return assign_groups(draft.name, grouped, draft.group_key, members, self.params, self.workflow_dir)
        except WorkflowError as err:
            self.errors += [dataclasses.replace(e, loc=draft.group_loc) for e in err.errors]
            return {}

    def _keys(self, draft: StepDraft) -> list:
        try:
            return item_keys(draft.name, draft.items or [], draft.key, self.params, draft.item_keys,
                             checked=draft.keys_checked, workflow_dir=self.workflow_dir)
        except WorkflowError as err:
            self.errors += [dataclasses.replace(e, loc=draft.items_loc or draft.loc) for e in err.errors]
            return []

    def _whole(self, upstream: str, dependents: list[str]) -> list[str]:
        """Return the nodes that stand for all of `upstream`, adding its join node when needed. Mutates."""
        members = self.members[upstream]
        if members == [upstream]:
            return members  # a plain step, or a step placeholder
        if len(dependents) == 1:
            return members
        if upstream not in self.joins:
            self.joins[upstream] = make_node(self.steps[upstream], upstream, "join")
            self.edges += ((m, upstream) for m in members)
        return [upstream]

    def ordered(self) -> tuple[FrozenDict, Counter]:
        """Return the nodes step by step (steps in dependency order), each step's join after its items, and how
        many nodes each (step, kind) has (a step's built nodes are all of one kind), so that nobody counts again."""
        specs: list[NodeSpec] = []
        counts: Counter = Counter()
        for step in self.steps:
            built = self.built[step]
            specs += built
            if built:
                counts[step, built[0].kind] = len(built)
            if step in self.joins:
                specs.append(self.joins[step])
                counts[step, "join"] = 1
        return FrozenDict(zip(map(itemgetter(0), specs), specs)), counts


def build_plan(name: str, description: str | None, source: str | None, params: Mapping[str, Any],
               drafts: Sequence[StepDraft], notes: Sequence[str] = (), workflow_dir: Any = None) -> Plan:
    """Build the plan from drafts given in dependency order; raise WorkflowError for bad keys or empty batches."""
    wiring = _Wiring(params, workflow_dir)
    for draft in drafts:
        wiring.add(draft)
    if wiring.errors:
        raise WorkflowError(wiring.errors)
    nodes, counts = wiring.ordered()
    return Plan(name, description, source, params, wiring.steps, nodes, node_graph(nodes, wiring.edges), tuple(notes),
                workflow_dir, counts)


def _step_spec(draft: StepDraft, kind: str) -> StepSpec:
    return StepSpec(
        name=draft.name, task=draft.task, config=draft.config, kind=kind, loc=draft.loc,
        depends_on=tuple(draft.depends_on), after=tuple(s for s in draft.after if s not in draft.depends_on),
        for_each=draft.for_each, items=freeze(draft.deferred_items), key=draft.key,
        condition=draft.condition, retry=draft.retry, timeout=draft.timeout, on_error=draft.on_error,
        max_failures=draft.max_failures, allow_empty=draft.allow_empty, description=draft.description,
        items_loc=draft.items_loc if draft.deferred_items is not None else None,
        group_by=draft.group_by, group_key=draft.group_key, on_error_template=draft.on_error_template,
        error_message=draft.error_message,
        input_files=draft.input_files, output_files=draft.output_files, code_changes=draft.code_changes,
        max_parallel=draft.max_parallel, file_items=draft.file_items,
        params_read=tuple(sorted(draft.params_read)) or None, written=draft.written)


def expand_deferred(plan: Plan, step: str, items: Any) -> Plan:
    """Return a plan in which deferred `step` has one node per item; steps that follow or group it expand with it.

    `items` is the step's items source with its templates rendered: a list, or a `range`,
    `matrix` or `zip` mapping (`plait.templating.render_value(spec.items, context)`); for a
    group_by step, whose groups come from the plan, it is not read. Raises WorkflowError, located
    at the step's items, when they are not a list, a zip's lists differ in length, a key is bad
    or repeated, or the list is empty and the step does not allow it.
    """
    from plait.compiler.grow import expand_step

    return expand_step(plan, step, items)
