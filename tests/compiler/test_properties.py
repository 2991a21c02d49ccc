"""Properties of the compiler that must hold on any workflow, checked on generated step chains.

A generated workflow is a chain of steps, each one of: a plain step (depending on any earlier
steps, so a fan-in when one of them is a batch), a batch over literal items (which may also wait
for earlier steps, a join when it waits for a whole batch), or a `for_each` over an earlier batch.
`expected_plan` is a small model of DESIGN.md's wiring rules; the compiled plan must match it
exactly, node list and edge set, and keep its node IDs when the items are shuffled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait.compiler import Plan

REPO = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=50, deadline=None)


@dataclass(frozen=True)
class Step:
    name: str
    items: tuple | None = None  # a batch over literal items
    for_each: str | None = None
    depends_on: tuple[str, ...] = ()

    def to_yaml(self) -> dict:
        data: dict = {"name": self.name, "task": "shell"}
        if self.items is not None:
            data["items"] = list(self.items)
        if self.for_each is not None:
            data["for_each"] = self.for_each
        if self.depends_on:
            data["depends_on"] = list(self.depends_on)
        batch = self.items is not None or self.for_each is not None
        data["inputs"] = {"command": "echo {{ item }}" if batch else "echo done"}
        return data


def workflow_text(steps: list[Step]) -> str:
    """JSON is YAML: the workflow as text that `compile_workflow` reads."""
    return json.dumps({"name": "generated", "defaults": {}, "steps": [s.to_yaml() for s in steps]}, indent=1)


def compile_steps(steps: list[Step]) -> Plan:
    return plait.compile_workflow(workflow_text(steps))


_TEXT_ITEMS = st.lists(st.text(alphabet="abcxyz019._/-", min_size=1, max_size=6), min_size=1, max_size=6,
                       unique=True)
_INT_ITEMS = st.lists(st.integers(-50, 10_000), min_size=1, max_size=6, unique=True)


@st.composite
def workflows(draw: st.DrawFn) -> tuple[list[Step], list[Step]]:
    """Return a generated workflow and the same workflow with every item list shuffled."""
    steps: list[Step] = []
    shuffled: list[Step] = []
    for i in range(draw(st.integers(1, 6))):
        earlier = [s.name for s in steps]
        batches = [s.name for s in steps if s.items is not None or s.for_each is not None]
        kind = draw(st.sampled_from(["plain", "batch", "for_each"] if batches else ["plain", "batch"]))
        step = Step(f"s{i}")
        if kind == "for_each":
            step = replace(step, for_each=draw(st.sampled_from(batches)))
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        step = replace(step, depends_on=tuple(d for d in deps if d != step.for_each))
        if kind == "batch":
            items = draw(st.one_of(_TEXT_ITEMS, _INT_ITEMS))
            step = replace(step, items=tuple(items))
            shuffled.append(replace(step, items=tuple(draw(st.permutations(items)))))
        else:
            shuffled.append(step)
        steps.append(step)
    return steps, shuffled


def expected_plan(steps: list[Step]) -> tuple[list[str], set[tuple[str, str]]]:
    """Return the node IDs in plan order and the edges, by DESIGN.md's rules (a model of `expand`)."""
    by_name = {s.name: s for s in steps}

    def keys(step: Step) -> tuple | None:
        return step.items if step.items is not None else keys(by_name[step.for_each]) if step.for_each else None

    def nodes(step: Step) -> list[str]:
        k = keys(step)
        return [step.name] if k is None else [f"{step.name}[{key}]" for key in k]

    joins: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for step in steps:
        mine = nodes(step)
        if step.for_each:
            edges |= set(zip(nodes(by_name[step.for_each]), mine))  # item to item
        for dep in step.depends_on:
            theirs = nodes(by_name[dep])
            if keys(by_name[dep]) is None:
                edges |= {(dep, n) for n in mine}
            elif len(mine) == 1:
                edges |= {(m, mine[0]) for m in theirs}  # fan-in
            else:
                joins.add(dep)  # batch after a whole batch: through its join node
                edges |= {(dep, n) for n in mine} | {(m, dep) for m in theirs}
    order = [n for s in steps for n in nodes(s) + ([s.name] if s.name in joins else [])]
    return order, edges


@SETTINGS
@given(workflows())
def test_compiled_plan_matches_the_wiring_rules(generated: tuple[list[Step], list[Step]]) -> None:
    steps, _ = generated
    plan = compile_steps(steps)
    order, edges = expected_plan(steps)

    assert nx.is_directed_acyclic_graph(plan.graph)
    assert list(plan.nodes) == order
    assert set(plan.graph.edges) == edges
    assert set(plan.graph.nodes) == set(plan.nodes)


