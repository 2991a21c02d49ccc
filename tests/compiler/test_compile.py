"""The compiler through its two front doors: `plait.compile_workflow` and `plait compile|graph`.

Plans are checked as whole values: the expected node list and edge list are written out and
compared in full, so an extra node or a missing edge fails as clearly as a wrong one.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import networkx as nx
import pytest

import plait
from plait.compiler import FrozenDict, Plan, WorkflowError, expand_deferred


def write(folder: Path, text: str, name: str = "wf.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def compile_text(text: str, **params: object) -> Plan:
    return plait.compile_workflow(textwrap.dedent(text).lstrip(), params=params or None)


def node_rows(plan: Plan) -> list[tuple]:
    """The plan's nodes in plan order as (id, step, kind, task, key, item, index)."""
    return [(n.id, n.step, n.kind, n.task, n.key, n.item, n.index) for n in plan]


def edges(plan: Plan) -> list[tuple[str, str]]:
    return sorted(plan.graph.edges)


def listing(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


# --- node IDs and wiring -------------------------------------------------------------------------

CHAIN = """
    name: chain
    steps:
      - name: fetch
        task: shell
        items: [a, b, c]
        inputs: {command: "fetch {{ item }}"}
      - name: parse
        task: shell
        for_each: fetch
        inputs: {command: "parse {{ item }}"}
      - name: report
        task: shell
        depends_on: [parse]
        inputs: {command: "report"}
    """


def test_batch_for_each_and_fan_in_nodes_and_edges() -> None:
    plan = compile_text(CHAIN)

    assert node_rows(plan) == [
        ("fetch[a]", "fetch", "task", "shell", "a", "a", 0),
        ("fetch[b]", "fetch", "task", "shell", "b", "b", 1),
        ("fetch[c]", "fetch", "task", "shell", "c", "c", 2),
        ("parse[a]", "parse", "task", "shell", "a", "a", 0),
        ("parse[b]", "parse", "task", "shell", "b", "b", 1),
        ("parse[c]", "parse", "task", "shell", "c", "c", 2),
        ("report", "report", "task", "shell", None, None, None),
    ]
    assert edges(plan) == [
        ("fetch[a]", "parse[a]"),  # for_each: item to item
        ("fetch[b]", "parse[b]"),
        ("fetch[c]", "parse[c]"),
        ("parse[a]", "report"),  # fan-in: every item
        ("parse[b]", "report"),
        ("parse[c]", "report"),
    ]
    assert set(plan.graph.nodes) == set(plan.nodes)
    assert [s.kind for s in plan.steps.values()] == ["batch", "batch", "single"]


JOIN = """
    name: join
    steps:
      - name: a
        task: shell
        items: [x, y]
        inputs: {command: "a {{ item }}"}
      - name: b
        task: shell
        items: [1, 2, 3]
        depends_on: [a]
        inputs: {command: "b {{ item }}"}
    """


def test_batch_after_a_whole_batch_goes_through_a_join_node() -> None:
    plan = compile_text(JOIN)

    assert node_rows(plan) == [
        ("a[x]", "a", "task", "shell", "x", "x", 0),
        ("a[y]", "a", "task", "shell", "y", "y", 1),
        ("a", "a", "join", "join", None, None, None),
        ("b[1]", "b", "task", "shell", 1, 1, 0),
        ("b[2]", "b", "task", "shell", 2, 2, 1),
        ("b[3]", "b", "task", "shell", 3, 3, 2),
    ]
    assert edges(plan) == [("a", "b[1]"), ("a", "b[2]"), ("a", "b[3]"), ("a[x]", "a"), ("a[y]", "a")]
    assert plan.nodes["a"].config == {}


def test_a_template_naming_a_step_adds_the_dependency() -> None:
    plan = compile_text("""
        name: implicit
        steps:
          - name: fetch
            task: shell
            items: [a, b]
            inputs: {command: "fetch {{ item }}"}
          - name: report
            task: file
            inputs: {action: write, path: out.json, content: "{{ steps.fetch.results | tojson }}"}
        """)

    assert plan.steps["report"].depends_on == ("fetch",)
    assert edges(plan) == [("fetch[a]", "report"), ("fetch[b]", "report")]


def test_long_and_structured_items_get_a_short_content_hash_key() -> None:
    plan = compile_text("""
        name: hashed
        steps:
          - name: s
            task: shell
            items: [{x: 1}, "has space", short]
            inputs: {command: "echo {{ item }}"}
        """)

    keys = [n.key for n in plan]
    assert keys[2] == "short"
    assert all(len(k) == 12 and int(k, 16) >= 0 for k in keys[:2])
    assert plan.nodes[f"s[{keys[0]}]"].item == {"x": 1}


# --- item sources --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "items"),
    [
        ("{range: 3}", [0, 1, 2]),
        ("{range: [3]}", [0, 1, 2]),
        ("{range: [2, 5]}", [2, 3, 4]),
        ("{range: [0, 10, 4]}", [0, 4, 8]),
        ("{range: [3, 0, -1]}", [3, 2, 1]),
        ('{range: "{{ params.n }}"}', [0, 1, 2, 3]),
        ('{range: ["{{ params.n }}", 6]}', [4, 5]),
    ],
)
def test_range_items(source: str, items: list[int]) -> None:
    plan = compile_text(f"""
        name: ranges
        params:
          n: {{type: integer, default: 4}}
        steps:
          - name: s
            task: shell
            items: {source}
            inputs: {{command: "echo {{{{ item }}}}"}}
        """)

    assert node_rows(plan) == [(f"s[{i}]", "s", "task", "shell", i, i, n) for n, i in enumerate(items)]


