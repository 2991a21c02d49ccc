"""What a worker process keeps between the chunks it runs, in one object: `PROCESS`.

A worker process (loky's, or a Dask worker) runs many chunks: of one run, or, reused by joblib,
of the next run the same parent starts. What it keeps between them is here and nowhere else:
- the run it is set up for: loguru's records go to the node's outcome rather than the worker's
  stderr, and SIGINT is ignored (the parent decides how a run stops); set up once per run;
- the log lines the node running now has emitted, and what it `say`s (`SAID`), handed back with its
  outcome for the parent to log or print;
- its crash trail (`plait.runtime.trail`), mapped once per run's trail folder, and its journal
  (`plait.runtime.journal`), one per run;
- its plumbing: the pipes it holds when a run's first chunk arrives (its backend's: loky learns
  that a worker died when the worker's end of one of them closes). A task that forks (`os.fork`,
  multiprocessing) would hand them to its child, and the parent would not see the worker die until
  that child exited too, seconds or never later; so a child forked in a worker closes them first.
In the parent process (the sequential and threading backends) nothing is set up: nodes log
straight to the run's sinks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from typing import Any

from loguru import logger

from plait.runtime import output
from plait.runtime.journal import Journalist
from plait.runtime.trail import Trail

__all__ = ["PROCESS", "SAID", "WorkerProcess"]

SAID = "said"  # the level of a captured line that a task said (`plait.tasks.say`): printed, not logged


class WorkerProcess:
    """The state one worker process keeps between chunks (see the module docstring)."""

    __slots__ = ("captured", "forks_guarded", "journal", "plumbing", "run_id", "trail")

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.captured: list[tuple[str, str]] = []  # (level, message) lines of the node running now
        self.trail: Trail | None = None
        self.journal: Journalist | None = None
        self.plumbing: list[int] = []  # the backend's pipes, which a forked child closes
        self.forks_guarded = False

    def prepare(self, run_id: str, parent_pid: int) -> None:
        """Set this process up for run `run_id`, once: capture node logs, ignore Ctrl-C. Nothing in the parent."""
        if os.getpid() == parent_pid or self.run_id == run_id:
            return
        logger.remove()
        logger.add(self._capture, level="DEBUG", format="{message}")
        logger.enable("plait")
        if threading.current_thread() is threading.main_thread():  # signals can only be set there
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
        output.install(to_parent=self._said)  # a node's prints are its own (plait.runtime.output)
        self.plumbing = _pipes()
        if not self.forks_guarded:
            os.register_at_fork(after_in_child=self._close_plumbing)
            self.forks_guarded = True
        self.run_id = run_id

    def _close_plumbing(self) -> None:
        """In a child forked by a task: close the backend's pipes (see the module docstring)."""
        for fd in self.plumbing:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _capture(self, message: Any) -> None:
        self.captured.append((message.record["level"].name, message.record["message"]))

    def _said(self, text: str) -> None:
        self.captured.append((SAID, text))

    def take_logs(self) -> tuple[tuple[str, str], ...]:
        """Return the lines logged since the last call, and forget them."""
        lines = tuple(self.captured)
        self.captured.clear()
        return lines

    def journalist(self, folder: str) -> Journalist:
        """Return this process's journalist for a run's folder, started on first use (an earlier run's stops)."""
        if self.journal is None or self.journal.folder != folder:
            if self.journal is not None:
                self.journal.stop()
            self.journal = Journalist(folder)
        return self.journal

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


def _pipes() -> list[int]:
    """Return the pipes this process holds beyond its standard streams."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # not Linux: no list to read, nothing closed
        return []
    pipes = []
    for fd in fds:
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                pipes.append(fd)
        except OSError:  # the descriptor listdir itself used, closed since
            continue
    return pipes


PROCESS = WorkerProcess()
