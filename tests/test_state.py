"""The ledger and the state read from it: `Ledger` directly, `workflow_status`, and `plait status`.

The ledger is one SQLite file per workspace (`<ws>/.plait/ledger.db`, WAL mode), one row per node
that settled (the kept plan answers for the others: pending), written only by the run's parent process.
`workflow_status` derives from it the state shape of the engine plait grew from; `plait status` prints
it as JSON or text.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from runtime.support import Flow, error, ledger_query, untraced_status

from plait.compiler import compile_workflow
from plait.runtime import Ledger, LedgerError, status, workflow_status
from plait.runtime.ledger import NodeRecord, Prior


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / ".plait" / "ledger.db")
    yield ledger
    ledger.close()


PLANNED = [("a[0]", "a", 0, "task"), ("a[1]", "a", 1, "task"), ("a", "a", None, "join"), ("b", "b", None, "task")]


def rec(node: str, status: str = "succeeded", result: object = None, *, attempts: int = 1, fp: str = "fp",
        err: dict | None = None, note: str | None = None) -> NodeRecord:
    step, key, kind = next(p[1:] for p in PLANNED if p[0] == node)
    return NodeRecord(node, status, attempts, fp, json.dumps(result) if status == "succeeded" else None,
                      json.dumps(err) if err else None, note, 10.0, 11.0, step=step, key=key, kind=kind)


def begin(ledger: Ledger, run_id: str, planned: list = PLANNED) -> None:
    ledger.begin_run(run_id, "wf", "digest-1", "/flows/wf.yaml", {"n": 2}, 4242, planned, ledger.previous())


# --- Ledger --------------------------------------------------------------------------------------


def test_a_new_ledger_is_in_wal_mode_and_empty(ledger: Ledger) -> None:
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert (ledger.workflow(), ledger.previous(), ledger.last_run(), ledger.nodes()) == (None, {}, None, [])


def test_begin_record_previous_results_end_round_trip(ledger: Ledger) -> None:
    ledger.claim("wf")
    begin(ledger, "run-1")
    assert ledger.previous() == {n: Prior("pending", None, True) for n, *_ in PLANNED}
    failure = error("a[0]", "OSError", "disk", item=0, retryable=True)
    ledger.record("run-1", [rec("a[1]", result={"v": [1, 2]}, attempts=2, fp="f1"),
                            rec("a[0]", "failed", attempts=3, fp="f0", err=failure)])
    ledger.record("run-1", [rec("b", "skipped", note="upstream a[0] failed", fp="fb")])
    ledger.end_run("run-1", "failed")
    assert ledger.previous() == {"a[0]": Prior("failed", "f0", True, error=json.dumps(failure)),
                                 "a[1]": Prior("succeeded", "f1", True), "a": Prior("pending", None, True),
                                 "b": Prior("skipped", "fb", True, note="upstream a[0] failed")}
    assert ledger.results(["a[1]", "a[0]", "nowhere"]) == {"a[1]": {"v": [1, 2]}, "a[0]": None}
    run = dict(ledger.last_run())
    assert (run.pop("started") <= run.pop("ended")) is True
    assert run == {"run_id": "run-1", "workflow": "wf", "digest": "digest-1", "pid": 4242, "status": "failed",
                   "source": "/flows/wf.yaml", "params": '{"n": 2}', "counts": None}
    assert ledger.nodes() == [  # completion order first, then the nodes never recorded
        ("a[1]", "a", "1", "task", "succeeded", 2, None, None),
        ("a[0]", "a", "0", "task", "failed", 3, json.dumps(failure), None),
        ("b", "b", "null", "task", "skipped", 1, None, None),
        ("a", "a", "null", "join", "pending", 0, None, None),
    ]


def test_what_is_recorded_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = Ledger(path)
    first.claim("wf")
    begin(first, "run-1")
    first.record("run-1", [rec("a[1]", result=1)])
    first.close()
    again = Ledger(path)
    try:
        again.record("run-1", [rec("a[0]", result=0)])
        assert (again.workflow(), again.results(["a[0]", "a[1]"])) == ("wf", {"a[0]": 0, "a[1]": 1})
        assert ledger_query(path, "SELECT node_id, seq FROM nodes WHERE seq IS NOT NULL ORDER BY seq") == [
            ("a[1]", 1), ("a[0]", 2)]  # seq goes on counting after a reopen
    finally:
        again.close()


def test_a_ledger_of_another_workflow_is_refused(ledger: Ledger) -> None:
    ledger.claim("wf")
    ledger.claim("wf")  # the owner may claim it again
    with pytest.raises(LedgerError) as caught:
        ledger.claim("other")
    assert str(caught.value) == (f"the workspace's ledger {ledger.path} belongs to workflow 'wf', not 'other'; "
                                 "use another --workspace, or --fresh to start this one over")


def test_nodes_that_leave_the_plan_are_kept_but_hidden_and_come_back(ledger: Ledger) -> None:
    ledger.claim("wf")
    begin(ledger, "run-1")
    ledger.record("run-1", [rec("a[0]", result=0, fp="f0"), rec("a[1]", result=1, fp="f1")])
    begin(ledger, "run-2", [p for p in PLANNED if p[0] != "a[1]"])
    assert ledger.previous()["a[1]"] == Prior("succeeded", "f1", False)
    assert [n[0] for n in ledger.nodes()] == ["a[0]", "a", "b"]
    begin(ledger, "run-3")
    assert (ledger.previous()["a[1]"], ledger.results(["a[1]"])) == (Prior("succeeded", "f1", True), {"a[1]": 1})


def test_a_basis_is_kept_by_the_run_that_gives_it_and_removed_by_any_other_or_by_added_nodes(ledger: Ledger) -> None:
    ledger.claim("wf")
    assert ledger.basis() is None
    ledger.begin_run("run-1", "wf", "d", None, {}, 1, PLANNED, {}, "basis-1")
    assert ledger.basis() is None  # its nodes have no row yet: the ledger does not hold the plan whole
    ledger.record("run-1", [rec(n) for n, *_ in PLANNED[:-1]])
    ledger.end_run("run-1", "failed", basis="basis-1")
    assert ledger.basis() is None  # b never ran
    ledger.record("run-1", [rec("b")])
    ledger.end_run("run-1", "succeeded", basis="basis-1")
    assert ledger.basis() == "basis-1"
    ledger.begin_run("run-2", "wf", "d", None, {}, 1, [], {}, "basis-1")  # a run of the plan the ledger holds
    assert (ledger.basis(), len(ledger.previous())) == ("basis-1", len(PLANNED))
    begin(ledger, "run-3")  # a run that gives none
    assert ledger.basis() is None
    ledger.begin_run("run-4", "wf", "d", None, {}, 1, PLANNED, ledger.previous(), "basis-4")
    ledger.add_nodes([("c[0]", "c", 0, "task")])  # a plan that grows as it runs
    assert ledger.basis() is None


def test_previous_of_unfinished_rows_lists_the_plans_rows_that_did_not_succeed(ledger: Ledger) -> None:
    ledger.claim("wf")
    begin(ledger, "run-1")
    ledger.record("run-1", [rec("a[0]", result=0, fp="f0"), rec("a[1]", "failed", fp="f1"),
                            rec("b", result=2, fp="fb")])
    begin(ledger, "run-2", [p for p in PLANNED if p[0] != "a[1]"])  # a[1] leaves the plan: not listed
    assert ledger.previous(unfinished_only=True) == {"a": Prior("pending", None, True)}
    assert ledger.fingerprints(["a[0]", "b", "nowhere"]) == {"a[0]": "f0", "b": "fb"}


def test_seq_orders_nodes_by_completion_across_records(ledger: Ledger) -> None:
    ledger.claim("wf")
    begin(ledger, "run-1")
    ledger.record("run-1", [rec("b", result=None)])
    ledger.record("run-1", [rec("a[1]", result=1), rec("a[0]", result=0)])
    assert [n[0] for n in ledger.nodes()] == ["b", "a[1]", "a[0]", "a"]


def test_a_file_that_is_not_a_ledger_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    assert str(caught.value) == (f"the ledger {path} cannot be used: file is not a database. If it is damaged, "
                                 "move it away (or run with --fresh) to start over")


def test_a_readonly_ledger_reads_what_a_writer_committed(ledger: Ledger) -> None:
    ledger.claim("wf")
    begin(ledger, "run-1")
    ledger.record("run-1", [rec("a[0]", result={"x": 1})])
    reader = Ledger(ledger.path, readonly=True)
    try:
        assert (reader.workflow(), reader.results(["a[0]"])) == ("wf", {"a[0]": {"x": 1}})
    finally:
        reader.close()


# --- workflow_status -----------------------------------------------------------------------------

SHAPE_HELPERS = '''
def square(item, ctx):
    if item == 2 and ctx.attempt == 1:
        raise OSError("item 2 fails once")
    return item * item
'''

SHAPE = """
    name: shape
    steps:
      - name: square
        task: python
        items: [1, 2, 3]
        retry: {max_attempts: 2, delay: 0}
        inputs: {function: "<mod>:square"}
      - name: bad
        task: python
        on_error: continue
        inputs: {code: "raise ValueError('bad on purpose')"}
      - name: after_bad
        task: python
        depends_on: [bad]
        inputs: {code: "result = 1"}
      - name: total
        task: python
        depends_on: [square]
        inputs: {code: "result = sum(steps['square']['results'])"}
