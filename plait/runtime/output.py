"""Each node's output: what its code prints to stdout and stderr, captured per attempt and kept bounded.

While plait runs nodes, `sys.stdout` and `sys.stderr` are `NodeStream`s: a write made while a node
runs on this thread goes to that node's capture; any other write (plait's own, another thread's)
goes to the real stream as before. A capture keeps the last `OUTPUT_TAIL` characters of each
stream and counts them all, so a node printing a gigabyte costs a bounded tail, not a gigabyte.

The hot path: a node that prints nothing costs two attribute writes (`begin`, `end`), and its
outcome carries nothing; a capture is made only by a node's first write. Python's `print`, the
`logging` module's stream handlers created while plait runs, and anything else that writes to
`sys.stdout`/`sys.stderr` are captured; a child process writing to the inherited file descriptors
is not (a shell task captures its command's output itself and writes it to `sys.stdout` and
`sys.stderr` for the node).

What a task `say`s (`plait.tasks.say`) is meant for the run's terminal too: `NodeStream.say` writes
it there, escaped, in the process that runs the run; a worker process's terminal is not the run's
screen (a live progress block would erase the line), so there it hands the text to `to_parent`, and
the parent prints it with the node's outcome (`plait.runtime.worker`).
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from plait.limits import OUTPUT_TAIL
from plait.terminal import escape

__all__ = ["Capture", "NodeStream", "begin", "end", "install", "uninstall"]

_LOCAL = threading.local()  # .active: a node runs on this thread; .capture: its Capture, once it wrote


class Capture:
    """One attempt's output: the last OUTPUT_TAIL characters of each stream, and how much there was."""

    __slots__ = ("held", "parts", "sizes")

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.held = {"stdout": 0, "stderr": 0}  # characters in `parts`
        self.sizes = {"stdout": 0, "stderr": 0}  # characters written in all

    def add(self, stream: str, text: str) -> None:
        self.parts[stream].append(text)
        self.held[stream] += len(text)
        self.sizes[stream] += len(text)
        if self.held[stream] > 2 * OUTPUT_TAIL:  # keep the tail, drop the rest
            self.parts[stream] = ["".join(self.parts[stream])[-OUTPUT_TAIL:]]
            self.held[stream] = OUTPUT_TAIL

    def json(self) -> str:
        """Return the capture as the ledger keeps it: {"stdout": tail, "stderr": tail, "<stream>_chars": n}."""
        out: dict[str, Any] = {}
        for stream, parts in self.parts.items():
            if self.sizes[stream]:
                out[stream] = "".join(parts)[-OUTPUT_TAIL:]
                out[f"{stream}_chars"] = self.sizes[stream]
        return json.dumps(out)


class NodeStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` while plait runs: a running node's writes are its own (see the module)."""

    def __init__(self, name: str, real: TextIO, to_parent: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.name = name
        self.real = real
        self.to_parent = to_parent

    def say(self, text: str) -> None:
        """Show `text` on the run's terminal: here, escaped, or through the parent (see the module docstring)."""
        if self.to_parent is not None:
            self.to_parent(text)
        else:
            self.real.write(escape(text) + "\n")
            self.real.flush()

    def write(self, text: str) -> int:
        if not getattr(_LOCAL, "active", False):
            return self.real.write(text)
        capture = getattr(_LOCAL, "capture", None)
        if capture is None:
            capture = _LOCAL.capture = Capture()
        capture.add(self.name, text)
        return len(text)

    def flush(self) -> None:
        if not getattr(_LOCAL, "active", False):
            self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    def isatty(self) -> bool:
        return self.real.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.real, "errors", None)


def install(to_parent: Callable[[str], None] | None = None) -> None:
    """Make `sys.stdout` and `sys.stderr` NodeStreams (once: installing again keeps them, and sets `to_parent`)."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, NodeStream):
            current.to_parent = to_parent
        elif current is not None:
            setattr(sys, name, NodeStream(name, current, to_parent))


def uninstall() -> None:
    """Give `sys.stdout` and `sys.stderr` back their real streams."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, NodeStream):
            setattr(sys, name, current.real)


def begin() -> None:
    """Say a node starts on this thread: its writes are captured from now."""
    _LOCAL.active = True


def end() -> str | None:
    """Say the node on this thread ended; return its output as the ledger keeps it, or None when it wrote nothing."""
    _LOCAL.active = False
    capture = getattr(_LOCAL, "capture", None)
    if capture is None:
        return None
    _LOCAL.capture = None
    return capture.json()
