"""The backend contract: the same workflows give the same ledger on every backend.

One parametrized class runs each workflow on sequential, threading and loky, and compares the
whole ledger state (kind, status, attempts, result, error record, note of every node) with one
expected value, so any backend that differs from the others fails. Completion order is the one
thing allowed to differ, so it is not compared.
"""

from __future__ import annotations

from typing import Any

import pytest

import plait.runtime
from plait.runtime import workflow_status
from runtime.support import BACKENDS, RECORDER, Flow, error, untraced


def test_every_backend_plait_offers_is_in_the_contract_suite() -> None:
    # dask runs this module's TestBackendContract in test_dask.py, on a cluster that module starts
    assert sorted(plait.runtime.BACKENDS) == sorted((*BACKENDS, "dask"))


def state(flow: Flow) -> dict[str, tuple[Any, ...]]:
    return flow.view("kind", "status", "attempts", "result", "error", "note")


PIPELINE_HELPERS = '''
def make(item, ctx):
    if item == 1 and ctx.attempt == 1:
        raise OSError("first attempt at item 1 fails")
    return f"item-{item}"
'''

PIPELINE = """
    name: contract
    params:
      n: {type: integer, default: 4}
    steps:
      - name: make
        task: python
        items: {range: [0, "{{ params.n }}"]}
        retry: {max_attempts: 2, delay: 0}
        inputs: {function: "<mod>:make"}
      - name: shout
        task: shell
        for_each: make
        inputs: {command: "echo {{ steps.make.result }} | tr a-z A-Z"}
      - name: odd
        task: python
        for_each: shout
        condition: "{{ item % 2 == 1 }}"
        inputs: {code: "result = steps['shout']['result']['stdout'].strip()"}
      - name: save
        task: file
        depends_on: [odd]
        inputs: {action: write, path: out/odd.json, content: "{{ steps.odd.results }}"}
      - name: page
        task: template
        depends_on: [make]
        inputs: {template: "{% for r in steps.make.results %}{{ r }};{% endfor %}"}
      - name: bad
        task: python
        items: [x, y]
        max_failures: 1
        inputs: {code: "result = item if item == 'x' else int(item)"}
      - name: after_bad
        task: python
        depends_on: [bad]
        inputs: {code: "result = steps['bad']['results']"}
"""

DEFERRED = """
    name: contract2
    steps:
      - name: list
        task: python
        inputs: {function: "<rec>:record", kwargs: {value: [p, q, r]}}
      - name: each
        task: python
        items: "{{ steps.list.result }}"
        on_error: continue
        inputs: {code: "result = item.upper() if item != 'q' else item.missing"}
      - name: again
        task: python
        items: "{{ steps.list.result }}"
        inputs: {code: "result = item * 2"}
      - name: twice
        task: python
        for_each: again
        inputs: {code: "result = steps['again']['result'] + '!'"}
      - name: fan_in
        task: python
        depends_on: [each]
        inputs: {code: "result = steps['each']['results']"}
      - name: shell
        task: shell
        inputs: {command: "echo independent"}
"""


LIMITED_HELPERS = '''
def call(item, ctx):
    if item == 1 and ctx.attempt == 1:
        raise OSError("first attempt at item 1 fails")
    if item == 3:
        raise ValueError("item 3 is bad")
    return item
'''

LIMITED = """
    name: contract3
    steps:
      - name: call
        task: python
        items: [0, 1, 2, 3, 4, 5]
        max_parallel: 2
        retry: {max_attempts: 2, delay: 0}
        max_failures: 1
        inputs: {function: "<mod>:call"}
      - name: use
        task: python
        for_each: call
        max_parallel: 1
        condition: "{{ item != 4 }}"
        inputs: {code: "result = steps['call']['result'] * 10"}
      - name: total
        task: python
        depends_on: [use]
        inputs: {code: "result = steps['use']['results']"}
"""


ODD_JSON = '[\n  null,\n  "ITEM-1",\n  null,\n  "ITEM-3"\n]\n'


def shell_result(stdout: str) -> dict[str, Any]:
    return {"stdout": stdout, "stderr": "", "exit_code": 0}