"""


def shape_flow(flow: Flow) -> None:
    flow.write(SHAPE, mod=flow.module("shape", SHAPE_HELPERS))


def stats(total: int, processed: int = 0, failed: int = 0, retried: int = 0, skipped: int = 0,
          pending: int = 0) -> dict[str, int]:
    return {"total": total, "processed": processed, "failed": failed, "retried": retried, "skipped": skipped,
            "pending": pending}


def test_workflow_status_has_the_documented_shape(flow: Flow) -> None:
    shape_flow(flow)
    result = flow.run()  # sequential: a deterministic completion order
    bad = error("bad", "ValueError", "bad on purpose")
    state = untraced_status(workflow_status(flow.ws))
    run = state.pop("run")
    assert state == {
        "workflow": "shape",
        "nodes": {
            "square[1]": {"status": "succeeded", "attempts": 1, "error": None, "reason": "new"},
            "square[3]": {"status": "succeeded", "attempts": 1, "error": None, "reason": "new"},
            "bad": {"status": "failed", "attempts": 1, "error": bad, "reason": "new"},
            "after_bad": {"status": "skipped", "attempts": 0, "error": None, "reason": "new"},
            "square[2]": {"status": "succeeded", "attempts": 2, "error": None, "reason": "new"},
            "total": {"status": "succeeded", "attempts": 1, "error": None, "reason": "new"},
        },
        "steps": {
            "square": {"processed": [1, 3, 2], "failed": {}, "stats": stats(3, processed=3, retried=1)},
            "bad": {"processed": [], "failed": {"bad": bad}, "stats": stats(1, failed=1)},
            "after_bad": {"processed": [], "failed": {}, "stats": stats(1, skipped=1)},
            "total": {"processed": ["total"], "failed": {}, "stats": stats(1, processed=1)},
        },
    }
    assert list(state["nodes"]) == ["square[1]", "square[3]", "bad", "after_bad", "square[2]", "total"]
    started, ended = run.pop("started"), run.pop("ended")
    assert started <= ended
    assert run == {"run_id": result.run_id, "workflow": "shape", "status": "failed", "pid": os.getpid(),
                   "source": str(flow.path), "params": "{}", "digest": compile_workflow(flow.path).digest,
                   "counts": {"succeeded": 4, "failed": 1, "skipped": 1}}


def test_workflow_status_shows_a_step_not_yet_run_as_pending(flow: Flow) -> None:
    shape_flow(flow)
    flow.write(SHAPE.replace("on_error: continue", "on_error: fail"), mod=f"shape_{flow.tag}")
    flow.run()
    steps = untraced_status(workflow_status(flow.ws))["steps"]
    assert {step: s["stats"] for step, s in steps.items()} == {
        "square": stats(3, processed=2, pending=1),  # square[2]'s retry never started: the run stopped
        "bad": stats(1, failed=1),
        "after_bad": stats(1, pending=1),
        "total": stats(1, pending=1),
    }


def test_workflow_status_of_a_workspace_without_a_ledger_raises(tmp_path: Path) -> None:
    with pytest.raises(LedgerError) as caught:
        workflow_status(tmp_path / "nothing")
    assert str(caught.value).startswith(f"no plait run found in workspace '{tmp_path / 'nothing'}'")


# --- plait status --------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["continue", "fail"])
def test_the_summary_plait_status_prints_is_counted_as_workflow_status_counts(flow: Flow, stop: str) -> None:
    shape_flow(flow)
    flow.write(SHAPE.replace("on_error: continue", f"on_error: {stop}"), mod=f"shape_{flow.tag}")
    flow.run()  # failed, succeeded, retried, skipped, and (on_error: fail) nodes never run, which have no row
    full, summary = workflow_status(flow.ws), status.status_summary(flow.ws)
    assert {s: v["stats"] for s, v in summary["steps"].items()} == {s: v["stats"] for s, v in full["steps"].items()}
    assert list(summary["steps"]) == list(full["steps"])
    assert status.format_status(summary) == status.format_status(full)
    assert len(status.format_status(full).splitlines()) == 8  # the run, the header, 4 steps, 1 failure and its line


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_plait_status_json_streams_the_text_json_dumps_gives_workflow_status(flow: Flow, chunk: int,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    shape_flow(flow)
    flow.write(SHAPE.replace("on_error: continue", "on_error: fail"), mod=f"shape_{flow.tag}")
    flow.run()  # failed, succeeded, retried and pending nodes (those never run have no row)
    monkeypatch.setattr(status, "CHUNK", chunk)
    out = io.StringIO()
    status.write_status_json(flow.ws, out)
    assert out.getvalue() == json.dumps(workflow_status(flow.ws)) + "\n"
    assert len(json.loads(out.getvalue())["nodes"]) == 6


TRICKY = r"""
    name: tricky
    steps:
      - name: each
        task: python
        items: ["café", "a\"b", "back\\slash", "tab\there", "del\x7f", 0, 10, -3, 2.5, "12", "plain", "x]y",
                0.30000000000000004]
        on_error: continue
        inputs:
          code: |
            if item in ("plain", 10):
                raise ValueError(f"no {item} é")
            result = item
      - name: after
        task: python
        for_each: each
        inputs: {code: "result = 1"}
      - name: total
        task: python
        depends_on: [each]
        inputs: {code: "result = 2"}
      - name: gate
        task: python
        on_error: fail
        inputs: {code: "raise ValueError('shut')"}
      - name: later
        task: python
        depends_on: [gate]
        inputs: {code: "result = 3"}
