"""Draw a plan as DOT, Mermaid or SVG, readable whatever the number of items, coloured by status if asked.

By default a batch step is drawn as one node with its item count (`resize: python × 100,000`),
and edges are drawn between steps, so the picture of a 100,000-item run has as many boxes as the
workflow has steps. `expand=True` draws every node instead (for small plans and debugging).
Edges that pair items one to one (`for_each`) are drawn bold and labelled "per item", and those
that feed each group its own members (`group_by`) "per group".

Given the ledger's node states (`plait graph --workspace W`), each box is coloured by status, with
the colours of the HTML report (plait.report.text): a step's border by its one status (any failure
wins, then work left to do, then skipped), its fill striped in proportion to its nodes' statuses
(DOT and SVG) and its label counting them. A node the ledger does not know (new since the last
run) is pending. Mermaid has no striped fill, so its boxes take their step's status as a class.

SVG is drawn by Graphviz's `dot` program; it is not a Python dependency, so its absence is a
clear error that names the package to install. Its layout grows much faster than the nodes
(seconds at 2,000 nodes with their edges, minutes at 5,000), so `expand=True` to SVG past
`EXPAND_SVG_MAX` nodes is refused unless forced (`DrawingTooBig`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.compiler import Plan, StepSpec
    from plait.report.data import NodeState

__all__ = ["EXPAND_SVG_MAX", "FORMATS", "DrawingTooBig", "GraphvizMissing", "draw"]

FORMATS = ("dot", "mermaid", "svg")
EXPAND_SVG_MAX = 2_000  # nodes drawn one by one through Graphviz without --force


class GraphvizMissing(RuntimeError):
    """SVG was asked for, but Graphviz's `dot` program is not installed."""


class DrawingTooBig(ValueError):
    """Every node of a large plan was asked for as SVG: Graphviz would take minutes. Carries `.nodes`."""

    def __init__(self, nodes: int):
        self.nodes = nodes
        super().__init__(f"drawing all {nodes:,} nodes as SVG would keep Graphviz busy for minutes (past "
                         f"{EXPAND_SVG_MAX:,} nodes its layout time explodes); add --force to draw it anyway, or "
                         "drop --expand for one box per step, or use --format dot or mermaid")


