"""Expand checked steps into nodes and wire the node graph; expand deferred steps at run time.

Wiring, for a step S that depends on a step U:
- S runs `for_each: U`: item to item, `U[k] -> S[k]` (a per-item chain never waits for all of U);
- U is a plain step, a deferred placeholder or a join: `U -> every node of S`;
- U is a batch and S one node (a fan-in): `U[k] -> S` for every k;
- U is a batch and S a batch too: through a join node `U` (`U[k] -> U -> S[j]`), so two batches
  of n and m items cost n + m edges and not n × m.

`expand_deferred` is the same expansion for a step whose items are known only once its upstream
has run. It returns a new plan (plans are immutable); a step that runs `for_each` over the
expanded step expands with it, pairing keys one to one as at compile time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.draft import StepDraft
from plait.compiler.items import check_key, default_key, node_id
from plait.compiler.plan import FrozenDict, NodeSpec, Plan, StepSpec, freeze
from plait.templating import RENDER_ERRORS, render, template_context

__all__ = ["build_plan", "expand_deferred", "item_keys"]

_EMPTY = FrozenDict()


def build_plan(name: str, description: str | None, source: str | None, params: Mapping[str, Any],
               drafts: Sequence[StepDraft], notes: Sequence[str] = ()) -> Plan:
    """Build the plan from drafts given in dependency order; raise WorkflowError for bad keys or empty batches."""
    errors: list[Diagnostic] = []
    steps: dict[str, StepSpec] = {}
    nodes: dict[str, NodeSpec] = {}
    members: dict[str, list[str]] = {}  # step -> its item nodes (or its one node)
    keyed: dict[str, tuple[list, list]] = {}  # batch step -> (items, keys)
    edges: list[tuple[str, str]] = []
    for draft in drafts:
        spec = _step_spec(draft, steps)
        steps[draft.name] = spec
        paired = draft.for_each if draft.for_each in keyed else None
        if spec.kind == "batch":
            items, keys = keyed[paired] if paired else (draft.items, _keys(draft, params, errors))
            if not items and not draft.allow_empty and not paired:
                errors.append(Diagnostic(draft.items_loc or draft.loc, f"step '{draft.name}' has no items",
                                         "check the items source, or set `allow_empty: true`"))
            keyed[draft.name] = (items, keys)
            ids = [node_id(draft.name, k) for k in keys]
            for index, (nid, key, item) in enumerate(zip(ids, keys, items)):
                nodes[nid] = _node(spec, nid, "task", key, item, index)
        else:
            ids = [draft.name]
            nodes[draft.name] = _node(spec, draft.name, "deferred" if spec.kind == "deferred" else "task")
        members[draft.name] = ids
        for upstream in (*spec.depends_on, *spec.after):
            if upstream == paired:
                edges += zip(members[upstream], ids)
            else:
                edges += ((u, n) for u in _whole(upstream, ids, steps, members, nodes, edges) for n in ids)
    if errors:
        raise WorkflowError(errors)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return Plan(name, description, source, params, steps, _ordered(nodes, members, steps), graph, tuple(notes))


def _step_spec(draft: StepDraft, earlier: Mapping[str, StepSpec]) -> StepSpec:
    over_deferred = draft.for_each is not None and earlier[draft.for_each].kind == "deferred"
    kind = "deferred" if draft.deferred_items is not None or over_deferred else "batch" if draft.is_batch else "single"
    return StepSpec(
        name=draft.name, task=draft.task, config=draft.config, kind=kind, loc=draft.loc,
        depends_on=tuple(draft.depends_on), after=tuple(s for s in draft.after if s not in draft.depends_on),
        for_each=draft.for_each, items=draft.deferred_items, key=draft.key,
        condition=draft.condition, retry=draft.retry, timeout=draft.timeout, on_error=draft.on_error,
        max_failures=draft.max_failures, allow_empty=draft.allow_empty, description=draft.description)


def _node(spec: StepSpec, nid: str, kind: str, key: Any = None, item: Any = None, index: int | None = None) -> NodeSpec:
    # Positional: a keyword call costs twice as much, 100,000 times over.
    return NodeSpec(nid, spec.name, kind, "join" if kind == "join" else spec.task,
                    _EMPTY if kind == "join" else spec.config, spec.retry, spec.timeout, spec.loc, key, freeze(item),
                    index)


def _whole(upstream: str, dependents: list[str], steps: Mapping[str, StepSpec], members: Mapping[str, list[str]],
           nodes: dict[str, NodeSpec], edges: list[tuple[str, str]]) -> list[str]:
    """Return the nodes that stand for all of `upstream`, adding its join node when needed. Mutates."""
    if steps[upstream].kind != "batch":
        return [upstream]
    if len(dependents) == 1:
        return members[upstream]
    if upstream not in nodes:
        nodes[upstream] = _node(steps[upstream], upstream, "join")
        edges += ((m, upstream) for m in members[upstream])
    return [upstream]


def _ordered(nodes: Mapping[str, NodeSpec], members: Mapping[str, list[str]],
             steps: Mapping[str, StepSpec]) -> dict[str, NodeSpec]:
    """Order nodes step by step (steps in dependency order), each step's join after its items."""
    ordered = {}
    for step in steps:
        for nid in members[step]:
            ordered[nid] = nodes[nid]
        if step in nodes and step not in ordered:
            ordered[step] = nodes[step]
    return ordered


