"""Errors, retries, timeouts and failure policies, through whole runs and the real ledger.

Every failure becomes one record, `{success: false, error, error_type, item, node, attempt, retryable}`
(plus `exit_code` and `stderr_tail` for a command); these tests read it back from the ledger and
from `workflow_status`, and check what the retry policy, `timeout`, `on_error`, `max_failures` and
`allow_empty` make of it.
"""

from __future__ import annotations

import itertools
import json

import pytest
from runtime.support import RECORDER, Flow, error, process_is_gone, untraced, untraced_status

from plait.compiler import WorkflowError
from plait.runtime import workflow_status

RAISER = '''
    import builtins

    from plait_recorder import note


    class Transient(RuntimeError):
        pass


    def fail_with(item, ctx):
        """Raise the exception class named by the item (a builtin, or Transient); count the attempt."""
        note(ctx)
        cls = Transient if item == "Transient" else getattr(builtins, item)
        raise cls(f"{item} in {ctx.node_id}")
'''


def raiser(flow: Flow) -> str:
    recorder = flow.module("recorder", RECORDER)
    return flow.module("raiser", RAISER.replace("plait_recorder", recorder))


# --- the one error record ------------------------------------------------------------------------


def test_error_record_is_stored_in_the_ledger_and_shown_by_status(flow: Flow) -> None:
    flow.module("checks", '''
        def check(item):
            if item == 2:
                raise ValueError(f"item {item} is even")
            return item
    ''')
    flow.write("""
        name: records
        steps:
          - name: check
            task: python
            items: [1, 2, 3]
            on_error: continue
            inputs: {function: "<mod>:check"}
    """, mod=f"checks_{flow.tag}")
    result = flow.run()
    record = error("check[2]", "ValueError", "item 2 is even", item=2)
    assert (result.ok, untraced(result.report.failed)) == (False, [record])
    assert flow.view("status", "error") == {
        "check[1]": ("succeeded", None), "check[2]": ("failed", record), "check[3]": ("succeeded", None)}
    state = untraced_status(workflow_status(flow.ws))
    assert state["nodes"]["check[2]"] == {"status": "failed", "attempts": 1, "error": record, "reason": "new"}
    assert state["steps"]["check"]["failed"] == {"2": record}


def test_shell_error_record_has_exit_code_and_stderr_tail(flow: Flow) -> None:
    flow.write("""
        name: shellrecord
        steps:
          - name: sh
            task: shell
            inputs: {command: "echo out; echo first >&2; echo 'disk full' >&2; exit 3"}
    """)
    result = flow.run()
    record = error("sh", "CommandFailed", "command exited with code 3: disk full", exit_code=3,
                   stderr_tail="first\ndisk full")
    assert untraced(result.report.failed) == [record]
    assert untraced_status(workflow_status(flow.ws))["nodes"] == {
        "sh": {"status": "failed", "attempts": 1, "error": record, "reason": "new"}}


@pytest.mark.parametrize(("step", "error_type", "message"), [
    ('{task: python, inputs: {code: "result = {1, 2}"}}', "TypeError", "Object of type set is not JSON serializable"),
    ('{task: shell, inputs: {command: "echo {{ item.size }}"}}', "UndefinedError",
     "'int object' has no attribute 'size'"),
    ('{task: python, inputs: {function: "no_such_module_xyz:f"}}', "ImportError",
     "cannot import module 'no_such_module_xyz' for function 'f': No module named 'no_such_module_xyz' "
     "(looked in {dir} and sys.path)"),
])
def test_failures_around_the_task_use_the_same_record(flow: Flow, step: str, error_type: str, message: str) -> None:
    """A result that is not JSON, a template that fails at run time, a function that cannot be imported."""
    flow.write(f"""
        name: around
        steps:
          - {{name: node, items: [7], {step[1:]}
    """)
    result = flow.run()
    record = error("node[7]", error_type, message.replace("{dir}", str(flow.dir)), item=7)
    assert (untraced(result.report.failed), flow.view("status", "error")) == ([record], {"node[7]": ("failed", record)})


# --- what is retried -----------------------------------------------------------------------------