@pytest.mark.parametrize("backend", BACKENDS)
class TestBackendContract:
    """Every backend runs these workflows to the same ledger."""

    def test_pipeline_with_retries_conditions_fan_ins_and_a_tolerated_failure(self, flow: Flow,
                                                                                 backend: str) -> None:
        flow.write(PIPELINE, mod=flow.module("contract", PIPELINE_HELPERS))
        result = flow.run(backend=backend, jobs=2)
        bad = error("bad[y]", "ValueError", "invalid literal for int() with base 10: 'y'", item="y")
        assert (result.ok, result.report.counts, untraced(result.report.failed)) == (
            True, {"succeeded": 14, "skipped": 2, "failed": 1}, [])
        assert state(flow) == {
            "make[0]": ("task", "succeeded", 1, "item-0", None, None),
            "make[1]": ("task", "succeeded", 2, "item-1", None, None),
            "make[2]": ("task", "succeeded", 1, "item-2", None, None),
            "make[3]": ("task", "succeeded", 1, "item-3", None, None),
            "shout[0]": ("task", "succeeded", 1, shell_result("ITEM-0\n"), None, None),
            "shout[1]": ("task", "succeeded", 1, shell_result("ITEM-1\n"), None, None),
            "shout[2]": ("task", "succeeded", 1, shell_result("ITEM-2\n"), None, None),
            "shout[3]": ("task", "succeeded", 1, shell_result("ITEM-3\n"), None, None),
            "odd[0]": ("task", "skipped", 1, None, None, "condition is false"),
            "odd[1]": ("task", "succeeded", 1, "ITEM-1", None, None),
            "odd[2]": ("task", "skipped", 1, None, None, "condition is false"),
            "odd[3]": ("task", "succeeded", 1, "ITEM-3", None, None),
            "save": ("task", "succeeded", 1, {"path": "out/odd.json", "bytes": len(ODD_JSON)}, None, None),
            "page": ("task", "succeeded", 1, "item-0;item-1;item-2;item-3;", None, None),
            "bad[x]": ("task", "succeeded", 1, "x", None, None),
            "bad[y]": ("task", "failed", 1, None, bad, None),
            "after_bad": ("task", "succeeded", 1, ["x", None], None, None),
        }
        assert (flow.ws / "out" / "odd.json").read_text() == ODD_JSON

    def test_deferred_steps_a_failure_and_what_it_skips(self, flow: Flow, backend: str) -> None:
        flow.write(DEFERRED, rec=flow.module("recorder", RECORDER))
        result = flow.run(backend=backend, jobs=2)
        missing = error("each[q]", "AttributeError", "'str' object has no attribute 'missing'", item="q")
        assert (result.ok, untraced(result.report.failed)) == (False, [missing])
        assert state(flow) == {
            "list": ("task", "succeeded", 1, ["p", "q", "r"], None, None),
            "each": ("join", "skipped", 0, None, None, "upstream each[q] failed"),
            "again": ("join", "succeeded", 0, ["pp", "qq", "rr"], None, None),
            "twice": ("join", "succeeded", 0, ["pp!", "qq!", "rr!"], None, None),
            "fan_in": ("task", "skipped", 0, None, None, "upstream each was skipped"),
            "shell": ("task", "succeeded", 1, shell_result("independent\n"), None, None),
            "each[p]": ("task", "succeeded", 1, "P", None, None),
            "each[q]": ("task", "failed", 1, None, missing, None),
            "each[r]": ("task", "succeeded", 1, "R", None, None),
            "again[p]": ("task", "succeeded", 1, "pp", None, None),
            "again[q]": ("task", "succeeded", 1, "qq", None, None),
            "again[r]": ("task", "succeeded", 1, "rr", None, None),
            "twice[p]": ("task", "succeeded", 1, "pp!", None, None),
            "twice[q]": ("task", "succeeded", 1, "qq!", None, None),
            "twice[r]": ("task", "succeeded", 1, "rr!", None, None),
        }
        status = workflow_status(flow.ws)
        assert {step: (sorted(map(str, s["processed"])), s["stats"]) for step, s in status["steps"].items()} == {
            "list": (["list"], {"total": 1, "processed": 1, "failed": 0, "retried": 0, "skipped": 0, "pending": 0}),
            "each": (["p", "r"], {"total": 3, "processed": 2, "failed": 1, "retried": 0, "skipped": 0, "pending": 0}),
            "again": (["p", "q", "r"],
                      {"total": 3, "processed": 3, "failed": 0, "retried": 0, "skipped": 0, "pending": 0}),
            "twice": (["p", "q", "r"],
                      {"total": 3, "processed": 3, "failed": 0, "retried": 0, "skipped": 0, "pending": 0}),
            "fan_in": ([], {"total": 1, "processed": 0, "failed": 0, "retried": 0, "skipped": 1, "pending": 0}),
            "shell": (["shell"],
                      {"total": 1, "processed": 1, "failed": 0, "retried": 0, "skipped": 0, "pending": 0}),
        }
        assert flow.executions() == ["list"]

    def test_limited_steps_with_a_retry_a_tolerated_failure_a_skip_and_a_fan_in(self, flow: Flow,
                                                                                backend: str) -> None:
        flow.write(LIMITED, mod=flow.module("limited", LIMITED_HELPERS))
        result = flow.run(backend=backend, jobs=3)
        bad = error("call[3]", "ValueError", "item 3 is bad", item=3)
        assert (result.ok, result.report.counts) == (True, {"succeeded": 10, "skipped": 2, "failed": 1})
        assert state(flow) == {
            "call[0]": ("task", "succeeded", 1, 0, None, None),
            "call[1]": ("task", "succeeded", 2, 1, None, None),
            "call[2]": ("task", "succeeded", 1, 2, None, None),
            "call[3]": ("task", "failed", 1, None, bad, None),
            "call[4]": ("task", "succeeded", 1, 4, None, None),
            "call[5]": ("task", "succeeded", 1, 5, None, None),
            "use[0]": ("task", "succeeded", 1, 0, None, None),
            "use[1]": ("task", "succeeded", 1, 10, None, None),
            "use[2]": ("task", "succeeded", 1, 20, None, None),
            "use[3]": ("task", "skipped", 0, None, None, "upstream call[3] failed"),
            "use[4]": ("task", "skipped", 1, None, None, "condition is false"),
            "use[5]": ("task", "succeeded", 1, 50, None, None),
            "total": ("task", "succeeded", 1, [0, 10, 20, None, None, 50], None, None),
        }

    def test_a_resumed_run_restores_every_succeeded_node_on_any_backend(self, flow: Flow, backend: str) -> None:
        flow.write(DEFERRED.replace("item.missing", "item.upper()"), rec=flow.module("recorder", RECORDER))
        first = flow.run(backend="sequential")
        before = state(flow)
        second = flow.run(backend=backend, jobs=2)
        assert (first.ok, second.ok, second.report.restored, second.report.counts) == (
            True, True, 12, {"succeeded": 15})  # the 3 deferred steps re-expand
        assert (state(flow), flow.executions()) == (before, ["list"])

    def test_a_task_may_change_its_item_and_the_change_stays_its_own(self, flow: Flow, backend: str) -> None:
        """An item reaches a task as plain dicts and lists, its own copy: changing it fails nothing, and no other
        node, later attempt or template sees the change (the plan itself is immutable, and threads share it)."""
        flow.write(OWN_ITEMS, mod=flow.module("own_items", OWN_ITEM_HELPERS))
        result = flow.run(backend=backend, jobs=2)
        assert (result.ok, result.report.counts) == (True, {"succeeded": 7}), untraced(result.report.failed)
        mapping, listed = {"n": 1, "tags": ["a"]}, [1, [2]]
        assert flow.view("attempts", "result") == {
            "code[m]": (2, [{"n": 1, "tags": ["a", "seen"], "seen": 2}, "dict", "list", "fresh"]),
            "code[l]": (2, [[1, [2, 0], "seen"], "list", "list", "fresh"]),
            "call[m]": (1, [{"n": 1, "tags": ["a", "called"]}, "dict", "list"]),
            "call[l]": (1, [[1, [2, "called"]], "list", "list"]),
            "after[m]": (1, [mapping, "m"]), "after[l]": (1, [listed, "l"]),
            "all[all]": (1, [mapping, listed]),
        }