def _keys(draft: StepDraft, params: Mapping[str, Any], errors: list[Diagnostic]) -> list:
    try:
        return item_keys(draft.name, draft.items, draft.key, params, draft.item_keys)
    except WorkflowError as err:
        errors += [dataclasses.replace(e, loc=draft.items_loc or draft.loc) for e in err.errors]
        return []


def item_keys(step: str, items: Sequence[Any], key_template: str | None, params: Mapping[str, Any],
              matched: Sequence[str] | None = None) -> list:
    """Return one unique key per item; raise WorkflowError naming the first bad or duplicate key."""
    total = len(items)
    keys = []
    for index, item in enumerate(items):
        if key_template is not None:
            context = template_context(params, item=item, index=index, total=total, step=step)
            try:
                key = render(key_template, context)
            except RENDER_ERRORS as err:
                raise WorkflowError([Diagnostic(None, f"step '{step}': the key of item {index} does not render: {err}",
                                                "the key template sees item, index, batch and params")]) from err
        elif matched is None and type(item) is int:
            keys.append(item)  # a number names its node as it is (the common `range`): nothing to check
            continue
        else:
            key = matched[index] if matched is not None else default_key(item)
        problem = check_key(key)
        if problem:
            raise WorkflowError([Diagnostic(None, f"step '{step}': item {index}: {problem}",
                                            "set `key:` to a template that gives a short name, e.g. "
                                            "\"{{ item | basename }}\"")])
        keys.append(key)
    if len({str(k) for k in keys}) != len(keys):  # 1 and "1" would both name `step[1]`
        seen: set = set()
        dup = next(k for k in map(str, keys) if k in seen or seen.add(k))
        raise WorkflowError([Diagnostic(None, f"step '{step}': two items have the key '{dup}'",
                                        "keys name nodes and must be unique: remove the duplicate item, "
                                        "or set `key:` to something that tells them apart")])
    return keys


def expand_deferred(plan: Plan, step: str, items: Sequence[Any]) -> Plan:
    """Return a plan in which deferred `step` (and any deferred `for_each` over it) has one node per item.

    Raises WorkflowError when the items are not a list, a key is bad or repeated, or the list is
    empty and the step does not allow it.
    """
    spec = plan.steps[step]
    if not isinstance(items, (list, tuple)):
        raise WorkflowError([Diagnostic(spec.loc, f"step '{step}': its items gave {type(items).__name__}, not a list",
                                        "the items template must give a list, e.g. \"{{ steps.find.result }}\"")])
    if not items and not spec.allow_empty:
        raise WorkflowError([Diagnostic(spec.loc, f"step '{step}' has no items",
                                        "its upstream gave an empty list; set `allow_empty: true` if that is fine")])
    keys = item_keys(step, items, spec.key, plan.params)
    graph = nx.DiGraph(plan.graph)
    steps = dict(plan.steps)
    added: dict[str, list[NodeSpec]] = {}
    pending = [(step, None)]
    while pending:
        name, paired = pending.pop()
        spec = steps[name] = dataclasses.replace(plan.steps[name], kind="batch")
        preds = [p for p in graph.predecessors(name) if p != paired]
        new = [_node(spec, node_id(name, k), "task", k, item, i) for i, (k, item) in enumerate(zip(keys, items))]
        graph.remove_edges_from([(p, name) for p in list(graph.predecessors(name))])
        for i, node in enumerate(new):
            graph.add_edges_from((p, node.id) for p in preds)
            if paired:
                graph.add_edge(node_id(paired, keys[i]), node.id)
            graph.add_edge(node.id, name)
        added[name] = new
        pending += [(s, name) for s in graph.successors(name)
                    if plan.nodes[s].kind == "deferred" and plan.steps[plan.nodes[s].step].for_each == name]
    nodes = {}
    for nid, node in plan.nodes.items():
        for new_node in added.get(nid, ()):
            nodes[new_node.id] = new_node
        nodes[nid] = node._replace(kind="join", task="join", config=_EMPTY) if nid in added else node
    return Plan(plan.workflow, plan.description, plan.source, plan.params, steps, nodes, graph, plan.notes)