"""


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_plait_status_json_writes_what_json_dumps_writes_of_ids_and_keys_to_escape(flow: Flow, chunk: int,
                                                                                   monkeypatch: pytest.MonkeyPatch
                                                                                   ) -> None:
    flow.write(TRICKY)
    flow.run()  # non-ASCII, quoted, escaped and numeric keys; failed, skipped and never-run nodes
    monkeypatch.setattr(status, "CHUNK", chunk)
    out = io.StringIO()
    status.write_status_json(flow.ws, out)
    state = workflow_status(flow.ws)
    assert out.getvalue() == json.dumps(state) + "\n"
    processed = state["steps"]["each"]["processed"]  # a key with a tab, DEL or bracket is a hash of its item
    assert (processed[:3], processed[5:9], processed[-1], len(processed), sorted(state["steps"]["each"]["failed"])) == (
        ["café", 'a"b', "back\\slash"], [0, -3, 2.5, "12"], 0.30000000000000004, 11, ["10", "plain"])
    assert {n: state["nodes"][n]["status"] for n in ("gate", "later")} == {"gate": "failed", "later": "pending"}


MOSTLY_ONE_KIND = r"""
    name: mostly
    steps:
      - name: many
        task: python
        items: {range: 200}
        retry: {max_attempts: 2, delay: 0, retry_on: [OSError]}
        on_error: continue
        inputs:
          code: |
            if item in (7, 23) and ctx.attempt == 1:
                raise OSError(f"{item} fails once")
            if item == 31:
                raise ValueError("31 fails")
            result = item
      - name: odd
        task: python
        items: [-3, 2.5, 0.30000000000000004, true, null, [1, "x"], KEYS]
        on_error: continue
        inputs: {code: "result = 1"}
