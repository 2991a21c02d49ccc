"""The shapes at run time: group views, per-parent fan-out, per-node on_error, and resuming them.

These need the runtime to do its part of the plan's contract (`plait.compiler.scopes`,
`expand_parent`, `resolve_on_error`): a group node's templates see `group`, a fan-out child's
see `parent`, a parent's placeholder grows into its children as soon as the parent is done, and
a failure's `on_error` is decided per node. Every task appends its node ID to executions.log,
so the tests count executions rather than trusting the ledger's account of them.
"""

from __future__ import annotations

import re

import pytest
from runtime.support import RECORDER, Flow, untraced

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


SCATTER = """
    name: scatter
    steps:
      - name: split
        task: python
        items: [a, b]
        inputs: {function: "<work>:split"}
      - name: process
        task: python
        for_each: split
        items: "{{ parent.result }}"
        on_error: continue
        inputs: {function: "<work>:process", kwargs: {file: "{{ parent.key }}"}}
      - name: gather
        task: python
        group_by: {step: process, key: "{{ parent.key }}"}
        inputs: {function: "<rec>:record", kwargs: {value: "{{ group.results }}"}}
      - name: report
        task: python
        depends_on: [gather]
        inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.gather.results }}"}}
    """

WORK = '''
    from {rec} import note


    def split(item, ctx):
        note(ctx)
        return [0, 1, 2] if item == "a" else [0, 1]


    def process(item, file, ctx):
        note(ctx)
        if (file, item) == ("a", 1) and not ctx.path("fixed").exists():
            raise ValueError("chunk a/1 is broken")
        return f"{{file}}{{item}}"
'''


def scatter(flow: Flow) -> None:
    rec = flow.module("recorder", RECORDER)
    work = flow.module("work", WORK.format(rec=rec))
    flow.write(SCATTER, work=work, rec=rec)


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_each_parent_grows_its_own_children_and_each_group_gathers_them(flow: Flow, backend: str) -> None:
    scatter(flow)
    (flow.ws).mkdir(parents=True, exist_ok=True)
    (flow.ws / "fixed").touch()

    result = flow.run(backend=backend)

    assert result.ok, untraced(result.report.failed)
    assert flow.view("status") == {
        **dict.fromkeys(["split[a]", "split[b]", "process[a/0]", "process[a/1]", "process[a/2]", "process[b/0]",
                         "process[b/1]", "gather[a]", "gather[b]", "report"], "succeeded"),
        **dict.fromkeys(["process[a]", "process[b]"], "succeeded"),  # the placeholders, joins once grown
    }
    assert flow.view("result")["gather[a]"] == ["a0", "a1", "a2"]
    assert flow.view("result")["report"] == [["a0", "a1", "a2"], ["b0", "b1"]]


def test_a_failed_child_reruns_alone_and_only_its_groups_gather_runs_again(flow: Flow) -> None:
    scatter(flow)

    first = flow.run()
    (flow.ws / "fixed").touch()
    before = len(flow.executions())
    second = flow.run()

    assert not first.ok and second.ok
    assert flow.view("status")["process[a/1]"] == "succeeded"
    assert sorted(flow.executions()[before:]) == ["gather[a]", "process[a/1]", "report"]
    assert flow.view("result")["gather[a]"] == ["a0", "a1", "a2"]


