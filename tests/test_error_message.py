"""A step's `error_message`: a failure in the workflow's own words, rendered for each failing node.

`plait run` (the real command line, with real workers) on every kind of node that fails: a batch
item, a retried node, a shell command; then what `plait status` records and shows, and what the
compiler refuses.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from runtime.support import plait

pytestmark = pytest.mark.slow  # whole runs end to end


def write(folder: Path, text: str) -> None:
    (folder / "wf.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_each_failing_node_records_its_own_message_beside_the_exceptions_text(backend: str, tmp_path: Path) -> None:
    write(tmp_path, """\
        name: prices
        params:
          shop: {type: string, default: north}
        steps:
          - name: price
            task: python
            items: [apple, pear, plum]
            inputs:
              code: |
                if item != "pear":
                    raise LookupError("no price for " + item)
                result = 3
            on_error: continue
            max_failures: 100%
            error_message: "{{ params.shop }}/{{ item }} (attempt {{ error.attempt }}): {{ error.error }}"
          - name: flaky
            task: shell
            inputs: {command: "echo x >> tries; exit 7"}
            retry: {max_attempts: 2, delay: 0, retry_on_exit_codes: [7]}
            error_message: "{{ error.error_type }} after {{ error.attempt }} attempts, code {{ error.exit_code }}"
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", backend, "-q", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    recorded = {node: (v["status"], v["error"] and (v["error"]["error"], v["error"].get("message")))
                for node, v in state["nodes"].items()}
    assert recorded == {
        "price[apple]": ("failed", ("no price for apple", "north/apple (attempt 1): no price for apple")),
        "price[pear]": ("succeeded", None),
        "price[plum]": ("failed", ("no price for plum", "north/plum (attempt 1): no price for plum")),
        "flaky": ("failed", ("command exited with code 7", "CommandFailed after 2 attempts, code 7")),
    }
    assert (tmp_path / "ws" / "tries").read_text() == "x\nx\n"
    shown = plait("status", "--workspace", "ws", cwd=tmp_path).stdout
    assert "  flaky: CommandFailed after 2 attempts, code 7 [CommandFailed: command exited with code 7]" in shown
    logged = plait("logs", "flaky", "--workspace", "ws", cwd=tmp_path).stdout
    assert ("    error: CommandFailed: command exited with code 7\n"
            "    message: CommandFailed after 2 attempts, code 7\n") in logged


def test_a_message_that_cannot_render_keeps_the_error_and_says_why(tmp_path: Path) -> None:
    write(tmp_path, """\
        name: broken
        steps:
          - name: s
            task: python
            inputs: {code: "raise ValueError('the cause')"}
            error_message: "{{ error.missing.deeper }}"
        """)
    assert plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path).returncode == 1
    error = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)["nodes"]["s"]
    assert (error["error"]["error"], error["error"]["message"]) == (
        "the cause", "the cause (failed to format custom message: UndefinedError: 'dict object' has no attribute "
                     "'missing')")


def test_a_message_sees_error_and_the_steps_names_and_nothing_else(tmp_path: Path) -> None:
    write(tmp_path, """\
        name: names
        steps:
          - name: s
            task: python
            inputs: {code: "result = 1"}
            error_message: "{{ eror.error }}"
        """)
    done = plait("compile", "wf.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == ("wf.yaml:6:20: error: step 's': error_message uses unknown name 'eror'\n"
                           "  hint: did you mean 'error'?\n")
