"""Growing a plan while it runs: a placeholder becomes the nodes it stands for.

Two entry points, both pure (a plan in, a new plan out; plans are immutable):
- `expand_step(plan, step, items)` (`plait.compiler.expand_deferred`): a step placeholder, once
  its upstream has run, with its items rendered; or a group_by step's placeholder, whose groups
  it reads from the plan;
- `expand_parent(plan, parent, result)`: every per-parent placeholder waiting on `parent`, a node
  that has finished, of a step that runs `for_each` over it with items from its result: each
  becomes the parent's own children, `step[parent key/child key]`.

One growth, whichever the entry point:
- the placeholder's new nodes take over its inbound edges (its predecessors, the parent among
  them, are theirs) and feed the placeholder, which stays as their `join`, so what waited for
  it now waits for them;
- a step running `for_each` over the grown step grows with it, key to key: task nodes paired to
  task nodes, or per-parent placeholders where the new nodes are placeholders themselves or the
  follower fans out on its own (a fan-out over a fan-out);
- a group_by step over the grown step gets its group nodes when its groups are now known (the
  grown step is complete, or its new placeholders' parents decide the groups), members wired to
  their group; a group node already waiting on a per-parent placeholder takes that parent's
  children as members instead.
New nodes go just before the placeholder they came from, so the plan's order stays topological.
Errors are `WorkflowError`s located at the step's items, for the runtime to record as the
placeholder's failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx

from plait.compiler.combine import SourceError
from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.groups import Member, assign_groups, parent_only
from plait.compiler.items import node_id
from plait.compiler.nodes import as_join, item_keys, make_node
from plait.compiler.plan import NodeSpec, Plan, StepSpec
from plait.compiler.sources import deferred_source_items
from plait.templating import RENDER_ERRORS, render_value, template_context

__all__ = ["expand_parent", "expand_step"]


def expand_step(plan: Plan, step: str, items: Any) -> Plan:
    """Return `plan` with step placeholder `step` expanded (see `plait.compiler.expand.expand_deferred`)."""
    spec = plan.steps.get(step)
    node = plan.nodes.get(step)
    if spec is None or node is None or node.kind != "deferred":
        raise WorkflowError([Diagnostic(spec.loc if spec else None, f"step '{step}' has no placeholder to expand",
                                        "expand_deferred takes a step whose node is a deferred placeholder")])
    if spec.for_each is not None:
        raise WorkflowError([Diagnostic(spec.loc, f"step '{step}' runs for_each over '{spec.for_each}' and grows "
                                                  "with it", f"expand '{spec.for_each}' (or its parent nodes)")])
    growth = _Growth(plan)
    if spec.group_by is not None:
        grouped = plan.steps[spec.group_by]
        members = [n for n in plan.nodes.values() if n.step == grouped.name and n.kind == "task"]
        growth.group(step, members, [growth.parent_view(m) for m in members] if grouped.fans_out else None)
        return growth.plan()
    new_items, keys = _items(spec, items, f"step '{step}': its items")
    own = _keys(spec, new_items, keys, plan)
    growth.replace(step, [make_node(spec, node_id(step, k), "task", k, item, i)
                          for i, (k, item) in enumerate(zip(own, new_items))])
    return growth.plan()


def expand_parent(plan: Plan, parent: str, result: Any, step: str | None = None) -> Plan:
    """Return `plan` with the per-parent placeholders waiting on finished node `parent` expanded into its children.

    Each placeholder `S[k]` of a step S that runs `for_each` over the parent's step with items
    from the parent's result (every such step, or only `step`) renders its items with
    `parent = {key, item, result}` and params, and becomes children `S[k/c]` (c: the child's own
    key, by S's `key:` or the default rule). Raises WorkflowError, located at S's items, when
    they are not a list (or a range, matrix or zip), a zip's lists differ in length, a key is bad
    or repeated, or the list is empty and S does not allow it.
    """
    node = plan.nodes[parent]
    waiting = [s for s in plan.graph.successors(parent)
               if plan.nodes[s].kind == "deferred" and plan.nodes[s].key == node.key
               and plan.steps[plan.nodes[s].step].fans_out and plan.steps[plan.nodes[s].step].for_each == node.step
               and step in (None, plan.nodes[s].step)]
    growth = _Growth(plan)
    view = {"key": node.key, "item": node.item, "result": result}
    for placeholder in sorted(waiting, key=lambda s: plan.nodes[s].step):
        spec = plan.steps[plan.nodes[placeholder].step]
        what = f"step '{spec.name}': the items of parent {parent}"
        context = template_context(plan.params, parent=view, workflow_dir=plan.workflow_dir)
        try:
            rendered = render_value(spec.items, context)
        except RENDER_ERRORS as err:
            raise _error(spec, f"{what} do not render: {err}",
                         "the items of a fan-out see parent (key, item, result) and params") from err
        new_items, keys = _items(spec, rendered, what)
        own = _keys(spec, new_items, keys, plan, view)
        children = [make_node(spec, node_id(spec.name, f"{node.key}/{k}"), "task", f"{node.key}/{k}", item, i)
                    for i, (k, item) in enumerate(zip(own, new_items))]
        growth.replace(placeholder, children)
    return growth.plan()


def _items(spec: StepSpec, rendered: Any, what: str) -> tuple[list, list | None]:
    """Return (items, default keys or None) from a rendered items source; raise WorkflowError located at it."""
    try:
        items, keys = deferred_source_items(rendered)
    except ValueError as err:
        message = str(err)
        hint = err.hint if isinstance(err, SourceError) else \
            "the items template must give a list, e.g. \"{{ steps.find.result }}\""
        raise _error(spec, f"{what}{' ' if message.startswith('gave') else ': '}{message}", hint) from err
    if not items and not spec.allow_empty:
        raise _error(spec, f"step '{spec.name}' has no items",
                     "its upstream gave an empty list; set `allow_empty: true` if that is fine")
    return items, keys


def _keys(spec: StepSpec, items: list, keys: list | None, plan: Plan, parent: Mapping[str, Any] | None = None) -> list:
    try:
        return item_keys(spec.name, items, spec.key, plan.params, keys, checked=keys is not None,
                         workflow_dir=plan.workflow_dir, parent=parent)
    except WorkflowError as err:
        raise WorkflowError([dataclasses.replace(e, loc=spec.items_loc or spec.loc) for e in err.errors]) from err


def _error(spec: StepSpec, message: str, hint: str) -> WorkflowError:
    return WorkflowError([Diagnostic(spec.items_loc or spec.loc, message, hint)])


class _Growth:
    """One growth of a plan: a copy of its graph and steps, the nodes added, the placeholders turned joins."""

    def __init__(self, plan: Plan):
        self.old = plan
        self.graph = nx.DiGraph(plan.graph)
        self.steps: dict[str, StepSpec] = dict(plan.steps)
        self.added: dict[str, list[NodeSpec]] = {}  # placeholder -> the nodes it became
        self.new: dict[str, NodeSpec] = {}

    def node(self, nid: str) -> NodeSpec:
        return self.new.get(nid) or self.old.nodes[nid]

    def replace(self, placeholder: str, new: Sequence[NodeSpec], partner: str | None = None,
                dropped: Iterable[str] = (), members: Mapping[str, Iterable[str]] | None = None) -> None:
        """Turn `placeholder` into the join of `new`, which take over its inbound edges but `dropped`. Mutates.

        `partner`: the step whose node of the same key each new node is paired to (instead of the
        placeholder of that step it depended on); `members`: new node -> the nodes feeding it (a
        group's members, instead of inbound edges from the grouped step).
        """
        old_node = self.old.nodes[placeholder]
        skip = set(dropped)
        inbound = [p for p in self.graph.predecessors(placeholder) if p not in skip]
        self.graph.remove_edges_from([(p, placeholder) for p in list(self.graph.predecessors(placeholder))])
        for node in new:
            self.graph.add_edges_from((p, node.id) for p in inbound)
            if partner is not None:
                self.graph.add_edge(node_id(partner, node.key), node.id)
            if members is not None:
                self.graph.add_edges_from((m, node.id) for m in members[node.id])
            self.graph.add_edge(node.id, placeholder)
            self.new[node.id] = node
        self.added[placeholder] = list(new)
        if old_node.key is None and all(n.kind == "task" for n in new):
            self.steps[old_node.step] = dataclasses.replace(self.steps[old_node.step], kind="batch")
        self._follow(placeholder, list(new))

    def _follow(self, placeholder: str, new: list[NodeSpec]) -> None:
        """Grow what follows `placeholder`'s step: for_each followers, groups, group nodes waiting on it. Mutates."""
        step = self.old.nodes[placeholder].step
        whole = self.old.nodes[placeholder].key is None
        tasks = all(n.kind == "task" for n in new)
        for succ in list(self.graph.successors(placeholder)):
            node = self.old.nodes[succ]
            spec = self.steps[node.step]
            if node.kind == "deferred" and spec.for_each == step:
                kind = "task" if tasks and not spec.fans_out else "deferred"
                self.replace(succ, [make_node(spec, node_id(spec.name, n.key), kind, n.key,
                                              n.item if kind == "task" else None, n.index) for n in new],
                             partner=step, dropped=[placeholder])
            elif node.kind == "deferred" and spec.group_by == step and node.key is None:
                if tasks and whole:
                    self.group(succ, new, None)
                elif not tasks and self.steps[step].fans_out and parent_only(spec.group_key):
                    self.group(succ, new, [self.parent_view(n, partner=True) for n in new])
            elif node.kind == "task" and spec.group_by == step and not whole and tasks:
                self.graph.remove_edge(placeholder, succ)  # a group node takes the parent's children as members
                self.graph.add_edges_from((n.id, succ) for n in new)

    def group(self, placeholder: str, members: Sequence[NodeSpec], parents: list[dict] | None) -> None:
        """Give group_by placeholder `placeholder` one node per group of `members`, each fed by its own. Mutates."""
        spec = self.steps[self.old.nodes[placeholder].step]
        seen = [Member(m.key, m.item, m.index, parents[i] if parents else None) for i, m in enumerate(members)]
        try:
            groups = assign_groups(spec.name, spec.group_by, spec.group_key, seen, self.old.params,
                                   self.old.workflow_dir)
        except WorkflowError as err:
            raise WorkflowError([dataclasses.replace(e, loc=spec.items_loc or spec.loc) for e in err.errors]) from err
        nodes = [make_node(spec, node_id(spec.name, g), "task", g, g, i) for i, g in enumerate(groups)]
        feeding = {node_id(spec.name, g): [members[m].id for m in groups[g]] for g in groups}
        grouped = {p for p in self.graph.predecessors(placeholder) if self.node(p).step == spec.group_by}
        self.replace(placeholder, nodes, dropped=grouped, members=feeding)

    def parent_view(self, node: NodeSpec, partner: bool = False) -> dict[str, Any]:
        """Return {key, item} of the parent of a fan-out's node (its placeholder's partner, or a child's parent)."""
        parent_step = self.steps[node.step].for_each
        if partner:
            parent = self.node(node_id(parent_step, node.key))
        else:
            parent = next(self.node(p) for p in self.graph.predecessors(node.id) if self.node(p).step == parent_step)
        return {"key": parent.key, "item": parent.item}

    def plan(self) -> Plan:
        nodes = {}
        for nid, node in self.old.nodes.items():
            for new_node in self.added.get(nid, ()):
                nodes[new_node.id] = new_node
            nodes[nid] = as_join(node) if nid in self.added else node
        old = self.old
        return Plan(old.workflow, old.description, old.source, old.params, self.steps, nodes, self.graph, old.notes)
