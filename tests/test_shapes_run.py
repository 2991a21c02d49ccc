"""The new shapes end to end: spreading a mapping item, kwargs as one template, imports beside the
workflow, `workflow_dir` in templates, `on_error` from a template, and matrix, zip and group_by
steps run by `plait run` with real workers, checked through the ledger and the files they write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from runtime.support import plait

from plait.tasks import TaskContext, get_kind

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., TaskContext]:
    (tmp_path / "ws").mkdir()
    (tmp_path / "flow").mkdir()

    def make(**changes: Any) -> TaskContext:
        values: dict[str, Any] = {
            "workspace": tmp_path / "ws", "run_id": "run-1", "step": "add", "node_id": "add[1-2]", "attempt": 1,
            "retry": None, "logger": logger.bind(node="add"), "workflow_dir": tmp_path / "flow", "key": "1-2",
        }
        return TaskContext(**{**values, **changes})

    return make


def python(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    return get_kind("python").handler(config, item, ctx)


CALC = '''
def add(x, y=0, ctx=None):
    return {"sum": x + y, "node": ctx.node_id if ctx else None}
'''


def test_spread_calls_the_function_with_the_items_fields(make_ctx: Callable[..., TaskContext], tmp_path: Path) -> None:
    (tmp_path / "flow" / "calc_spread.py").write_text(CALC)
    ctx = make_ctx()

    spread = python({"function": "calc_spread:add", "spread": True}, {"x": 1, "y": 2}, ctx)
    with_kwargs = python({"function": "calc_spread:add", "spread": True, "kwargs": {"y": 5}}, {"x": 1}, ctx)

    assert spread == {"sum": 3, "node": "add[1-2]"}
    assert with_kwargs == {"sum": 6, "node": "add[1-2]"}


@pytest.mark.parametrize(("config", "item", "message"), [
    ({"spread": True}, 7, "spread: true needs a mapping item to spread into keyword arguments, not int 7"),
    ({"spread": True, "kwargs": {"y": 1}}, {"x": 1, "y": 2},
     "argument 'y' is both a field of the item and in inputs.kwargs; keep one"),
    ({"kwargs": [1, 2]}, 1, "inputs.kwargs gave list, not a mapping of argument names"),
    ({"kwargs": {"x": 1, "y": 2}}, {"x": 1, "y": 2},
     "add() got multiple values for argument 'x': a batch node calls calc_wrong:add(item, **kwargs), so the item "
     "is its first argument; with `spread: true` a mapping item's fields are the keyword arguments instead"),
    ({"kwargs": {"x": 1}}, 5, "add() got multiple values for argument 'x'"),  # not a mapping: nothing to spread
])
def test_spread_and_kwargs_mistakes_are_clear_type_errors(make_ctx: Callable[..., TaskContext], tmp_path: Path,
                                                          config: dict, item: Any, message: str) -> None:
    (tmp_path / "flow" / "calc_wrong.py").write_text(CALC)

    with pytest.raises(TypeError) as caught:
        python({"function": "calc_wrong:add", **config}, item, make_ctx())

    assert str(caught.value) == message


def test_a_type_error_raised_inside_the_function_is_its_own(make_ctx: Callable[..., TaskContext],
                                                           tmp_path: Path) -> None:
    (tmp_path / "flow" / "calc_inner.py").write_text(CALC + "\n\ndef twice(item):\n    return add(1, x=item['x'])\n")

    with pytest.raises(TypeError) as caught:
        python({"function": "calc_inner:twice"}, {"x": 1}, make_ctx())

    assert str(caught.value) == "add() got multiple values for argument 'x'"  # no hint: the call itself was right


def test_code_binds_a_spread_items_fields_and_imports_beside_the_workflow(make_ctx: Callable[..., TaskContext],
                                                                          tmp_path: Path) -> None:
    (tmp_path / "flow" / "calc_code.py").write_text(CALC)
    ctx = make_ctx()

    result = python({"code": "import calc_code\nresult = calc_code.add(x, y)['sum']", "spread": True},
                    {"x": 2, "y": 3}, ctx)

    assert result == 5


def status(cwd: Path) -> dict[str, Any]:
    return json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=cwd).stdout)


WORKFLOW = """
    name: shapes
    params:
      strict: {type: boolean, default: false}
    steps:
      - name: add
        task: python
        items: {matrix: {x: [1, 2], y: [10, 20], exclude: [{x: 2, y: 20}]}}
        inputs: {function: "calc:add", spread: true}
      - name: pairs
        task: python
        items: {zip: {x: [1, 2], y: [5, 6]}}
        inputs: {function: "calc:add", spread: true}
      - name: scaled
        task: python
        items: [1, 2]
        inputs: {function: "calc:add", kwargs: "{{ {'y': item * 10} }}"}
      - name: where
        task: shell
        inputs: {command: "test -f {{ workflow_dir }}/calc.py && echo found"}
      - name: imports
        task: python
        inputs: {code: "import calc\\nresult = calc.add(40, 2)['sum']"}
      - name: map_reads
        task: python
        items: {matrix: {sample: [A, B], rep: [1, 2]}}
        inputs:
          code: |
            out = ctx.path(f"mapped/{item['sample']}-{item['rep']}.txt")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{item['sample']}{item['rep']}")
            result = out.name
      - name: merge
        task: python
        group_by: {step: map_reads, key: "{{ item.sample }}"}
        inputs:
          code: |
            result = sorted(p.read_text() for p in ctx.path("mapped").glob(f"{item}-*.txt"))
      - name: flaky
        task: python
        items: [ok, bad]
        on_error: "{{ 'fail' if params.strict else 'continue' }}"
        inputs: {code: "assert item == 'ok', 'bad item'\\nresult = item"}
    """

CALC_ADD = '''
def add(x, y=0):
    return {"sum": x + y}
'''


def test_matrix_zip_group_and_templated_on_error_run_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC_ADD)
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent(WORKFLOW))

    done = plait("run", str(wf), "--workspace", "ws", "--quiet", cwd=tmp_path)
    ledger = status(tmp_path)

    assert done.returncode == 1, done.stderr  # `flaky[bad]` failed; on_error gave continue, so the rest ran
    states = {n: (v["status"], v["error"] and v["error"]["error"]) for n, v in ledger["nodes"].items()}
    assert states == {
        **{n: ("succeeded", None) for n in (
            "add[1-10]", "add[1-20]", "add[2-10]", "pairs[1-5]", "pairs[2-6]", "scaled[1]", "scaled[2]", "where",
            "imports",
            "map_reads[A-1]", "map_reads[A-2]", "map_reads[B-1]", "map_reads[B-2]", "merge[A]", "merge[B]",
            "flaky[ok]")},
        "flaky[bad]": ("failed", "bad item"),
    }
    assert ledger["steps"]["flaky"]["stats"]["failed"] == 1
    assert results(tmp_path, "add[%", "pairs[%", "scaled[%", "where", "imports") == [
        ["add[1-10]", {"sum": 11}], ["add[1-20]", {"sum": 21}], ["add[2-10]", {"sum": 12}],
        ["imports", 42], ["pairs[1-5]", {"sum": 6}], ["pairs[2-6]", {"sum": 8}],
        ["scaled[1]", {"sum": 11}], ["scaled[2]", {"sum": 22}],
        ["where", {"stdout": "found\n", "stderr": "", "exit_code": 0}]]


def results(cwd: Path, *patterns: str) -> list:
    """Return [node, result] of the nodes whose IDs match the SQL patterns, from the ledger, by ID."""
    read = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, sqlite3, sys
        db = sqlite3.connect("ws/.plait/ledger.db")
        where = " OR ".join("node_id LIKE ?" for _ in sys.argv[1:])
        rows = db.execute(f"SELECT node_id, result FROM nodes WHERE {where} ORDER BY node_id", sys.argv[1:])
        print(json.dumps([[i, json.loads(r)] for i, r in rows]))
        """), *patterns], cwd=cwd, capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)


def test_group_nodes_run_once_their_own_members_are_done(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC_ADD)
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent(WORKFLOW))
    plait("run", str(wf), "--workspace", "ws", "--quiet", cwd=tmp_path)

    assert results(tmp_path, "merge[%") == [["merge[A]", ["A1", "A2"]], ["merge[B]", ["B1", "B2"]]]