def test_oserror_and_timeouterror_and_subclasses_are_retried_by_default_valueerror_is_not(flow: Flow) -> None:
    flow.write("""
        name: defaults
        steps:
          - name: boom
            task: python
            items: [OSError, TimeoutError, FileNotFoundError, ValueError, KeyError]
            retry: {max_attempts: 3, delay: 0, jitter: 0}
            on_error: continue
            inputs: {function: "<mod>:fail_with"}
    """, mod=raiser(flow))
    flow.run()
    rows = flow.nodes()
    assert {n: (r["attempts"], r["error"]["retryable"], r["error"]["error_type"], r["error"]["attempt"])
            for n, r in rows.items()} == {
        "boom[OSError]": (3, True, "OSError", 3),
        "boom[TimeoutError]": (3, True, "TimeoutError", 3),
        "boom[FileNotFoundError]": (3, True, "FileNotFoundError", 3),
        "boom[ValueError]": (1, False, "ValueError", 1),
        "boom[KeyError]": (1, False, "KeyError", 1),
    }
    assert sorted(flow.executions()) == sorted(
        ["boom[OSError]"] * 3 + ["boom[TimeoutError]"] * 3 + ["boom[FileNotFoundError]"] * 3
        + ["boom[ValueError]", "boom[KeyError]"])


def test_a_non_retryable_error_runs_once_whatever_max_attempts_says(flow: Flow) -> None:
    flow.write("""
        name: once
        steps:
          - name: boom
            task: python
            items: [ValueError]
            retry: {max_attempts: 5, delay: 0}
            inputs: {function: "<mod>:fail_with"}
    """, mod=raiser(flow))
    result = flow.run()
    record = error("boom[ValueError]", "ValueError", "ValueError in boom[ValueError]", item="ValueError")
    assert (untraced(result.report.failed), flow.view("attempts"), flow.executions()) == (
        [record], {"boom[ValueError]": 1}, ["boom[ValueError]"])


def test_retry_on_names_the_exceptions_worth_retrying(flow: Flow) -> None:
    flow.write("""
        name: names
        steps:
          - name: boom
            task: python
            items: [ValueError, KeyError, Transient, OSError]
            retry: {max_attempts: 2, delay: 0, retry_on: [ValueError, LookupError, Transient]}
            on_error: continue
            inputs: {function: "<mod>:fail_with"}
    """, mod=raiser(flow))
    flow.run()
    assert {n: (r["attempts"], r["error"]["retryable"]) for n, r in flow.nodes().items()} == {
        "boom[ValueError]": (2, True),
        "boom[KeyError]": (2, True),  # a LookupError
        "boom[Transient]": (2, True),  # the user's own class, by name
        "boom[OSError]": (1, False),  # retry_on replaces the defaults
    }


def test_retry_on_exit_codes_retries_only_those_exit_codes(flow: Flow) -> None:
    flow.write("""
        name: codes
        steps:
          - name: sh
            task: shell
            items: [75, 1]
            retry: {max_attempts: 3, delay: 0, retry_on_exit_codes: [75]}
            on_error: continue
            inputs: {command: "echo {{ item }} >> attempts.log; echo tmpfail >&2; exit {{ item }}"}
    """)
    flow.run()
    assert flow.view("attempts", "error") == {
        "sh[75]": (3, error("sh[75]", "CommandFailed", "command exited with code 75: tmpfail", item=75,
                            attempt=3, retryable=True, exit_code=75, stderr_tail="tmpfail")),
        "sh[1]": (1, error("sh[1]", "CommandFailed", "command exited with code 1: tmpfail", item=1,
                           exit_code=1, stderr_tail="tmpfail")),
    }
    assert sorted((flow.ws / "attempts.log").read_text().split()) == ["1", "75", "75", "75"]


