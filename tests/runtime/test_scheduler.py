"""The scheduling rules, driven in this process by `SyncRun` (no workers, a fake clock): milliseconds each.

Each test compares whole values: the waves dispatched (as units), every node's last record, the
decisions a resume made. The same rules are proven end to end, with real processes, by fewer tests
in tests/test_engine_integration.py, tests/test_state_integration.py and tests/reliability/.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.runtime import waves
from plait.runtime.decide import Decision
from plait.runtime.execute import Chunk, Results, RunInfo
from plait.runtime.outcome import NOT_STARTED
from plait.runtime.selection import select
from runtime.harness import SyncRun


@pytest.fixture
def sync(tmp_path: Path) -> SyncRun:
    return SyncRun(tmp_path)


def yaml(text: str) -> str:
    return textwrap.dedent(text)


CHAIN = yaml("""
    name: chain
    steps:
      - name: a
        task: python
        items: [0, 1, 2]
        inputs: {code: "result = item * 10"}
      - name: b
        task: python
        for_each: a
        inputs: {code: "result = steps['a']['result'] + 1"}
      - name: total
        task: python
        depends_on: [b]
        inputs: {code: "result = sum(steps['b']['results'])"}
""")


def test_a_per_item_chain_is_fused_and_its_fan_in_waits_for_the_next_wave(sync: SyncRun) -> None:
    report, state = sync.run(sync.compile(CHAIN))
    assert (report.status, sync.dispatched()) == ("succeeded", [
        [["a[0]", "b[0]"], ["a[1]", "b[1]"], ["a[2]", "b[2]"]],  # b[k] rides with a[k]
        [["total"]],
    ])
    assert {n: (r.status, json.loads(r.result)) for n, r in sync.last().items()} == {
        "a[0]": ("succeeded", 0), "b[0]": ("succeeded", 1), "a[1]": ("succeeded", 10), "b[1]": ("succeeded", 11),
        "a[2]": ("succeeded", 20), "b[2]": ("succeeded", 21), "total": ("succeeded", 33)}
    assert state.decisions == dict.fromkeys(["a[0]", "a[1]", "a[2]", "b[0]", "b[1]", "b[2]", "total"],
                                            Decision(True, "new"))


FLAKY = yaml("""
    name: flaky
    steps:
      - name: work
        task: python
        retry: {max_attempts: 4, delay: 1.0, backoff: 2.0, jitter: 0, retry_on: [OSError]}
        inputs:
          code: |
            if ctx.attempt < 3:
                raise OSError(f"attempt {ctx.attempt} failed")
            result = ctx.attempt
