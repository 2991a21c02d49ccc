"""The shapes real workflows have, compiled: matrix, zip, per-group fan-in, per-parent fan-out.

Each construct is checked through `plait.compile_workflow` and `plait compile`, with the node
list and the edge list compared whole; the run-time expansions (`expand_deferred`,
`expand_parent`) are pure functions of a plan, checked the same way.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import plait
from plait import template_limits
from plait.compiler import (
    Plan,
    WorkflowError,
    expand_deferred,
    expand_parent,
    expand_parents,
    group_view,
    grow_parents,
    node_scope,
    parent_of,
    parent_view,
)
from plait.templating import ItemRenderError, TemplateError, render, render_items, render_value, template_context


def compile_text(text: str, **params: object) -> Plan:
    return plait.compile_workflow(textwrap.dedent(text).lstrip(), params=params or None)


def node_rows(plan: Plan, step: str | None = None) -> list[tuple]:
    """The plan's nodes in plan order as (id, kind, key, item, index), of one step or all."""
    return [(n.id, n.kind, n.key, n.item, n.index) for n in plan if step is None or n.step == step]


def edges(plan: Plan) -> list[tuple[str, str]]:
    return sorted(plan.graph.edges)


def errors(text: str, **params: object) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        compile_text(text, **params)
    return [str(e) for e in caught.value.errors]


# --- matrix --------------------------------------------------------------------------------------

def test_matrix_include_follows_github_actions_rules() -> None:
    # The example of GitHub's docs ("Expanding or adding matrix configurations"), with its six jobs.
    plan = compile_text("""
        name: gh
        steps:
          - name: job
            task: noop
            items:
              matrix:
                fruit: [apple, pear]
                animal: [cat, dog]
                include:
                  - color: green
                  - color: pink
                    animal: cat
                  - fruit: apple
                    shape: circle
                  - fruit: banana
                  - fruit: banana
                    animal: cat
        """)

    assert node_rows(plan) == [
        ("job[apple-cat-pink-circle]", "task", "apple-cat-pink-circle",
         {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}, 0),
        ("job[apple-dog-green-circle]", "task", "apple-dog-green-circle",
         {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}, 1),
        ("job[pear-cat-pink]", "task", "pear-cat-pink", {"fruit": "pear", "animal": "cat", "color": "pink"}, 2),
        ("job[pear-dog-green]", "task", "pear-dog-green", {"fruit": "pear", "animal": "dog", "color": "green"}, 3),
        ("job[banana]", "task", "banana", {"fruit": "banana"}, 4),
        ("job[banana-cat]", "task", "banana-cat", {"fruit": "banana", "animal": "cat"}, 5),
    ]
    assert edges(plan) == []


def test_matrix_exclude_is_a_partial_match_and_include_comes_after_it() -> None:
    # GitHub's exclude example: 12 combinations, one excluded in full and two by a partial match;
    # an include then adds one back, extended by a value the matrix does not have.
    plan = compile_text("""
        name: gh
        steps:
          - name: job
            task: noop
            items:
              matrix:
                os: [macos, windows]
                version: [12, 14, 16]
                environment: [staging, production]
                exclude:
                  - {os: macos, version: 12, environment: production}
                  - {os: windows, version: 16}
                include:
                  - {os: windows, version: 16, environment: staging, experimental: true}
        """)

    assert [n.key for n in plan] == [
        "macos-12-staging", "macos-14-staging", "macos-14-production", "macos-16-staging", "macos-16-production",
        "windows-12-staging", "windows-12-production", "windows-14-staging", "windows-14-production",
        "windows-16-staging-true",
    ]
    assert plan.nodes["job[windows-16-staging-true]"].item == {
        "os": "windows", "version": 16, "environment": "staging", "experimental": True}


def test_matrix_of_include_entries_alone_is_that_list() -> None:
    plan = compile_text("""
        name: gh
        steps:
          - name: job
            task: noop
            items: {matrix: {include: [{a: 42}, {a: foo}]}}
        """)

    assert node_rows(plan) == [("job[42]", "task", "42", {"a": 42}, 0), ("job[foo]", "task", "foo", {"a": "foo"}, 1)]


