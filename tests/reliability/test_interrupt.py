"""Ctrl-C and SIGTERM stop a run gently: it ends `interrupted`, keeps what finished, and the next run resumes.

Each variant runs ITEMS slow nodes on loky (2 workers), waits until both workers are busy, and sends
one signal, either to the `plait run` process alone (`kill PID`) or to its whole process group, as
a terminal's Ctrl-C does (the workers get it too) and as `kill -TERM -PGID` or a service manager
does. The run must exit 1 within a bounded time, with the ledger's last run `interrupted`, the
nodes that finished recorded `succeeded`, the rest `pending`, and no traceback. The next run
completes, and no node recorded as succeeded executes again.

Where the workers ignore the signal (SIGINT, or any signal sent to the run process alone), the
nodes that were running finish and are recorded: every node that executed is in the ledger, so
after the resume every node has executed exactly once. SIGTERM sent to the whole group kills the
workers, so the nodes they were running are lost and run again on resume (at-least-once), but
nothing recorded is.
"""

from __future__ import annotations

import signal
import textwrap

import pytest
from runtime.support import Flow

from reliability.harness import (
    EFFECT,
    Runs,
    effect_counts,
    effect_workflow,
    last_run_status,
    read_ledger,
    run,
    statuses,
    succeeded,
    wait_for,
)

ITEMS = 8

SLOW = effect_workflow("slow", ITEMS, sleep=0.2)

NODES = [f"work[{i}]" for i in range(ITEMS)]

VARIANTS = {
    "SIGINT to the run": (signal.SIGINT, False),
    "SIGINT to the group (Ctrl-C)": (signal.SIGINT, True),
    "SIGTERM to the run": (signal.SIGTERM, False),
    "SIGTERM to the group": (signal.SIGTERM, True),
}


@pytest.mark.slow  # a stopped run and its resume, on loky: about 5 s each
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_signal_stops_the_run_gently_and_the_next_run_resumes(flow: Flow, runs: Runs, variant: str) -> None:
    sig, to_group = VARIANTS[variant]
    flow.path.write_text(SLOW, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: len(effect_counts(flow.ws)) >= 3 or proc.poll() is not None, "both workers to be busy")
    if to_group:
        runs.kill_group(proc, sig)
    else:
        proc.send_signal(sig)
    code = runs.finish(proc, timeout=20)
    output = runs.stderr(proc)
    assert (code, "Traceback" in output, "interrupted" in output) == (1, False, True), output
    recorded, ran = succeeded(flow.ws), effect_counts(flow.ws)
    assert last_run_status(flow.ws) == "interrupted"
    assert set(statuses(flow.ws).values()) <= {"succeeded", "pending"}  # none left "running", none failed
    assert 0 < len(recorded) < ITEMS  # the run did stop part-way
    assert {n: ran[n] for n in recorded} == {n: 1 for n in recorded}  # recorded nodes all executed, once
    workers_survive = not (to_group and sig == signal.SIGTERM)
    if workers_survive:
        assert set(ran) == recorded  # the running nodes finished and were recorded: nothing lost

    again = run(*command, cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert statuses(flow.ws) == {n: "succeeded" for n in NODES}
    final = effect_counts(flow.ws)
    assert {n: final[n] for n in recorded} == {n: 1 for n in recorded}  # nothing recorded ran again
    if workers_survive:
        assert final == {n: 1 for n in NODES}
    else:
        assert set(final) == set(NODES)


ONE_SLOW_NODE = f"""
name: lonely
steps:
  - name: work
    task: python
    items: [0]
    inputs:
      code: |
{textwrap.indent(EFFECT.strip(), " " * 8)}
        import time
        time.sleep(1.5)
        result = item
  - name: after
    task: python
    depends_on: [work]
    inputs: {{code: "result = 1"}}
"""


def test_ctrl_c_while_a_worker_is_idle_still_stops_gently(flow: Flow, runs: Runs) -> None:
    """The running node finishes, or (when the Ctrl-C reached a loky worker still booting, which breaks
    the pool) is recorded pending with the note "interrupted"; either way the next run completes it."""
    flow.path.write_text(ONE_SLOW_NODE, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: effect_counts(flow.ws) or proc.poll() is not None, "the slow node to start")
    runs.kill_group(proc, signal.SIGINT)
    code = runs.finish(proc, timeout=20)
    output = runs.stderr(proc)
    assert (code, "Traceback" in output) == (1, False), output
    notes = dict(read_ledger(flow.ws, "SELECT node_id, status || ':' || coalesce(note, '') FROM nodes"))
    assert last_run_status(flow.ws) == "interrupted"
    assert notes in ({"work[0]": "succeeded:", "after": "pending:"},
                     {"work[0]": "pending:interrupted", "after": "pending:"}), notes
    again = runs.start(*command, cwd=flow.dir)
    assert runs.finish(again, timeout=60) == 0, runs.stderr(again)
    assert statuses(flow.ws) == {"work[0]": "succeeded", "after": "succeeded"}
