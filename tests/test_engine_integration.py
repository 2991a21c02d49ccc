"""Whole workflows through the API and the command line, on real worker processes and files.

Injected failures (a second attempt that succeeds, a permanent failure, a timeout, a worker process
that dies), deferred items, conditions, templates that keep their types, shell quoting, file tasks
held inside the workspace, and the scheduling promise that a per-item chain never waits for a slow
sibling. The backend contract suite (the same workflows on every backend, identical ledgers) is in
tests/runtime/test_backends.py.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
from runtime.support import RECORDER, Flow, error, untraced, untraced_status

from plait.compiler import compile_workflow
from plait.runtime import run_workflow, workflow_status
from plait.runtime.run import HANDOFF_SECONDS

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


def with_recorder(flow: Flow, name: str, source: str) -> str:
    """Write the recorder and a module that imports its `note`; return the module's name."""
    recorder = flow.module("recorder", RECORDER)
    return flow.module(name, f"from {recorder} import note\n" + source)


# --- injected failures ---------------------------------------------------------------------------

INJECTED = '''
import time


def work(item, ctx):
    note(ctx)
    if item == "flaky" and ctx.attempt == 1:
        raise ConnectionResetError("flaky the first time")
    if item == "broken":
        raise ValueError("broken for good")
    if item == "slow":
        time.sleep(60)  # past its timeout of 1 s, which leaves the others time to spare on a loaded machine
    return item.upper()
'''


def test_injected_failures_through_the_api_and_the_cli(flow: Flow) -> None:
    flow.write("""
        name: injected
        steps:
          - name: work
            task: python
            items: [ok, flaky, broken, slow]
            timeout: 1
            retry: {max_attempts: 2, delay: 0.05}
            on_error: continue
            inputs: {function: "<mod>:work"}
          - name: summary
            task: python
            depends_on: [work]
            inputs: {code: "result = steps['work']['results']"}
          - name: other
            task: shell
            inputs: {command: "echo independent"}
    """, mod=with_recorder(flow, "injected", INJECTED))
    timeout = error("work[slow]", "TimeoutError", "node work[slow] timed out after 1 s", item="slow", attempt=2,
                    retryable=True)
    broken = error("work[broken]", "ValueError", "broken for good", item="broken")
    expected = {
        "work[ok]": ("succeeded", 1, "OK", None, None),
        "work[flaky]": ("succeeded", 2, "FLAKY", None, None),
        "work[broken]": ("failed", 1, None, broken, None),
        "work[slow]": ("failed", 2, None, timeout, None),
        "summary": ("skipped", 0, None, None, "upstream work[broken] failed"),
        "other": ("succeeded", 1, {"stdout": "independent\n", "stderr": "", "exit_code": 0}, None, None),
    }

    result = flow.run(backend="loky", jobs=2)
    assert (result.ok, sorted(r["node"] for r in result.report.failed)) == (False, ["work[broken]", "work[slow]"])
    assert flow.view("status", "attempts", "result", "error", "note") == expected
    assert sorted(flow.executions()) == sorted(["work[ok]", "work[flaky]", "work[flaky]", "work[broken]",
                                                "work[slow]", "work[slow]"])

    cli_ws = flow.root / "ws-cli"
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(cli_ws), "--backend", "loky", "--jobs", "2", "-q")
    assert cli.returncode == 1, cli.stderr
    assert "work[broken]: ValueError: broken for good" in cli.stderr
    assert "work[slow]: TimeoutError: node work[slow] timed out after 1 s" in cli.stderr
    assert {n: {"status": v["status"], "attempts": v["attempts"], "error": v["error"]}
            for n, v in untraced_status(workflow_status(cli_ws))["nodes"].items()} == {
        n: {"status": s, "attempts": a, "error": e} for n, (s, a, _, e, _) in expected.items()}


CRASHER = '''
import os


def maybe_crash(item, ctx):
    note(ctx)
    if item == 2:
        os._exit(3)
    return item * 10
'''


def test_a_worker_that_dies_fails_only_its_node_and_the_others_are_charged_one_attempt(flow: Flow) -> None:
    flow.write("""
        name: crash
        steps:
          - name: a
            task: python
            items: [0, 1, 2, 3]
            on_error: continue
            inputs: {function: "<mod>:maybe_crash"}
    """, mod=with_recorder(flow, "crasher", CRASHER))
    result = flow.run(backend="loky", jobs=2)
    crashed = error("a[2]", "WorkerCrashed", "the worker process died while running a[2]: EXIT(3)", item=2,
                    retryable=True)
    assert untraced(result.report.failed) == [crashed]
    assert flow.view("status", "attempts", "result", "error") == {
        "a[0]": ("succeeded", 1, 0, None), "a[1]": ("succeeded", 1, 10, None), "a[2]": ("failed", 1, None, crashed),
        "a[3]": ("succeeded", 1, 30, None)}