def test_matrix_axis_from_a_param_and_a_key_template(tmp_path: Path, cli) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent("""
        name: samples
        params:
          samples: {type: array, default: [A, B]}
        steps:
          - name: map_reads
            task: noop
            items: {matrix: {sample: "{{ params.samples }}", rep: [1, 2]}}
          - name: tag
            task: noop
            items: {matrix: {sample: "{{ params.samples }}", lane: [x y]}}
            key: "{{ item.sample }}_{{ index }}"
        """))

    result = cli("compile", str(wf), "--param", "samples=[S1, S2, S3]", "--format", "json")

    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert [n["id"] for n in plan["nodes"]] == [
        "map_reads[S1-1]", "map_reads[S1-2]", "map_reads[S2-1]", "map_reads[S2-2]", "map_reads[S3-1]",
        "map_reads[S3-2]", "tag[S1_0]", "tag[S2_1]", "tag[S3_2]"]
    assert plan["nodes"][0]["item"] == {"sample": "S1", "rep": 1}
    assert plan["edges"] == []


def test_matrix_value_that_cannot_name_a_node_gives_a_content_hash() -> None:
    plan = compile_text("""
        name: gh
        steps:
          - name: job
            task: noop
            items: {matrix: {name: [plain, "two words"], opts: [{a: 1}]}}
        """)

    keys = [n.key for n in plan]
    assert len(keys) == 2 and all(len(k) == 12 and int(k, 16) >= 0 for k in keys) and keys[0] != keys[1]


def test_matrix_over_an_upstream_result_is_deferred_and_expands_like_a_static_one() -> None:
    deferred = compile_text("""
        name: late
        steps:
          - name: find
            task: noop
          - name: job
            task: noop
            items: {matrix: {sample: "{{ steps.find.result }}", rep: [1, 2]}}
          - name: merge
            task: noop
            group_by: {step: job, key: "{{ item.sample }}"}
        """)
    static = compile_text("""
        name: late
        steps:
          - name: job
            task: noop
            items: {matrix: {sample: [A, B], rep: [1, 2]}}
        """)
    context = template_context({}, steps={"find": {"result": ["A", "B"]}}, run_id="r", workspace="/w")

    expanded = expand_deferred(deferred, "job", render_value(deferred.steps["job"].items, context))

    assert node_rows(deferred) == [("find", "task", None, None, None), ("job", "deferred", None, None, None),
                                   ("merge", "deferred", None, None, None)]
    assert node_rows(expanded, "job")[:-1] == node_rows(static, "job")
    assert node_rows(expanded, "merge") == [("merge[A]", "task", "A", "A", 0), ("merge[B]", "task", "B", "B", 1),
                                            ("merge", "join", None, None, None)]
    assert edges(expanded) == [
        ("find", "job[A-1]"), ("find", "job[A-2]"), ("find", "job[B-1]"), ("find", "job[B-2]"),
        ("job[A-1]", "job"), ("job[A-1]", "merge[A]"), ("job[A-2]", "job"), ("job[A-2]", "merge[A]"),
        ("job[B-1]", "job"), ("job[B-1]", "merge[B]"), ("job[B-2]", "job"), ("job[B-2]", "merge[B]"),
        ("merge[A]", "merge"), ("merge[B]", "merge"),  # the groups stand for `merge` now, the members for them
    ]


# --- zip -----------------------------------------------------------------------------------------

def test_zip_pairs_values_position_by_position() -> None:
    plan = compile_text("""
        name: z
        params:
          ys: {type: array, default: [a, b, c]}
        steps:
          - name: add
            task: python
            items: {zip: {x: [1, 2, 3], y: "{{ params.ys }}"}}
            inputs: {function: "m:add", spread: true}
        """)

    assert node_rows(plan) == [("add[1-a]", "task", "1-a", {"x": 1, "y": "a"}, 0),
                               ("add[2-b]", "task", "2-b", {"x": 2, "y": "b"}, 1),
                               ("add[3-c]", "task", "3-c", {"x": 3, "y": "c"}, 2)]


