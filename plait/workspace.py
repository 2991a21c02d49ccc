"""A workspace's layout: where plait keeps its own state, which no task may touch.

A workspace is the folder a run works in: tasks read and write there, shell commands run there.
plait keeps its own state in one folder inside it, `.plait/` (the ledger, the lock, the run logs,
crash trails). Tasks' file actions refuse any path that resolves into that folder
(`plait.tasks.base.TaskContext.path`), so a workflow cannot wipe the record of its own runs; a
command that deletes or replaces the ledger anyway is caught by the ledger writer at its next
commit, and the run ends loudly (`plait.runtime.writer`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATE_DIR", "state_dir"]

STATE_DIR = ".plait"


def state_dir(workspace: Path) -> Path:
    """Return the folder where plait keeps a workspace's ledger, lock and logs."""
    return workspace / STATE_DIR
