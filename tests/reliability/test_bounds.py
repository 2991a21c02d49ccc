"""Bounds per node and per run (issue 13, classes 7 and 9): a result too large, too many workers, workers that die.

Real `plait` processes: a node returning more than a node may return fails alone with a clear error,
the run ends (never left `running`) and the next run does the same; `--max-result-size` raises the
bound. `--jobs` past a multiple of the cores the process may use is capped unless forced, and workers
that cannot start end the run with exit 2 and a hint instead of a hang.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from runtime.support import PLAIT, ledger_query, ledger_rows, plait, plait_process

from plait.limits import JOBS_PER_CORE

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

BIG = """
name: big
steps:
  - name: make
    task: python
    items: [1, 2, 3]
    on_error: continue
    inputs: {code: "result = 'x' * (17 * 2**20) if item == 2 else item"}
  - name: after
    task: python
    depends_on: [make]
    inputs: {code: "result = 1"}
"""


def test_a_result_over_the_bound_fails_its_node_alone_and_the_run_ends(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(BIG, encoding="utf-8")
    ledger = tmp_path / "ws" / ".plait" / "ledger.db"
    for _ in range(2):  # the same on every run: nothing stuck, nothing left `running`
        done = plait("run", "wf.yaml", "--workspace", "ws", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        rows = ledger_rows(ledger)
        assert rows["make[2]"]["error"]["error_type"] == "ResultTooLarge"
        assert "more than the 16 MiB one node may return (--max-result-size)" in rows["make[2]"]["error"]["error"]
        assert (rows["make[1]"]["status"], rows["make[3]"]["status"]) == ("succeeded", "succeeded")
        assert ledger_query(ledger, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    raised = plait("run", "wf.yaml", "--workspace", "ws", "--max-result-size", "64MB", cwd=tmp_path)
    assert raised.returncode == 0, raised.stderr
    assert len(ledger_rows(ledger)["make[2]"]["result"]) == 17 * 2**20


# A node's result: how many loky workers the run started (its process's children named LokyProcess). All of them boot
# before the first node runs (plait.runtime.backends._start_workers), so every node sees the same number.
COUNT_WORKERS = textwrap.indent(textwrap.dedent("""
    import os
    def worker_of(pid, parent):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return int(stat.read().rsplit(b")", 1)[1].split()[1]) == parent and b"LokyProcess" in cmdline.read()
        except (OSError, ValueError, IndexError):  # gone meanwhile
            return False
    result = sum(worker_of(int(pid), os.getppid()) for pid in os.listdir("/proc") if pid.isdigit())
"""), " " * 8)


def workers_workflow(items: int, deferred: bool = False) -> str:
    """Return a workflow whose step `count` has `items` nodes, each counting the run's workers; `deferred`: its
    items come from an upstream result, so the plan cannot tell how many nodes will run."""
    first = f"  - name: first\n    task: python\n    inputs: {{code: 'result = list(range({items}))'}}\n"
    source = 'items: "{{ steps.first.result }}"' if deferred else f"items: {{range: {items}}}"
    return (f"name: workers\nsteps:\n{first if deferred else ''}  - name: count\n    task: python\n"
            f"    {source}\n    inputs:\n      code: |{COUNT_WORKERS}")


def workers_started(tmp_path: Path) -> set[int]:
    return {row["result"] for node, row in ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db").items()
            if node.startswith("count[")}


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_jobs_past_the_cap_are_capped_unless_forced(tmp_path: Path) -> None:
    cap = JOBS_PER_CORE  # one core: the cap is JOBS_PER_CORE workers
    asked = cap + 2
    (tmp_path / "wf.yaml").write_text(workers_workflow(asked), encoding="utf-8")
    one_core = ["taskset", "-c", "0"]
    capped = _run(tmp_path, one_core, "run", "wf.yaml", "--workspace", "ws", "--jobs", str(asked), "--fresh")
    assert capped.returncode == 0, capped.stderr
    assert f"{asked} workers is more than {JOBS_PER_CORE} per core on this machine: starting {cap} " \
           "(insist with --force-jobs)" in capped.stderr
    assert workers_started(tmp_path) == {cap}
    forced = _run(tmp_path, one_core, "run", "wf.yaml", "--workspace", "ws", "--jobs", str(asked), "--fresh",
                  "--force-jobs")
    assert forced.returncode == 0, forced.stderr
    assert "per core" not in forced.stderr
    assert workers_started(tmp_path) == {asked}


@pytest.mark.parametrize(("items", "deferred", "started"), [
    (3, False, 3),  # no more workers than nodes
    (1, False, 2),  # but two at least: joblib would run one job in plait's own process
    (1, True, 4),  # a deferred step may expand to any number of nodes: --jobs it is
], ids=["three nodes", "one node", "deferred"])
def test_a_run_starts_no_more_workers_than_its_plan_has_nodes(tmp_path: Path, items: int, deferred: bool,
                                                               started: int) -> None:
    (tmp_path / "wf.yaml").write_text(workers_workflow(items, deferred), encoding="utf-8")
    done = plait_process("run", "wf.yaml", "--workspace", "ws", "--jobs", "4", "--backend", "loky", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert workers_started(tmp_path) == {started}


def test_workers_that_cannot_start_end_the_run_with_exit_2_not_a_hang(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, sys
        if any("LokyProcess" in arg for arg in sys.argv):  # a loky worker: it dies as it boots
            os._exit(1)
    """), encoding="utf-8")
    (tmp_path / "wf.yaml").write_text("name: doomed\nsteps:\n  - name: s\n    task: python\n    items: [1, 2, 3]\n"
                                      "    inputs: {code: 'result = item'}\n", encoding="utf-8")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = plait_process("run", "wf.yaml", "--workspace", "ws", "--backend", "loky", cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "could not start 2 worker processes" in done.stderr
    assert "run with fewer --jobs" in done.stderr
    assert "Traceback" not in done.stderr


def _run(cwd: Path, prefix: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run plait under a command prefix (taskset)."""
    return subprocess.run([*prefix, *PLAIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
