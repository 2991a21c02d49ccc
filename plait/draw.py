"""Draw a plan as DOT, Mermaid or SVG, readable whatever the number of items.

By default a batch step is drawn as one node with its item count (`resize: python × 100,000`),
and edges are drawn between steps, so the picture of a 100,000-item run has as many boxes as the
workflow has steps. `expand=True` draws every node instead (for small plans and debugging).
Edges that pair items one to one (`for_each`) are drawn bold and labelled "per item", and those
that feed each group its own members (`group_by`) "per group".
SVG is drawn by Graphviz's `dot` program; it is not a Python dependency, so its absence is a
clear error that names the package to install.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

from plait.compiler import Plan, StepSpec

__all__ = ["FORMATS", "GraphvizMissing", "draw"]

FORMATS = ("dot", "mermaid", "svg")


class GraphvizMissing(RuntimeError):
    """SVG was asked for, but Graphviz's `dot` program is not installed."""


def draw(plan: Plan, fmt: str = "dot", expand: bool = False) -> str:
    """Return the plan drawn in `fmt` (dot, mermaid or svg). Raises ValueError, GraphvizMissing."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    boxes, edges = _expanded(plan) if expand else _collapsed(plan)
    if fmt == "mermaid":
        return _mermaid(plan.workflow, boxes, edges)
    dot = _dot(plan.workflow, boxes, edges)
    return _svg(dot) if fmt == "svg" else dot


# A box is (id, label, is_batch); an edge is (from, to, label): "per item", "per group" or None.
Box = tuple[str, str, bool]
Edge = tuple[str, str, str | None]


def _step_label(step: StepSpec, count: int) -> str:
    if step.fans_out:
        return f"{step.name}\n{step.task} × ? per parent"
    if step.kind == "deferred":
        return f"{step.name}\n{step.task} × ? (deferred)"
    if step.group_by:
        return f"{step.name}\n{step.task} × {count:,} groups"
    if step.kind == "batch":
        return f"{step.name}\n{step.task} × {count:,}"
    return f"{step.name}\n{step.task}"


def _collapsed(plan: Plan) -> tuple[list[Box], list[Edge]]:
    counts = Counter(n.step for n in plan.nodes.values() if n.kind == "task")
    boxes = [(s.name, _step_label(s, counts[s.name]), s.kind != "single") for s in plan.steps.values()]
    edges = [(dep, s.name, _edge_label(s, dep)) for s in plan.steps.values() for dep in s.depends_on]
    return boxes, edges


def _edge_label(step: StepSpec, upstream: str) -> str | None:
    if upstream == step.for_each:
        return "per item"
    return "per group" if upstream == step.group_by else None


def _expanded(plan: Plan) -> tuple[list[Box], list[Edge]]:
    boxes = [(n.id, f"{n.id}\n{n.task}", n.kind != "task") for n in plan.nodes.values()]
    steps = plan.steps
    edges = [(u, v, _edge_label(steps[plan.nodes[v].step], plan.nodes[u].step)) for u, v in sorted(plan.graph.edges)]
    return boxes, edges


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(name: str, boxes: list[Box], edges: list[Edge]) -> str:
    lines = [f"digraph {_quote(name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];']
    for box_id, label, batch in boxes:
        shape = ', shape=box3d, fillcolor="#e3eefc"' if batch else ""
        lines.append(f"  {_quote(box_id)} [label={_quote(label)}{shape}];")
    for u, v, label in edges:
        style = f' [style=bold, label="{label}"]' if label else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid(name: str, boxes: list[Box], edges: list[Edge]) -> str:
    ids = {box_id: f"n{i}" for i, (box_id, _, _) in enumerate(boxes)}
    lines = ["---", f"title: {name}", "---", "flowchart LR"]
    for box_id, label, batch in boxes:
        text = label.replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f'  {ids[box_id]}[["{text}"]]' if batch else f'  {ids[box_id]}["{text}"]')
    for u, v, label in edges:
        lines.append(f"  {ids[u]} ==>|{label}| {ids[v]}" if label else f"  {ids[u]} --> {ids[v]}")
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