def test_zip_lengths_from_params_that_differ_are_a_compile_error() -> None:
    assert errors("""
        name: z
        params:
          ys: {type: array, default: [a, b]}
        steps:
          - name: add
            task: noop
            items: {zip: {x: [1, 2, 3], y: "{{ params.ys }}"}}
        """) == ["<string>:7:18: error: step 'add': zip lists differ in length: 'x' has 3, 'y' has 2\n"
                 "  hint: zip takes values position by position: give every list the same length, "
                 "or use `matrix:` for every combination"]


def test_zip_over_upstream_results_that_differ_fails_its_expansion_with_a_location() -> None:
    plan = compile_text("""
        name: z
        steps:
          - name: xs
            task: noop
          - name: add
            task: noop
            items:
              zip: {x: "{{ steps.xs.result }}", y: [a, b]}
        """)
    context = template_context({}, steps={"xs": {"result": [1, 2, 3]}}, run_id="r", workspace="/w")

    with pytest.raises(WorkflowError) as caught:
        expand_deferred(plan, "add", render_value(plan.steps["add"].items, context))

    assert str(caught.value) == (
        "<string>:8:7: error: step 'add': its items: zip lists differ in length: 'x' has 3, 'y' has 2\n"
        "  hint: zip takes values position by position: give every list the same length, "
        "or use `matrix:` for every combination")


# --- group_by ------------------------------------------------------------------------------------

SAMPLES = """
    name: samples
    steps:
      - name: map_reads
        task: noop
        items: {matrix: {sample: [A, B, C], rep: [1, 2]}}
      - name: merge
        task: noop
        group_by: {step: map_reads, key: "{{ item.sample }}"}
        inputs: {n: "{{ group.results | length }}"}
      - name: call
        task: noop
        for_each: merge
      - name: report
        task: noop
        depends_on: [call]
    """


def test_group_by_gives_one_node_per_group_fed_by_its_members_only() -> None:
    plan = compile_text(SAMPLES)

    assert node_rows(plan, "merge") + node_rows(plan, "call") == [
        ("merge[A]", "task", "A", "A", 0), ("merge[B]", "task", "B", "B", 1), ("merge[C]", "task", "C", "C", 2),
        ("call[A]", "task", "A", "A", 0), ("call[B]", "task", "B", "B", 1), ("call[C]", "task", "C", "C", 2)]
    assert edges(plan) == [
        ("call[A]", "report"), ("call[B]", "report"), ("call[C]", "report"),
        ("map_reads[A-1]", "merge[A]"), ("map_reads[A-2]", "merge[A]"),
        ("map_reads[B-1]", "merge[B]"), ("map_reads[B-2]", "merge[B]"),
        ("map_reads[C-1]", "merge[C]"), ("map_reads[C-2]", "merge[C]"),
        ("merge[A]", "call[A]"), ("merge[B]", "call[B]"), ("merge[C]", "call[C]"),
    ]


def test_group_view_lists_the_groups_items_and_results_in_item_order() -> None:
    plan = compile_text(SAMPLES)
    results = {f"map_reads[{s}-{r}]": f"{s}{r}.bam" for s in "ABC" for r in (1, 2)}
    results["map_reads[B-2]"] = None  # failed: shows as None, as in steps.X.results

    view = group_view(plan, "merge[B]", results.get)

    assert view == {"key": "B", "items": [{"sample": "B", "rep": 1}, {"sample": "B", "rep": 2}],
                    "results": ["B1.bam", None]}
    assert node_scope(plan, "merge[B]", results.get) == {"group": view}
    assert node_scope(plan, "call[B]", results.get) == {}
    order = {nid: i for i, nid in enumerate(plan.nodes)}
    assert group_view(plan, "merge[A]", results.get, order)["results"] == ["A1.bam", "A2.bam"]


