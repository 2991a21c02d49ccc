"""One run at a time per workspace: a second run is refused naming the first; a dead run's lock frees itself.

The lock is an `flock` on `<workspace>/.plait/lock`, which the kernel drops when the holder dies, so
a run killed with SIGKILL (however much of its group is killed) never needs a manual unlock.
"""

from __future__ import annotations

import signal

import pytest
from runtime.support import Flow

from reliability.harness import (
    Runs,
    effect_counts,
    effect_workflow,
    held_workflow,
    open_gate,
    run,
    statuses,
    succeeded,
    wait_for,
)

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 8

HELD = held_workflow("locked", ITEMS)  # done[f0] and done[f1] finish; the work nodes wait at the gate
DONE = {"done[f0]", "done[f1]"}


def busy_message(flow: Flow, pid: int) -> str:
    return (f"plait: error: workspace '{flow.ws}' is in use by another plait run (pid {pid}); wait for it to "
            "finish, or use another --workspace\n")


@pytest.mark.slow  # two runs on loky, one killed, and the run that takes over: a few seconds each
@pytest.mark.parametrize("killed", ["the whole group", "the run process only"])
def test_a_second_run_is_refused_and_after_sigkill_a_new_run_takes_over(flow: Flow, runs: Runs, killed: str) -> None:
    flow.path.write_text(HELD, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    first = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: succeeded(flow.ws) >= DONE or first.poll() is not None,
             "the first run to record two nodes (the others wait at the gate)")
    assert first.poll() is None, runs.stderr(first)

    second = run(*command, cwd=flow.dir)
    resumed = run("resume", "--workspace", str(flow.ws), "-q", cwd=flow.dir)
    assert (second.returncode, second.stderr) == (2, busy_message(flow, first.pid))
    assert (resumed.returncode, resumed.stderr) == (2, busy_message(flow, first.pid))

    if killed == "the whole group":
        runs.kill_group(first)
    else:  # as the OOM killer may: the workers are orphaned, the run process is gone
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    recorded, ran = succeeded(flow.ws), effect_counts(flow.ws)

    assert recorded >= DONE
    open_gate(flow.ws)
    # No unlock, no waiting. Its backend is no matter to the lock: sequential spares two workers' boot.
    third = runs.start(*command[:4], "--backend", "sequential", "-q", cwd=flow.dir)
    assert runs.finish(third) == 0, runs.stderr(third)
    assert statuses(flow.ws) == dict.fromkeys([*DONE, *(f"work[{i}]" for i in range(ITEMS))], "succeeded")
    assert (flow.ws / ".plait" / "lock").read_text() == f"pid {third.pid}"
    final = effect_counts(flow.ws)
    assert {n: final[n] for n in recorded} == {n: ran[n] for n in recorded}


def test_of_two_runs_started_together_exactly_one_runs(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(effect_workflow("locked", 4, held="True"), encoding="utf-8")  # every node waits
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    both = [runs.start(*command, cwd=flow.dir), runs.start(*command, cwd=flow.dir)]
    wait_for(lambda: any(proc.poll() is not None for proc in both), "one of the two runs to give up")
    open_gate(flow.ws)  # the one holding the workspace cannot have finished before this
    codes = [runs.finish(proc) for proc in both]
    winner, loser = (both[0], both[1]) if codes[0] == 0 else (both[1], both[0])
    assert sorted(codes) == [0, 2], [runs.stderr(p) for p in both]
    assert runs.stderr(loser) == busy_message(flow, winner.pid)
    assert effect_counts(flow.ws) == {f"work[{i}]": 1 for i in range(4)}
