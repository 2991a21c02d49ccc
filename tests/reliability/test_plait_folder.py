"""plait's own folder is out of a workflow's reach, and what a task does to it anyway is caught.

Tasks' file actions (the `file` task, a template's `output_file`, `ctx.path` in Python) refuse any
path that resolves into `<workspace>/.plait/`, however it is written (`..`, a symbolic link, an
absolute path). A shell command can do anything: one that deletes or replaces the ledger under a
running run ends that run loudly at its next commit (exit 2, a message saying so), never with
"succeeded"; one that deletes `.plait/lock` does not let a second run in.
"""

from __future__ import annotations

import os

import pytest
from runtime.support import Flow, plait

from reliability.harness import Runs, integrity, open_gate, rows, run, statuses, succeeded, wait_for

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

WRITES = {
    "a file task writing the ledger": "{task: file, inputs: {action: write, path: .plait/ledger.db, content: x}}",
    "a file task deleting the lock": "{task: file, inputs: {action: delete, path: .plait/lock}}",
    "through ..": "{task: file, inputs: {action: write, path: 'sub/../.plait/ledger.db', content: x}}",
    "an absolute path": "{task: file, inputs: {action: write, path: '{{ workspace }}/.plait/x', content: x}}",
    "a link into .plait": "{task: file, inputs: {action: write, path: link/ledger.db, content: x}}",
    "a copy into .plait": "{task: file, inputs: {action: copy, path: data.txt, to: .plait/logs/x.log}}",
    "a move out of .plait": "{task: file, inputs: {action: move, path: .plait/lock, to: stolen}}",
    "a template's output file": "{task: template, inputs: {template: x, output_file: .plait/ledger.db}}",
    "ctx.path in python": "{task: python, inputs: {code: \"ctx.path('.plait/ledger.db').write_text('x')\"}}",
}


@pytest.mark.parametrize("how", list(WRITES))
def test_a_task_cannot_touch_plaits_folder_through_its_file_actions(flow: Flow, how: str) -> None:
    flow.path.write_text(f"""
name: reach
steps:
  - name: first
    task: python
    inputs: {{code: "result = 1"}}
  - name: touch
    depends_on: [first]
    on_error: continue
    <<: {WRITES[how]}
""", encoding="utf-8")
    flow.ws.mkdir()
    (flow.ws / "data.txt").write_text("data", encoding="utf-8")
    os.symlink(".plait", flow.ws / "link")
    done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    assert done.returncode == 1, done.stderr
    status, _, _, error = rows(flow.ws)["touch"]
    assert (status, error["error_type"]) == ("failed", "PermissionError"), error
    assert "where plait keeps the workspace's ledger and lock; tasks cannot touch it" in error["error"]
    assert rows(flow.ws)["first"][0] == "succeeded"
    assert sorted(os.listdir(flow.ws / ".plait")) == ["ledger.db", "ledger.db-shm", "ledger.db-wal", "lock", "logs"]
    assert integrity(flow.ws) == [("ok",)]


REPLACED = """
name: replaced
steps:
  - name: first
    task: python
    items: {range: 50}
    inputs: {code: "result = item"}
  - name: vandal
    task: shell
    depends_on: [first]
    inputs: {command: "%s"}
  - name: later
    task: python
    depends_on: [vandal]
    items: {range: 50}
    inputs: {code: "result = item"}
"""


@pytest.mark.parametrize("command", ["rm .plait/ledger.db .plait/ledger.db-wal .plait/ledger.db-shm",
                                     "cp .plait/ledger.db copy.db && mv copy.db .plait/ledger.db"])
@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_a_ledger_deleted_or_replaced_under_a_run_ends_it_loudly(flow: Flow, command: str, backend: str) -> None:
    flow.path.write_text(REPLACED % command, encoding="utf-8")
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", backend, "-q", cwd=flow.dir)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"plait: error: writing the ledger failed: {flow.ws / '.plait' / 'ledger.db'} was deleted or replaced while "
        "the run was going (by a task? tasks must leave .plait/ alone); nothing more this run does can be recorded, "
        "so it stops"), done.stderr
    assert "succeeded in" not in done.stderr and "Traceback" not in done.stderr


LOCKED = """
name: locked
steps:
  - name: vandal
    task: shell
    inputs: {command: "rm .plait/lock && touch lock-gone && while [ ! -e go ]; do sleep 0.01; done"}
"""


def test_deleting_the_lock_file_does_not_let_a_second_run_in(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(LOCKED, encoding="utf-8")
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    first = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: (flow.ws / "lock-gone").exists() or first.poll() is not None, "the lock file to be deleted")
    second = run(*command, cwd=flow.dir)
    assert second.returncode == 2, second.stderr
    assert f"workspace '{flow.ws}' is in use by another plait run" in second.stderr
    open_gate(flow.ws)
    assert runs.finish(first) == 0, runs.stderr(first)
    assert statuses(flow.ws) == {"vandal": "succeeded"} and succeeded(flow.ws) == {"vandal"}