def test_a_node_that_fails_twice_then_succeeds_ends_with_three_attempts_after_its_delays(flow: Flow) -> None:
    flow.module("flaky", '''
        import json
        import time


        def flaky(item, ctx):
            """Fail the first two attempts; log (attempt, time) of each to attempts.jsonl."""
            with open(ctx.workspace / "attempts.jsonl", "a") as log:
                log.write(json.dumps([ctx.attempt, time.time()]) + "\\n")
            if ctx.attempt < 3:
                raise ConnectionError(f"attempt {ctx.attempt} lost the connection")
            return {"item": item, "attempt": ctx.attempt}
    ''')
    flow.write("""
        name: flaky
        steps:
          - name: fetch
            task: python
            items: [7]
            retry: {max_attempts: 3, delay: 0.1, backoff: 3, jitter: 0}
            inputs: {function: "<mod>:flaky"}
    """, mod=f"flaky_{flow.tag}")
    result = flow.run()
    assert result.ok
    assert flow.view("status", "attempts", "result", "error") == {
        "fetch[7]": ("succeeded", 3, {"item": 7, "attempt": 3}, None)}
    assert untraced_status(workflow_status(flow.ws))["steps"]["fetch"]["stats"] == {
        "total": 1, "processed": 1, "failed": 0, "retried": 1, "skipped": 0, "pending": 0}
    lines = [json.loads(line) for line in (flow.ws / "attempts.jsonl").read_text().splitlines()]
    assert [attempt for attempt, _ in lines] == [1, 2, 3]
    gaps = [round(b[1] - a[1], 3) for a, b in itertools.pairwise(lines)]
    assert (gaps[0] >= 0.1, gaps[1] >= 0.3) == (True, True), f"retried too soon: {gaps}"  # delay, delay * backoff


def test_a_node_that_keeps_failing_stops_at_max_attempts(flow: Flow) -> None:
    flow.write("""
        name: exhausted
        steps:
          - name: boom
            task: python
            items: [FileNotFoundError]
            retry: {max_attempts: 3, delay: 0}
            inputs: {function: "<mod>:fail_with"}
    """, mod=raiser(flow))
    result = flow.run()
    record = error("boom[FileNotFoundError]", "FileNotFoundError", "FileNotFoundError in boom[FileNotFoundError]",
                   item="FileNotFoundError", attempt=3, retryable=True)
    assert (result.ok, untraced(result.report.failed), flow.view("status", "attempts")) == (
        False, [record], {"boom[FileNotFoundError]": ("failed", 3)})


# --- timeouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sequential", "threading", "loky"])
def test_a_python_attempt_past_its_timeout_is_recorded_as_timeouterror(flow: Flow, backend: str) -> None:
    flow.module("sleepy", '''
        import time


        def nap(item):
            time.sleep(item)
            return item
    ''')
    # nap[0] has a second to import its module and return at once, even on a loaded machine; nap[600] would take
    # ten minutes (on threading its abandoned threads sleep on, harmlessly)
    flow.write("""
        name: sleepy
        steps:
          - name: nap
            task: python
            items: [0, 600]
            timeout: 1
            retry: {max_attempts: 2, delay: 0}
            on_error: continue
            inputs: {function: "<mod>:nap"}
    """, mod=f"sleepy_{flow.tag}")
    result = flow.run(backend=backend)
    message = "node nap[600] timed out after 1 s" + (" (abandoned, still running)" if backend == "threading" else "")
    record = error("nap[600]", "TimeoutError", message, item=600, attempt=2, retryable=True)
    assert untraced(result.report.failed) == [record]
    assert flow.view("status", "attempts", "result") == {"nap[0]": ("succeeded", 1, 0),
                                                         "nap[600]": ("failed", 2, None)}


def test_a_shell_command_past_its_timeout_is_killed_with_its_children(flow: Flow) -> None:
    flow.write("""
        name: shelltimeout
        steps:
          - name: sh
            task: shell
            timeout: 0.5
            inputs: {command: "sleep 30 & echo $! > sleeper.pid; wait; touch finished"}
    """)
    result = flow.run()
    assert untraced(result.report.failed) == [
        error("sh", "TimeoutError", "command timed out after 0.5 s", retryable=True)]
    sleeper = int((flow.ws / "sleeper.pid").read_text())
    assert (process_is_gone(sleeper), (flow.ws / "finished").exists()) == (True, False)


# --- on_error ------------------------------------------------------------------------------------


def test_on_error_fail_starts_no_dependent_and_the_run_fails(flow: Flow) -> None:
    recorder = flow.module("recorder", RECORDER)
    flow.write("""
        name: failfast
        steps:
          - name: bad
            task: python
            inputs: {code: "raise ValueError('no good')"}
          - name: after
            task: python
            depends_on: [bad]
            inputs: {function: "<rec>:record"}
    """, rec=recorder)
    result = flow.run()
    assert (result.ok, result.report.status) == (False, "failed")
    assert flow.view("status", "attempts") == {"bad": ("failed", 1), "after": ("pending", 0)}
    assert flow.executions() == []
    cli = flow.cli("run", str(flow.path), "--workspace", str(flow.root / "ws2"), "--backend", "sequential", "-q")
    assert cli.returncode == 1, cli.stderr
    assert "bad: ValueError: no good" in cli.stderr