""")


def test_a_retryable_failure_waits_its_backoff_on_the_clock_then_succeeds(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(FLAKY))
    assert [(wave.at, wave.units) for wave in sync.waves] == [(0.0, [["work"]]), (1.0, [["work"]]), (3.0, [["work"]])]
    assert (report.status, sync.last()["work"].status, sync.last()["work"].attempts,
            sync.last()["work"].result) == ("succeeded", "succeeded", 3, "3")
    assert [r.node_id for r in sync.records] == ["work"]  # failed attempts are not final: one record


def test_a_failure_the_policy_does_not_retry_is_final_at_once(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(FLAKY.replace("retry_on: [OSError]", "retry_on: [TimeoutError]")))
    error = json.loads(sync.last()["work"].error)
    assert (report.status, len(sync.waves), error["error_type"], error["retryable"], error["attempt"]) == (
        "failed", 1, "OSError", False, 1)


def budget(failing: list[int], on_error: str = "fail", budget: str = "1") -> str:
    return yaml(f"""
        name: budget
        steps:
          - name: work
            task: python
            items: [0, 1, 2, 3]
            max_failures: {budget}
            on_error: {on_error}
            inputs:
              code: |
                if item in {failing}:
                    raise ValueError(f"item {{item}} is bad")
                result = item
          - name: each
            task: python
            for_each: work
            inputs: {{code: "result = steps['work']['result']"}}
          - name: all
            task: python
            depends_on: [work]
            inputs: {{code: "result = steps['work']['results']"}}
    """)


def test_a_failure_within_the_budget_is_tolerated_its_partner_skipped_and_the_fan_in_sees_none(sync: SyncRun) -> None:
    report, state = sync.run(sync.compile(budget([2])))
    assert (report.status, sync.statuses()) == ("succeeded", {
        "work[0]": "succeeded", "each[0]": "succeeded", "work[1]": "succeeded", "each[1]": "succeeded",
        "work[2]": "failed", "each[2]": "skipped", "work[3]": "succeeded", "each[3]": "succeeded",
        "all": "succeeded"})
    assert (sync.last()["each[2]"].note, json.loads(sync.last()["all"].result)) == (
        "upstream work[2] failed", [0, 1, None, 3])
    assert state.tolerated == {"work[2]", "each[2]"}


def test_past_the_budget_on_error_fail_stops_the_run_and_what_was_not_started_stays_pending(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(budget([1, 2])))
    assert (report.status, [e["node"] for e in report.failed]) == ("failed", ["work[2]"])
    # work[1] failed within the budget, work[2] past it: the run stopped there. Fused partners that came
    # back unrun and work[3]'s unit, which the workers were told not to start, stay pending ("interrupted").
    assert {n: (r.status, r.note) for n, r in sync.last().items()} == {
        "work[0]": ("succeeded", None), "each[0]": ("succeeded", None), "work[1]": ("failed", None),
        "work[2]": ("failed", None), "work[3]": ("pending", "interrupted"), "each[1]": ("pending", "interrupted"),
        "each[2]": ("pending", "interrupted"), "each[3]": ("pending", "interrupted")}
    assert report.counts == {"succeeded": 2, "failed": 2, "pending": 5}  # `all` was never reached


def test_past_the_budget_on_error_continue_runs_the_rest_and_skips_what_depends_on_the_failure(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(budget([1, 2], on_error="continue")))
    assert (report.status, sync.statuses()) == ("failed", {
        "work[0]": "succeeded", "each[0]": "succeeded", "work[1]": "failed", "each[1]": "skipped",
        "work[2]": "failed", "each[2]": "skipped", "work[3]": "succeeded", "each[3]": "succeeded",
        "all": "skipped"})
    assert sync.last()["all"].note == "upstream work[2] failed"  # the first untolerated failure it depends on


SEES_FAILURE = yaml("""
    name: sees_failure
    steps:
      - name: fails
        task: python
        on_error: continue
        max_failures: 1
        inputs: {code: "raise KeyError('no such row')"}
      - name: empty
        task: python
        inputs: {code: "result = None"}
      - name: unneeded
        task: python
        condition: "{{ false }}"
        inputs: {code: "result = 1"}
      - name: reads
        task: python
        depends_on: [fails, empty, unneeded]
        inputs: {code: "result = {s: steps[s] for s in ('fails', 'empty', 'unneeded')}"}
""")


def test_a_step_sees_a_tolerated_failure_and_a_skip_apart_from_a_null_result(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(SEES_FAILURE))
    seen = json.loads(sync.last()["reads"].result)
    error = seen["fails"].pop("error")
    assert (report.status, seen) == ("succeeded", {
        "fails": {"result": None, "status": "failed"},
        "empty": {"result": None},
        "unneeded": {"result": None, "status": "skipped", "error": None}})
    assert (error["error_type"], error["error"], error["node"]) == ("KeyError", "'no such row'", "fails")


DEFERRED = yaml("""
    name: deferred
    steps:
      - name: list
        task: python
        inputs: {code: "result = [3, 1, 2]"}
      - name: each
        task: python
        items: "{{ steps.list.result }}"
        inputs: {code: "result = item * 2"}
      - name: after
        task: python
        for_each: each
        inputs: {code: "result = steps['each']['result'] + 1"}
      - name: sum
        task: python
        depends_on: [after]
        inputs: {code: "result = sum(steps['after']['results'])"}