def test_group_view_leaves_out_other_predecessors_and_orders_members_whose_edges_came_out_of_order() -> None:
    text = SAMPLES.replace("group_by: {step: map_reads, key: \"{{ item.sample }}\"}",
                           "group_by: {step: map_reads, key: \"{{ item.sample }}\"}\n        depends_on: [ref]")
    text = text.replace("      - name: map_reads", "      - name: ref\n        task: noop\n      - name: map_reads")
    plan = compile_text(text)
    results = {f"map_reads[{s}-{r}]": f"{s}{r}.bam" for s in "ABC" for r in (1, 2)}
    assert "ref" in set(plan.graph.predecessors("merge[B]"))

    assert group_view(plan, "merge[B]", results.get)["results"] == ["B1.bam", "B2.bam"]

    graph = plan.graph.copy()
    graph.remove_edge("map_reads[C-1]", "merge[C]")
    graph.add_edge("map_reads[C-1]", "merge[C]")  # its edge now after C-2's, as a member that grew later
    turned = Plan(plan.workflow, plan.description, plan.source, plan.params, plan.steps, plan.nodes, graph,
                  workflow_dir=plan.workflow_dir)
    assert list(graph.predecessors("merge[C]"))[-1] == "map_reads[C-1]"
    for order in (None, {nid: i for i, nid in enumerate(plan.nodes)}):
        assert group_view(turned, "merge[C]", results.get, order) == {
            "key": "C", "items": [{"sample": "C", "rep": 1}, {"sample": "C", "rep": 2}],
            "results": ["C1.bam", "C2.bam"]}


def test_cli_compile_and_graph_show_groups(tmp_path: Path, cli) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent(SAMPLES))

    text = cli("compile", str(wf))
    graph = cli("graph", str(wf), "--format", "mermaid")

    assert text.code == 0, text.err
    assert text.out.splitlines()[1:6] == [
        "13 nodes, 12 edges, 4 steps:",
        "  map_reads  noop     batch of 6",
        "  merge      noop     3 groups (group_by map_reads)",
        "  call       noop     batch of 3 (for_each merge)",
        "  report     noop     1 node (after call)",
    ]
    assert graph.out.splitlines()[4:] == [
        '  n0[["map_reads<br/>noop × 6"]]',
        '  n1[["merge<br/>noop × 3 groups"]]',
        '  n2[["call<br/>noop × 3"]]',
        '  n3["report<br/>noop"]',
        "  n0 ==>|per group| n1",
        "  n1 ==>|per item| n2",
        "  n2 --> n3",
    ]


@pytest.mark.parametrize("source", [
    "{{ item // 100 }}", "{{ item.sample }}", "{{ item.sample | upper }}-{{ index }}", "{{ batch.total - index }}",
    "{{ [item.sample, params.n] }}", "{{ range(item.n) | list }}", "{{ parent.key if parent is defined else key }}",
    "plain", "{{ workflow_dir | basename }}", "{% set n = item.n %}{{ n }}{% for i in range(n) %}.{% endfor %}",
    "{{ batch }}", "{{ dict(a=key) }}",
])
def test_render_items_gives_what_render_gives_each_item(source: str) -> None:
    rows = [({"sample": "A", "n": 2}, 0, "k0", None), ({"sample": "b", "n": 0}, 1, "k1", {"key": "p", "item": 3}),
            ({"sample": "C", "n": 3}, 2, "k2", None)]
    if source == "{{ item // 100 }}":
        rows = [(100 * i + 7, *row[1:]) for i, row in enumerate(rows)]
    contexts = [template_context({"n": 7}, item=item, index=index, key=key, total=3, step="s", workflow_dir="/w/f",
                                 parent=parent) for item, index, key, parent in rows]

    rendered = render_items(source, {"n": 7}, rows, total=3, step="s", workflow_dir="/w/f")

    assert rendered == [render(source, context) for context in contexts]


def test_render_items_raises_at_the_row_that_fails() -> None:
    rows = [({"sample": "A"}, 0, None, None), ({}, 1, None, None), ({"sample": "C"}, 2, None, None)]
    with pytest.raises(ItemRenderError) as failed:
        render_items("{{ item.sample }}", {}, rows, total=3, step="s")
    assert failed.value.position == 1
    assert isinstance(failed.value.error, TemplateError)
    assert str(failed.value.error) == "'dict object' has no attribute 'sample'"