def test_on_error_continue_skips_dependents_with_a_note_and_runs_the_rest(flow: Flow) -> None:
    recorder = flow.module("recorder", RECORDER)
    flow.write("""
        name: keepgoing
        steps:
          - name: bad
            task: python
            on_error: continue
            inputs: {code: "raise ValueError('no good')"}
          - name: after
            task: python
            depends_on: [bad]
            inputs: {function: "<rec>:record"}
          - name: later
            task: python
            depends_on: [after]
            inputs: {function: "<rec>:record"}
          - name: other
            task: python
            inputs: {function: "<rec>:record", kwargs: {value: 1}}
          - name: other_after
            task: python
            depends_on: [other]
            inputs: {function: "<rec>:record", kwargs: {value: 2}}
    """, rec=recorder)
    result = flow.run()
    assert (result.ok, untraced(result.report.failed)) == (False, [error("bad", "ValueError", "no good")])
    assert flow.view("status", "note") == {
        "bad": ("failed", None),
        "after": ("skipped", "upstream bad failed"),
        "later": ("skipped", "upstream after was skipped"),
        "other": ("succeeded", None),
        "other_after": ("succeeded", None),
    }
    assert sorted(flow.executions()) == ["other", "other_after"]
    cli = flow.cli("run", str(flow.path), "--workspace", str(flow.root / "ws2"), "--backend", "sequential", "-q")
    assert cli.returncode == 1, cli.stderr


# --- max_failures --------------------------------------------------------------------------------

BUDGET = '''
    def check(item, ctx):
        bad = {int(x) for x in (ctx.workspace / "bad.txt").read_text().split()}
        if item in bad:
            raise ValueError(f"item {item} is bad")
        return item
'''


def budget_flow(flow: Flow, items: int, bad: list[int], budget: str, extra: str = "") -> None:
    flow.ws.mkdir(exist_ok=True)
    (flow.ws / "bad.txt").write_text(" ".join(map(str, bad)))
    flow.write(f"""
        name: budget
        steps:
          - name: check
            task: python
            items: {{range: {items}}}
            max_failures: {budget}
            on_error: continue
            inputs: {{function: "<mod>:check"}}
    """ + extra, mod=flow.module("budget", BUDGET))


