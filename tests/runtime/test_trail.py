"""Crash trails: a worker's record of the job it is running, read by the parent after the worker died."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from plait.runtime.trail import last_jobs

WORKER = textwrap.dedent("""
    import os, sys
    from plait.runtime.trail import Trail
    trail = Trail.of_process(sys.argv[1])
    for call, chunk, job in [(1, 0, 0), (1, 0, 1), (2, 3, int(sys.argv[2]))]:
        trail.mark(call, chunk, job)
    os._exit(3)  # dies in its job: nothing after the mark runs
""")


def test_the_last_mark_of_a_dead_worker_is_read_once(tmp_path: Path) -> None:
    died = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), "9"], check=False, timeout=60)
    (tmp_path / "12345").write_bytes(b"")  # a worker that died before its first job
    assert (died.returncode, last_jobs(tmp_path)) == (3, {(2, 3): 9})  # its last mark, not the earlier ones
    assert (list(tmp_path.iterdir()), last_jobs(tmp_path)) == ([], {})


def test_workers_of_different_chunks_are_told_apart(tmp_path: Path) -> None:
    script = WORKER.replace("(2, 3, int(sys.argv[2]))", "(2, int(sys.argv[2]), 5)")
    for chunk in ("4", "6"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path), chunk], check=False, timeout=60)
    assert last_jobs(tmp_path) == {(2, 4): 5, (2, 6): 5}