""")


def test_a_deferred_step_expands_with_its_for_each_partner_once_its_upstream_ran(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(DEFERRED))
    assert (report.status, sync.dispatched()) == ("succeeded", [
        [["list"]],
        [["each[3]", "after[3]"], ["each[1]", "after[1]"], ["each[2]", "after[2]"]],
        [["sum"]],
    ])
    assert sorted(a[0] for a in sync.added) == ["after", "after[1]", "after[2]", "after[3]", "each", "each[1]",
                                                 "each[2]", "each[3]"]
    assert json.loads(sync.last()["sum"].result) == 7 + 3 + 5


def test_items_that_are_not_a_list_fail_the_expansion_with_a_located_error(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(DEFERRED.replace("result = [3, 1, 2]", "result = 7")))
    error = json.loads(sync.last()["each"].error)
    assert (report.status, error["error_type"], error["error"], sync.statuses()) == (
        "failed", "ValueError", "<test>:9:12: error: step 'each': its items gave int, not a list\n"
                                "  hint: the items template must give a list, e.g. \"{{ steps.find.result }}\"",
        {"list": "succeeded", "each": "failed"})


RESUMED = yaml("""
    name: resumed
    params:
      factor: {type: integer, default: 2}
    steps:
      - name: a
        task: python
        items: [1, 2]
        key: "{{ item.k if item is mapping else item }}"
        inputs: {code: "result = item"}
      - name: b
        task: python
        for_each: a
        inputs: {code: "result = params['factor'] * offset", kwargs: {offset: 1}}
      - name: c
        task: python
        inputs:
          function: "helpers:work"
          kwargs: {x: 1}
""")


def decisions_after(sync: SyncRun, first: str, second: str, **params: object) -> dict[str, Decision]:
    (sync.root / "flow").mkdir(parents=True, exist_ok=True)
    (sync.root / "flow" / "helpers.py").write_text("def work(x):\n    return x\n", encoding="utf-8")
    sync.run(sync.compile(first))
    _, state = sync.run(sync.compile(second, dict(params)))
    return state.decisions


def test_nothing_changed_restores_every_node(sync: SyncRun) -> None:
    assert decisions_after(sync, RESUMED, RESUMED) == {}


def test_a_changed_param_names_itself_and_reruns_only_the_step_that_reads_it(sync: SyncRun) -> None:
    assert decisions_after(sync, RESUMED, RESUMED, factor="3") == {
        "b[1]": Decision(True, "changed", "params: factor"), "b[2]": Decision(True, "changed", "params: factor")}


def test_a_changed_input_is_config(sync: SyncRun) -> None:
    assert decisions_after(sync, RESUMED, RESUMED.replace("offset: 1", "offset: 2")) == {
        "b[1]": Decision(True, "changed", "config"), "b[2]": Decision(True, "changed", "config")}


def test_changed_code_in_a_function_module_is_code(sync: SyncRun) -> None:
    (sync.root / "flow").mkdir(parents=True, exist_ok=True)
    (sync.root / "flow" / "helpers.py").write_text("def work(x):\n    return x\n", encoding="utf-8")
    sync.run(sync.compile(RESUMED))
    (sync.root / "flow" / "helpers.py").write_text("def work(x):\n    return x + 1\n", encoding="utf-8")
    _, state = sync.run(sync.compile(RESUMED))
    assert state.decisions == {"c": Decision(True, "changed", "code")}


def test_a_changed_item_is_item_and_its_partner_shares_the_item_and_names_it_upstream(sync: SyncRun) -> None:
    before = RESUMED.replace("items: [1, 2]", "items: [{k: 1, v: a}, {k: 2, v: b}]")
    after = RESUMED.replace("items: [1, 2]", "items: [{k: 1, v: a}, {k: 2, v: changed}]")
    assert decisions_after(sync, before, after) == {
        "a[2]": Decision(True, "changed", "item"), "b[2]": Decision(True, "changed", "item; upstream: a[2]")}


def test_a_failed_node_reruns_with_its_last_error_and_a_new_item_is_new(sync: SyncRun) -> None:
    failing = RESUMED.replace('inputs: {code: "result = item"}', 'on_error: continue\n    '
                              'inputs: {code: "result = 1 / (item - 2)"}')
    grown = failing.replace("items: [1, 2]", "items: [1, 2, 3]")
    decisions = decisions_after(sync, failing, grown)
    assert decisions == {
        "a[2]": Decision(True, "failed", "ZeroDivisionError: division by zero"),
        "b[2]": Decision(True, "pending"),  # skipped last time, as its partner failed
        "a[3]": Decision(True, "new"), "b[3]": Decision(True, "new")}


def test_a_node_a_stopping_run_dispatched_but_did_not_finish_is_interrupted(sync: SyncRun) -> None:
    plan = sync.compile(RESUMED)
    (sync.root / "flow" / "helpers.py").write_text("def work(x):\n    return x\n", encoding="utf-8")
    sync.run(plan)
    sync.records.append(sync.last()["c"]._replace(status="pending", note="interrupted"))
    _, state = sync.run(plan)
    assert state.decisions == {"c": Decision(True, "interrupted")}


LIMITED = yaml("""
    name: limited
    steps:
      - name: api
        task: python
        items: [0, 1, 2, 3, 4]
        max_parallel: 2
        inputs: {code: "result = item"}
      - name: other
        task: python
        items: [a, b]
        inputs: {code: "result = item"}
      - name: after_api
        task: python
        for_each: api
        inputs: {code: "result = steps['api']['result'] + 1"}
      - name: slow_partner
        task: python
        for_each: other
        max_parallel: 1
        inputs: {code: "result = steps['other']['result'] * 2"}
