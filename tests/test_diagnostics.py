"""When a node fails, show why: its traceback, what it printed, its story (`plait logs`), the runs (`plait runs`).

Through the real command line (whole `plait` processes where a pipe or a death is the point) and the
ledger on disk: the traceback keeps the user's frames (inline code and modules beside the workflow) and
drops plait's and the libraries'; each attempt's output is kept, bounded, and nothing for a silent node;
`plait logs` tells each attempt; a run that died is shown as interrupted and the next run says so; a
broken pipe never changes an exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reliability.harness import Runs, gate, open_gate, wait_for
from runtime.support import BACKENDS, PLAIT, Flow, ledger_query, plait

from plait.limits import OUTPUT_TAIL

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


FAILING = """
name: diagnosed
steps:
  - name: work
    task: python
    items: [1, 2, 3]
    on_error: continue
    retry: {max_attempts: 2, delay: 0, retry_on: [OSError]}
    inputs:
      code: |
        import sys
        from <mod> import check
        print(f"checking {item}")
        print("a warning", file=sys.stderr)
        if item == 3 and ctx.attempt == 1:
            raise OSError("flaky")
        result = check(item)
  - name: quiet
    task: python
    items: [1, 2]
    inputs: {code: "result = item"}
"""

CHECKER = '''
def check(item):
    """Fail on 2, two frames down."""
    return _inner(item)


def _inner(item):
    if item == 2:
        raise ValueError(f"item {item} is bad")
    return item
'''


def run_failing(flow: Flow, backend: str = "sequential") -> subprocess.CompletedProcess[str]:
    flow.write(FAILING, mod=flow.module("checker", CHECKER))
    return flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", backend, "-q")


def record(flow: Flow, node: str, column: str) -> object:
    [(value,)] = ledger_query(flow.ledger_path, f"SELECT {column} FROM nodes WHERE node_id = '{node}'")
    return json.loads(value) if value else None


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_traceback_keeps_the_users_frames_and_points_at_the_line_that_raised(flow: Flow, backend: str) -> None:
    done = run_failing(flow, backend)
    assert done.returncode == 1, done.stderr
    error = record(flow, "work[2]", "error")
    module = flow.dir / f"{flow.modules[-1]}.py"
    assert error["where"] == f"{module}:9"
    lines = error["traceback"].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert [line.strip() for line in lines if line.strip().startswith("File ")] == [
        'File "<step work>", line 7, in <module>', f'File "{module}", line 4, in check',
        f'File "{module}", line 9, in _inner']
    assert lines[-1] == "ValueError: item 2 is bad"
    assert "plait/" not in error["traceback"] and "site-packages" not in error["traceback"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_each_attempt_printed_is_kept_and_a_silent_node_keeps_nothing(flow: Flow, backend: str) -> None:
    run_failing(flow, backend)
    assert record(flow, "work[1]", "output") == {"stdout": "checking 1\n", "stdout_chars": 11,
                                                "stderr": "a warning\n", "stderr_chars": 10}
    assert record(flow, "quiet[1]", "output") is None
    earlier = ledger_query(flow.ledger_path, "SELECT attempt, status, output FROM attempts WHERE node_id = 'work[3]'")
    assert [(a, s, json.loads(o)["stdout"]) for a, s, o in earlier] == [(1, "failed", "checking 3\n")]
    assert ledger_query(flow.ledger_path, "SELECT status, attempts FROM nodes WHERE node_id = 'work[3]'") == [
        ("succeeded", 2)]


def test_a_chatty_node_keeps_a_bounded_tail(flow: Flow) -> None:
    flow.write("""
        name: chatty
        steps:
          - name: talk
            task: python
            inputs: {code: "for i in range(20000):\\n    print(f'line {i:05}')\\nresult = 1"}
    """)
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    output = record(flow, "talk", "output")
    assert (len(output["stdout"]), output["stdout_chars"]) == (OUTPUT_TAIL, 20000 * 11)
    assert output["stdout"].endswith("line 19999\n")


def test_plait_logs_tells_a_nodes_story_and_a_steps_failures(flow: Flow) -> None:
    run_failing(flow)
    done = plait("logs", "work[3]", "--workspace", str(flow.ws), cwd=flow.dir)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("work[3]: succeeded; ran because: new\n")
    assert text.count("  attempt ") == 2 and "attempt 1 (run " in text and "): failed," in text
    assert "error: OSError: flaky" in text and "checking 3" in text
    one = json.loads(plait("logs", "work[3]", "--attempt", "2", "--format", "json", "-w", str(flow.ws),
                           cwd=flow.dir).stdout)
    assert [(e["id"], [(t["attempt"], t["status"]) for t in e["attempts"]]) for e in one] == [
        ("work[3]", [(2, "succeeded")])]
    failed = json.loads(plait("logs", "work", "--failed", "--format", "json", "-w", str(flow.ws), cwd=flow.dir).stdout)
    assert [(e["id"], e["attempts"][-1]["error"]["error_type"]) for e in failed] == [("work[2]", "ValueError")]
    matched = json.loads(plait("logs", "work[?]", "--failed", "--format", "json", "-w", str(flow.ws),
                               cwd=flow.dir).stdout)  # a pattern as --rerun reads it: its brackets are the id's
    assert [e["id"] for e in matched] == ["work[2]"]
    unknown = plait("logs", "wrok", "-w", str(flow.ws), cwd=flow.dir)
    assert (unknown.returncode, unknown.stderr) == (
        2, "plait: error: no node or step 'wrok' in this workspace's ledger; did you mean 'work'?\n")


def test_plait_logs_of_a_node_that_never_ran_says_so(flow: Flow) -> None:
    flow.write("""
        name: halfway
        steps:
          - name: first
            task: python
            items: [1, 2]
            inputs: {code: "result = item"}
          - name: later
            task: python
            depends_on: [first]
            inputs: {code: "result = 0"}
        """)
    assert plait("run", "workflow.yaml", "-w", str(flow.ws), "--until", "first", "-q", cwd=flow.dir).returncode == 0
    story = json.loads(plait("logs", "later", "--format", "json", "-w", str(flow.ws), cwd=flow.dir).stdout)
    assert [(e["id"], e["status"], e["attempts"]) for e in story] == [("later", "pending", [])]
    done = plait("logs", "first[2]", "-w", str(flow.ws), cwd=flow.dir)
    assert done.stdout.startswith("first[2]: succeeded; ran because: new\n"), done.stdout


def test_plait_runs_lists_each_run_with_its_outcome_and_counts(flow: Flow) -> None:
    run_failing(flow)
    flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q")
    runs = json.loads(plait("runs", "--format", "json", "-w", str(flow.ws), cwd=flow.dir).stdout)
    assert [(r["status"], r["counts"]) for r in runs] == [
        ("failed", {"succeeded": 4, "failed": 1}), ("failed", {"failed": 1, "succeeded": 4, "restored": 4})]
    text = plait("runs", "-w", str(flow.ws), cwd=flow.dir).stdout
    assert all(r["run_id"] in text for r in runs) and text.count("failed") >= 2


HELD = f"""
name: held
steps:
  - name: work
    task: python
    inputs:
      code: |
        (ctx.workspace / "started").touch()
{textwrap.indent(gate("True"), " " * 8)}
        result = 1
  - name: later
    task: python
    depends_on: [work]
    inputs: {{code: "result = 2"}}
