"""Whether a process still lives, for the parts of plait that watch another process die.

A crash trail waits for a dead worker's slot to be free (`plait.runtime.trail`); the report
tells a run whose process is gone from one still running (`plait.report.data`). A zombie (dead,
not yet reaped by its parent) counts as dead: it will never write again.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["alive"]


def alive(pid: int) -> bool:
    """Say whether a process lives: it exists and, where /proc says so, is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
