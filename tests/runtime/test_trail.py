"""Crash trails: a worker's record of the job it is running, read by the parent after the worker died."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plait.runtime import trail as trail_module
from plait.runtime.trail import Trail, fence, last_jobs, prepare

WORKER = textwrap.dedent("""
    import os, sys
    from plait.runtime.worker import PROCESS
    trail = PROCESS.trail_in(sys.argv[1])
    for call, chunk, job in [(1, 0, 0), (1, 0, 1), (2, int(sys.argv[2]), 9)]:
        trail.mark(call, chunk, job)
    os._exit(3)  # dies in its job: nothing after the mark runs
""")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    prepare(tmp_path / "trail")
    return tmp_path / "trail"


def test_the_last_mark_of_a_dead_worker_is_read_once(folder: Path) -> None:
    died = subprocess.run([sys.executable, "-c", WORKER, str(folder), "3"], check=False, timeout=60)
    (folder / "12345").write_bytes(b"")  # a worker that died before its first job
    assert (died.returncode, last_jobs(folder, 2)) == (3, {3: 9})  # its last mark, not the earlier ones
    assert ([p.name for p in folder.iterdir()], last_jobs(folder, 2)) == (["fence"], {})


def test_workers_of_different_chunks_are_told_apart_and_other_calls_ignored(folder: Path) -> None:
    for chunk in ("4", "6"):
        subprocess.run([sys.executable, "-c", WORKER, str(folder), chunk], check=False, timeout=60)
    assert last_jobs(folder, 1) == {}  # another call's records say nothing of this one
    for chunk in ("4", "6"):
        subprocess.run([sys.executable, "-c", WORKER, str(folder), chunk], check=False, timeout=60)
    assert last_jobs(folder, 2) == {4: 9, 6: 9}


SLOW_WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from plait.runtime.worker import PROCESS
    trail = PROCESS.trail_in(sys.argv[1])
    trail.mark(5, 0, 1)
    while not Path(sys.argv[2]).exists():  # still running when the parent looks: it reaches job 2 before it dies
        time.sleep(0.005)
    trail.mark(5, 0, 2)
    os._exit(3)
""")


def test_a_worker_still_running_is_waited_for_and_its_last_job_read(folder: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trail_module, "WAIT_FOR_EXIT", 120.0)  # a bound on a hang, not a timing
    gate = tmp_path / "gate"
    worker = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, str(folder), str(gate)])
    try:
        path = folder / str(worker.pid)
        deadline = time.monotonic() + 60
        while not (path.exists() and path.read_bytes()[:8] == (5).to_bytes(8, "little")):
            assert time.monotonic() < deadline, "the worker never marked its first job"
            time.sleep(0.01)
        gate.touch()  # the worker is alive, on job 1, and goes on to job 2 now, before or while we look
        assert last_jobs(folder, 5) == {0: 2}
    finally:
        worker.wait(timeout=30)


def test_a_fenced_call_starts_no_more_jobs_and_later_calls_do(folder: Path) -> None:
    trail = Trail(str(folder))
    assert (trail.mark(2, 0, 0), trail.mark(3, 0, 0)) == (True, True)
    fence(folder, 2)
    assert (trail.mark(1, 0, 1), trail.mark(2, 0, 1), trail.mark(3, 0, 1)) == (False, False, True)