GLOB = """
    name: photos
    steps:
      - name: resize
        task: shell
        items: {glob: "photos/*.jpg"}
        inputs: {command: "resize {{ item }}"}
    """


def test_glob_items_are_absolute_paths_keyed_as_matched(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg", "skip.png"):
        (tmp_path / "photos" / name).write_text("x")
    wf = write(tmp_path, GLOB)

    plan = plait.compile_workflow(wf)

    photos = (tmp_path / "photos").resolve()
    assert node_rows(plan) == [
        ("resize[photos/a.jpg]", "resize", "task", "shell", "photos/a.jpg", str(photos / "a.jpg"), 0),
        ("resize[photos/b.jpg]", "resize", "task", "shell", "photos/b.jpg", str(photos / "b.jpg"), 1),
    ]


def test_a_new_file_in_a_glob_adds_one_node_and_changes_no_other_id(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "d.jpg"):
        (tmp_path / "photos" / name).write_text("x")
    wf = write(tmp_path, GLOB)
    before = plait.compile_workflow(wf)

    (tmp_path / "photos" / "a.jpg").write_text("x")  # sorts first: shifts every index
    after = plait.compile_workflow(wf)

    assert set(after.nodes) - set(before.nodes) == {"resize[photos/a.jpg]"}
    assert set(before.nodes) <= set(after.nodes)
    for nid in before.nodes:
        assert (after.nodes[nid].key, after.nodes[nid].item) == (before.nodes[nid].key, before.nodes[nid].item)


def test_glob_with_key_template(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg"):
        (tmp_path / "photos" / name).write_text("x")
    wf = write(tmp_path, GLOB.replace("    inputs:", '    key: "{{ item | basename }}"\n        inputs:', 1))

    plan = plait.compile_workflow(wf)

    assert [(n.id, n.key) for n in plan] == [("resize[a.jpg]", "a.jpg"), ("resize[b.jpg]", "b.jpg")]


def test_key_template_over_literal_items() -> None:
    plan = compile_text("""
        name: keyed
        steps:
          - name: s
            task: shell
            items: [in/x.csv, in/y.csv]
            key: "{{ item | stem }}-{{ batch.total }}"
            inputs: {command: "echo {{ item }}"}
        """)

    assert node_rows(plan) == [
        ("s[x-2]", "s", "task", "shell", "x-2", "in/x.csv", 0),
        ("s[y-2]", "s", "task", "shell", "y-2", "in/y.csv", 1),
    ]


def test_lines_items_skip_blank_lines_and_comments(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("# urls\nalpha\n\n  beta  \n# gamma\ndelta\n")
    wf = write(tmp_path, """
        name: lines
        steps:
          - name: get
            task: shell
            items: {lines: urls.txt}
            inputs: {command: "curl {{ item }}"}
        """)

    plan = plait.compile_workflow(wf)

    assert [(n.id, n.item) for n in plan] == [("get[alpha]", "alpha"), ("get[beta]", "beta"), ("get[delta]", "delta")]


def test_items_template_over_params_is_expanded_at_compile_time() -> None:
    plan = compile_text("""
        name: param-items
        params:
          names: {type: array, default: [p, q]}
        steps:
          - name: s
            task: shell
            items: "{{ params.names }}"
            inputs: {command: "echo {{ item }}"}
        """)

    assert [n.id for n in plan] == ["s[p]", "s[q]"]
    assert plan.deferred == []


# --- deferred steps ------------------------------------------------------------------------------

DEFERRED = """
    name: deferred
    steps:
      - name: list
        task: python
        inputs: {code: "result = ['in/a.txt', 'in/b.txt']"}
      - name: proc
        task: shell
        items: "{{ steps.list.result }}"
        key: "{{ item | basename }}"
        inputs: {command: "proc {{ item }}"}
      - name: post
        task: shell
        for_each: proc
        inputs: {command: "post {{ item }}"}
      - name: final
        task: shell
        depends_on: [post]
        inputs: {command: "final"}
    """


def test_deferred_step_and_its_for_each_stay_one_node_each() -> None:
    plan = compile_text(DEFERRED)

    assert node_rows(plan) == [
        ("list", "list", "task", "python", None, None, None),
        ("proc", "proc", "deferred", "shell", None, None, None),
        ("post", "post", "deferred", "shell", None, None, None),
        ("final", "final", "task", "shell", None, None, None),
    ]
    assert edges(plan) == [("list", "proc"), ("post", "final"), ("proc", "post")]
    assert plan.deferred == ["proc", "post"]
    assert plan.steps["proc"].items == "{{ steps.list.result }}"


def test_expand_deferred_gives_the_keys_of_compile_time_expansion() -> None:
    items = ["in/a.txt", "in/b.txt"]
    deferred = compile_text(DEFERRED)

    expanded = expand_deferred(deferred, "proc", items)

    static = compile_text(DEFERRED.replace('"{{ steps.list.result }}"', json.dumps(items)))
    task_rows = [r for r in node_rows(expanded) if r[2] == "task" and r[1] in ("proc", "post")]
    assert task_rows == [r for r in node_rows(static) if r[1] in ("proc", "post")]
    assert node_rows(expanded) == [
        ("list", "list", "task", "python", None, None, None),
        ("proc[a.txt]", "proc", "task", "shell", "a.txt", "in/a.txt", 0),
        ("proc[b.txt]", "proc", "task", "shell", "b.txt", "in/b.txt", 1),
        ("proc", "proc", "join", "join", None, None, None),
        ("post[a.txt]", "post", "task", "shell", "a.txt", "in/a.txt", 0),
        ("post[b.txt]", "post", "task", "shell", "b.txt", "in/b.txt", 1),
        ("post", "post", "join", "join", None, None, None),
        ("final", "final", "task", "shell", None, None, None),
    ]
    assert edges(expanded) == [
        ("list", "proc[a.txt]"),
        ("list", "proc[b.txt]"),
        ("post", "final"),
        ("post[a.txt]", "post"),
        ("post[b.txt]", "post"),
        ("proc[a.txt]", "post[a.txt]"),
        ("proc[a.txt]", "proc"),
        ("proc[b.txt]", "post[b.txt]"),
        ("proc[b.txt]", "proc"),
    ]
    assert expanded.deferred == []
    order = {nid: i for i, nid in enumerate(expanded.nodes)}
    assert all(order[u] < order[v] for u, v in expanded.graph.edges)  # plan order stays topological
    assert node_rows(deferred)[1] == ("proc", "proc", "deferred", "shell", None, None, None)  # input untouched


def test_expand_deferred_refuses_bad_items() -> None:
    plan = compile_text(DEFERRED)

    messages = []
    for items in ("in/a.txt", [], ["x/a.txt", "y/a.txt"]):
        with pytest.raises(WorkflowError) as caught:
            expand_deferred(plan, "proc", items)  # type: ignore[arg-type]
        messages.append(str(caught.value))

    assert messages == [  # each located at the step's items
        "<string>:8:12: error: step 'proc': its items gave str, not a list\n"
        '  hint: the items template must give a list, e.g. "{{ steps.find.result }}"',
        "<string>:8:12: error: step 'proc' has no items\n"
        "  hint: its upstream gave an empty list; set `allow_empty: true` if that is fine",
        "<string>:8:12: error: step 'proc': two items have the key 'a.txt'\n"
        "  hint: keys name nodes and must be unique: remove the duplicate item, "
        "or set `key:` to something that tells them apart",
    ]


# --- config rendering ----------------------------------------------------------------------------

RENDER = """
    name: render
    params:
      n: {type: integer, default: 3}
      tag: {type: string, default: v1}
    steps:
      - name: py
        task: python
        inputs:
          function: "mod:func"
          kwargs: {n: "{{ params.n }}", label: "run-{{ params.tag }}", nums: ["{{ params.n }}", 1]}
      - name: sh
        task: shell
        inputs: {command: "echo {{ params.n }} {{ params.tag }}"}
    """


def test_params_only_templates_render_at_compile_time_and_keep_their_type() -> None:
    plan = compile_text(RENDER)

    assert plan.steps["py"].config == {"function": "mod:func",
                                       "kwargs": {"n": 3, "label": "run-v1", "nums": (3, 1)}}
    assert type(plan.steps["py"].config["kwargs"]["n"]) is int
    assert plan.params == {"n": 3, "tag": "v1"}


def test_shell_commands_are_not_rendered_at_compile_time() -> None:
    plan = compile_text(RENDER)

    assert plan.steps["sh"].config == {"command": "echo {{ params.n }} {{ params.tag }}"}


def test_typed_params_override_from_the_api() -> None:
    plan = compile_text(RENDER, n=7)

    assert plan.params == {"n": 7, "tag": "v1"}
    assert plan.steps["py"].config["kwargs"]["n"] == 7


# --- the Plan ------------------------------------------------------------------------------------


def test_plan_is_immutable() -> None:
    plan = compile_text(RENDER)

    with pytest.raises(AttributeError):
        plan.workflow = "other"
    with pytest.raises(TypeError):
        plan.steps["py"].config["function"] = "evil:func"  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.steps["py"].config["kwargs"].update(n=1)
    with pytest.raises(TypeError):
        plan.nodes["sh"] = plan.nodes["py"]  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.params["n"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        plan.nodes["py"].task = "shell"  # type: ignore[misc]
    with pytest.raises(nx.NetworkXError):
        plan.graph.add_edge("sh", "py")
    assert isinstance(plan.steps["py"].config, FrozenDict)


def test_plan_json_round_trip(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_text("x")
    plan = plait.compile_workflow(write(tmp_path, GLOB))
    for text in (CHAIN, DEFERRED, RENDER):
        _assert_round_trip(compile_text(text))
    _assert_round_trip(plan)


def test_plan_json_round_trip_with_join_nodes() -> None:
    _assert_round_trip(expand_deferred(compile_text(DEFERRED), "proc", ["a", "b"]))
    _assert_round_trip(compile_text(JOIN))


def _assert_round_trip(plan: Plan) -> None:
    data = json.loads(json.dumps(plan.to_json()))
    back = Plan.from_json(data)

    assert back.digest == plan.digest == data["digest"]
    assert list(back.node_counts().items()) == list(plan.node_counts().items()) == list(_recount(plan).items())
    assert dict(back.nodes) == dict(plan.nodes)
    assert list(back.nodes) == list(plan.nodes)
    assert dict(back.steps) == dict(plan.steps)
    assert edges(back) == edges(plan)


def test_batch_task_form_and_iterate_over_compile_like_items() -> None:
    items_form = compile_text("""
        name: forms
        steps:
          - name: s
            task: shell
            items: [x, y]
            inputs: {command: "echo {{ item }}"}
        """)
    batch_form = compile_text("""
        name: forms
        steps:
          - name: s
            task: batch
            inputs:
              items: [x, y]
              task: {task: shell, inputs: {command: "echo {{ item }}"}}
        """)
    iterate_form = compile_text("""
        name: forms
        steps:
          - name: s
            task: shell
            iterate_over: [x, y]
            inputs: {command: "echo {{ item }}"}
        """)

    assert node_rows(items_form) == [("s[x]", "s", "task", "shell", "x", "x", 0),
                                     ("s[y]", "s", "task", "shell", "y", "y", 1)]
    assert batch_form.to_json() == items_form.to_json()
    assert iterate_form.to_json() == items_form.to_json()


def test_workflow_error_carries_every_diagnostic_as_data() -> None:
    with pytest.raises(WorkflowError) as caught:
        compile_text("""
            name: two-errors
            steps:
              - name: a
                task: shel
              - name: b
                task: shell
                depends_on: [zz]
                inputs: {command: echo}
            """)

    err = caught.value
    assert [(str(d.loc), d.message) for d in err.errors] == [
        ("<string>:4:11", "step 'a' has unknown task 'shel'"),
        ("<string>:7:18", "step 'b' depends on unknown step 'zz'"),
    ]
    assert err.loc == err.errors[0].loc


# --- purity --------------------------------------------------------------------------------------


def test_compiling_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    project, cwd = tmp_path / "project", tmp_path / "cwd"
    (project / "photos").mkdir(parents=True)
    cwd.mkdir()
    (project / "photos" / "a.jpg").write_text("x")
    (project / "urls.txt").write_text("u1\nu2\n")
    wf = write(project, """
        name: pure
        steps:
          - name: resize
            task: python
            items: {glob: "photos/*.jpg"}
            inputs: {function: "helpers:resize"}
          - name: get
            task: shell
            items: {lines: urls.txt}
            inputs: {command: "curl {{ item }}"}
          - name: index
            task: file
            inputs: {action: write, path: out/index.json, content: "{{ steps.resize.results | tojson }}"}
        """)
    monkeypatch.chdir(cwd)
    before = listing(project, cwd)

    plait.compile_workflow(wf)
    results = [cli("compile", str(wf)), cli("compile", str(wf), "--format", "json"), cli("graph", str(wf)),
               cli("graph", str(wf), "--format", "mermaid", "--expand")]

    assert [r.code for r in results] == [0, 0, 0, 0]
    assert listing(project, cwd) == before


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    return write(tmp_path, CHAIN)


def test_cli_compile_json(chain_file: Path, cli) -> None:
    result = cli("compile", str(chain_file), "--format", "json")

    assert (result.code, result.err) == (0, "")
    data = json.loads(result.out)
    assert data["workflow"] == "chain"
    assert [{k: n[k] for k in ("id", "step", "key", "task")} for n in data["nodes"]] == [
        {"id": "fetch[a]", "step": "fetch", "key": "a", "task": "shell"},
        {"id": "fetch[b]", "step": "fetch", "key": "b", "task": "shell"},
        {"id": "fetch[c]", "step": "fetch", "key": "c", "task": "shell"},
        {"id": "parse[a]", "step": "parse", "key": "a", "task": "shell"},
        {"id": "parse[b]", "step": "parse", "key": "b", "task": "shell"},
        {"id": "parse[c]", "step": "parse", "key": "c", "task": "shell"},
        {"id": "report", "step": "report", "key": None, "task": "shell"},
    ]
    assert data["edges"] == [["fetch[a]", "parse[a]"], ["fetch[b]", "parse[b]"], ["fetch[c]", "parse[c]"],
                             ["parse[a]", "report"], ["parse[b]", "report"], ["parse[c]", "report"]]
    assert data["digest"] == plait.compile_workflow(chain_file).digest


def test_cli_compile_text(chain_file: Path, cli) -> None:
    result = cli("compile", str(chain_file))

    digest = plait.compile_workflow(chain_file).digest
    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent(f"""\
        workflow chain
        7 nodes, 6 edges, 3 steps:
          fetch   shell    batch of 3
          parse   shell    batch of 3 (for_each fetch)
          report  shell    1 node (after parse)
        digest: {digest[:16]}
        """)


def test_cli_param_overrides_a_typed_param(tmp_path: Path, cli) -> None:
    wf = write(tmp_path, """
        name: sized
        params:
          n: {type: integer, default: 2}
          big: {type: boolean, default: false}
        steps:
          - name: s
            task: python
            items: {range: "{{ params.n }}"}
            inputs: {function: "m:f", kwargs: {n: "{{ params.n }}", big: "{{ params.big }}"}}
        """)

    result = cli("compile", str(wf), "--param", "n=3", "-p", "big=yes", "--format", "json")

    assert (result.code, result.err) == (0, "")
    data = json.loads(result.out)
    assert data["params"] == {"n": 3, "big": True}
    assert [n["id"] for n in data["nodes"]] == ["s[0]", "s[1]", "s[2]"]
    assert data["steps"][0]["config"]["kwargs"] == {"n": 3, "big": True}


def test_cli_bad_param_override_is_exit_2_with_a_message(tmp_path: Path, cli) -> None:
    wf = write(tmp_path, "name: p\nparams:\n  n: {type: integer, default: 2}\nsteps:\n"
                         "  - name: s\n    task: shell\n    inputs: {command: echo}\n")

    assert cli("compile", str(wf), "--param", "n").err == (
        "plait: error: --param 'n' is not NAME=VALUE (for example --param size=256)\n")
    assert cli("compile", str(wf), "--param", "n=x").err == (
        f"{wf}:3:3: error: parameter 'n': 'x' is not an integer\n  hint: 'n' is declared as integer here\n")
    assert cli("compile", str(wf), "--param", "m=1").err == (
        f"{wf}:3:3: error: unknown parameter 'm' given as an override\n  hint: declared parameters: n\n")


def test_cli_bad_param_value_is_reported_once(tmp_path: Path, cli) -> None:
    wf = write(tmp_path, """
        name: p
        params:
          n: {type: integer, default: 2}
        steps:
          - name: s
            task: shell
            items: {range: "{{ params.n }}"}
            inputs: {command: "echo {{ item }} {{ params.n }}"}
        """)

    result = cli("compile", str(wf), "--param", "n=x")

    assert (result.code, result.err) == (
        2, f"{wf}:3:3: error: parameter 'n': 'x' is not an integer\n  hint: 'n' is declared as integer here\n")


def test_cli_graph_dot(chain_file: Path, cli) -> None:
    result = cli("graph", str(chain_file))

    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent("""\
        digraph "chain" {
          rankdir=LR;
          node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];
          "fetch" [label="fetch\\nshell × 3", shape=box3d, fillcolor="#e3eefc"];
          "parse" [label="parse\\nshell × 3", shape=box3d, fillcolor="#e3eefc"];
          "report" [label="report\\nshell"];
          "fetch" -> "parse" [style=bold, label="per item"];
          "parse" -> "report";
        }
        """)


def test_cli_graph_mermaid(chain_file: Path, cli) -> None:
    result = cli("graph", str(chain_file), "--format", "mermaid")

    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent("""\
        ---
        title: chain
        ---
        flowchart LR
          n0[["fetch<br/>shell × 3"]]
          n1[["parse<br/>shell × 3"]]
          n2["report<br/>shell"]
          n0 ==>|per item| n1
          n1 --> n2
        """)


def test_cli_graph_expand_draws_every_node(chain_file: Path, cli) -> None:
    result = cli("graph", str(chain_file), "--format", "mermaid", "--expand")

    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent("""\
        ---
        title: chain
        ---
        flowchart LR
          n0["fetch[a]<br/>shell"]
          n1["fetch[b]<br/>shell"]
          n2["fetch[c]<br/>shell"]
          n3["parse[a]<br/>shell"]
          n4["parse[b]<br/>shell"]
          n5["parse[c]<br/>shell"]
          n6["report<br/>shell"]
          n0 ==>|per item| n3
          n1 ==>|per item| n4
          n2 ==>|per item| n5
          n3 --> n6
          n4 --> n6
          n5 --> n6
        """)


def test_cli_graph_output_file(chain_file: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "plan.dot"

    result = cli("graph", str(chain_file), "--expand", "-o", str(out))

    assert (result.code, result.out, result.err) == (0, "", "")
    assert out.read_text() == cli("graph", str(chain_file), "--expand").out
    assert out.read_text().count(" -> ") == 6


@pytest.mark.skipif(shutil.which("dot") is not None, reason="Graphviz's dot is installed: the svg is drawn")
def test_cli_graph_svg_without_graphviz_names_it(chain_file: Path, cli) -> None:
    result = cli("graph", str(chain_file), "--format", "svg")

    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("plait: error: SVG output needs Graphviz's `dot` program")
    assert "graphviz" in result.err
    assert "Traceback" not in result.err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed: svg gives exit 2")
def test_cli_graph_svg_with_graphviz(chain_file: Path, cli) -> None:
    result = cli("graph", str(chain_file), "--format", "svg")

    assert (result.code, result.err) == (0, "")
    assert "<svg" in result.out


def test_cli_missing_file_is_exit_2(tmp_path: Path, cli) -> None:
    missing = tmp_path / "nope.yaml"

    result = cli("compile", str(missing))

    assert (result.code, result.out) == (2, "")
    assert result.err == (f"error: cannot read workflow file '{missing}': No such file or directory\n"
                          "  hint: check the path; it is relative to the current folder\n")


def _recount(plan: Plan) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for node in plan:
        counts[node.step, node.kind] = counts.get((node.step, node.kind), 0) + 1
    return counts


ITEMS_OF_KIND = """
name: kinds
steps:
  - name: each
    task: noop
    key: "k{{{{ index }}}}"
    items: {items}
"""


def test_the_digest_tells_apart_items_that_print_alike_or_hold_the_separator() -> None:
    variants = {'[1, 2]': [1, 2], '[1.0, 2]': [1.0, 2], '["1", "2"]': ["1", "2"], '[true, 2]': [True, 2],
                '[1, 18446744073709551616]': [1, 2**64], '["1\\u00002"]': ["1\x002"],
                '["1\\u0000", "2"]': ["1\x00", "2"], '["1", "\\u00002"]': ["1", "\x002"], '[[1], 2]': [(1,), 2],
                '[{a: 1}, 2]': [FrozenDict(a=1), 2], '[null, 2]': [None, 2]}
    plans = [compile_text(ITEMS_OF_KIND.format(items=items)) for items in variants]

    assert [[n.item for n in plan] for plan in plans] == list(variants.values())
    assert len({plan.digest for plan in plans}) == len(variants)
    assert [compile_text(ITEMS_OF_KIND.format(items=items)).digest for items in variants] == [p.digest for p in plans]
