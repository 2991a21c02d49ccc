"""Ctrl-C and SIGTERM stop a run gently: it ends `interrupted`, keeps what finished, and the next run resumes.

Each variant runs two nodes that finish, then ITEMS nodes on loky (2 workers) that wait at a gate
the test holds shut, so when the test sends its signal two nodes are recorded and both workers are
busy, whatever the machine's load. The signal goes either to the `plait run` process alone
(`kill PID`) or to its whole process group, as a terminal's Ctrl-C does (the workers get it too)
and as `kill -TERM -PGID` or a service manager does. Once the run has raised its stop flag, the
gate opens. The run must exit 1 within a bounded time, with the ledger's last run `interrupted`,
the nodes that finished recorded `succeeded`, the rest `pending`, and no traceback. The next run
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
    gate,
    held_workflow,
    last_run_status,
    never_ran,
    open_gate,
    read_ledger,
    run,
    statuses,
    stop_flag_raised,
    succeeded,
    wait_for,
)

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 8

HELD = held_workflow("held", ITEMS)

NODES = ["done[f0]", "done[f1]", *(f"work[{i}]" for i in range(ITEMS))]

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
    flow.path.write_text(HELD, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: proc.poll() is not None or (
        {"done[f0]", "done[f1]"} <= succeeded(flow.ws) and len(effect_counts(flow.ws)) >= 4),
        "two nodes recorded and both workers held at the gate")
    if to_group:
        runs.kill_group(proc, sig)
    else:
        proc.send_signal(sig)
    wait_for(lambda: stop_flag_raised(flow.ws) or proc.poll() is not None, "the run to take the signal")
    open_gate(flow.ws)
    code = runs.finish(proc, timeout=60)
    output = runs.stderr(proc)
    assert (code, "Traceback" in output, "interrupted" in output) == (1, False, True), output
    recorded, ran = succeeded(flow.ws), effect_counts(flow.ws)
    assert last_run_status(flow.ws) == "interrupted"
    assert set(statuses(flow.ws).values()) <= {"succeeded", "pending"}  # none left "running", none failed
    assert 0 < len(recorded) < len(NODES)  # the run did stop part-way
    assert {n: ran[n] for n in recorded} == {n: 1 for n in recorded}  # recorded nodes all executed, once
    workers_survive = not (to_group and sig == signal.SIGTERM)
    if workers_survive:
        assert set(ran) == recorded  # the running nodes finished and were recorded: nothing lost

    again = run(*resume(flow), cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert statuses(flow.ws) == {n: "succeeded" for n in NODES}
    final = effect_counts(flow.ws)
    assert {n: final[n] for n in recorded} == {n: 1 for n in recorded}  # nothing recorded ran again
    if workers_survive:
        assert final == {n: 1 for n in NODES}
    else:
        assert set(final) == set(NODES)


def resume(flow: Flow) -> tuple[str, ...]:
    """The next run: what it resumes does not depend on its backend, and sequential spares two workers' boot."""
    return "run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q"


ONE_SLOW_NODE = f"""
name: lonely
steps:
  - name: work
    task: python
    items: [0]
    inputs:
      code: |
{textwrap.indent(EFFECT.strip(), " " * 8)}
{textwrap.indent(gate("True"), " " * 8)}
        result = item
  - name: after
    task: python
    depends_on: [work]
    inputs: {{code: "result = 1"}}
"""


def test_ctrl_c_while_a_worker_is_idle_still_stops_gently(flow: Flow, runs: Runs) -> None:
    """The running node finishes and is recorded; the idle worker, even one still booting, ignores Ctrl-C."""
    flow.path.write_text(ONE_SLOW_NODE, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: effect_counts(flow.ws) or proc.poll() is not None, "the slow node to start")
    runs.kill_group(proc, signal.SIGINT)
    wait_for(lambda: stop_flag_raised(flow.ws) or proc.poll() is not None, "the run to take the signal")
    open_gate(flow.ws)
    code = runs.finish(proc, timeout=60)
    output = runs.stderr(proc)
    assert (code, "Traceback" in output) == (1, False), output
    notes = {**dict(read_ledger(flow.ws, "SELECT node_id, status || ':' || coalesce(note, '') FROM nodes")),
             **{nid: "pending:" for nid in never_ran(flow.ws)}}  # a node of the plan without a row never ran
    assert last_run_status(flow.ws) == "interrupted"
    assert notes == {"work[0]": "succeeded:", "after": "pending:"}
    again = runs.start(*resume(flow), cwd=flow.dir)
    assert runs.finish(again, timeout=60) == 0, runs.stderr(again)
    assert statuses(flow.ws) == {"work[0]": "succeeded", "after": "succeeded"}
    assert effect_counts(flow.ws) == {"work[0]": 1}
