"""Kill soak: SIGKILL a real loky run again and again at random moments; nothing recorded is lost or run again.

The workflow is ITEMS small nodes, each appending its node ID to its own effect file and sleeping
2 ms. `plait run` (loky, 2 workers) is started in a session of its own and its whole process group
(the run and its workers) is SIGKILLed at a random moment, then started again, until a run exits 0.

When the kill comes is drawn from `random.Random(1234)`: 0.2-1.0 s after the run started. Kills
1, 2, 3, 5, 7 and 9 count from the process's start, so they land in start-up (imports, creating
or opening the ledger, recording the run's nodes, spawning workers); the others count from the
moment this run executed its first node, so they land among executions and ledger commits.
(Counting every kill from the process's start would put nearly all of them in start-up on this
machine, where start-up takes about as long as the longest wait, and the soak would need some
60 kills to finish.) After 12 kills the next run is let finish, to bound the test's time; a run
that finishes before its kill ends the soak earlier, but not before 10 kills.

After each kill the test reads the ledger (read-only) and the effect files. The guarantee is
then checked exactly: a node the ledger had recorded as succeeded at some kill has, at the end,
precisely the effect lines it had at that kill: no recorded node ever executed again. Every node
executed at least once, and `PRAGMA integrity_check` is ok.
"""

from __future__ import annotations

import random
import signal
import subprocess
import textwrap
from typing import Any

import pytest
from runtime.support import Flow

from reliability.harness import (
    EFFECT,
    Runs,
    effect_bytes,
    effect_counts,
    group_members,
    integrity,
    last_run_status,
    rows,
    succeeded,
    wait_for,
)

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 2000
MIN_KILLS = 10
KILLS = 12  # after this many kills the next run is let finish
START_UP_KILLS = (1, 2, 3, 5, 7, 9)

SOAK = f"""
name: soak
steps:
  - name: touch
    task: python
    items: {{range: {ITEMS}}}
    inputs:
      code: |
{textwrap.indent(EFFECT.strip(), " " * 8)}
        import time
        time.sleep(0.002)
        result = item
"""


@pytest.mark.soak  # 13 runs of a 2,000-node workflow on loky: about 15 s
@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_recorded_and_reruns_nothing_recorded(
        flow: Flow, runs: Runs, figures: dict[str, Any]) -> None:
    flow.path.write_text(SOAK, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    rng = random.Random(1234)
    snapshots: list[tuple[set[str], dict[str, int]]] = []  # at each kill: (recorded succeeded, executions)
    kill_phases: list[str] = []
    final: subprocess.Popen[bytes] | None = None
    while final is None:
        kill = len(snapshots) + 1
        delay = rng.uniform(0.2, 1.0)
        before = effect_bytes(flow.ws)
        proc = runs.start(*command, cwd=flow.dir)
        if kill > KILLS:
            runs.finish(proc)
            final = proc
            break
        phase = "start-up" if kill in START_UP_KILLS else "executing"
        if phase == "executing":  # count from this run's first execution
            wait_for(lambda before=before, proc=proc: effect_bytes(flow.ws) != before or proc.poll() is not None,
                     "the run to execute a node or to end")
        try:
            proc.wait(timeout=delay)
            final = proc
        except subprocess.TimeoutExpired:
            runs.kill_group(proc)  # the run and its workers, and waits until they are all gone
            assert proc.returncode == -signal.SIGKILL
            recorded, executions = succeeded(flow.ws), effect_counts(flow.ws)
            assert recorded <= set(executions), f"recorded but never executed: {sorted(recorded - set(executions))}"
            snapshots.append((recorded, executions))
            kill_phases.append(phase)

    assert final.returncode == 0, runs.stderr(final)
    nodes = [f"touch[{i}]" for i in range(ITEMS)]
    assert rows(flow.ws) == {n: ("succeeded", 1, i, None) for i, n in enumerate(nodes)}
    assert last_run_status(flow.ws) == "succeeded"
    executions = effect_counts(flow.ws)
    assert set(executions) == set(nodes)  # every node executed at least once (a file holds >= 1 line)
    for recorded, at_kill in snapshots:  # no node recorded at a kill executed again after it
        assert {n: executions[n] for n in recorded} == {n: at_kill[n] for n in recorded}
    assert integrity(flow.ws) == [("ok",)]

    repeats = sum(executions.values()) - ITEMS
    figures["kill soak"] = (f"{len(snapshots)} SIGKILLs survived ({kill_phases.count('start-up')} in start-up, "
                            f"{kill_phases.count('executing')} while executing) over {ITEMS:,} items; "
                            f"{repeats} executions repeated in all, {repeats / len(snapshots):.0f} per kill "
                            "(finished in the last moment before a kill: neither journaled nor committed)")
    print(f"kill soak: {len(snapshots)} kills, {ITEMS} items, {repeats} repeated executions, "
          f"recorded at each kill: {[len(r) for r, _ in snapshots]}")
    assert len(snapshots) >= MIN_KILLS, f"only {len(snapshots)} kills before the run finished"


WAITING = f"""
name: waiting
steps:
  - name: work
    task: python
    items: {{range: 4}}
    inputs:
      code: |
{textwrap.indent(EFFECT.strip(), " " * 8)}
        import time
        deadline = time.monotonic() + 30
        while item == 0 and not (ctx.workspace / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        result = item
"""


def test_finished_nodes_are_committed_while_another_node_runs_long(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(WAITING, encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: len(effect_counts(flow.ws)) == 4 or proc.poll() is not None, "every node to start")
    quick = {"work[1]", "work[2]", "work[3]"}
    try:  # 3 s is six flush intervals: a bound on the wait, not a timing
        wait_for(lambda: succeeded(flow.ws) >= quick, "the quick nodes to be committed", seconds=3)
    finally:
        runs.kill_group(proc)  # as the OOM killer or a power cut would, while work[0] still runs
    assert succeeded(flow.ws) >= quick


@pytest.mark.slow  # waits 3 s for the orphans while the bug stands
def test_the_workers_of_a_killed_run_do_not_outlive_it(flow: Flow, runs: Runs) -> None:
    flow.path.write_text(WAITING.replace("while item == 0 and", "while"), encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)
    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q")
    proc = runs.start(*command, cwd=flow.dir)
    wait_for(lambda: len(effect_counts(flow.ws)) == 2 or proc.poll() is not None, "both workers to be busy")
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: not group_members(proc.pid), "the orphaned workers to exit", seconds=3)
