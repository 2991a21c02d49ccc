"""The bounds plait keeps, in one place: what one node may return or print, and how many workers a run starts.

Every bound is per node or per run, never a surprise of the machine's: past it, the node fails with
an error that names the bound and how to change it, and the run goes on (docs/reliability.md).
This module imports nothing, so the command line reads its defaults without loading the runtime.
"""

from __future__ import annotations

import os

__all__ = ["JOBS_PER_CORE", "MAX_RESULT_BYTES", "OUTPUT_TAIL", "TRACEBACK_CHARS", "jobs_cap", "size_text"]

MAX_RESULT_BYTES = 16 * 2**20  # the most JSON a node's result may take, unless a run says otherwise
OUTPUT_TAIL = 32_000  # the characters kept of each stream a node attempt printed: its last ones
TRACEBACK_CHARS = 8_000  # the longest traceback an error record keeps (its last frames)
JOBS_PER_CORE = 4  # --jobs above this many workers per core is capped, unless the user insists


def jobs_cap() -> int:
    """Return the most workers a run starts without being told to insist: JOBS_PER_CORE per core it may use."""
    return JOBS_PER_CORE * len(os.sched_getaffinity(0))


def size_text(count: int) -> str:
    """Say a number of bytes the way people read them: '16 MiB', '1.5 GiB', '300 bytes'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