def test_render_items_gives_each_row_a_deadline_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row may take most of the budget (0.15 s of 0.2 here, on a clock the rows move): one deadline for all the
    rows would fail the second; the row that takes more than the budget fails."""
    now = [0.0]

    def spend(seconds: float) -> float:
        now[0] += seconds
        return seconds

    monkeypatch.setattr(template_limits, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(template_limits, "DEFAULT_SECONDS", 0.2)
    rows = [(spend, 0.15, None, None)] * 4 + [(spend, 0.3, None, None)]
    assert render_items("{{ item(index) ~ '' }}", {}, rows[:4], total=4, step="s") == ["0.15"] * 4
    with pytest.raises(ItemRenderError) as failed:
        render_items("{{ item(index) ~ '' }}", {}, rows, total=5, step="s")
    assert failed.value.position == 4
    assert isinstance(failed.value.error, template_limits.TemplateTimeout)
    assert str(failed.value.error) == "the template ran past its time budget of 0.2 s"


def test_group_keys_that_would_name_one_node_twice_are_refused() -> None:
    assert errors("""
        name: g
        steps:
          - name: s
            task: noop
            items: [1, "2", a]
          - name: g
            task: noop
            group_by: {step: s, key: "{{ 1 if item == 1 else '1' }}"}
        """) == ["<string>:8:30: error: step 'g': group keys 1 and '1' would both name node g[1]\n"
                 '  hint: make the group key give one type, e.g. "{{ item.sample | string }}"']


# --- per-parent fan-out --------------------------------------------------------------------------

SCATTER = """
    name: scatter
    steps:
      - name: split
        task: noop
        items: [a.txt, b.txt]
      - name: process
        task: noop
        for_each: split
        items: "{{ parent.result.chunks }}"
      - name: check
        task: noop
        for_each: process
      - name: gather
        task: noop
        group_by: {step: process, key: "{{ parent.key }}"}
      - name: total
        task: noop
        depends_on: [check]
    """


def test_fan_out_has_one_placeholder_per_parent_and_groups_known_from_the_parents() -> None:
    plan = compile_text(SCATTER)

    assert node_rows(plan) == [
        ("split[a.txt]", "task", "a.txt", "a.txt", 0), ("split[b.txt]", "task", "b.txt", "b.txt", 1),
        ("process[a.txt]", "deferred", "a.txt", None, 0), ("process[b.txt]", "deferred", "b.txt", None, 1),
        ("check[a.txt]", "deferred", "a.txt", None, 0), ("check[b.txt]", "deferred", "b.txt", None, 1),
        ("gather[a.txt]", "task", "a.txt", "a.txt", 0), ("gather[b.txt]", "task", "b.txt", "b.txt", 1),
        ("total", "task", None, None, None),
    ]
    assert edges(plan) == [
        ("check[a.txt]", "total"), ("check[b.txt]", "total"),
        ("process[a.txt]", "check[a.txt]"), ("process[a.txt]", "gather[a.txt]"),
        ("process[b.txt]", "check[b.txt]"), ("process[b.txt]", "gather[b.txt]"),
        ("split[a.txt]", "process[a.txt]"), ("split[b.txt]", "process[b.txt]"),
    ]
    assert plan.deferred == ["process", "check"]
    assert [parent_of(plan, n) for n in ("process[a.txt]", "check[a.txt]", "split[a.txt]")] == \
        ["split[a.txt]", None, None]


def test_expand_parent_gives_the_parent_its_own_children_and_its_group_their_results() -> None:
    plan = compile_text(SCATTER)

    grown = expand_parent(plan, "split[a.txt]", {"chunks": [0, 1, 2]})

    assert node_rows(grown) == [
        ("split[a.txt]", "task", "a.txt", "a.txt", 0), ("split[b.txt]", "task", "b.txt", "b.txt", 1),
        ("process[a.txt/0]", "task", "a.txt/0", 0, 0), ("process[a.txt/1]", "task", "a.txt/1", 1, 1),
        ("process[a.txt/2]", "task", "a.txt/2", 2, 2),
        ("process[a.txt]", "join", "a.txt", None, 0), ("process[b.txt]", "deferred", "b.txt", None, 1),
        ("check[a.txt/0]", "task", "a.txt/0", 0, 0), ("check[a.txt/1]", "task", "a.txt/1", 1, 1),
        ("check[a.txt/2]", "task", "a.txt/2", 2, 2),
        ("check[a.txt]", "join", "a.txt", None, 0), ("check[b.txt]", "deferred", "b.txt", None, 1),
        ("gather[a.txt]", "task", "a.txt", "a.txt", 0), ("gather[b.txt]", "task", "b.txt", "b.txt", 1),
        ("total", "task", None, None, None),
    ]
    assert edges(grown) == [
        ("check[a.txt/0]", "check[a.txt]"), ("check[a.txt/1]", "check[a.txt]"), ("check[a.txt/2]", "check[a.txt]"),
        ("check[a.txt]", "total"), ("check[b.txt]", "total"),
        ("process[a.txt/0]", "check[a.txt/0]"), ("process[a.txt/0]", "gather[a.txt]"),
        ("process[a.txt/0]", "process[a.txt]"),
        ("process[a.txt/1]", "check[a.txt/1]"), ("process[a.txt/1]", "gather[a.txt]"),
        ("process[a.txt/1]", "process[a.txt]"),
        ("process[a.txt/2]", "check[a.txt/2]"), ("process[a.txt/2]", "gather[a.txt]"),
        ("process[a.txt/2]", "process[a.txt]"),
        ("process[b.txt]", "check[b.txt]"), ("process[b.txt]", "gather[b.txt]"),
        ("split[a.txt]", "process[a.txt/0]"), ("split[a.txt]", "process[a.txt/1]"),
        ("split[a.txt]", "process[a.txt/2]"), ("split[b.txt]", "process[b.txt]"),
    ]
    order = {nid: i for i, nid in enumerate(grown.nodes)}
    assert all(order[u] < order[v] for u, v in grown.graph.edges)
    results = {"split[a.txt]": {"chunks": [0, 1, 2]}, "process[a.txt/1]": "one"}
    assert parent_view(grown, "process[a.txt/1]", results.get) == {
        "key": "a.txt", "item": "a.txt", "result": {"chunks": [0, 1, 2]}}
    assert node_scope(grown, "gather[a.txt]", results.get) == {
        "group": {"key": "a.txt", "items": [0, 1, 2], "results": [None, "one", None]}}
    assert plan.nodes["process[a.txt]"].kind == "deferred"  # the input plan is untouched
    assert edges(plan) == edges(compile_text(SCATTER)) and plan.to_json() == compile_text(SCATTER).to_json()


def test_grow_parents_grows_as_expand_parent_does_and_accounts_for_what_it_added() -> None:
    """The account the runtime updates its lookups by: the new nodes in plan order, the placeholders turned
    joins, the nodes already there that now wait for new ones, each parent's children; the children's
    adjacency, shared while the growth runs, is each node's own where a later link gave it an edge."""
    plan = compile_text(SCATTER)
    results = {"split[b.txt]": {"chunks": [0]}, "split[a.txt]": {"chunks": [0, 1]}}

    grown = grow_parents(plan, results, "process")

    one_by_one = expand_parent(expand_parent(plan, "split[b.txt]", results["split[b.txt]"]), "split[a.txt]",
                               results["split[a.txt]"])
    assert (node_rows(grown.plan), edges(grown.plan)) == (node_rows(one_by_one), edges(one_by_one))
    assert ([n.id for n in grown.new], grown.joins, grown.fed, grown.parents, grown.failed) == (
        ["process[a.txt/0]", "process[a.txt/1]", "process[b.txt/0]", "check[a.txt/0]", "check[a.txt/1]",
         "check[b.txt/0]"],
        ["process[b.txt]", "check[b.txt]", "process[a.txt]", "check[a.txt]"],
        ["gather[b.txt]", "gather[a.txt]"],
        {"split[b.txt]": ["process[b.txt/0]"], "split[a.txt]": ["process[a.txt/0]", "process[a.txt/1]"]},
        {})
    assert [n.id for n in grown.new] == [n for n in grown.plan.nodes if n not in plan.nodes]
    assert {n: dict(grown.plan.graph._pred[n]) for n in ("check[a.txt/0]", "check[a.txt/1]")} == {
        "check[a.txt/0]": {"process[a.txt/0]": {}}, "check[a.txt/1]": {"process[a.txt/1]": {}}}