@pytest.mark.parametrize(("items", "bad", "budget", "ok"), [
    (5, [1, 3], "2", True),
    (5, [1, 3], "1", False),
    (10, [2, 7], "20%", True),
    (10, [2, 5, 7], "20%", False),
    (4, [0], "0", False),
])
def test_failures_within_max_failures_let_the_run_succeed(flow: Flow, items: int, bad: list[int], budget: str,
                                                          ok: bool) -> None:
    budget_flow(flow, items, bad, budget)
    result = flow.run()
    statuses = {f"check[{i}]": "failed" if i in bad else "succeeded" for i in range(items)}
    assert (result.ok, flow.view("status")) == (ok, statuses)
    cli = flow.cli("run", str(flow.path), "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    assert cli.returncode == (0 if ok else 1), cli.stderr


def test_only_the_failure_past_the_budget_fails_the_run(flow: Flow) -> None:
    budget_flow(flow, 5, [1, 3], "1")
    result = flow.run()
    assert untraced(result.report.failed) == [error("check[3]", "ValueError", "item 3 is bad", item=3)]


def test_a_fan_in_runs_after_tolerated_failures_and_sees_null_for_them(flow: Flow) -> None:
    budget_flow(flow, 4, [1], "25%", extra="""
          - name: total
            task: python
            depends_on: [check]
            inputs: {code: "result = steps['check']['results']"}
    """)
    result = flow.run()
    assert result.ok
    assert flow.view("status", "result")["total"] == ("succeeded", [0, None, 2, 3])


def test_the_for_each_partner_of_a_tolerated_failure_is_skipped_and_the_run_succeeds(flow: Flow) -> None:
    budget_flow(flow, 3, [1], "1", extra="""
          - name: each
            task: python
            for_each: check
            inputs: {code: "result = steps['check']['result'] * 10"}
    """)
    result = flow.run()
    assert flow.view("status", "note", "result") == {
        "check[0]": ("succeeded", None, 0), "check[1]": ("failed", None, None), "check[2]": ("succeeded", None, 2),
        "each[0]": ("succeeded", None, 0), "each[1]": ("skipped", "upstream check[1] failed", None),
        "each[2]": ("succeeded", None, 20)}
    assert (result.ok, result.report.counts) == (True, {"succeeded": 4, "failed": 1, "skipped": 1})


def test_the_for_each_partner_of_a_failed_item_is_skipped_under_on_error_continue(flow: Flow) -> None:
    budget_flow(flow, 2, [0], "0", extra="""
          - name: each
            task: python
            for_each: check
            inputs: {code: "result = steps['check']['result']"}
    """)
    flow.run()
    assert flow.view("status", "note") == {
        "check[0]": ("failed", None), "check[1]": ("succeeded", None),
        "each[0]": ("skipped", "upstream check[0] failed"), "each[1]": ("succeeded", None)}


# --- empty batches -------------------------------------------------------------------------------


@pytest.mark.parametrize("items", ["[]", "{range: 0}", "{glob: 'nothing/*.txt'}"])
def test_a_batch_with_no_items_is_an_error_naming_the_step(flow: Flow, items: str) -> None:
    flow.write(f"""
        name: empty
        steps:
          - name: resize
            task: python
            items: {items}
            inputs: {{code: "result = item"}}
    """)
    with pytest.raises(WorkflowError) as caught:
        flow.run()
    assert [(e.message, e.hint) for e in caught.value.errors] == [
        ("step 'resize' has no items", "check the items source, or set `allow_empty: true`")]
    cli = flow.cli("run", str(flow.path), "--workspace", str(flow.ws))
    assert (cli.returncode, "Traceback" in cli.stderr) == (2, False)
    assert "error: step 'resize' has no items" in cli.stderr
    assert not flow.ledger_path.exists()


def test_an_empty_batch_with_allow_empty_runs_and_its_fan_in_sees_no_results(flow: Flow) -> None:
    flow.write("""
        name: emptyok
        steps:
          - name: resize
            task: python
            items: []
            allow_empty: true
            inputs: {code: "result = item"}
          - name: total
            task: python
            depends_on: [resize]
            inputs: {code: "result = steps['resize']['results']"}
    """)
    result = flow.run()
    assert (result.ok, flow.view("status", "result")) == (True, {"total": ("succeeded", [])})


DEFERRED = """
    name: deferred
    steps:
      - name: list
        task: python
        inputs: {code: "result = <value>"}
      - name: each
        task: python
        items: "{{ steps.list.result }}"
        <allow>
        inputs: {code: "result = item"}
"""


LIST_HINT = 'the items template must give a list, e.g. "{{ steps.find.result }}"'


@pytest.mark.parametrize(("value", "message"), [
    ("[]", "step 'each' has no items\n"
           "  hint: its upstream gave an empty list; set `allow_empty: true` if that is fine"),
    ("{'a': 1}", f"step 'each': its items gave dict, not a list\n  hint: {LIST_HINT}"),
    ("'a b'", f"step 'each': its items gave str, not a list\n  hint: {LIST_HINT}"),
])
def test_a_deferred_items_list_that_is_empty_or_not_a_list_fails_the_placeholder(flow: Flow, value: str,
                                                                                message: str) -> None:
    flow.write(DEFERRED, value=value, allow="")
    result = flow.run()
    record = error("each", "ValueError", f"{flow.path}:9:12: error: {message}")  # located at the step's items
    assert (result.ok, untraced(result.report.failed)) == (False, [record])
    assert untraced_status(workflow_status(flow.ws))["nodes"] == {
        "list": {"status": "succeeded", "attempts": 1, "error": None, "reason": "new"},
        "each": {"status": "failed", "attempts": 1, "error": record, "reason": "new"}}


def test_a_deferred_empty_list_with_allow_empty_runs_on(flow: Flow) -> None:
    flow.write(DEFERRED + """
      - name: total
        task: python
        depends_on: [each]
        inputs: {code: "result = steps['each']['results']"}
    """, value="[]", allow="allow_empty: true")
    result = flow.run()
    assert (result.ok, flow.view("status", "result")) == (
        True, {"list": ("succeeded", []), "each": ("succeeded", []), "total": ("succeeded", [])})
