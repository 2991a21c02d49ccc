"""Write the ledger on a thread of its own, so SQLite's work overlaps the scheduler's.

SQLite releases the GIL while it updates its B-trees, so a writer thread lets a 100,000-node run
settle outcomes while the previous batch is being committed. Writes happen in the order they
were submitted, on the writer's own connection (WAL lets the main thread keep reading through
its own).

Outcomes (`record`) are batched here: they are committed in one transaction once `FLUSH_EVERY`
of them wait, or `FLUSH_SECONDS` after the first of them arrived, whichever comes first, and
before any other write. The timer runs on this thread, so an outcome is committed within
`FLUSH_SECONDS` of reaching it even while the scheduler waits on a long node.

A write that fails (a full disk, a read-only file) stops further writes and is raised in the main
thread at the next submission or at `close`, so a run never goes on believing it records what it
does not.

At most `MOST_WAITING` outcomes, holding at most `MOST_WAITING_BYTES` of results and captured
output, wait for the writer: a run of a million trivial items settles them faster than SQLite
inserts rows on two busy cores, and the records queued behind the writer were hundreds of
megabytes of the parent's memory; a few thousand nodes of large results would be gigabytes. Past
either bound, `submit` waits for the writer to commit, and the run goes on at the pace its ledger
keeps. The count is the bound a run of trivial items meets (the writer's pace, not a size, holds
it back); the text is weighed as records are handed over (a C-level pass over two columns).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from plait.runtime.ledger import Ledger, LedgerError, NodeRecord

__all__ = ["FLUSH_EVERY", "FLUSH_SECONDS", "MOST_WAITING", "MOST_WAITING_BYTES", "LedgerWriter"]

FLUSH_EVERY = 2000
FLUSH_SECONDS = 0.1
MOST_WAITING = 20_000  # outcomes queued or batched, not yet committed, before `submit` waits
MOST_WAITING_BYTES = 64 * 2**20  # characters of their results and output, likewise

_RESULT, _OUTPUT = itemgetter(4), itemgetter(11)  # a NodeRecord's result and output


# A write queued: (method, its arguments, the characters of the outcomes it records).
_Job = tuple[str | Callable[..., None], tuple[Any, ...], int]


def _text_bytes(records: Sequence[tuple[Any, ...]]) -> int:
    """Return how many characters of results and captured output `records` (NodeRecords) hold."""
    return sum(map(len, filter(None, chain(map(_RESULT, records), map(_OUTPUT, records)))))  # no copy of the text


class LedgerWriter:
    """Applies `Ledger` write methods in order on a background thread."""

    def __init__(self, path: Path):
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: the end
        self._error: BaseException | None = None  # the first failed write; later writes are skipped
        self._reported = False
        self._opened = threading.Event()
        self._waiting = 0  # outcomes submitted and not yet committed (or dropped after a failed write)
        self._waiting_bytes = 0  # the characters of their results and output (`_text_bytes`)
        self._committed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, args=(path,), name="plait-ledger-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        self._raise()

    def submit(self, method: str | Callable[..., None], *args: Any) -> None:
        """Queue `Ledger.<method>(*args)`, or `method(ledger, *args)`; raise LedgerError if an earlier write failed.

        A callable lets the writer thread also compute what it writes (the plan's digest, the rows
        of a 100,000-node plan) while the scheduler's thread gets on with the run.
        """
        self._raise()
        size = 0
        if method == "record":
            size = _text_bytes(args[1])
            self._make_room(len(args[1]), size)
        self._queue.put((method, args, size))

    def _make_room(self, count: int, size: int) -> None:
        """Count `count` more outcomes of `size` characters waiting; first wait while too many do, or too much (the
        writer commits, or stops)."""
        with self._committed:
            while ((self._waiting > MOST_WAITING or self._waiting_bytes > MOST_WAITING_BYTES)
                   and self._error is None and self._thread.is_alive()):
                self._committed.wait(0.1)  # a timeout: a signal to the main thread is handled meanwhile
            self._waiting += count
            self._waiting_bytes += size
        self._raise()

    def _done(self, count: int, size: int) -> None:
        """Count `count` outcomes of `size` characters committed (or given up on); wake a submission waiting for
        room."""
        with self._committed:
            self._waiting -= count
            self._waiting_bytes -= size
            self._committed.notify_all()

    def close(self) -> None:
        """Finish every queued write, stop the thread, and raise LedgerError if a write failed."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        """Raise the first failed write, once (the ledger's own LedgerError as it is: it says why)."""
        if self._error is not None and not self._reported:
            self._reported = True
            if isinstance(self._error, LedgerError):
                raise self._error
            raise LedgerError(f"writing the ledger failed: {self._error}") from self._error

    def _loop(self, path: Path) -> None:
        try:
            ledger = Ledger(path)
        except BaseException as err:
            self._error = err
            self._opened.set()
            return
        self._opened.set()
        batch = _Batch(ledger, self._done)
        try:
            while True:
                try:
                    job = self._queue.get(timeout=batch.due_in())
                except queue.Empty:
                    self._guarded(batch.commit)
                    continue
                if job is None:
                    self._guarded(batch.commit)
                    return
                method, args, size = job
                if method == "record":
                    self._guarded(batch.add, *args, size)
                else:
                    self._guarded(batch.commit)
                    write = getattr(ledger, method) if isinstance(method, str) else partial(method, ledger)
                    self._guarded(write, *args)
        finally:
            ledger.close()

    def _guarded(self, write: Any, *args: Any) -> None:
        """Run a write unless one failed before (then the queue is drained without writing)."""
        if self._error is None:
            try:
                write(*args)
            except Exception as err:
                self._error = err
                self._done(0, 0)  # a submission waiting for room sees the error


class _Batch:
    """Outcomes waiting to be committed together."""

    def __init__(self, ledger: Ledger, done: Callable[[int, int], None]):
        self.ledger = ledger
        self.done = done  # told how many outcomes each commit took, and their characters
        self.run_id: str | None = None
        self.rows: list[NodeRecord] = []
        self.size = 0  # the characters of their results and output
        self.since = 0.0

    def add(self, run_id: str, rows: list[NodeRecord], size: int) -> None:
        if not self.rows:
            self.since = time.monotonic()
        self.run_id = run_id
        self.rows += rows
        self.size += size
        if len(self.rows) >= FLUSH_EVERY:
            self.commit()

    def due_in(self) -> float | None:
        """Seconds until the waiting outcomes are due, or None when none wait."""
        return max(0.0, FLUSH_SECONDS - (time.monotonic() - self.since)) if self.rows else None

    def commit(self) -> None:
        if self.rows:
            rows, self.rows, size, self.size = self.rows, [], self.size, 0
            try:
                self.ledger.record(self.run_id, rows)
            finally:
                self.done(len(rows), size)