def test_fan_out_key_template_names_each_child_under_its_parent() -> None:
    plan = compile_text("""
        name: scatter
        steps:
          - name: split
            task: noop
            items: {range: 2}
          - name: process
            task: noop
            for_each: split
            items: {range: "{{ parent.result }}"}
            key: "part{{ index }}-of-{{ parent.result }}"
        """)

    grown = expand_parent(expand_parent(plan, "split[0]", 1), "split[1]", 2)

    assert node_rows(grown, "process") == [
        ("process[0/part0-of-1]", "task", "0/part0-of-1", 0, 0), ("process[0]", "join", 0, None, 0),
        ("process[1/part0-of-2]", "task", "1/part0-of-2", 0, 0),
        ("process[1/part1-of-2]", "task", "1/part1-of-2", 1, 1),
        ("process[1]", "join", 1, None, 1)]
    assert grown.deferred == []


def test_group_key_reading_the_childs_item_groups_once_the_fan_out_is_whole() -> None:
    plan = compile_text("""
        name: scatter
        steps:
          - name: split
            task: noop
            items: [a, b]
          - name: process
            task: noop
            for_each: split
            items: "{{ parent.result }}"
          - name: by_kind
            task: noop
            group_by: {step: process, key: "{{ item.kind }}"}
        """)
    grown = expand_parent(plan, "split[a]", [{"kind": "x", "n": 1}, {"kind": "y", "n": 2}])
    grown = expand_parent(grown, "split[b]", [{"kind": "y", "n": 3}])
    child = {n.item["n"]: n.id for n in grown if n.step == "process" and n.kind == "task"}

    grouped = expand_deferred(grown, "by_kind", None)

    assert node_rows(plan, "by_kind") == [("by_kind", "deferred", None, None, None)]
    assert node_rows(grouped, "by_kind") == [("by_kind[x]", "task", "x", "x", 0), ("by_kind[y]", "task", "y", "y", 1),
                                              ("by_kind", "join", None, None, None)]
    assert sorted(grouped.graph.in_edges(["by_kind[x]", "by_kind[y]"])) == sorted([
        (child[1], "by_kind[x]"), (child[2], "by_kind[y]"), (child[3], "by_kind[y]")])


