"""The compiler's run-time contract, driven by a harness without processes (as dask's `get_sync`).

`walk` runs a plan in one thread, node by node, always the ready node latest in plan order (so a
group or a child runs as soon as what it waits for is done, which the order of the run shows),
doing only what the compiler asks of a runtime: a ready per-parent placeholder is expanded with
`expand_parent` (its parent from `parent_of`), a step placeholder with `expand_deferred` (its
items rendered with `render_value`), a join collects, and a task node runs its real handler with
the `group` or `parent` that `node_scope` gives it. The shipped examples that need growth run through it with
their own functions and files, so the plan data is shown to carry everything a node needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loguru import logger

import plait
from plait.compiler import Plan, expand_deferred, expand_parent, node_scope, parent_of, thaw
from plait.tasks import TaskContext, get_kind
from plait.templating import render_shell, render_value, template_context

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def walk(plan: Plan, workspace: Path) -> tuple[Plan, dict[str, Any], list[str]]:
    """Run `plan` to the end in this thread; return the grown plan, every node's result, and the run order."""
    results: dict[str, Any] = {}
    ran: list[str] = []
    while True:
        ready = next((n for n in reversed(plan.nodes) if n not in results
                      and all(p in results for p in plan.graph.predecessors(n))), None)
        if ready is None:
            return plan, results, ran
        node, spec = plan.nodes[ready], plan.steps[plan.nodes[ready].step]
        if node.kind == "deferred":
            parent = parent_of(plan, ready)
            if parent is not None:
                plan = expand_parent(plan, parent, results[parent], step=node.step)
            else:
                context = template_context(plan.params, steps=_upstream(plan, ready, results), run_id="r",
                                           workspace=workspace, workflow_dir=plan.workflow_dir)
                plan = expand_deferred(plan, node.step, render_value(spec.items, context))
            continue
        if node.kind == "join":
            results[ready] = [results[p] for p in plan.graph.predecessors(ready)]
            continue
        scope = node_scope(plan, ready, results.get)
        ctx = TaskContext(workspace, "r", node.step, ready, 1, node.retry, logger, plan.workflow_dir,
                          params=plan.params, steps=_upstream(plan, ready, results), key=node.key,
                          index=node.index, total=None, **scope)
        kind = get_kind(node.task)
        config = _render(node.config, kind.fields or {}, ctx.template_context(node.item))
        results[ready] = json.loads(json.dumps(kind.handler(config, node.item, ctx)))
        ran.append(ready)


def _render(config: Any, fields: dict, context: dict) -> dict[str, Any]:
    """Render a node's config as the runtime does: raw fields as they are, shell fields quoted."""
    modes = {name: field.render for name, field in fields.items()}
    return {name: thaw(value) if modes.get(name) == "raw" else
            render_shell(value, context) if modes.get(name) == "shell" else render_value(value, context)
            for name, value in config.items()}


def _upstream(plan: Plan, nid: str, results: dict[str, Any]) -> dict[str, Any]:
    """What `steps.X` shows node `nid`: the upstream steps' results (whole batches in plan order)."""
    spec = plan.steps[plan.nodes[nid].step]
    view = {}
    for dep in spec.depends_on:
        if dep in (spec.group_by, spec.for_each):
            continue  # read as group or parent (or, for a plain for_each, not used by these examples)
        members = [n.id for n in plan.nodes.values() if n.step == dep and n.kind == "task"]
        view[dep] = {"result": results.get(dep)} if plan.steps[dep].kind == "single" else \
            {"results": [results.get(m) for m in members]}
    return view


def test_samples_example_merges_each_sample_from_its_own_replicates(tmp_path: Path) -> None:
    plan = plait.compile_workflow(EXAMPLES / "samples" / "workflow.yaml")

    _, results, ran = walk(plan, tmp_path)

    assert {k: v for k, v in results.items() if k.startswith("merge[")} == {
        "merge[A]": _merged(tmp_path, "A"), "merge[B]": _merged(tmp_path, "B"),
        "merge[C]": _merged(tmp_path, "C"), "merge[control]": _merged(tmp_path, "control")}
    assert [r["replicates"] for r in json.loads((tmp_path / "report.json").read_text())] == [[1, 2], [1, 2], [1], [1]]
    assert results["merge[A]"]["reads"] == sum(
        len((EXAMPLES / "samples" / "reads" / f"A-{r}.txt").read_text().split()) for r in (1, 2))
    assert ran.index("merge[control]") < ran.index("map_reads[A-1]")  # a sample merges once its own reps are done


def _merged(workspace: Path, sample: str) -> dict:
    return json.loads((workspace / "merged" / f"{sample}.json").read_text())


def test_scatter_example_gathers_each_file_from_its_own_chunks(tmp_path: Path) -> None:
    plan = plait.compile_workflow(EXAMPLES / "scatter" / "workflow.yaml", params={"lines": 4})

    grown, _, ran = walk(plan, tmp_path)

    files = sorted(p.name for p in (EXAMPLES / "scatter" / "data").glob("*.txt"))
    words = {f: len((EXAMPLES / "scatter" / "data" / f).read_text().split()) for f in files}
    lines = {f: len((EXAMPLES / "scatter" / "data" / f).read_text().splitlines()) for f in files}
    assert json.loads((tmp_path / "report.json").read_text()) == [
        {"file": f, "chunks": -(-lines[f] // 4), "lines": lines[f], "words": words[f]} for f in files]
    assert [n.id for n in grown if n.step == "count" and n.kind == "task"] == [
        f"count[{f}/{c}]" for f in files for c in range(-(-lines[f] // 4))]
    assert grown.deferred == []
    assert ran.index(f"gather[{files[-1]}]") < ran.index(f"split[{files[0]}]")  # each file gathers on its own
