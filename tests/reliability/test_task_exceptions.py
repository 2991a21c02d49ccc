"""Anything a task raises is that node's failure: `sys.exit`, `KeyboardInterrupt`, `GeneratorExit`, broken exceptions.

Each hostile item raises something a plain `except Exception` lets through, or an exception that
cannot describe itself. On every backend the run must go on by its policy (`on_error: continue`):
the hostile nodes fail with their own error type, their siblings succeed, the run exits 1 with its
summary, and the ledger says `failed`, never `running`.
"""

from __future__ import annotations

import re

import pytest
from runtime.support import BACKENDS, Flow

from reliability.harness import last_run_status, rows, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

HOSTILE = """
name: hostile
steps:
  - name: work
    task: python
    items: [fine, exit0, exit3, interrupt, genexit, badstr, badattr, badrepr, last]
    on_error: continue
    inputs:
      code: |
        import sys
        class BadStr(Exception):
            def __str__(self):
                raise RuntimeError("no message")
        class BadAttr(Exception):
            def __getattribute__(self, name):
                if name in ("exit_code", "stderr_tail"):
                    raise RuntimeError("no attribute")
                return super().__getattribute__(name)
        class BadRepr(Exception):
            def __str__(self):
                return 42
        if item == "exit0": sys.exit(0)
        if item == "exit3": sys.exit(3)
        if item == "interrupt": raise KeyboardInterrupt
        if item == "genexit": raise GeneratorExit
        if item == "badstr": raise BadStr()
        if item == "badattr": raise BadAttr("attr")
        if item == "badrepr": raise BadRepr()
        result = item
  - name: after
    task: python
    depends_on: [work]
    inputs: {code: "result = 'reached'"}
"""

FAILURES = {
    "exit0": ("SystemExit", "0"),
    "exit3": ("SystemExit", "3"),
    "interrupt": ("KeyboardInterrupt", "KeyboardInterrupt"),
    "genexit": ("GeneratorExit", "GeneratorExit"),
    "badstr": ("BadStr", "BadStr (its message could not be read: RuntimeError)"),
    "badattr": ("BadAttr", "attr"),
    "badrepr": ("BadRepr", "BadRepr (its message could not be read: TypeError)"),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_raising_anything_fails_only_its_node_and_the_run_goes_on(flow: Flow, backend: str) -> None:
    flow.path.write_text(HOSTILE, encoding="utf-8")
    done = run("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", backend, "-q", cwd=flow.dir)
    assert (done.returncode, "Traceback" in done.stderr) == (1, False), done.stderr
    assert re.search(rf"run \S+ failed in [0-9.]+ s: {len(FAILURES)} failed, 1 skipped, 2 succeeded\n", done.stderr), \
        done.stderr
    found = rows(flow.ws)
    failed = {nid[5:-1]: (error["error_type"], error["error"]) for nid, (status, _, _, error) in found.items()
              if status == "failed"}
    assert failed == FAILURES
    assert {n: s for n, (s, *_) in found.items() if s != "failed"} == {
        "work[fine]": "succeeded", "work[last]": "succeeded", "after": "skipped"}
    assert last_run_status(flow.ws) == "failed"