def test_a_worker_that_dies_in_a_for_each_node_fails_that_node(flow: Flow) -> None:
    flow.write("""
        name: crashchain
        steps:
          - name: a
            task: python
            items: [0, 1, 2, 3]
            inputs: {code: "result = item"}
          - name: b
            task: python
            for_each: a
            on_error: continue
            inputs: {function: "<mod>:maybe_crash"}
    """, mod=with_recorder(flow, "crasher", CRASHER))
    flow.run(backend="loky", jobs=2)
    crashed = error("b[2]", "WorkerCrashed", "the worker process died while running b[2]: EXIT(3)", item=2,
                    retryable=True)
    assert flow.view("status", "error") == {
        **{f"a[{i}]": ("succeeded", None) for i in range(4)},
        "b[0]": ("succeeded", None), "b[1]": ("succeeded", None), "b[2]": ("failed", crashed),
        "b[3]": ("succeeded", None)}


# --- deferred items ------------------------------------------------------------------------------


def content_key(item: object) -> str:
    """The documented default key of an item that is not a short plain string or number."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


DEFERRED = """
    name: deferred
    params:
      names: {type: array, default: ["b.txt", "a.txt", {"n": 1}, 5]}
    steps:
      - name: list
        task: python
        inputs: {code: "result = params['names']"}
      - name: each
        task: python
        items: "{{ steps.list.result }}"
        inputs: {code: "result = {'item': item, 'key': key, 'index': index}"}
      - name: again
        task: python
        for_each: each
        inputs: {code: "result = [steps['each']['result']['key'], item]"}
      - name: total
        task: python
        depends_on: [again]
        inputs: {code: "result = steps['again']['results']"}
