"""A workspace's layout: where plait keeps its own state, which no task may touch.

A workspace is the folder a run works in: tasks read and write there, shell commands run there.
plait keeps its own state in one folder inside it, `.plait/` (the ledger, the lock, the run logs,
crash trails). Tasks' file actions refuse any path that resolves into that folder
(`plait.tasks.base.TaskContext.path`), so a workflow cannot wipe the record of its own runs; a
command that deletes or replaces the ledger anyway is caught by the ledger writer at its next
commit, and the run ends loudly (`plait.runtime.writer`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "STATE_DIR", "in_use", "state_dir"]

STATE_DIR = ".plait"
LOCK_NAME = "lock"  # in STATE_DIR: the PID of the run that holds the workspace, written as it starts


def state_dir(workspace: Path) -> Path:
    """Return the folder where plait keeps a workspace's ledger, lock and logs."""
    return workspace / STATE_DIR


def in_use(workspace: Path) -> bool:
    """Say whether a plait run holds the workspace now: its lock on the folder (plait.runtime.run) is taken.

    The kernel drops that lock when its process dies, however it dies: a ledger whose last run is
    still "running" while nobody holds the workspace tells of a run that died.
    """
    try:
        folder = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(folder)  # closing drops the shared lock just taken
    return False