@SETTINGS
@given(workflows())
def test_node_counts_match_the_items(generated: tuple[list[Step], list[Step]]) -> None:
    steps, _ = generated
    plan = compile_steps(steps)
    by_name = {s.name: s for s in steps}

    def count(step: Step) -> int:
        if step.items is not None:
            return len(step.items)
        return count(by_name[step.for_each]) if step.for_each else 1

    counts = {s.name: sum(1 for n in plan if n.step == s.name and n.kind == "task") for s in steps}
    assert counts == {s.name: count(s) for s in steps}
    kinds = [(n.step, n.kind) for n in plan]
    assert list(plan.node_counts().items()) == [(k, kinds.count(k)) for k in dict.fromkeys(kinds)]
    assert all(n.id == n.step for n in plan if n.kind == "join")


@SETTINGS
@given(workflows())
def test_node_ids_are_unchanged_when_items_are_shuffled(generated: tuple[list[Step], list[Step]]) -> None:
    steps, shuffled = generated
    plan, reordered = compile_steps(steps), compile_steps(shuffled)

    def by_id(p: Plan) -> dict[str, tuple]:
        return {n.id: (n.step, n.kind, n.key, n.item) for n in p}

    assert by_id(reordered) == by_id(plan)
    assert set(reordered.graph.edges) == set(plan.graph.edges)


@SETTINGS
@given(workflows())
def test_plan_order_is_a_topological_order(generated: tuple[list[Step], list[Step]]) -> None:
    steps, _ = generated
    plan = compile_steps(steps)
    position = {nid: i for i, nid in enumerate(plan.nodes)}

    assert sorted(position.values()) == list(range(len(plan)))
    assert all(position[u] < position[v] for u, v in plan.graph.edges)
    assert [n.id for n in plan] == list(plan.nodes)


# --- the digest does not depend on PYTHONHASHSEED -----------------------------------------------

FIXED_WORKFLOWS = {
    "fan": """
        name: fan
        params:
          tags: {type: array, default: [z, a, m]}
          opts: {type: object, default: {b: 1, a: [2, 3], c: {y: 1, x: 2}}}
        steps:
          - name: fetch
            task: shell
            items: [k, c, x, a, q, b]
            inputs: {command: "fetch {{ item }}"}
          - name: parse
            task: python
            for_each: fetch
            inputs: {function: "m:f", kwargs: {opts: "{{ params.opts }}", tags: "{{ params.tags }}"}}
          - name: more
            task: shell
            items: [{x: 1, y: 2}, {b: 2, a: 1}, 7, 3]
            depends_on: [parse]
            inputs: {command: "more {{ item }}"}
          - name: report
            task: file
            inputs: {action: write, path: out.json, content: "{{ steps.more.results | tojson }}"}
        """,
    "deferred": """
        name: deferred
        steps:
          - name: find
            task: python
            inputs: {code: "result = ['b', 'a']"}
          - name: work
            task: shell
            items: "{{ steps.find.result }}"
            inputs: {command: "work {{ item }}"}
          - name: after
            task: shell
            for_each: work
            retry: {max_attempts: 3, retry_on: [OSError, ValueError, KeyError]}
            inputs: {command: "after {{ item }}"}
        """,
}

_PRINT_DIGESTS = (
    "import sys, plait\n"
    "for path in sys.argv[1:]:\n"
    "    print(plait.compile_workflow(path).digest)\n"
)


def _digests(paths: list[Path], seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _PRINT_DIGESTS, *map(str, paths)], env=env, cwd=paths[0].parent,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_digest_is_the_same_under_any_hash_seed(tmp_path: Path) -> None:
    paths = []
    for name, text in FIXED_WORKFLOWS.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        paths.append(path)
    here = [plait.compile_workflow(p).digest for p in paths]

    seed0, seed1, seed_big = (_digests(paths, s) for s in ("0", "1", "4242"))

    assert seed0 == seed1 == seed_big == here
    assert len(set(here)) == len(here)


@pytest.mark.parametrize("name", sorted(FIXED_WORKFLOWS))
def test_fixed_workflows_satisfy_the_properties(name: str) -> None:
    plan = plait.compile_workflow(textwrap.dedent(FIXED_WORKFLOWS[name]).lstrip())
    position = {nid: i for i, nid in enumerate(plan.nodes)}

    assert nx.is_directed_acyclic_graph(plan.graph)
    assert all(position[u] < position[v] for u, v in plan.graph.edges)
