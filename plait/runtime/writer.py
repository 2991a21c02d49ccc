"""Write the ledger on a thread of its own, so SQLite's work overlaps the scheduler's.

SQLite releases the GIL while it updates its B-trees, so a writer thread lets a 100,000-node run
settle outcomes while the previous batch is being committed. Writes happen in the order they
were submitted, one transaction per call, on the writer's own connection (WAL lets the main
thread keep reading through its own). A write that fails (a full disk, a read-only file) stops
further writes and is raised in the main thread at the next submission or at `close`, so a run
never goes on believing it records what it does not.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from plait.runtime.ledger import Ledger, LedgerError

__all__ = ["LedgerWriter"]


class LedgerWriter:
    """Applies `Ledger` write methods in order on a background thread."""

    def __init__(self, path: Path):
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None  # the first failed write; later writes are skipped
        self._reported = False
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(path,), name="plait-ledger-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        self._raise()

    def submit(self, method: str, *args: Any) -> None:
        """Queue `Ledger.<method>(*args)`; raise LedgerError if an earlier write failed."""
        self._raise()
        self._queue.put((method, args))

    def close(self) -> None:
        """Finish every queued write, stop the thread, and raise LedgerError if a write failed."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        """Raise the first failed write, once."""
        if self._error is not None and not self._reported:
            self._reported = True
            raise LedgerError(f"writing the ledger failed: {self._error}") from self._error

    def _loop(self, path: Path) -> None:
        try:
            ledger = Ledger(path)
        except BaseException as err:
            self._error = err
            self._opened.set()
            return
        self._opened.set()
        try:
            while (job := self._queue.get()) is not None:
                if self._error is None:  # after a failure, drain the queue without writing
                    try:
                        getattr(ledger, job[0])(*job[1])
                    except Exception as err:
                        self._error = err
        finally:
            ledger.close()
