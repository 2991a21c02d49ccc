"""Properties of matrix and group_by that must hold on any input, checked on generated workflows.

- A matrix has as many items as the axes' product, minus the combinations an exclude entry
  matches, plus the include entries that join no combination left (GitHub Actions' rules).
- Every group node depends on exactly its group's members, and nothing else.
- Node IDs, items and edges do not change when axis values or items are reordered.
"""

from __future__ import annotations

import itertools
import json

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait.compiler import Plan

SETTINGS = settings(max_examples=60, deadline=None)

_VALUES = st.one_of(st.integers(-5, 50), st.sampled_from(["a", "b", "lin", "mac", "x.y", "3.11"]))


@st.composite
def matrices(draw: st.DrawFn) -> tuple[dict, dict]:
    """Return a matrix spec and the same spec with every axis's values shuffled."""
    names = draw(st.lists(st.sampled_from(["os", "py", "db", "arch"]), min_size=1, max_size=3, unique=True))
    axes = {n: draw(st.lists(_VALUES, min_size=1, max_size=4, unique_by=str)) for n in names}

    def entry(keys: list[str]) -> dict:
        chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=len(keys), unique=True))
        return {k: draw(st.sampled_from(axes[k])) if k in axes and draw(st.booleans()) else draw(_VALUES)
                for k in chosen}

    exclude = draw(st.lists(st.builds(lambda: None).map(lambda _: entry(names)), max_size=3))
    include = draw(st.lists(st.builds(lambda: None).map(lambda _: entry([*names, "extra", "flag"])), max_size=3))
    spec = {**axes, "exclude": exclude, "include": include}
    shuffled = {**{n: draw(st.permutations(v)) for n, v in axes.items()}, "exclude": exclude, "include": include}
    return spec, shuffled


def compile_matrix(spec: dict) -> Plan:
    text = json.dumps({"name": "m", "steps": [{"name": "job", "task": "noop", "items": {"matrix": spec},
                                               "allow_empty": True}]})
    return plait.compile_workflow(text)


def expected_size(spec: dict) -> int:
    axes = {k: v for k, v in spec.items() if k not in ("include", "exclude")}
    product = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    left = [c for c in product if not any(all(c[k] == v for k, v in e.items()) for e in spec["exclude"])]
    joins = [i for i in spec["include"] if any(all(c[k] == v for k, v in i.items() if k in axes) for c in left)]
    return len(left) + len(spec["include"]) - len(joins)


def unique_keys(spec: dict) -> bool:
    """Say whether the matrix names its items apart (values such as 1 and '1' would not be)."""
    try:
        compile_matrix(spec)
    except plait.WorkflowError as err:
        return not any("two items have the key" in e.message for e in err.errors)
    return True


@SETTINGS
@given(matrices())
def test_matrix_size_is_product_minus_excluded_plus_included(generated: tuple[dict, dict]) -> None:
    spec, _ = generated
    if not unique_keys(spec):
        return  # two combinations that name the same node: refused, with their key (tested elsewhere)

    plan = compile_matrix(spec)

    assert len(plan) == expected_size(spec)
    assert all(n.kind == "task" and n.id == f"job[{n.key}]" for n in plan)


@SETTINGS
@given(matrices())
def test_matrix_ids_and_items_are_stable_when_axis_values_are_reordered(generated: tuple[dict, dict]) -> None:
    spec, shuffled = generated
    if not unique_keys(spec):
        return

    def by_id(plan: Plan) -> dict:
        return {n.id: n.item for n in plan}

    assert by_id(compile_matrix(shuffled)) == by_id(compile_matrix(spec))


_MEMBERS = st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(0, 30)), min_size=1, max_size=12, unique=True)


def compile_groups(members: list[tuple[str, int]], fan_in: bool) -> Plan:
    steps: list[dict] = [
        {"name": "map_reads", "task": "noop", "items": [{"sample": s, "rep": r} for s, r in members],
         "key": "{{ item.sample }}{{ item.rep }}"},
        {"name": "ref", "task": "noop"},
        {"name": "merge", "task": "noop", "group_by": {"step": "map_reads", "key": "{{ item.sample }}"},
         "depends_on": ["ref"]},
    ]
    if fan_in:
        steps.append({"name": "report", "task": "noop", "depends_on": ["merge"]})
    return plait.compile_workflow(json.dumps({"name": "g", "steps": steps}))


@SETTINGS
@given(_MEMBERS, st.booleans())
def test_every_group_node_depends_exactly_on_its_members(members: list[tuple[str, int]], fan_in: bool) -> None:
    plan = compile_groups(members, fan_in)

    groups = {s: {f"map_reads[{s}{r}]" for t, r in members if t == s} for s, _ in members}
    assert [n.key for n in plan if n.step == "merge"] == list(dict.fromkeys(s for s, _ in members))
    assert {g: set(plan.graph.predecessors(f"merge[{g}]")) - {"ref"} for g in groups} == groups
    assert all("ref" in plan.graph.predecessors(f"merge[{g}]") for g in groups)
    assert sum(1 for u, v in plan.graph.edges if plan.nodes[u].step == "map_reads") == len(members)  # n edges
    assert nx.is_directed_acyclic_graph(plan.graph)


@SETTINGS
@given(_MEMBERS, st.randoms())
def test_group_nodes_and_edges_are_stable_when_items_are_reordered(members: list[tuple[str, int]],
                                                                   rng: object) -> None:
    shuffled = list(members)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]

    plan, reordered = compile_groups(members, True), compile_groups(shuffled, True)

    assert {n.id: n.item for n in reordered} == {n.id: n.item for n in plan}
    assert set(reordered.graph.edges) == set(plan.graph.edges)