INLINE_SCATTER = """
    name: scatter
    steps:
      - name: split
        task: python
        items: [a, b, c]
        inputs: {code: "result = [0, 1, 2] if item == 'a' else [0, 1]"}
      - name: process
        task: python
        for_each: split
        items: "{{ parent.result }}"
        inputs: {code: "result = item"}
    """


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_the_parents_grown_together_take_one_line_of_the_runs_log(flow: Flow, backend: str) -> None:
    """A thousand parents finishing together would otherwise write a thousand lines (and flushes) to the log."""
    flow.write(INLINE_SCATTER)

    done = flow.cli("run", str(flow.path), "--workspace", str(flow.ws), "--backend", backend, "--quiet")

    assert done.returncode == 0, done.stderr
    (log,) = (flow.ws / ".plait" / "logs").glob("*.log")
    text = log.read_text(encoding="utf-8")
    grown = re.findall(r"\| - +\| process: (\d+) of its placeholders expanded into (\d+) nodes$", text, re.MULTILINE)
    assert grown, text
    assert [sum(map(int, column)) for column in zip(*grown)] == [3, 7]  # in one line or more, as the parents came back
    assert len(grown) <= 3 and "expanded" not in "".join(line for line in text.splitlines() if "process[" in line)


CHILD_BEFORE_SIBLING = """
    name: eager
    steps:
      - name: split
        task: python
        items: [fast, slow]
        inputs: {function: "<work>:split"}
      - name: process
        task: python
        for_each: split
        items: "{{ parent.result }}"
        inputs: {function: "<work>:process"}
    """

EAGER = '''
    import time


    def split(item, ctx):
        if item == "slow":  # waits until a child of "fast" has run: it cannot if children wait for every parent
            deadline = time.monotonic() + 60  # a bound on a hang, not a timing
            while not ctx.path("child-ran").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("no child of split[fast] ran while split[slow] was running")
                time.sleep(0.01)
        return [1]


    def process(item, ctx):
        ctx.path("child-ran").touch()
        return item
'''


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_a_parents_children_start_while_another_parent_is_still_running(flow: Flow, backend: str) -> None:
    work = flow.module("eager", EAGER)
    flow.write(CHILD_BEFORE_SIBLING, work=work)

    result = flow.run(backend=backend, jobs=2)

    assert result.ok, untraced(result.report.failed)
    assert flow.view("status") == dict.fromkeys(
        ["split[fast]", "split[slow]", "process[fast]", "process[slow]", "process[fast/1]", "process[slow/1]"],
        "succeeded")


ON_ERROR = """
    name: matrix-errors
    steps:
      - name: test
        task: python
        items: {matrix: {py: ["3.12", "3.13"], include: [{py: "3.14", experimental: true}]}}
        on_error: "{{ item.experimental | default(false) }}"
        inputs: {code: "assert item['py'] != '3.14', 'not supported yet'\\nresult = item['py']"}
      - name: lint
        task: python
        depends_on: [test]
        inputs: {code: "result = 'linted'"}
      - name: docs
        task: python
        inputs: {code: "result = 'built'"}
    """


def test_on_error_is_decided_per_node_from_its_item(flow: Flow) -> None:
    flow.write(ON_ERROR)

    result = flow.run()
    nodes = flow.nodes()

    assert not result.ok  # a failure that no budget covers fails the run, but did not stop it
    assert {n: r["status"] for n, r in nodes.items()} == {
        "test[3.12]": "succeeded", "test[3.13]": "succeeded", "test[3.14-true]": "failed",
        "lint": "skipped", "docs": "succeeded"}
    assert nodes["test[3.14-true]"]["error"]["on_error"] == "continue"


def test_a_zip_whose_upstream_lists_differ_fails_its_expansion_with_a_location(flow: Flow) -> None:
    flow.write("""
        name: zipped
        steps:
          - name: xs
            task: python
            inputs: {code: "result = [1, 2, 3]"}
          - name: add
            task: python
            items:
              zip: {x: "{{ steps.xs.result }}", y: [10, 20]}
            inputs: {code: "result = x + y", spread: true}
        """)

    result = flow.run()

    assert not result.ok
    error = flow.nodes()["add"]["error"]
    assert error["error"] == (f"{flow.path}:10:7: error: step 'add': its items: zip lists differ in length: "
                              "'x' has 3, 'y' has 2\n"
                              "  hint: zip takes values position by position: give every list the same length, "
                              "or use `matrix:` for every combination")