OWN_ITEM_HELPERS = '''
def change(item):
    inner = item["tags"] if isinstance(item, dict) else item[1]
    inner.append("called")
    return [item, type(item).__name__, type(inner).__name__]
'''

# Code changes its item in place, and its first attempt fails after that, so the retry shows whether it got a
# fresh copy; a function does the same; a for_each over code and a group of call's items then read the items.
OWN_ITEMS = """
    name: own
    steps:
      - name: code
        task: python
        items: [{n: 1, tags: [a]}, [1, [2]]]
        key: "{{ 'm' if item is mapping else 'l' }}"
        retry: {max_attempts: 2, delay: 0, retry_on: [RuntimeError]}
        inputs:
          code: |
            inner = item["tags"] if isinstance(item, dict) else item[1]
            fresh = "fresh" if inner in (["a"], [2]) else "changed"
            if isinstance(item, dict):
                item["seen"] = ctx.attempt
                inner.append("seen")
            else:
                inner.append(0)
                item.append("seen")
            if ctx.attempt == 1:
                raise RuntimeError("after changing the item")
            result = [item, type(item).__name__, type(inner).__name__, fresh]
      - name: call
        task: python
        items: [{n: 1, tags: [a]}, [1, [2]]]
        key: "{{ 'm' if item is mapping else 'l' }}"
        inputs: {function: "<mod>:change"}
      - name: after
        task: python
        for_each: code
        inputs: {code: "result = [item, ctx.key]"}
      - name: all
        task: python
        group_by: {step: call, key: "all"}
        inputs: {code: "result = group['items']"}
"""