def test_fan_out_over_a_deferred_parent_gets_its_placeholders_when_the_parents_are_known() -> None:
    plan = compile_text("""
        name: scatter
        steps:
          - name: find
            task: noop
          - name: split
            task: noop
            items: "{{ steps.find.result }}"
          - name: process
            task: noop
            for_each: split
            items: "{{ parent.result }}"
          - name: gather
            task: noop
            group_by: {step: process, key: "{{ parent.item | upper }}"}
        """)

    parents = expand_deferred(plan, "split", ["a", "b"])
    grown = expand_parent(parents, "split[a]", ["x"])

    assert node_rows(parents)[1:] == [
        ("split[a]", "task", "a", "a", 0), ("split[b]", "task", "b", "b", 1), ("split", "join", None, None, None),
        ("process[a]", "deferred", "a", None, 0), ("process[b]", "deferred", "b", None, 1),
        ("process", "join", None, None, None),
        ("gather[A]", "task", "A", "A", 0), ("gather[B]", "task", "B", "B", 1), ("gather", "join", None, None, None)]
    assert edges(grown) == [
        ("find", "split[a]"), ("find", "split[b]"), ("gather[A]", "gather"), ("gather[B]", "gather"),
        ("process[a/x]", "gather[A]"), ("process[a/x]", "process[a]"),
        ("process[a]", "process"), ("process[b]", "gather[B]"), ("process[b]", "process"),
        ("split[a]", "process[a/x]"), ("split[a]", "split"), ("split[b]", "process[b]"), ("split[b]", "split"),
    ]