"""


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_deferred_items_expand_with_stable_keys_and_a_for_each_follows_them(flow: Flow, backend: str) -> None:
    flow.write(DEFERRED)
    result = flow.run(backend=backend)
    hashed = content_key({"n": 1})
    assert result.ok
    rows = flow.nodes()
    assert {n: (r["kind"], r["status"], r["result"]) for n, r in rows.items() if r["step"] == "each"} == {
        "each": ("join", "succeeded", [{"item": "b.txt", "key": "b.txt", "index": 0},
                                       {"item": "a.txt", "key": "a.txt", "index": 1},
                                       {"item": {"n": 1}, "key": hashed, "index": 2},
                                       {"item": 5, "key": 5, "index": 3}]),
        "each[b.txt]": ("task", "succeeded", {"item": "b.txt", "key": "b.txt", "index": 0}),
        "each[a.txt]": ("task", "succeeded", {"item": "a.txt", "key": "a.txt", "index": 1}),
        f"each[{hashed}]": ("task", "succeeded", {"item": {"n": 1}, "key": hashed, "index": 2}),
        "each[5]": ("task", "succeeded", {"item": 5, "key": 5, "index": 3}),
    }
    assert {n: r["result"] for n, r in rows.items() if r["step"] == "again" and r["kind"] == "task"} == {
        "again[b.txt]": ["b.txt", "b.txt"], "again[a.txt]": ["a.txt", "a.txt"],
        f"again[{hashed}]": [hashed, {"n": 1}], "again[5]": [5, 5]}
    assert rows["total"]["result"] == [["b.txt", "b.txt"], ["a.txt", "a.txt"], [hashed, {"n": 1}], [5, 5]]

    # Reordered, with one item more: the same items keep their node IDs, one node is added.
    flow.run(backend=backend, params={"names": [5, "c.txt", {"n": 1}, "a.txt", "b.txt"]})
    each = {n for n, r in flow.nodes().items() if r["step"] == "each" and r["kind"] == "task" and r["in_plan"]}
    assert each == {"each[b.txt]", "each[a.txt]", f"each[{hashed}]", "each[5]", "each[c.txt]"}
    assert flow.view("result")["total"] == [[5, 5], ["c.txt", "c.txt"], [hashed, {"n": 1}], ["a.txt", "a.txt"],
                                            ["b.txt", "b.txt"]]


def test_a_compiled_plan_runs_like_its_file_and_resumes_from_it(flow: Flow) -> None:
    flow.write(DEFERRED)
    plan = compile_workflow(flow.path, {"names": ["x", "y"]})
    first = run_workflow(plan, workspace=flow.ws, backend="threading", jobs=2)
    second = flow.run(params={"names": ["x", "y"]})
    assert (first.ok, first.report.plan_summary, second.report.counts, second.report.restored) == (
        True, {"new": 4}, {"succeeded": 8}, 6)  # the 2 deferred steps expand again
    assert flow.view("result")["total"] == [["x", "x"], ["y", "y"]]


# --- conditions ----------------------------------------------------------------------------------


def test_a_false_condition_skips_with_a_note_and_dependents_still_run(flow: Flow) -> None:
    flow.write("""
        name: conditions
        params:
          enabled: {type: boolean, default: false}
        steps:
          - name: maybe
            task: python
            condition: "{{ params.enabled }}"
            inputs: {code: "result = 'ran'"}
          - name: after
            task: python
            depends_on: [maybe]
            inputs: {code: "result = ['after', steps['maybe']['result']]"}
          - name: evens
            task: python
            items: [1, 2, 3, 4]
            condition: "{{ item % 2 == 0 }}"
            inputs: {code: "result = item * 10"}
          - name: each
            task: python
            for_each: evens
            inputs: {code: "result = [item, steps['evens']['result']]"}
          - name: total
            task: python
            depends_on: [evens]
            inputs: {code: "result = steps['evens']['results']"}
    """)
    result = flow.run()
    assert (result.ok, result.report.counts) == (True, {"succeeded": 8, "skipped": 3})
    assert flow.view("status", "note", "result") == {
        "maybe": ("skipped", "condition is false", None),
        "after": ("succeeded", None, ["after", None]),
        "evens[1]": ("skipped", "condition is false", None),
        "evens[2]": ("succeeded", None, 20),
        "evens[3]": ("skipped", "condition is false", None),
        "evens[4]": ("succeeded", None, 40),
        "each[1]": ("succeeded", None, [1, None]),
        "each[2]": ("succeeded", None, [2, 20]),
        "each[3]": ("succeeded", None, [3, None]),
        "each[4]": ("succeeded", None, [4, 40]),
        "total": ("succeeded", None, [None, 20, None, 40]),
    }
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.root / "ws2"), "-p", "enabled=true",
                    "--backend", "sequential", "-q").returncode == 0
    assert workflow_status(flow.root / "ws2")["nodes"]["maybe"] == {"status": "succeeded", "attempts": 1,
                                                                    "error": None, "reason": "new"}


# --- after: order without data -------------------------------------------------------------------


def test_after_waits_for_a_failed_step_that_would_skip_a_depends_on(flow: Flow) -> None:
    flow.write("""
        name: ordering
        steps:
          - name: first
            task: noop
            on_error: continue
            inputs: {should_fail: true}
          - name: cleanup
            task: python
            after: first
            inputs: {code: "result = sorted(steps)"}
          - name: needs_first
            task: echo
            depends_on: first
            inputs: {message: never}
          - name: last
            task: echo
            after: [cleanup, needs_first]
            inputs: {message: "{{ 'done' }}"}
    """)
    result = flow.run()
    assert (result.ok, result.report.counts) == (False, {"failed": 1, "succeeded": 2, "skipped": 1})
    assert flow.view("status", "note", "result") == {
        "first": ("failed", None, None),
        "cleanup": ("succeeded", None, []),  # order only: it does not see first's result
        "needs_first": ("skipped", "upstream first failed", None),
        "last": ("succeeded", None, "done"),
    }
    assert sorted(compile_workflow(flow.path).graph.edges) == [
        ("cleanup", "last"), ("first", "cleanup"), ("first", "needs_first"), ("needs_first", "last")]


# --- templates -----------------------------------------------------------------------------------


def test_templates_keep_their_types(flow: Flow) -> None:
    flow.module("types", '''
        def describe(**values):
            return {name: [type(value).__name__, value] for name, value in values.items()}
    ''')
    flow.write("""
        name: types
        params:
          size: {type: integer, default: 128}
          ratio: {type: number, default: 0.5}
          on: {type: boolean, default: true}
          code: {type: string, default: "007"}
        steps:
          - name: list
            task: python
            inputs: {code: "result = [1, 'two', {'three': 3}]"}
          - name: show
            task: python
            inputs:
              function: "<mod>:describe"
              kwargs:
                size: "{{ params.size }}"
                ratio: "{{ params.ratio }}"
                on: "{{ params.on }}"
                code: "{{ params.code }}"
                lst: "{{ steps.list.result }}"
                first: "{{ steps.list.result[2] }}"
                text: "size={{ params.size }}"
                nested: {deep: ["{{ params.size * 2 }}"]}
          - name: save
            task: file
            inputs: {action: write, path: out/list.json, content: "{{ steps.list.result }}"}
    """, mod=f"types_{flow.tag}")
    assert flow.run().ok
    assert flow.view("result")["show"] == {
        "size": ["int", 128], "ratio": ["float", 0.5], "on": ["bool", True], "code": ["str", "007"],
        "lst": ["list", [1, "two", {"three": 3}]], "first": ["dict", {"three": 3}], "text": ["str", "size=128"],
        "nested": ["dict", {"deep": [256]}]}
    assert (flow.ws / "out" / "list.json").read_text() == json.dumps([1, "two", {"three": 3}], indent=2) + "\n"


# --- shell quoting -------------------------------------------------------------------------------


def test_shell_substituted_values_are_quoted(flow: Flow) -> None:
    items = ["; touch pwned", "$(touch pwned2)", "`touch pwned3`", "a b", "it's", "x && touch pwned4"]
    flow.write(f"""
        name: quoting
        params:
          words: {{type: array, default: ["one two", "; touch pwned5"]}}
        steps:
          - name: echo
            task: shell
            items: {json.dumps(items)}
            inputs: {{command: "printf '%s\\\\n' {{{{ item }}}}"}}
          - name: words
            task: shell
            inputs: {{command: "printf '<%s>' {{{{ params.words }}}}"}}
    """)
    result = flow.run()
    assert result.ok, untraced(result.report.failed)
    rows = flow.nodes()
    assert sorted(r["result"]["stdout"] for n, r in rows.items() if r["step"] == "echo") == sorted(
        item + "\n" for item in items)
    assert rows["words"]["result"]["stdout"] == "<one two><; touch pwned5>"
    assert sorted(p.name for p in flow.ws.iterdir()) == [".plait"]


# --- file tasks ----------------------------------------------------------------------------------


def test_file_tasks_refuse_paths_outside_the_workspace(flow: Flow) -> None:
    outside = flow.root / "elsewhere"
    outside.mkdir()
    flow.ws.mkdir()
    (flow.ws / "link").symlink_to(outside)
    items = ["../outside.txt", "sub/../../outside2.txt", "link/x.txt", str(flow.root / "abs.txt"), "inside/ok.txt"]
    flow.write(f"""
        name: escapes
        steps:
          - name: write
            task: file
            items: {json.dumps(items)}
            key: "{{{{ index }}}}"
            on_error: continue
            inputs: {{action: write, path: "{{{{ item }}}}", content: "x"}}
    """)
    result = flow.run()
    root = flow.ws.resolve()
    refused = {f"write[{i}]": error(f"write[{i}]", "PermissionError", f"path '{p}' is outside the workspace {root}",
                                    item=p, retryable=True)
               for i, p in enumerate(items[:4])}
    assert untraced(result.report.failed) == list(refused.values())
    assert flow.view("status", "error") == {
        **{n: ("failed", e) for n, e in refused.items()}, "write[4]": ("succeeded", None)}
    assert (sorted(p.name for p in flow.root.iterdir()), list(outside.iterdir())) == (
        ["elsewhere", "flow", "ws"], [])
    assert (flow.ws / "inside" / "ok.txt").read_text() == "x"


# --- scheduling ----------------------------------------------------------------------------------

TIMELINE = '''
import time


def event(ctx):
    with open(ctx.workspace / "events.log", "a") as log:
        log.write(f"{ctx.node_id}\\n")


def a(item, ctx):
    if item == 1:  # held until b[0] has run (60 s at most): b[0] must not wait for a[1]
        deadline = time.monotonic() + 60
        while "b[0]" not in (ctx.workspace / "events.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.005)
    event(ctx)
    return item


def b(item, ctx):
    event(ctx)
    return item
'''


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_a_for_each_node_does_not_wait_for_the_slow_items_of_its_upstream(flow: Flow, backend: str) -> None:
    flow.write("""
        name: timeline
        steps:
          - name: a
            task: python
            items: [0, 1]
            inputs: {function: "<mod>:a"}
          - name: b
            task: python
            for_each: a
            inputs: {function: "<mod>:b"}
    """, mod=flow.module("timeline", TIMELINE))
    (flow.ws).mkdir()
    (flow.ws / "events.log").touch()
    assert flow.run(backend=backend, jobs=2).ok
    order = (flow.ws / "events.log").read_text().split()
    assert sorted(order) == ["a[0]", "a[1]", "b[0]", "b[1]"]
    assert order.index("b[0]") < order.index("a[1]"), f"b[0] waited for a[1]: {order}"


# --- the run's threads -----------------------------------------------------------------------------


def test_a_run_hands_the_gil_over_promptly_and_gives_the_switch_interval_back(flow: Flow) -> None:
    flow.write("""
        name: interval
        steps:
          - name: seen
            task: python
            inputs:
              code: "import sys; result = sys.getswitchinterval()"
        """)
    before = sys.getswitchinterval()
    result = flow.run()

    assert result.ok
    assert flow.view("result")["seen"] == HANDOFF_SECONDS < before
    assert sys.getswitchinterval() == before
