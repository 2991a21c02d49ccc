"""Crash trails: which job each worker process was running when it died.

A worker that dies (a segfault, `os._exit`) takes its chunk's outcomes with it, and joblib says
only that a worker died, not which chunk or which job. Without more, the parent bisects the
chunks that did not come back, one crash per halving: a batch where 1% of 2,000 items crash took
36 s. With a trail, every worker process keeps a record of its own, `(call, chunk, job)`, written
before each job into a small memory-mapped file (a store, no system call: well under a
microsecond a job), and after a loss the parent reads which job each dead worker was running.
Only those jobs are suspects; the rest of their chunks are not (`plait.runtime.backends`).

A trail lives in `<workspace>/.plait/trail-<run id>/<pid>` for the run's length. Only workers on
this machine keep one (loky); a Dask worker may be on another.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

__all__ = ["Trail", "last_jobs"]

_RECORD = struct.Struct("<qqq")  # call, chunk index in the call, job position in the chunk

_open: dict[str, Trail] = {}  # in a worker: its trail, by folder; only the latest run's is kept


class Trail:
    """A worker's own record of the job it is running (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        path = Path(folder) / str(os.getpid())
        with open(path, "w+b") as file:
            file.truncate(_RECORD.size)
            self.map = mmap.mmap(file.fileno(), _RECORD.size)

    @classmethod
    def of_process(cls, folder: str) -> Trail:
        """Return this process's trail in `folder`, created on first use."""
        trail = _open.get(folder)
        if trail is None:
            for old in _open.values():  # a worker reused by the next run of the same process
                old.map.close()
            _open.clear()
            trail = _open[folder] = cls(folder)
        return trail

    def mark(self, call: int, chunk: int, job: int) -> None:
        """Say that job `job` of chunk `chunk` of call `call` starts now. Mutates the file."""
        _RECORD.pack_into(self.map, 0, call, chunk, job)


def last_jobs(folder: str | Path) -> dict[tuple[int, int], int]:
    """Return {(call, chunk): job} that workers were running last, and forget their trails.

    Read once a loky pool has broken: loky takes every worker of a broken pool down with the one
    that died, so each of them is gone or going, and a record of the call that broke says which
    job it was on. (A worker that loky stopped before it reached a culprit points at an innocent
    job, which then runs alone and succeeds.) A worker that died before its first job left none.
    """
    found: dict[tuple[int, int], int] = {}
    for path in Path(folder).glob("*"):
        data = path.read_bytes()
        path.unlink(missing_ok=True)
        if len(data) == _RECORD.size:
            call, chunk, job = _RECORD.unpack(data)
            if call:  # 0: the file was created, but no job started
                found[call, chunk] = job
    return found
