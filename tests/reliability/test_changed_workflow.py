"""A workflow edited between runs: only the edited step's nodes and what depends on them run again.

Every shell command appends a line to a log per step in the workspace, so a test counts executions
from files; the runs are real `plait run` processes, as a user edits and re-runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime.support import Flow

from reliability.harness import rows, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

PIPELINE = """
name: pipeline
steps:
  - name: fetch
    task: shell
    items: [a, b, c]
    inputs: {command: "printf '%s\\\\n' {{ key }} >> fetch.log; printf '%s' {{ item }}"}
  - name: shout
    task: shell
    for_each: fetch
    inputs:
      command: "printf '%s\\\\n' {{ key }} >> shout.log; printf '%s' {{ steps.fetch.result.stdout }} | tr a-z A-Z"
  - name: report
    task: shell
    depends_on: [shout]
    inputs: {command: "echo report >> report.log; echo {{ steps.shout.results | map(attribute='stdout') | join('') }}"}
  - name: other
    task: shell
    inputs: {command: "echo other >> other.log"}
"""


def executions(workspace: Path) -> dict[str, list[str]]:
    return {log.stem: log.read_text().split() for log in sorted(workspace.glob("*.log"))}


def test_editing_one_step_reruns_that_step_and_its_dependents_only(flow: Flow) -> None:
    flow.path.write_text(PIPELINE, encoding="utf-8")
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    first = run(*command, cwd=flow.dir)
    assert first.returncode == 0, first.stderr
    once = {"fetch": ["a", "b", "c"], "shout": ["a", "b", "c"], "report": ["report"], "other": ["other"]}
    assert executions(flow.ws) == once

    flow.path.write_text(PIPELINE.replace("| tr a-z A-Z", "| tr a-z A-Z; printf '!'"), encoding="utf-8")
    second = run(*command[:-1], "-v", cwd=flow.dir)
    assert second.returncode == 0, second.stderr
    assert "8 nodes: 4 done, 4 changed" in second.stderr
    assert executions(flow.ws) == {**once, "shout": ["a", "b", "c"] * 2, "report": ["report"] * 2}
    assert rows(flow.ws)["report"][2]["stdout"] == "A!B!C!\n"  # the fan-in saw the new results

    third = run(*command, cwd=flow.dir)  # nothing changed since: nothing runs
    assert (third.returncode, executions(flow.ws)) == (
        0, {**once, "shout": ["a", "b", "c"] * 2, "report": ["report"] * 2})


def test_editing_an_upstream_items_list_runs_only_the_new_items_and_the_fan_in(flow: Flow) -> None:
    flow.path.write_text(PIPELINE, encoding="utf-8")
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    assert run(*command, cwd=flow.dir).returncode == 0
    flow.path.write_text(PIPELINE.replace("items: [a, b, c]", "items: [a, b, c, d]"), encoding="utf-8")
    again = run(*command, cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert executions(flow.ws) == {"fetch": ["a", "b", "c", "d"], "shout": ["a", "b", "c", "d"],
                                   "report": ["report"] * 2, "other": ["other"]}
