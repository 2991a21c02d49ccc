"""The screen a run draws on: colour or not, and a live block that log lines print above.

Colour is used only on a terminal, and never when `NO_COLOR` is set to anything but empty
(no-color.org). A live block (the progress display) is drawn only on an interactive terminal:
one that `isatty()` and whose `TERM` is not `dumb`; anywhere else (a pipe, a CI log, a file)
`Screen` passes what is written straight through, unchanged.

The live block
    The block is the last lines on the screen. Everything else written through the `Screen`
    (log lines, warnings: the CLI points loguru's sink and `sys.stderr` at it while a run goes)
    is printed above it: the block is erased (cursor up over its lines, clear to the end of the
    screen), the text is written, and the block is drawn again under it. Standard output, on the
    same screen, goes through `above`, for the same reason. So no line is ever overwritten and
    no stale copy of the block is left behind. Lines of the block are cut to the
    terminal's width (a wrapped line would throw the count of lines to move up), and the block to
    its height. Text without its newline yet is held until the line ends. Lines printed in a burst
    (a `-v` run logs a line per node) are not each followed by the whole block: it is drawn again
    under them once they pause, or at the display's next redraw. One lock orders the writers: the
    scheduler's thread, the log sink's callers and the display's clock.

    This is what rich's `Live` does, in a few dozen lines, without the dependency and the tens of
    milliseconds its import adds to every run (docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import unicodedata
from collections.abc import Sequence
from typing import TextIO

from plait.terminal import escape

__all__ = ["Screen", "interactive", "use_colour"]

_UP, _CLEAR_BELOW = "\x1b[{}A", "\x1b[J"
REDRAW_AFTER_TEXT = 0.1  # seconds: lines printed faster than this are not each followed by the whole block


def use_colour(stream: TextIO) -> bool:
    """Say whether to colour what goes to `stream`: a terminal, and `NO_COLOR` unset or empty."""
    return not os.environ.get("NO_COLOR") and _isatty(stream)


def interactive(stream: TextIO) -> bool:
    """Say whether a live block can be drawn on `stream`: a terminal that moves its cursor."""
    return _isatty(stream) and os.environ.get("TERM", "") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Screen:
    """A text stream with a live block at its bottom (see the module docstring)."""

    def __init__(self, stream: TextIO, live: bool | None = None) -> None:
        self.stream = stream
        self.live = interactive(stream) if live is None else live
        self.block: list[str] = []  # the block's lines, as given
        self.drawn = 0  # how many lines of the block are on the screen now
        self.partial: dict[int, tuple[TextIO, str]] = {}  # id(stream) -> (stream, text since its last newline)
        self.closed = False
        self.last_draw = float("-inf")
        self.lock = threading.RLock()

    # -- the file interface: text printed above the block ----------------------------------------

    def write(self, text: str) -> int:
        """Print `text` above the block (a line not ended yet waits for its end)."""
        return self._write(text, self.stream)

    def above(self, stream: TextIO) -> TextIO:
        """Return `stream` (stdout), made to print its lines above the block when it shows on the same screen."""
        return _Above(self, stream) if self.live and _isatty(stream) else stream  # type: ignore[return-value]

    def _write(self, text: str, stream: TextIO) -> int:
        with self.lock:
            if not self.live or self.closed:
                stream.write(text)
                return len(text)
            head, newline, tail = (self.partial.pop(id(stream), (stream, ""))[1] + text).rpartition("\n")
            if tail:
                self.partial[id(stream)] = (stream, tail)
            if newline:
                self._erase()
                stream.write(head + newline)
                stream.flush()
                if time.monotonic() - self.last_draw >= REDRAW_AFTER_TEXT:
                    self._draw()
                else:  # a burst of lines: the block comes back with the next `show`, at most a second away
                    self.stream.flush()
            return len(text)

    def flush(self) -> None:
        with self.lock:
            self.stream.flush()

    def isatty(self) -> bool:
        return _isatty(self.stream)

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    # -- the block -----------------------------------------------------------------------------

    def show(self, lines: Sequence[str]) -> None:
        """Replace the block with `lines` (drawn only on an interactive terminal)."""
        with self.lock:
            self.block = list(lines)
            if self.live and not self.closed:
                self._erase()
                self._draw()

    def close(self) -> None:
        """End a line still open, leave the last block on the screen, and stop drawing."""
        with self.lock:
            if self.closed:
                return
            for stream, _ in list(self.partial.values()):  # a line still open ends
                self._write("\n", stream)
            if self.live and not self.drawn:  # hidden under a burst of lines: the last block stays on screen
                self._draw()
            self.closed = True
            self.block, self.drawn = [], 0
            self.stream.flush()

    def __enter__(self) -> Screen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write("\r" + _UP.format(self.drawn) + _CLEAR_BELOW)
            self.drawn = 0

    def _draw(self) -> None:
        if not self.block:
            self.stream.flush()
            return
        columns, rows = _size(self.stream)
        lines = self.block
        if len(lines) > max(1, rows - 1):
            keep = max(1, rows - 2)
            lines = [*lines[:keep - 1], f"  … {len(lines) - keep + 1} more lines", lines[-1]]
        self.stream.write("".join(_cut(line, columns - 1) + "\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)
        self.last_draw = time.monotonic()


class _Above:
    """Another stream to the terminal's screen (stdout beside stderr), whose lines print above the block."""

    def __init__(self, terminal: Screen, stream: TextIO) -> None:
        self.terminal = terminal
        self.stream = stream

    def write(self, text: str) -> int:
        return self.terminal._write(text, self.stream)

    def flush(self) -> None:
        with self.terminal.lock:
            self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def _size(stream: TextIO) -> tuple[int, int]:
    """Return the terminal's (columns, rows): the stream's own, else the environment's guess."""
    try:
        return tuple(os.get_terminal_size(stream.fileno()))  # type: ignore[return-value]
    except (AttributeError, ValueError, OSError):  # not a real terminal (a test's stream)
        return tuple(shutil.get_terminal_size())  # type: ignore[return-value]


def _cut(line: str, width: int) -> str:
    """Cut `line` to `width` columns (wide characters take two), ending a cut line with '…'.

    Control characters (an escape sequence in a step's name) are escaped (`plait.terminal.escape`):
    they would move the cursor and break the count of the block's lines.
    """
    used = 0
    line = escape(line)
    for i, char in enumerate(line):
        used += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used > width:
            return line[:max(0, i - 1)] + "…"
    return line
