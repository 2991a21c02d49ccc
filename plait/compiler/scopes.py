"""What a group node and a fan-out's child see beyond the usual names: `group` and `parent`, read from the plan.

The runtime builds these as it forms a node's job, from the plan and the results it holds, and
hands them to the task's `TaskContext` (its `group` and `parent`), whose template context shows
them to the node's templates and inline code:
- `group` (a node of a `group_by` step): `key`, and the group's `items` and `results` in item
  order. Its members are its predecessors in the grouped step (the plan wires each group node to
  its own members only); a member that failed or was skipped shows as None, as in `steps.X.results`.
- `parent` (a child of a per-parent fan-out): the parent node's `key`, `item` and `result`.
  Its parent is its predecessor in the step it runs `for_each` over.
`parent_of` tells the runtime which finished node a per-parent placeholder waits on, the node to
pass to `expand_parent`. Everything here reads the plan and calls `value(node id)` for results;
it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any

from plait.compiler.items import node_id
from plait.compiler.plan import Plan

__all__ = ["group_view", "node_scope", "parent_of", "parent_view"]

Value = Callable[[str], Any]  # node id -> its result (None when it did not succeed)
Values = Callable[[list[str]], list[Any]]  # node ids -> their results, in one go (the runtime parses them at once)
_NONE: Mapping[str, Any] = MappingProxyType({})
_ID, _STEP, _KIND, _ITEM = attrgetter("id"), attrgetter("step"), attrgetter("kind"), attrgetter("item")
_FIRST = itemgetter(0)
_TASK = frozenset({"task"})


def node_scope(plan: Plan, nid: str, value: Value, order: Mapping[str, int] | None = None,
               values: Values | None = None) -> Mapping[str, Any]:
    """Return the extra names node `nid` sees: {"group": ...}, {"parent": ...}, or an empty mapping.

    `order` maps node IDs to their place in the plan (the runtime has it); without it, a group's
    members are ordered by a scan of the plan. `values` reads a group's results in one go.
    """
    node = plan.nodes[nid]
    spec = plan.steps[node.step]
    if node.kind != "task":
        return _NONE
    if spec.group_by is not None:
        return {"group": group_view(plan, nid, value, order, values)}
    if spec.fans_out:
        return {"parent": parent_view(plan, nid, value)}
    return _NONE


def group_view(plan: Plan, nid: str, value: Value, order: Mapping[str, int] | None = None,
               values: Values | None = None) -> dict[str, Any]:
    """Return {key, items, results} of group node `nid`, its members in item order (results read by `values`,
    when given, else by `value` one by one).

    A group node's predecessors are most often all members, already in plan order: both are
    checked by C-level passes over its predecessors (a thousand groups of a hundred each form a
    wave), and only a group that has other predecessors, or members out of order, is sorted out.
    """
    nodes = plan.nodes
    node = nodes[nid]
    grouped = plan.steps[node.step].group_by
    members = list(plan.graph.predecessors(nid))
    specs = list(map(nodes.__getitem__, members))
    if not ({grouped} >= set(map(_STEP, specs)) and _TASK.issuperset(map(_KIND, specs))):
        specs = [m for m in specs if m.step == grouped and m.kind == "task"]
        members = list(map(_ID, specs))
    if order is None:
        wanted = set(members)
        order = {m: i for i, m in enumerate(n for n in nodes if n in wanted)}
    places = list(map(order.__getitem__, members))
    if places != sorted(places):
        specs = [spec for _, spec in sorted(zip(places, specs), key=_FIRST)]
        members = list(map(_ID, specs))
    results = values(members) if values is not None else [value(m) for m in members]
    return {"key": node.key, "items": list(map(_ITEM, specs)), "results": results}


def parent_view(plan: Plan, nid: str, value: Value) -> dict[str, Any]:
    """Return {key, item, result} of the parent of fan-out child `nid`."""
    parent_step = plan.steps[plan.nodes[nid].step].for_each
    parent = next(p for p in plan.graph.predecessors(nid) if plan.nodes[p].step == parent_step)
    node = plan.nodes[parent]
    return {"key": node.key, "item": node.item, "result": value(parent)}


def parent_of(plan: Plan, nid: str) -> str | None:
    """Return the node a per-parent placeholder waits on (to hand to `expand_parent`), or None.

    None for any other node, and for a placeholder that grows with its partner instead (it
    follows a fan-out, or fans out over one: `expand_parent` of the partner's parent expands it).
    """
    node = plan.nodes[nid]
    spec = plan.steps[node.step]
    if node.kind != "deferred" or node.key is None or not spec.fans_out:
        return None
    parent = node_id(spec.for_each, node.key)
    return parent if parent in plan.nodes and plan.nodes[parent].kind == "task" else None