""")


def test_a_limited_step_runs_in_at_most_its_max_parallel_lanes_sent_first_and_fused_with_nothing(
        sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(LIMITED))
    assert (report.status, sync.dispatched()) == ("succeeded", [
        # api's 5 nodes dealt over 2 lanes, sent before the other units; after_api[k] does not ride with
        # api[k], nor slow_partner[k] (limited) with other[k]
        [["api[0]", "api[2]", "api[4]"], ["api[1]", "api[3]"], ["other[a]"], ["other[b]"]],
        [["slow_partner[a]", "slow_partner[b]"], ["after_api[0]"], ["after_api[1]"], ["after_api[2]"],
         ["after_api[3]"], ["after_api[4]"]],
    ])
    assert {n: json.loads(r.result) for n, r in sync.last().items() if n.startswith(("after_api", "slow"))} == {
        "after_api[0]": 1, "after_api[1]": 2, "after_api[2]": 3, "after_api[3]": 4, "after_api[4]": 5,
        "slow_partner[a]": "aa", "slow_partner[b]": "bb"}


def test_retried_nodes_of_a_limited_step_go_into_the_lanes_of_a_later_wave(sync: SyncRun) -> None:
    flaky = yaml("""
        name: flaky_limited
        steps:
          - name: api
            task: python
            items: [0, 1, 2, 3]
            max_parallel: 3
            retry: {max_attempts: 2, delay: 1.0, jitter: 0, retry_on: [OSError]}
            inputs:
              code: |
                if ctx.attempt == 1 and item != 3:
                    raise OSError("rate limited")
                result = ctx.attempt
    """)
    report, _ = sync.run(sync.compile(flaky))
    assert (report.status, [(wave.at, wave.units) for wave in sync.waves]) == ("succeeded", [
        (0.0, [["api[0]", "api[3]"], ["api[1]"], ["api[2]"]]),
        (1.0, [["api[0]"], ["api[1]"], ["api[2]"]]),
    ])
    assert {n: r.attempts for n, r in sync.last().items()} == {"api[0]": 2, "api[1]": 2, "api[2]": 2, "api[3]": 1}


def test_the_nodes_an_expansion_adds_to_a_limited_step_go_into_its_lanes(sync: SyncRun) -> None:
    grown = yaml("""
        name: grown
        steps:
          - name: list
            task: python
            inputs: {code: "result = [3, 1, 2]"}
          - name: each
            task: python
            items: "{{ steps.list.result }}"
            max_parallel: 2
            inputs: {code: "result = item * 2"}
          - name: split
            task: python
            items: [x, y]
            inputs: {code: "result = [0, 1]"}
          - name: part
            task: python
            for_each: split
            items: "{{ parent.result }}"
            max_parallel: 1
            inputs: {code: "result = parent['key'] + str(item)"}
    """)
    report, _ = sync.run(sync.compile(grown))
    assert (report.status, sync.dispatched()) == ("succeeded", [
        [["list"], ["split[x]"], ["split[y]"]],
        [["each[3]", "each[2]"], ["each[1]"], ["part[x/0]", "part[x/1]", "part[y/0]", "part[y/1]"]],
    ])


def test_a_changed_max_parallel_reruns_nothing(sync: SyncRun) -> None:
    assert decisions_after(sync, LIMITED, LIMITED.replace("max_parallel: 2", "max_parallel: 3")) == {}


def test_until_runs_the_named_steps_and_what_they_need_and_leaves_what_follows_them(sync: SyncRun) -> None:
    plan = sync.compile(CHAIN)
    report, state = sync.run(plan, selection=select(plan, until=["a"]))
    assert (report.status, sync.dispatched(), state.left_out) == (
        "succeeded", [[["a[0]"], ["a[1]"], ["a[2]"]]], {"b[0]", "b[1]", "b[2]", "total"})
    report, state = sync.run(plan, selection=select(plan, until=["b"]))  # a is done: b runs, total is left out
    assert (report.status, sync.dispatched(), state.left_out) == (
        "succeeded", [[["b[0]"], ["b[1]"], ["b[2]"]]], {"total"})
    report, _ = sync.run(plan)
    assert (report.status, sync.dispatched(), json.loads(sync.last()["total"].result)) == (
        "succeeded", [[["total"]]], 33)


# --- calls that overlap (plait.runtime.calls): the harness takes one outcome from each call in flight in turn --

FAN_OUT = yaml("""
    name: fan_out
    steps:
      - name: split
        task: python
        items: [a, b]
        inputs: {code: "result = [0, 1]"}
      - name: part
        task: python
        for_each: split
        items: "{{ parent.result }}"
        inputs: {code: "result = parent['key'] + str(item)"}
      - name: gather
        task: python
        group_by: {step: part, key: "{{ parent.key }}"}
        inputs: {code: "result = group['results']"}
