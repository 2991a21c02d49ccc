"""What a worker process keeps between the chunks it runs, in one object: `PROCESS`.

A worker process (loky's, or a Dask worker) runs many chunks: of one run, or, reused by joblib,
of the next run the same parent starts. What it keeps between them is here and nowhere else:
- the run it is set up for: loguru's records go to the node's outcome rather than the worker's
  stderr, and SIGINT is ignored (the parent decides how a run stops); set up once per run;
- the log lines the node running now has emitted, handed back with its outcome;
- its crash trail (`plait.runtime.trail`), mapped once per run's trail folder.
In the parent process (the sequential and threading backends) nothing is set up: nodes log
straight to the run's sinks.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from loguru import logger

from plait.runtime.trail import Trail

__all__ = ["PROCESS", "WorkerProcess"]


class WorkerProcess:
    """The state one worker process keeps between chunks (see the module docstring)."""

    __slots__ = ("captured", "run_id", "trail")

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.captured: list[tuple[str, str]] = []  # (level, message) lines of the node running now
        self.trail: Trail | None = None

    def prepare(self, run_id: str, parent_pid: int) -> None:
        """Set this process up for run `run_id`, once: capture node logs, ignore Ctrl-C. Nothing in the parent."""
        if os.getpid() == parent_pid or self.run_id == run_id:
            return
        logger.remove()
        logger.add(self._capture, level="DEBUG", format="{message}")
        logger.enable("plait")
        if threading.current_thread() is threading.main_thread():  # signals can only be set there
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
        self.run_id = run_id

    def _capture(self, message: Any) -> None:
        self.captured.append((message.record["level"].name, message.record["message"]))

    def take_logs(self) -> tuple[tuple[str, str], ...]:
        """Return the lines logged since the last call, and forget them."""
        lines = tuple(self.captured)
        self.captured.clear()
        return lines

    def trail_in(self, folder: str) -> Trail | None:
        """Return this process's crash trail in `folder`, mapped on first use (an earlier run's is unmapped).

        None when it cannot be made (a full disk): the worker runs without one, and after a crash
        the parent finds the culprit without it (plait.runtime.backends).
        """
        if self.trail is None or self.trail.folder != folder:
            if self.trail is not None:
                self.trail.close()
                self.trail = None
            try:
                self.trail = Trail(folder)
            except OSError:
                return None
        return self.trail


PROCESS = WorkerProcess()