def draw(plan: Plan, fmt: str = "dot", expand: bool = False, states: Mapping[str, NodeState] | None = None,
         force: bool = False) -> str:
    """Return the plan drawn in `fmt` (dot, mermaid or svg), coloured by `states` (node ID -> its ledger state).

    Raises ValueError, DrawingTooBig (expand to SVG past EXPAND_SVG_MAX nodes, unless `force`), GraphvizMissing.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    if expand and fmt == "svg" and len(plan.nodes) > EXPAND_SVG_MAX and not force:
        raise DrawingTooBig(len(plan.nodes))
    boxes, edges = _expanded(plan, states) if expand else _collapsed(plan, states)
    if fmt == "mermaid":
        return _mermaid(plan.workflow, boxes, edges)
    dot = _dot(plan.workflow, boxes, edges)
    return _svg(dot) if fmt == "svg" else dot


# A box is (id, label, is_batch, its nodes' statuses or None); an edge is (from, to, label): "per item",
# "per group" or None.
Box = tuple[str, str, bool, "Counter[str] | None"]
Edge = tuple[str, str, "str | None"]

# The report's colours (plait.report.text.STATUS_COLOURS), drawn as borders, and their light tints as fills; a
# pending box's border is a darker grey than the report's pending bar, which would not show on its tint.
COLOURS = {"succeeded": "#2f9e44", "failed": "#e03131", "skipped": "#f59f00", "running": "#1c7ed6",
           "pending": "#868e96"}
TINTS = {"succeeded": "#b2f2bb", "failed": "#ffc9c9", "skipped": "#ffec99", "running": "#a5d8ff",
         "pending": "#e9ecef"}
ORDER = ("succeeded", "failed", "skipped", "running", "pending")
SHORT = {"succeeded": "done", "failed": "failed", "skipped": "skipped", "running": "running", "pending": "to do"}


def _step_label(step: StepSpec, count: int) -> str:
    if step.fans_out:
        return f"{step.name}\n{step.task} × ? per parent"
    if step.kind == "deferred":
        return f"{step.name}\n{step.task} × {count:,}" if count else f"{step.name}\n{step.task} × ? (deferred)"
    if step.group_by:
        return f"{step.name}\n{step.task} × {count:,} groups"
    if step.kind == "batch":
        return f"{step.name}\n{step.task} × {count:,}"
    return f"{step.name}\n{step.task}"


def _collapsed(plan: Plan, states: Mapping[str, NodeState] | None) -> tuple[list[Box], list[Edge]]:
    counts = Counter(n.step for n in plan.nodes.values() if n.kind == "task")
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    if states is not None:
        for node in plan.nodes.values():
            if node.kind == "task":
                state = states.get(node.id)
                statuses[node.step][state.status if state else "pending"] += 1  # unknown: new since the last run
        deferred = {s.name for s in plan.steps.values() if s.kind == "deferred"}
        for state in states.values():  # a deferred step's items are in the ledger only
            if state.step in deferred and state.kind == "task":
                statuses[state.step][state.status] += 1
                counts[state.step] += 1
    boxes = [(s.name, _step_label(s, counts[s.name]), s.kind != "single",
              statuses[s.name] if states is not None else None) for s in plan.steps.values()]
    edges = [(dep, s.name, _edge_label(s, dep)) for s in plan.steps.values() for dep in s.depends_on]
    return boxes, edges


def _edge_label(step: StepSpec, upstream: str) -> str | None:
    if upstream == step.for_each:
        return "per item"
    return "per group" if upstream == step.group_by else None


def _expanded(plan: Plan, states: Mapping[str, NodeState] | None) -> tuple[list[Box], list[Edge]]:
    def status(node_id: str) -> Counter[str] | None:
        if states is None:
            return None
        state = states.get(node_id)
        return Counter({state.status if state else "pending": 1})

    boxes = [(n.id, f"{n.id}\n{n.task}", n.kind != "task", status(n.id)) for n in plan.nodes.values()]
    steps = plan.steps
    edges = [(u, v, _edge_label(steps[plan.nodes[v].step], plan.nodes[u].step)) for u, v in sorted(plan.graph.edges)]
    return boxes, edges


def _state(statuses: Counter[str]) -> str:
    """Return the one status a box is coloured by: any failure, then work left, then all skipped, else succeeded."""
    total = sum(statuses.values())
    if statuses["failed"]:
        return "failed"
    if statuses["running"]:
        return "running"
    if statuses["pending"] or not total:
        return "pending"
    return "skipped" if statuses["skipped"] == total else "succeeded"


def _counts_line(statuses: Counter[str]) -> str:
    return " · ".join(f"{statuses[s]:,} {SHORT[s]}" for s in ORDER if statuses[s])


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(name: str, boxes: list[Box], edges: list[Edge]) -> str:
    lines = [f"digraph {_quote(name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];']
    for box_id, label, batch, statuses in boxes:
        shape = ', shape=box3d, fillcolor="#e3eefc"' if batch else ""
        if statuses is not None:
            shape = ", shape=box3d" if batch else ""
            label += "\n" + _counts_line(statuses) if len(statuses) > 1 or batch else ""
            shape += f', style=striped, fillcolor="{_stripes(statuses)}", color="{COLOURS[_state(statuses)]}", ' \
                     f'penwidth=2, tooltip={_quote(_state(statuses))}'
        lines.append(f"  {_quote(box_id)} [label={_quote(label)}{shape}];")
    for u, v, label in edges:
        style = f' [style=bold, label="{label}"]' if label else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _stripes(statuses: Counter[str]) -> str:
    """Return a Graphviz colour list: each status's tint for its share of the box (all pending when empty)."""
    total = sum(statuses.values())
    if not total:
        return TINTS["pending"]
    return ":".join(f"{TINTS[s]};{statuses[s] / total:.4f}" for s in ORDER if statuses[s])


def _mermaid(name: str, boxes: list[Box], edges: list[Edge]) -> str:
    ids = {box[0]: f"n{i}" for i, box in enumerate(boxes)}
    lines = ["---", f"title: {name}", "---", "flowchart LR"]
    classes: dict[str, list[str]] = defaultdict(list)
    for box_id, label, batch, statuses in boxes:
        if statuses is not None:
            classes[_state(statuses)].append(ids[box_id])
            label += "\n" + _counts_line(statuses) if len(statuses) > 1 or batch else ""
        text = label.replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f'  {ids[box_id]}[["{text}"]]' if batch else f'  {ids[box_id]}["{text}"]')
    for u, v, label in edges:
        lines.append(f"  {ids[u]} ==>|{label}| {ids[v]}" if label else f"  {ids[u]} --> {ids[v]}")
    for state, members in classes.items():
        lines.append(f"  classDef {state} fill:{TINTS[state]},stroke:{COLOURS[state]},stroke-width:2px")
        lines.append(f"  class {','.join(members)} {state}")
    return "\n".join(lines) + "\n"


def _svg(dot: str) -> str:
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing("SVG output needs Graphviz's `dot` program, which is not installed; install the "
                              "'graphviz' package (apt-get install graphviz, brew install graphviz), "
                              "or use --format dot or --format mermaid")
    done = subprocess.run([program, "-Tsvg"], input=dot, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz's dot failed: {done.stderr.strip()}")
    return done.stdout