def test_fan_out_over_a_fan_out_expands_child_by_child() -> None:
    plan = compile_text("""
        name: nested
        steps:
          - name: top
            task: noop
            items: [t]
          - name: mid
            task: noop
            for_each: top
            items: "{{ parent.result }}"
          - name: leaf
            task: noop
            for_each: mid
            items: "{{ parent.result }}"
        """)

    mid = expand_parent(plan, "top[t]", [1, 2])
    leaf = expand_parent(mid, "mid[t/1]", ["p", "q"])

    assert node_rows(mid, "leaf") == [("leaf[t/1]", "deferred", "t/1", None, 0),
                                      ("leaf[t/2]", "deferred", "t/2", None, 1), ("leaf[t]", "join", "t", None, 0)]
    assert parent_of(mid, "leaf[t/1]") == "mid[t/1]"
    assert node_rows(leaf, "leaf") == [("leaf[t/1/p]", "task", "t/1/p", "p", 0),
                                       ("leaf[t/1/q]", "task", "t/1/q", "q", 1),
                                       ("leaf[t/1]", "join", "t/1", None, 0),
                                       ("leaf[t/2]", "deferred", "t/2", None, 1), ("leaf[t]", "join", "t", None, 0)]
    assert sorted(leaf.graph.in_edges("leaf[t/1/p]")) == [("mid[t/1]", "leaf[t/1/p]")]


@pytest.mark.parametrize(("result", "message"), [
    ({"chunks": "x"}, "step 'process': the items of parent split[a.txt] gave str, not a list"),
    ({}, "step 'process': the items of parent split[a.txt] do not render: 'dict object' has no attribute 'chunks'"),
    ({"chunks": []}, "step 'process' has no items"),
    ({"chunks": [1, "1"]}, "step 'process': two items have the key '1'"),
])
def test_a_bad_parent_result_fails_the_expansion_at_the_items(result: object, message: str) -> None:
    plan = compile_text(SCATTER)

    with pytest.raises(WorkflowError) as caught:
        expand_parent(plan, "split[a.txt]", result)

    assert [(str(e.loc), e.message) for e in caught.value.errors] == [("<string>:9:12", message)]


def test_expand_parents_grows_many_parents_at_once_and_leaves_a_bad_one_for_the_runtime() -> None:
    plan = compile_text(SCATTER)

    together, failed = expand_parents(plan, {"split[a.txt]": {"chunks": [0, 1]}, "split[b.txt]": {"chunks": "x"}})
    one_by_one = expand_parent(plan, "split[a.txt]", {"chunks": [0, 1]})

    assert node_rows(together) == node_rows(one_by_one)
    assert edges(together) == edges(one_by_one)
    assert {k: str(e) for k, e in failed.items()} == {
        "process[b.txt]": "<string>:9:12: error: step 'process': the items of parent split[b.txt] gave str, "
                          "not a list\n"
                          '  hint: the items template must give a list, e.g. "{{ parent.result }}"'}


def test_plan_with_every_shape_round_trips_through_json() -> None:
    plan = compile_text(SCATTER)
    grown = expand_parent(plan, "split[a.txt]", {"chunks": [0]})

    for p in (plan, grown):
        again = Plan.from_json(json.loads(json.dumps(p.to_json())))
        assert again.to_json() == p.to_json()
        assert again.steps == p.steps


# --- on_error as a template ----------------------------------------------------------------------

def test_on_error_template_reading_params_is_decided_at_compile_time() -> None:
    text = """
        name: e
        params:
          strict: {type: boolean, default: true}
        steps:
          - name: s
            task: noop
            items: [a]
            on_error: "{{ 'fail' if params.strict else 'continue' }}"
          - name: t
            task: noop
            items: [{x: 1, experimental: true}]
            on_error: "{{ item.experimental }}"
        """
    strict, lax = compile_text(text), compile_text(text, strict=False)

    assert (strict.steps["s"].on_error, strict.steps["s"].on_error_template) == ("fail", None)
    assert (lax.steps["s"].on_error, lax.steps["s"].on_error_template) == ("continue", None)
    assert (strict.steps["t"].on_error, strict.steps["t"].on_error_template) == ("fail", "{{ item.experimental }}")


# --- workflow_dir and spreading ------------------------------------------------------------------

def test_workflow_dir_is_known_to_templates_at_compile_time(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent("""
        name: dir
        steps:
          - name: s
            task: python
            items: ["{{ workflow_dir }}/a"]
            inputs: {function: "m:f", kwargs: {root: "{{ workflow_dir }}"}}
        """))

    plan = plait.compile_workflow(wf)

    assert [n.item for n in plan if n.step == "s"] == [f"{tmp_path}/a"]
    assert plan.steps["s"].config["kwargs"] == {"root": str(tmp_path)}
    assert plan.workflow_dir == tmp_path
