"""Journals: what a worker finished while its chunk still runs, kept on disk until the ledger has it.

A chunk's outcomes reach the parent when its last job ends, and the ledger commits them shortly
after; a kill before that loses them, and the next run does their work again. A chunk of fast
nodes ends within a fraction of a second, but one whose later jobs run long would hold its
finished ones for as long. So while a chunk runs, a thread of the worker's (`Journalist`) wakes
every `JOURNAL_SECONDS` and appends the nodes that succeeded since it last looked to a journal
file of the worker's own, one JSON line each, in the run's trail folder (`plait.runtime.trail`).
A chunk that ends before the thread looks costs nothing; the hot path pays one assignment a
node (`WorkerProcess.done`). A line written survives the worker's or the run's death (it is in
the operating system's hands), so a finished node is durable within about `JOURNAL_SECONDS`
plus the ledger writer's `FLUSH_SECONDS`, whichever path it takes.

The next run in the workspace reads the journals a dead run left (`recover`) before it decides
anything, and records each node they hold as succeeded with the fingerprint its worker ran it
with, unless the ledger already has it so: the resume decision then finds it done, or changed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plait.runtime.fingerprint import fingerprint_text, packed

__all__ = ["JOURNAL_SECONDS", "Journalist", "recover"]

JOURNAL_SECONDS = 0.1
PREFIX = "journal-"


class Journalist:
    """A worker's thread that journals the succeeded nodes of the chunks still running (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = Path(folder) / f"{PREFIX}{os.getpid()}"
        self.running: dict[int, list[Any]] = {}  # thread id -> [chunk, results, done, journaled]
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._loop, name="plait-journal", daemon=True).start()

    def begin(self, chunk: Any, results: Any) -> list[Any]:
        """Start watching a chunk that begins on this thread; return its slot, whose [2] the chunk sets to jobs done."""
        slot = [chunk, results, 0, 0]
        with self.lock:
            self.running[threading.get_ident()] = slot
        return slot

    def end(self) -> None:
        """Stop watching this thread's chunk: its outcomes go back to the parent now."""
        with self.lock:
            self.running.pop(threading.get_ident(), None)

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.wait(JOURNAL_SECONDS):
            with self.lock:
                slots = list(self.running.values())
            lines = [line for slot in slots for line in _new_lines(slot)]
            if lines:
                try:
                    with open(self.path, "a", encoding="ascii") as journal:
                        journal.write("".join(lines))
                except OSError:  # a full disk: the outcomes still reach the parent with their chunk
                    continue


def _new_lines(slot: list[Any]) -> Iterator[str]:
    """Return journal lines for the slot's jobs that succeeded since it was last looked at; mark them journaled."""
    chunk, results, done, journaled = slot
    for i in range(journaled, done):
        if results.statuses[i] == "succeeded":
            fingerprint = fingerprint_text(chunk.fingerprints[i])
            yield json.dumps([chunk.nodes[i], fingerprint, chunk.attempts[i], results.results[i], results.started[i],
                              results.ended[i], results.worker, results.outputs.get(i)]) + "\n"
    slot[3] = done


def recover(folder: Path) -> Iterator[tuple[Any, ...]]:
    """Yield (node, fingerprint, attempts, result JSON, started, ended, worker, output) from a dead run's journals.

    A line holds the fingerprint as text; it is yielded packed, as the run holds it. A line cut
    short by the kill is left out.
    """
    for path in sorted(folder.glob(f"{PREFIX}*")):
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in text.split("\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, list) and len(entry) == 8:
                yield (entry[0], packed(entry[1]), *entry[2:])