""")


def test_a_parents_children_are_dispatched_as_soon_as_it_is_back_while_its_sibling_is_not(tmp_path: Path) -> None:
    sync = SyncRun(tmp_path, overlap=2)
    report, _ = sync.run(sync.compile(FAN_OUT))
    assert sync.settled == ["split[a]", "split[b]", "part[a/0]", "part[a/1]", "part[b/0]", "part[b/1]", "gather[a]",
                            "gather[b]"]
    assert (report.status, [(wave.after, wave.units) for wave in sync.waves]) == ("succeeded", [
        (0, [["split[a]"], ["split[b]"]]),
        (1, [["part[a/0]"], ["part[a/1]"]]),  # split[a] is back, split[b] not yet: its call is still in flight
        (3, [["part[b/0]"], ["part[b/1]"]]),  # once the first call ended: two calls at most
        (5, [["gather[a]"]]),  # its own group only: part[b/1] is not back yet
        (7, [["gather[b]"]]),
    ])
    assert {n: json.loads(r.result) for n, r in sync.last().items() if n.startswith("gather")} == {
        "gather[a]": ["a0", "a1"], "gather[b]": ["b0", "b1"]}


LATE_PARENT = yaml("""
    name: late_parent
    steps:
      - name: split
        task: python
        items: [a, b]
        retry: {max_attempts: 2, delay: 1, retry_on: [OSError]}
        inputs:
          code: |
            if item == "a" and ctx.attempt == 1:
                raise OSError("not yet")
            result = [0, 1]
      - name: part
        task: python
        for_each: split
        items: "{{ parent.result }}"
        inputs: {code: "result = parent['key'] + str(item)"}
      - name: total
        task: python
        depends_on: [part]
        inputs: {code: "result = steps['part']['results']"}
