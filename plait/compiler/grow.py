"""Growing a plan while it runs: a placeholder becomes the nodes it stands for.

The entry points are pure (a plan in, a new plan out; plans are immutable):
- `expand_step(plan, step, items)` (`plait.compiler.expand_deferred`): a step placeholder, once
  its upstream has run, with its items rendered; or a group_by step's placeholder, whose groups
  it reads from the plan;
- `expand_parent(plan, parent, result)`: every per-parent placeholder waiting on `parent`, a node
  that has finished, of a step that runs `for_each` over it with items from its result: each
  becomes the parent's own children, `step[parent key/child key]`; `expand_parents` does it for
  every parent that finished in a wave at once, paying for one new plan, and hands back the
  placeholders whose items were bad rather than raising.

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

A growth is built as columns, as the compiler builds a `range` step: a parent's children are
zipped from their ids, keys and items (`make_nodes`), and their adjacency dicts are made by
C-level calls over those columns rather than edge by edge. The runtime takes the grown plan with
an account of the growth (`Grown`: the new nodes in plan order, the placeholders turned joins,
the nodes already there that the new ones feed), so that it updates its lookups by what was
added rather than by a scan of the whole plan (`grow_parents`, `grow_step`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import networkx as nx

from plait import collector
from plait.compiler.combine import SourceError
from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.graph import EMPTY
from plait.compiler.groups import Members, assign_groups, parent_only
from plait.compiler.items import node_id, node_ids
from plait.compiler.nodes import as_join, item_keys, make_node, make_nodes
from plait.compiler.plan import FrozenDict, NodeSpec, Plan, StepSpec
from plait.compiler.sources import deferred_source_items
from plait.templating import RENDER_ERRORS, render_value, template_context

__all__ = ["Grown", "expand_parent", "expand_parents", "expand_step", "grow_parents", "grow_step"]

_ID, _KIND, _TASK = attrgetter("id"), attrgetter("kind"), frozenset({"task"})


class Grown(NamedTuple):
    """A grown plan and the account of its growth: what a runtime updates its lookups by."""

    plan: Plan
    new: list[NodeSpec]  # the nodes added, in plan order (so in dependency order)
    joins: list[str]  # the placeholders that became joins
    fed: list[str]  # nodes that were in the plan before and now wait for new nodes too (a group's new members)
    parents: dict[str, list[str]]  # a parent -> its new children
    failed: dict[str, WorkflowError]  # placeholders whose items were bad, left as they were


def expand_step(plan: Plan, step: str, items: Any) -> Plan:
    """Return `plan` with step placeholder `step` expanded (see `plait.compiler.expand.expand_deferred`)."""
    return grow_step(plan, step, items).plan


def grow_step(plan: Plan, step: str, items: Any) -> Grown:
    """Expand step placeholder `step` as `expand_step` does; return the grown plan with its account."""
    spec = plan.steps.get(step)
    node = plan.nodes.get(step)
    if spec is not None and spec.fans_out:
        raise WorkflowError([Diagnostic(spec.items_loc or spec.loc, f"step '{step}' grows per parent node",
                                        "expand its placeholders with plait.compiler.expand_parent(plan, parent, "
                                        "result), each once its parent has run")])
    if spec is None or node is None or node.kind != "deferred":
        raise WorkflowError([Diagnostic(spec.loc if spec else None, f"step '{step}' has no placeholder to expand",
                                        "expand_deferred takes a step whose node is a deferred placeholder")])
    if spec.for_each is not None:
        raise WorkflowError([Diagnostic(spec.loc, f"step '{step}' runs for_each over '{spec.for_each}' and grows "
                                                  "with it", f"expand '{spec.for_each}' (or its parent nodes)")])
    with collector.paused():
        growth = _Growth(plan)
        if spec.group_by is not None:
            grouped = plan.steps[spec.group_by]
            members = [n for n in plan.nodes.values() if n.step == grouped.name and n.kind == "task"]
            growth.group(step, members, [growth.parent_view(m) for m in members] if grouped.fans_out else None)
            return growth.grown({})
        new_items, keys = _items(spec, items, f"step '{step}': its items")
        own = _keys(spec, new_items, keys, plan)
        growth.replace(step, make_nodes(spec, "task", node_ids(step, own), own, new_items))
        return growth.grown({})


def expand_parent(plan: Plan, parent: str, result: Any, step: str | None = None) -> Plan:
    """Return `plan` with the per-parent placeholders waiting on finished node `parent` expanded into its children.

    Each placeholder `S[k]` of a step S that runs `for_each` over the parent's step with items
    from the parent's result (every such step, or only `step`) renders its items with
    `parent = {key, item, result}` and params, and becomes children `S[k/c]` (c: the child's own
    key, by S's `key:` or the default rule). Raises WorkflowError, located at S's items, when
    they are not a list (or a range, matrix or zip), a zip's lists differ in length, a key is bad
    or repeated, or the list is empty and S does not allow it.
    """
    grown, failed = expand_parents(plan, {parent: result}, step)
    if failed:
        raise next(iter(failed.values()))
    return grown


def expand_parents(plan: Plan, results: Mapping[str, Any],
                   step: str | None = None) -> tuple[Plan, dict[str, WorkflowError]]:
    """Expand the placeholders waiting on several finished parents at once: one new plan for them all.

    `results` maps parent node IDs to their results. Returns the new plan and, for each
    placeholder whose items were bad, its error (that placeholder is left as it was, for the
    runtime to record as failed). A plan is copied once per call, so a runtime that expands every
    parent that finished in a wave together pays for the copy once.
    """
    grown = grow_parents(plan, results, step)
    return grown.plan, grown.failed


def grow_parents(plan: Plan, results: Mapping[str, Any], step: str | None = None) -> Grown:
    """Expand the placeholders waiting on finished parents as `expand_parents` does; return the account too."""
    with collector.paused():
        growth = _Growth(plan)
        failed: dict[str, WorkflowError] = {}
        folder = plan.workflow_dir  # (a new Path each time it is asked for)
        for parent, result in results.items():
            node = plan.nodes[parent]
            view = {"key": node.key, "item": node.item, "result": result}
            for placeholder in _waiting(plan, node, step):
                try:
                    children = _children(plan, plan.steps[plan.nodes[placeholder].step], node, view, folder)
                    growth.replace(placeholder, children)
                    growth.parents[parent] = [child.id for child in children]
                except WorkflowError as err:
                    failed[placeholder] = err
        return growth.grown(failed)


def _waiting(plan: Plan, parent: NodeSpec, step: str | None) -> list[str]:
    """Return the fan-out placeholders waiting on `parent` (of `step` only, when given), by step name."""
    found = []
    for succ in plan.graph.successors(parent.id):
        node = plan.nodes[succ]
        spec = plan.steps[node.step]
        if (node.kind == "deferred" and node.key == parent.key and spec.fans_out and spec.for_each == parent.step
                and step in (None, node.step)):
            found.append(succ)
    return sorted(found, key=lambda s: plan.nodes[s].step)


def _children(plan: Plan, spec: StepSpec, parent: NodeSpec, view: Mapping[str, Any], folder: Any) -> list[NodeSpec]:
    """Return a parent's children in fan-out step `spec`, from its items rendered with `parent` (`folder`: the
    plan's `workflow_dir`)."""
    what = f"step '{spec.name}': the items of parent {parent.id}"
    context = template_context(plan.params, parent=view, workflow_dir=folder)
    try:
        rendered = render_value(spec.items, context)
    except RENDER_ERRORS as err:
        raise _error(spec, f"{what} do not render: {err}",
                     "the items of a fan-out see parent (key, item, result) and params") from err
    new_items, keys = _items(spec, rendered, what, "{{ parent.result }}")
    own = _keys(spec, new_items, keys, plan, view, folder)
    keys = [f"{parent.key}/{k}" for k in own]
    return make_nodes(spec, "task", node_ids(spec.name, keys), keys, new_items)


def _items(spec: StepSpec, rendered: Any, what: str,
           example: str = "{{ steps.find.result }}") -> tuple[list, list | None]:
    """Return (items, default keys or None) from a rendered items source; raise WorkflowError located at it."""
    try:
        items, keys = deferred_source_items(rendered)
    except ValueError as err:
        message = str(err)
        hint = err.hint if isinstance(err, SourceError) else f"the items template must give a list, e.g. \"{example}\""
        raise _error(spec, f"{what}{' ' if message.startswith('gave') else ': '}{message}", hint) from err
    if not items and not spec.allow_empty:
        raise _error(spec, f"step '{spec.name}' has no items",
                     "its upstream gave an empty list; set `allow_empty: true` if that is fine")
    return items, keys


def _keys(spec: StepSpec, items: list, keys: list | None, plan: Plan, parent: Mapping[str, Any] | None = None,
          folder: Any = None) -> list:
    try:
        return item_keys(spec.name, items, spec.key, plan.params, keys, checked=keys is not None,
                         workflow_dir=folder if folder is not None else plan.workflow_dir, parent=parent)
    except WorkflowError as err:
        raise WorkflowError([dataclasses.replace(e, loc=spec.items_loc or spec.loc) for e in err.errors]) from err


def _error(spec: StepSpec, message: str, hint: str) -> WorkflowError:
    return WorkflowError([Diagnostic(spec.items_loc or spec.loc, message, hint)])


class _Growth:
    """One growth of a plan: a copy of its graph and steps, the nodes added, the placeholders turned joins.

    The graph is copied on write: the new graph's node and adjacency mappings are fresh, but a
    node's own adjacency dict is shared with the old plan's graph until this growth changes it
    (`_own`). Both graphs are frozen once they are in a plan, so nothing else writes to what is
    shared, and a growth costs what it adds, not a copy of every edge of a plan of 100,000 nodes.
    """

    def __init__(self, plan: Plan):
        self.old = plan
        self.graph = _copy_on_write(plan.graph)
        self.owned: set[tuple[str, str]] = set()  # (side, node) whose adjacency dict is this graph's own
        self.steps: dict[str, StepSpec] = dict(plan.steps)
        self.added: dict[str, list[NodeSpec]] = {}  # placeholder -> the nodes it became
        self._new: dict[str, NodeSpec] = {}  # the new nodes by ID, made when asked for (`node`)
        self.shared: dict[int, dict] = {}  # id -> an adjacency dict new siblings share (kept: its id stays its own)
        self.fed: dict[str, None] = {}  # nodes of the old plan given new predecessors (a group's new members)
        self.parents: dict[str, list[str]] = {}  # a parent -> its new children

    def node(self, nid: str) -> NodeSpec:
        """Return node `nid`, of the old plan or new."""
        found = self.old.nodes.get(nid) or self._new.get(nid)
        if found is None:  # rarely asked (a fan-out over what grew with it): no map of the new ones kept meanwhile
            self._new = {n.id: n for added in self.added.values() for n in added}
            found = self._new[nid]
        return found

    def _own(self, side: str, nid: str) -> dict:
        """Return node `nid`'s adjacency dict on `side`, made its own first: copied from the old graph's, or from
        the one its siblings share."""
        table = self.graph._succ if side == "succ" else self.graph._pred
        if nid not in self.old.nodes and nid in table:  # a new node's dicts are this graph's, but siblings share
            adjacency = table[nid]  # theirs until one writes
            if id(adjacency) in self.shared:
                adjacency = table[nid] = dict(adjacency)
            return adjacency
        if (side, nid) not in self.owned:
            table[nid] = dict(table.get(nid, {}))
            self.owned.add((side, nid))
        return table[nid]

    def link(self, u: str, v: str) -> None:
        for nid in (u, v):
            if nid not in self.graph._node:
                self.graph._node[nid] = EMPTY
        self._own("succ", u)[v] = self._own("pred", v)[u] = EMPTY

    def unlink(self, u: str, v: str) -> None:
        self._own("succ", u).pop(v, None)
        self._own("pred", v).pop(u, None)

    def replace(self, placeholder: str, new: Sequence[NodeSpec], partner: str | None = None,
                dropped: Iterable[str] = (), members: Mapping[str, Iterable[str]] | None = None) -> None:
        """Turn `placeholder` into the join of `new`, which take over its inbound edges but `dropped`. Mutates.

        `partner`: the step whose node of the same key each new node is paired to (instead of the
        placeholder of that step it depended on); `members`: new node -> the nodes feeding it (a
        group's members, instead of inbound edges from the grouped step).
        """
        old_node = self.old.nodes[placeholder]
        skip = set(dropped)
        before = list(self.graph.predecessors(placeholder))
        inbound = [p for p in before if p not in skip]
        for p in before:
            self.unlink(p, placeholder)
        ids = list(map(_ID, new))
        graph = self.graph
        # The hot path, a parent's hundreds of children: the new nodes have the same edges, so they share
        # one dict a side (`_own` copies it for a node that gets an edge of its own), set by C-level calls.
        into, out = dict.fromkeys(inbound, EMPTY), {placeholder: EMPTY}
        self.shared.update({id(into): into, id(out): out})
        graph._node.update(dict.fromkeys(ids, EMPTY))
        graph._pred.update(dict.fromkeys(ids, into))
        graph._succ.update(dict.fromkeys(ids, out))
        for p in inbound:
            self._own("succ", p).update(dict.fromkeys(ids, EMPTY))
        self._own("pred", placeholder).update(dict.fromkeys(ids, EMPTY))
        if partner is not None:
            for node in new:
                self.link(node_id(partner, node.key), node.id)
        if members is not None:
            for nid in ids:
                for m in members[nid]:
                    self.link(m, nid)
        self.added[placeholder] = list(new)  # before a node of it is asked for (`node`)
        if old_node.key is None and set(map(_KIND, new)) <= _TASK:
            self.steps[old_node.step] = dataclasses.replace(self.steps[old_node.step], kind="batch")
        self._follow(placeholder, list(new))

    def _follow(self, placeholder: str, new: list[NodeSpec]) -> None:
        """Grow what follows `placeholder`'s step: for_each followers, groups, group nodes waiting on it. Mutates."""
        step = self.old.nodes[placeholder].step
        whole = self.old.nodes[placeholder].key is None
        tasks = set(map(_KIND, new)) <= _TASK
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
                self.unlink(placeholder, succ)  # a group node takes the parent's children as members
                ids = [n.id for n in new]
                self._own("pred", succ).update(dict.fromkeys(ids, EMPTY))
                outs = list(map(self.graph._succ.__getitem__, ids))
                if len(set(map(id, outs))) == 1:  # siblings sharing one dict (they gain the same edge): one write
                    outs[0][succ] = EMPTY
                else:
                    for out in outs:
                        out[succ] = EMPTY
                self.fed[succ] = None

    def group(self, placeholder: str, members: Sequence[NodeSpec], parents: list[dict] | None) -> None:
        """Give group_by placeholder `placeholder` one node per group of `members`, each fed by its own. Mutates."""
        spec = self.steps[self.old.nodes[placeholder].step]
        seen = Members([m.key for m in members], [m.item for m in members], [m.index for m in members], parents)
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

    def grown(self, failed: dict[str, WorkflowError]) -> Grown:
        """Return the grown plan (`plan`) with the account of this growth."""
        plan, new = self.plan()
        return Grown(plan, new, list(self.added), [n for n in self.fed if n not in self.added], self.parents, failed)

    def plan(self) -> tuple[Plan, list[NodeSpec]]:
        """Return the grown plan, each placeholder's new nodes spliced in just before it, which is now a join,
        and the new nodes in their plan order."""
        old = self.old
        ids, specs = list(old.nodes), list(old.nodes.values())
        if len(self.added) > 8:
            place = dict(zip(ids, range(len(ids))))
            positions = sorted(place[p] for p in self.added)
        else:
            positions = sorted(ids.index(p) for p in self.added)
        out_ids: list[str] = []
        out_specs: list[NodeSpec] = []
        new: list[NodeSpec] = []
        start = 0
        for at in positions:
            grown = self.added[ids[at]]
            new += grown
            out_ids += ids[start:at]
            out_ids += map(_ID, grown)
            out_ids.append(ids[at])
            out_specs += specs[start:at]
            out_specs += grown
            out_specs.append(as_join(specs[at]))
            start = at + 1
        out_ids += ids[start:]
        out_specs += specs[start:]
        return Plan(old.workflow, old.description, old.source, old.params, self.steps,
                    FrozenDict(zip(out_ids, out_specs)), self.graph, old.notes, old.workflow_dir), new


def _copy_on_write(graph: nx.DiGraph) -> nx.DiGraph:
    """Return a DiGraph with fresh node and adjacency mappings whose per-node dicts are `graph`'s, shared.

    Reaches into networkx's storage (`_node`, `_succ`, `_pred`, as `DiGraph.__init__` makes them):
    its public copy rebuilds every edge in Python, a cost per growth that grows with the plan.
    Only `_Growth` writes to the result, and only through `_own`, which copies a node's dict
    before the first write.
    """
    copy = nx.DiGraph()
    copy._node = dict(graph._node)
    copy._succ = copy._adj = dict(graph._succ)
    copy._pred = dict(graph._pred)
    return copy