"""


def yaml_text(text: str) -> str:
    return textwrap.dedent(text)


def _status_json_reading(flow: Flow, monkeypatch: pytest.MonkeyPatch, chunk: int) -> tuple[str, list[str]]:
    """Return `write_status_json`'s text for the flow's workspace and the queries it read the rows with."""
    monkeypatch.setattr(status, "CHUNK", chunk)
    queries: list[str] = []
    batches = Ledger.batches

    def seen(self: Ledger, sql: str, *args: object) -> Iterator[list[tuple[object, ...]]]:
        queries.append(sql)
        return batches(self, sql, *args)

    monkeypatch.setattr(Ledger, "batches", seen)
    out = io.StringIO()
    status.write_status_json(flow.ws, out)
    return out.getvalue(), queries


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("key", ['"a\\"b"', '{"k": "é"}'])
def test_plait_status_json_of_rows_mostly_of_one_kind_is_what_json_dumps_writes(
        flow: Flow, chunk: int, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(MOSTLY_ONE_KIND.replace("KEYS", key))
    flow.run()  # 200 items: 2 retried, 1 failed; keys that are numbers, a list, a quote, a mapping (10 of 207 rows)
    text, queries = _status_json_reading(flow, monkeypatch, chunk)
    state = workflow_status(flow.ws)
    assert text == json.dumps(state) + "\n"
    assert (status._IDS in queries, status._NODES in queries) == (True, False)  # the IDs in one text, the few whole
    assert (state["steps"]["many"]["processed"][:3], sorted(state["steps"]["many"]["failed"])) == ([0, 1, 2], ["31"])
    assert {n: state["nodes"][n]["attempts"] for n in ("many[6]", "many[7]", "many[23]")} == {
        "many[6]": 1, "many[7]": 2, "many[23]": 2}


@pytest.mark.parametrize("chunk", [1, 1000])
def test_plait_status_json_of_rows_all_of_one_kind_is_what_json_dumps_writes(
        flow: Flow, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(MOSTLY_ONE_KIND.split("      - name: odd")[0].replace("(7, 23)", "()").replace("item == 31", "False"))
    flow.run()
    flow.run()  # a resume of it all done: its rows stay of the first run's kind, and the resume records none
    text, queries = _status_json_reading(flow, monkeypatch, chunk)
    state = workflow_status(flow.ws)
    assert (text, status._IDS_BY_SEQ in queries, status._NODES in queries) == (json.dumps(state) + "\n", True, False)
    assert state["steps"]["many"]["processed"] == list(range(200))


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_plait_status_json_of_two_steps_of_one_kind_each_completed_in_turn_is_what_json_dumps_writes(
        flow: Flow, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(yaml_text("""
        name: pairs
        steps:
          - name: a
            task: python
            items: {range: 30}
            inputs: {code: "result = item"}
          - name: b
            task: python
            for_each: a
            inputs: {code: "result = steps['a']['result'] + 1"}
    """))
    flow.run()  # b[k] rides with a[k]: the two steps' rows alternate in completion order
    text, queries = _status_json_reading(flow, monkeypatch, chunk)
    state = workflow_status(flow.ws)
    assert (text, status._IDS_BY_SEQ in queries, status._NODES in queries) == (json.dumps(state) + "\n", True, False)
    assert list(state["nodes"])[:4] == ["a[0]", "b[0]", "a[1]", "b[1]"]
    assert (state["steps"]["a"]["processed"], state["steps"]["b"]["processed"]) == (list(range(30)), list(range(30)))


TEXT_KEYS = ["photo_0001.jpg", "007", "12", "a, b", "x]y", "café", "two words", 'q"uote', "-3", "null", "[1]",
             "b\\s", "a]\x01b"]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_plait_status_json_of_items_with_text_keys_all_of_one_kind_is_what_json_dumps_writes(
        flow: Flow, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(yaml_text("""
        name: texts
        steps:
          - name: each
            task: python
            items: ITEMS
            inputs: {code: "result = 1"}
    """).replace("ITEMS", json.dumps([key for key in TEXT_KEYS if "\x01" not in key])))
    flow.run()
    text, queries = _status_json_reading(flow, monkeypatch, chunk)
    state = workflow_status(flow.ws)
    assert (text, status._IDS_BY_SEQ in queries, status._NODES in queries) == (json.dumps(state) + "\n", True, False)
    processed = state["steps"]["each"]["processed"]  # the keys as the IDs write them (a few are hashes of items)
    assert processed == [nid[len("each["):-1] for nid in state["nodes"]]
    assert ({"photo_0001.jpg", "007", "12", "-3", "null", "café"} <= set(processed), set(map(type, processed))) == (
        True, {str})


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_plait_status_json_of_text_and_number_keys_in_turn_with_rows_of_other_kinds_is_what_json_dumps_writes(
        flow: Flow, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(yaml_text("""
        name: mixed
        steps:
          - name: a
            task: python
            items: ITEMS
            on_error: continue
            inputs:
              code: |
                if item == "12":
                    raise ValueError("twelve")
                result = item
          - name: b
            task: python
            for_each: a
            inputs: {code: "result = 1"}
          - name: n
            task: python
            items: {range: 40}
            inputs: {code: "result = item"}
    """).replace("ITEMS", json.dumps(TEXT_KEYS + [f"t{i}" for i in range(40)])))
    flow.run()  # a's keys are texts, n's numbers; a[12] failed and b[12] was skipped: rows of other kinds
    text, queries = _status_json_reading(flow, monkeypatch, chunk)
    state = workflow_status(flow.ws)
    assert (text, status._IDS in queries, status._NODES in queries) == (json.dumps(state) + "\n", True, False)
    steps = state["steps"]
    assert (sorted(steps["a"]["failed"]), len(steps["a"]["processed"]), steps["n"]["processed"]) == (
        ["12"], len(TEXT_KEYS) + 39, list(range(40)))


def test_plait_status_json_reads_every_row_whole_when_an_id_holds_the_ids_separator(
        ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = [(f"w[{i}]", "w", i, "task") for i in range(40)] + [("odd\x01one", "odd", None, "task")]
    ledger.begin_run("run-1", "wf", "d", None, {}, 1, planned, {})
    ledger.record("run-1", [NodeRecord(nid, "succeeded", 1, "fp", "1", None, None, 10.0, 11.0, reason="new", step=step,
                                       key=key, kind=kind) for nid, step, key, kind in planned])
    ledger.end_run("run-1", "succeeded")
    queries: list[str] = []
    batches = Ledger.batches
    monkeypatch.setattr(Ledger, "batches", lambda self, sql, *args: queries.append(sql) or batches(self, sql, *args))
    out = io.StringIO()
    status.write_status_json(tmp_path, out)
    state = workflow_status(tmp_path)
    assert (out.getvalue(), status._IDS in queries, status._NODES in queries) == (json.dumps(state) + "\n", True, True)
    assert list(state["nodes"])[-1] == "odd\x01one"


def test_plait_status_json_is_workflow_status(flow: Flow) -> None:
    shape_flow(flow)
    flow.run()
    cli = flow.cli("status", "--workspace", str(flow.ws), "--format", "json")
    assert (cli.returncode, cli.stderr) == (0, "")
    assert json.loads(cli.stdout) == workflow_status(flow.ws)


def test_plait_status_text_shows_the_run_each_steps_counts_and_the_failures(flow: Flow) -> None:
    shape_flow(flow)
    result = flow.run()
    cli = flow.cli("status", "--workspace", str(flow.ws))
    assert (cli.returncode, cli.stderr) == (0, "")
    lines = cli.stdout.splitlines()
    assert lines[0] == f"workflow shape: run {result.run_id} failed"
    header = lines[1].split()
    table = {cells[0]: dict(zip(header[1:], map(int, cells[1:]))) for cells in map(str.split, lines[2:6])}
    assert header[0] == "step"
    assert table == {step: s["stats"] for step, s in untraced_status(workflow_status(flow.ws))["steps"].items()}
    assert lines[6:] == ["failed nodes (1):", "  bad: ValueError: bad on purpose"]


def test_plait_status_finds_the_only_workspace_under_runs(flow: Flow) -> None:
    shape_flow(flow)
    flow.cli("run", "workflow.yaml", "--backend", "sequential", "-q")  # default workspace: runs/shape
    cli = flow.cli("status", "--format", "json")
    assert (cli.returncode, json.loads(cli.stdout)["workflow"]) == (0, "shape")


def test_plait_status_of_a_workspace_without_a_ledger_exits_2_with_a_clear_message(flow: Flow) -> None:
    cli = flow.cli("status", "--workspace", "empty")
    assert (cli.returncode, cli.stdout) == (2, "")
    assert cli.stderr == (f"plait: error: no plait run found in workspace 'empty' (no {Path('empty/.plait/ledger.db')}"
                          "); run `plait run WF.yaml --workspace DIR` first, or pass the right --workspace\n")
    nowhere = flow.cli("status")
    assert (nowhere.returncode, nowhere.stderr) == (
        2, "plait: error: no workspace under runs/ in this folder; pass --workspace DIR\n")


def test_rows_of_nodes_that_left_the_plan_stay_in_the_ledger_but_not_in_status(flow: Flow) -> None:
    (flow.dir / "in").mkdir()
    for name in ("a", "b", "c"):
        (flow.dir / "in" / f"{name}.txt").write_text(name)
    flow.write("""
        name: shrink
        steps:
          - name: read
            task: python
            items: {glob: "in/*.txt"}
            inputs: {code: "import pathlib; result = pathlib.Path(item).read_text()"}
    """)
    flow.run()
    (flow.dir / "in" / "b.txt").unlink()
    assert flow.run().ok
    assert set(untraced_status(workflow_status(flow.ws))["nodes"]) == {"read[in/a.txt]", "read[in/c.txt]"}
    assert flow.view("status", "in_plan", "result") == {
        "read[in/a.txt]": ("succeeded", True, "a"), "read[in/b.txt]": ("succeeded", False, "b"),
        "read[in/c.txt]": ("succeeded", True, "c")}


def test_plait_run_refuses_a_workspace_of_another_workflow_unless_fresh(flow: Flow) -> None:
    shape_flow(flow)
    assert flow.cli("run", "workflow.yaml", "--workspace", "ws", "--backend", "sequential", "-q").returncode == 1
    other = flow.dir / "other.yaml"
    other.write_text("name: other\nsteps:\n  - {name: one, task: python, inputs: {code: 'result = 1'}}\n")
    refused = flow.cli("run", "other.yaml", "--workspace", "ws", "--backend", "sequential", "-q")
    assert (refused.returncode, refused.stderr) == (
        2, f"plait: error: the workspace's ledger {Path('ws/.plait/ledger.db')} belongs to workflow 'shape', not "
           "'other'; use another --workspace, or --fresh to start this one over\n")
    fresh = flow.cli("run", "other.yaml", "--workspace", "ws", "--backend", "sequential", "-q", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert workflow_status(flow.dir / "ws")["nodes"] == {
        "one": {"status": "succeeded", "attempts": 1, "error": None, "reason": "new"}}


def damage(flow: Flow) -> None:
    flow.ledger_path.parent.mkdir(parents=True)
    flow.ledger_path.write_bytes(b"not a database, " * 256)


def test_plait_run_on_a_damaged_ledger_exits_2_with_a_hint(flow: Flow) -> None:
    shape_flow(flow)
    damage(flow)
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    assert (cli.returncode, cli.stderr) == (
        2, f"plait: error: the ledger {flow.ledger_path} cannot be used: file is not a database. If it is damaged, "
           "move it away (or run with --fresh) to start over\n")


def test_plait_run_fresh_starts_over_from_a_damaged_ledger(flow: Flow) -> None:
    shape_flow(flow)
    damage(flow)
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", "--fresh")
    assert cli.returncode == 1, cli.stderr  # the workflow's own `bad` step fails
    assert set(workflow_status(flow.ws)["nodes"]) == {"square[1]", "square[2]", "square[3]", "bad", "after_bad",
                                                      "total"}