"""


def test_a_run_that_died_is_shown_interrupted_and_the_next_run_says_so(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(HELD, encoding="utf-8")
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: (flow.ws / "started").exists() or proc.poll() is not None, "the node to start")
    live = plait("status", "--workspace", str(flow.ws), "--format", "json", cwd=flow.dir)
    assert json.loads(live.stdout)["run"]["status"] == "running"  # the run holds the workspace: alive
    runs.kill_group(proc)
    dead = json.loads(plait("status", "--workspace", str(flow.ws), "--format", "json", cwd=flow.dir).stdout)["run"]
    assert (dead["status"], dead["died"], dead["ended"] >= dead["started"]) == ("interrupted", True, True)
    text = plait("status", "--workspace", str(flow.ws), cwd=flow.dir).stdout
    assert "interrupted (its process died without ending it; last recorded at " in text.splitlines()[0]
    open_gate(flow.ws)
    again = plait(*command, cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert f"the last run {dead['run_id']} died without ending" in again.stderr
    assert [r[0] for r in ledger_query(flow.ledger_path, "SELECT status FROM runs ORDER BY started")] == [
        "interrupted", "succeeded"]


def test_sighup_stops_a_run_gently_like_sigterm(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(HELD, encoding="utf-8")
    proc = runs.start("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "threading", "-q",
                      cwd=flow.dir)
    wait_for(lambda: (flow.ws / "started").exists() or proc.poll() is not None, "the node to start")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any((flow.ws / ".plait").glob("stop-*")) or proc.poll() is not None, "the run to take it")
    open_gate(flow.ws)
    assert runs.finish(proc) == 1
    assert "SIGHUP: stopping" in runs.stderr(proc)
    assert ledger_query(flow.ledger_path, "SELECT status FROM runs") == [("interrupted",)]


def test_a_broken_pipe_changes_no_exit_code_and_prints_no_traceback(flow: Flow) -> None:
    flow.write("""
        name: loud
        steps:
          - name: work
            task: python
            items: {range: 300}
            inputs: {code: "result = item"}
    """)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for args, code in ((("run", "workflow.yaml", "--workspace", str(flow.ws), "-v"), 0),
                       (("status", "--workspace", str(flow.ws), "--format", "json"), 0),
                       (("logs", "work", "--workspace", str(flow.ws)), 0)):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before plait writes a byte (as `| head -0`)
        done = subprocess.run([*PLAIT, *args], cwd=flow.dir, stdout=write, stderr=subprocess.PIPE, env=env,
                              text=True, timeout=120)
        os.close(write)
        assert (done.returncode, "Traceback" in done.stderr, "BrokenPipeError" in done.stderr) == (
            code, False, False), done.stderr


def test_stderr_closed_under_a_run_changes_nothing(flow: Flow, tmp_path: Path) -> None:
    flow.write("""
        name: loud
        steps:
          - name: work
            task: python
            items: {range: 50}
            inputs: {code: "result = item"}
    """)
    script = ("import os, sys; from plait.cli import main; r, w = os.pipe(); os.close(r); os.dup2(w, 2); "
              f"sys.exit(main(['run', 'workflow.yaml', '--workspace', {str(flow.ws)!r}, '-v']))")
    done = subprocess.run([sys.executable, "-c", script], cwd=flow.dir, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "")
    assert ledger_query(flow.ledger_path, "SELECT status FROM runs") == [("succeeded",)]