""")


def test_a_fan_outs_results_keep_plan_order_when_a_later_parent_grows_first(tmp_path: Path) -> None:
    """split[a] is retried, so split[b]'s children are added to the plan first; the run's members of `part`
    (what `steps.part.results` lists) are merged into plan order, not kept in the order they grew."""
    sync = SyncRun(tmp_path, overlap=2)
    report, _ = sync.run(sync.compile(LATE_PARENT))
    assert (report.status, [(wave.after, wave.units) for wave in sync.waves]) == ("succeeded", [
        (0, [["split[a]"], ["split[b]"]]),
        (2, [["part[b/0]"], ["part[b/1]"]]),  # split[a] failed its first attempt: b's children grew first
        (4, [["split[a]"]]),
        (5, [["part[a/0]"], ["part[a/1]"]]),
        (7, [["total"]]),
    ])
    assert json.loads(sync.last()["total"].result) == ["a0", "a1", "b0", "b1"]


def test_one_call_at_a_time_keeps_waves_apart(sync: SyncRun) -> None:
    report, _ = sync.run(sync.compile(FAN_OUT))
    assert (report.status, [(wave.after, wave.units) for wave in sync.waves]) == ("succeeded", [
        (0, [["split[a]"], ["split[b]"]]),
        (2, [["part[a/0]"], ["part[a/1]"], ["part[b/0]"], ["part[b/1]"]]),
        (6, [["gather[a]"], ["gather[b]"]]),
    ])


def test_a_limited_step_takes_a_new_lane_only_when_one_of_its_lanes_is_back(tmp_path: Path) -> None:
    sync = SyncRun(tmp_path, overlap=3)
    limited = FAN_OUT.replace("  - name: gather", "    max_parallel: 1\n  - name: gather")
    report, _ = sync.run(sync.compile(limited))
    assert (report.status, [(wave.after, wave.units) for wave in sync.waves]) == ("succeeded", [
        (0, [["split[a]"], ["split[b]"]]),
        (1, [["part[a/0]", "part[a/1]"]]),
        # split[b]'s children were ready at 2, but the step's one lane was out until part[a/...] came back
        (4, [["part[b/0]", "part[b/1]"], ["gather[a]"]]),
        (6, [["gather[b]"]]),
    ])


class Dropping(SyncRun):
    """A run whose dispatch never brings `dropped`'s first chunk back, as a call cut short by a worker's death
    whose suspects another call ran may (plait.runtime.backends)."""

    dropped = "a[1]"

    def outcomes(self, info: RunInfo, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Results]]:
        for chunk in chunks:
            if self.dropped in chunk.nodes:
                self.dropped = ""
                continue
            yield from super().outcomes(info, [chunk])


def test_a_node_a_call_ended_without_is_run_again_root_or_not(tmp_path: Path) -> None:
    for dropped in ("a[1]", "total"):  # a root node (its unit with b[1]), and one with predecessors
        sync = Dropping(tmp_path / dropped)
        sync.dropped = dropped
        report, _ = sync.run(sync.compile(CHAIN))
        assert (report.status, dict(report.counts)) == ("succeeded", {"succeeded": 7}), dropped
        assert json.loads(sync.last()["total"].result) == 33, dropped


class Fenced(SyncRun):
    """A run whose dispatch brings `fenced`'s first chunk back not started, as a call a worker's death fenced off
    does (plait.runtime.trail) while the run goes on."""

    fenced = "a[1]"

    def outcomes(self, info: RunInfo, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Results]]:
        for chunk in chunks:
            if self.fenced in chunk.nodes:
                self.fenced = ""
                now = [0.0] * len(chunk.nodes)
                yield chunk, Results([NOT_STARTED] * len(chunk.nodes), [None] * len(chunk.nodes), now, now, {}, {}, {},
                                     "w")
                continue
            yield from super().outcomes(info, [chunk])


def test_nodes_their_fenced_off_call_did_not_start_run_again_while_the_run_goes_on(tmp_path: Path) -> None:
    for fenced in ("a[1]", "total"):
        sync = Fenced(tmp_path / fenced)
        sync.fenced = fenced
        report, _ = sync.run(sync.compile(CHAIN))
        assert (report.status, dict(report.counts)) == ("succeeded", {"succeeded": 7}), fenced
        assert {n: r.attempts for n, r in sync.last().items()} == dict.fromkeys(
            ["a[0]", "b[0]", "a[1]", "b[1]", "a[2]", "b[2]", "total"], 1), fenced


def test_a_wave_takes_at_most_its_bound_of_ready_nodes_in_plan_order_and_the_rest_follow_in_later_waves(
        sync: SyncRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waves, "MOST_IN_A_WAVE", 3)
    report, _ = sync.run(sync.compile(yaml("""
        name: many
        steps:
          - name: a
            task: python
            items: {range: 4}
            inputs: {code: "result = item"}
          - name: b
            task: python
            for_each: a
            inputs: {code: "result = steps['a']['result'] * 2"}
          - name: c
            task: python
            items: {range: 3}
            inputs: {code: "result = item"}
    """)))
    assert (report.status, sync.dispatched()) == ("succeeded", [
        [["a[0]", "b[0]"], ["a[1]", "b[1]"], ["a[2]", "b[2]"]],  # three ready nodes, each with its partner
        [["a[3]", "b[3]"], ["c[0]"], ["c[1]"]],
        [["c[2]"]],
    ])
    assert {n: json.loads(r.result) for n, r in sync.last().items()} == {
        **{f"a[{i}]": i for i in range(4)}, **{f"b[{i}]": 2 * i for i in range(4)}, **{f"c[{i}]": i for i in range(3)}}


class _GrowthsNoted(SyncRun):
    """A harness that notes, for each growth the ledger is told of, how many outcomes had come back before it."""

    grew_after: list[tuple[int, list[str]]]

    def submit(self, method: str, *args: Any) -> None:
        if method == "add_nodes":
            self.grew_after.append((len(self.settled), [row[0] for row in args[0]]))
        super().submit(method, *args)


def test_a_parent_back_while_no_call_may_start_grows_before_the_calls_in_flight_end(tmp_path: Path) -> None:
    """split[b] comes back while its sibling's children run and two calls are in flight: its children grow at once,
    ready for the wave that starts when a call ends, rather than once it has."""
    sync = _GrowthsNoted(tmp_path, overlap=2)
    sync.grew_after = []
    report, _ = sync.run(sync.compile(FAN_OUT))
    assert report.status == "succeeded"
    assert [(after, sorted(n for n in ids if n.startswith("part[") and "/" in n)) for after, ids in sync.grew_after] \
        == [(1, ["part[a/0]", "part[a/1]"]), (2, ["part[b/0]", "part[b/1]"])]  # split[b] was the second back
    assert [(wave.after, wave.units) for wave in sync.waves][2] == (3, [["part[b/0]"], ["part[b/1]"]])


def test_placeholders_wait_to_grow_ahead_until_none_of_their_parents_is_in_flight(tmp_path: Path) -> None:
    """With one call at a time, split[a] comes back while split[b] is still out in the same call: the two parents'
    children grow together, once both are back, in one growth."""
    sync = _GrowthsNoted(tmp_path)
    sync.grew_after = []
    report, _ = sync.run(sync.compile(FAN_OUT))
    assert report.status == "succeeded"
    assert [(after, sorted(n for n in ids if n.startswith("part[") and "/" in n)) for after, ids in sync.grew_after] \
        == [(2, ["part[a/0]", "part[a/1]", "part[b/0]", "part[b/1]"])]


def test_a_join_whose_members_are_back_is_settled_while_its_call_still_runs(sync: SyncRun) -> None:
    """One call at a time: part[a]'s children are back while part[b]'s still run in the same call; its join is
    recorded before they come back, not once the call has ended, and gather[a]'s view is made then."""
    report, _ = sync.run(sync.compile(FAN_OUT))
    assert report.status == "succeeded"
    order = [record.node_id for record in sync.records]
    assert order.index("part[a/1]") < order.index("part[a]") < order.index("part[b/0]") < order.index("part[b]")
    assert json.loads(sync.last()["part[a]"].result) == ["a0", "a1"]
    assert {n: json.loads(r.result) for n, r in sync.last().items() if n.startswith("gather")} == {
        "gather[a]": ["a0", "a1"], "gather[b]": ["b0", "b1"]}  # their views made while part[b]'s children ran
