"""Load: a run of 100,000 trivial nodes completes, and `plait status` answers on its ledger.

The run is a real `plait run` process (loky, 2 workers). Its peak memory is the largest resident
set of the run process and of the workers it reaped, from `wait4`'s resource usage of that one
child. Timings and memory are printed and reported, never asserted: they measure this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtime.support import Flow

from reliability.harness import ENV, PLAIT, integrity, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 100_000

TRIVIAL = f"""
name: load
steps:
  - name: item
    task: python
    items: {{range: {ITEMS}}}
    inputs: {{code: "result = item"}}
"""


def run_measured(args: list[str], cwd: Path, timeout: float) -> tuple[int, str, int, float]:
    """Run a command; return (exit code, stderr, peak RSS in KiB, seconds). Its group is killed after `timeout`."""
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, env=ENV)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own usage, not the session's other children
    finally:
        timer.cancel()
        if proc.stderr:
            proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, stderr, usage.ru_maxrss, time.monotonic() - started


@pytest.mark.soak  # 100,000 nodes: about 5 s of run and 1 s of status
@pytest.mark.slow
def test_a_run_of_100000_trivial_nodes_completes_and_status_answers(flow: Flow, figures: dict[str, Any]) -> None:
    flow.path.write_text(TRIVIAL, encoding="utf-8")
    code, stderr, peak_kib, seconds = run_measured(
        [*PLAIT, "run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q"],
        cwd=flow.dir, timeout=300)
    assert code == 0, stderr
    assert f"{ITEMS:,} succeeded" in stderr

    started = time.monotonic()
    status = run("status", "--workspace", str(flow.ws), "--format", "json", cwd=flow.dir, timeout=120)
    status_seconds = time.monotonic() - started
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert (state["workflow"], state["run"]["status"], state["steps"]["item"]["stats"]) == (
        "load", "succeeded", {"total": ITEMS, "processed": ITEMS, "failed": 0, "retried": 0, "skipped": 0,
                              "pending": 0})
    assert sorted(state["steps"]["item"]["processed"]) == list(range(ITEMS))
    assert {n["status"] for n in state["nodes"].values()} == {"succeeded"}
    assert len(state["nodes"]) == ITEMS
    assert integrity(flow.ws) == [("ok",)]

    figures["load"] = (f"{ITEMS:,} nodes run in {seconds:.1f} s (loky, 2 workers), peak RSS {peak_kib / 1024:.0f} MiB "
                       f"(largest process); `plait status --format json` in {status_seconds:.2f} s "
                       f"({len(status.stdout) / 1e6:.1f} MB of JSON)")
    print(f"load: {ITEMS} items in {seconds:.1f} s, peak RSS {peak_kib} KiB, status {status_seconds:.2f} s")
