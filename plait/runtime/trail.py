"""Crash trails: which job each worker process was running when it died.

A worker that dies (a segfault, `os._exit`) takes its chunk's outcomes with it, and joblib says
only that a worker died, not which chunk or which job. Without more, the parent bisects the
chunks that did not come back, one crash per halving, which made a batch with a few crashing items
take half a minute (docs/performance.md). With a trail, every worker process keeps a record of
its own, `(call, chunk, job)`, written before each job into a small memory-mapped file (a
store, no system call), and after a loss the parent reads which job each dead worker was running.
Only those jobs are suspects; the rest of their chunks are not (`plait.runtime.backends`).

loky does not stop a broken pool's workers at once: for a moment they go on taking the aborted
call's chunks, whose outcomes the parent drops, and may run a culprit once more. So the parent
first raises a fence (the number of the call that broke, in the folder's `fence` file, mapped by
every worker): a worker checks it as it marks each job, and runs no job of a fenced call.

A trail lives in `<workspace>/.plait/trail-<run id>/<pid>` for the run's length; a worker maps its
own once per run (`plait.runtime.worker`). Only workers on this machine keep one (loky); a Dask
worker may be on another.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

from plait.processes import alive

__all__ = ["Trail", "fence", "last_jobs", "prepare"]

_RECORD = struct.Struct("<qqq")  # call, chunk index in the call, job position in the chunk
_FENCE = struct.Struct("<q")  # the last call that broke
FENCE = "fence"
WAIT_FOR_EXIT = 1.0  # seconds a broken pool's workers get to be gone before their records are read


class Trail:
    """A worker's own record of the job it is running (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        with open(Path(folder) / str(os.getpid()), "w+b") as file:
            # Allocated, not sparse: a store into a mapped page the disk has no room for is a SIGBUS.
            os.posix_fallocate(file.fileno(), 0, _RECORD.size)
            self.map = mmap.mmap(file.fileno(), _RECORD.size)
        with open(Path(folder) / FENCE, "rb") as file:
            self.fence = mmap.mmap(file.fileno(), _FENCE.size, access=mmap.ACCESS_READ)

    def close(self) -> None:
        """Unmap the trail (a worker reused by the next run maps that run's)."""
        self.map.close()
        self.fence.close()

    def mark(self, call: int, chunk: int, job: int) -> bool:
        """Say that job `job` of chunk `chunk` of call `call` starts now; return False when the call is fenced off."""
        _RECORD.pack_into(self.map, 0, call, chunk, job)
        return _FENCE.unpack_from(self.fence)[0] < call


def prepare(folder: Path) -> None:
    """Make a run's trail folder, with its fence down (no call broken yet)."""
    folder.mkdir()
    (folder / FENCE).write_bytes(_FENCE.pack(0))


def fence(folder: str | Path, call: int) -> None:
    """Fence off call `call` and every call before it: no worker starts another of their jobs.

    The fence only rises: calls that broke together may be fenced in any order (the caller does it
    under one lock), and a later call that runs on is never fenced by an earlier one's loss.
    """
    with open(Path(folder) / FENCE, "r+b") as file:
        if _FENCE.unpack(file.read(_FENCE.size))[0] < call:
            file.seek(0)
            file.write(_FENCE.pack(call))


def last_jobs(folder: str | Path, call: int) -> dict[int, int]:
    """Return {chunk: job} for the workers that were on call `call` when its pool broke, and forget their trails.

    loky takes every worker of a broken pool down with the one that died, but not at once: a
    worker still running may yet reach (and run) a culprit. So each worker that was on the call
    is waited for, a second at most, and its record read once it is gone: its last. (A worker that
    loky stopped before it reached a culprit points at an innocent job, which then runs alone and
    succeeds.) A worker that died before its first job left no record, and is forgotten. The
    trails of other calls stay: calls overlap, and those that broke together are each read for
    their own, in any order.
    """
    deadline = time.monotonic() + WAIT_FOR_EXIT
    found: dict[int, int] = {}
    for path in Path(folder).glob("[0-9]*"):
        record = _read(path)
        pid = int(path.name)
        if record is not None and record[0] == call:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.005)
            record = _read(path)
            if record is not None and record[0] == call:
                found[record[1]] = record[2]
                path.unlink(missing_ok=True)
                continue
        if record is None and not alive(pid):
            path.unlink(missing_ok=True)  # a worker that died before its first job
    return found


def _read(path: Path) -> tuple[int, int, int] | None:
    """Return a trail's record, or None when it holds none (created, but no job started)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    record = _RECORD.unpack(data) if len(data) == _RECORD.size else None
    return record if record is not None and record[0] else None
