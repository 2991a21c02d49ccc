"""What plait writes to a terminal: text, never control sequences that came from data.

Items, keys, error messages and results are the workflow's data, and data may hold control
characters: `ESC[2J` clears the screen, an OSC sequence retitles the window, `\\r` and backspace
overwrite what was printed, a bidi override reverses a line. Printed raw, such a value could forge
a green "run OK" or hide an error. So every character that Python does not call printable
(`str.isprintable`: control, format, surrogate, private-use, unassigned, line- and
paragraph-separator characters, and spaces other than U+0020), newline and tab excepted, is
shown as its Python escape (`\\x1b`, `\\r`, `\\u202e`, `\\udcff`).

Decisions:
- One function, `escape`, applied where text leaves plait for a terminal, not message by message:
  `escaped_output()` wraps `sys.stdout` and `sys.stderr` for the command line's whole run, so
  whatever prints (the CLI, argparse, warnings, library code) is escaped, and `log_format` escapes
  the message of the log records shown on the terminal while keeping loguru's own colours.
- Newlines stay: plait's own messages span lines (a diagnostic and its hint). A value holding a
  newline can start a new line, but that line cannot be coloured, cannot overwrite another and
  cannot hide.
- Backslashes stay as they are: the escapes are for the eye, not a format to parse back.
- Plait's own control sequences (the progress display redrawing itself) go to the raw stream:
  `raw(stream)` returns it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["EscapingStream", "FilteredStream", "escape", "escaped_output", "log_format", "raw"]

_NOT_ASCII_PRINTABLE = re.compile(r"[^ -~]")


def escape(text: str) -> str:
    """Return `text` with every unprintable character but newline and tab shown as its escape."""
    if text.isprintable():
        return text
    return "\n".join(line if line.isprintable() else _NOT_ASCII_PRINTABLE.sub(_shown, line)
                     for line in text.split("\n"))


def _shown(match: re.Match[str]) -> str:
    char = match[0]
    if char == "\t" or char.isprintable():
        return char
    return repr(char)[1:-1]


class FilteredStream:
    """A text stream that passes what is written to it through `change` on its way to `raw`, and everything else
    through as it is."""

    def __init__(self, stream: TextIO, change: Callable[[str], str]):
        self.raw = stream
        self._change = change

    def write(self, text: str) -> int:
        self.raw.write(self._change(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class EscapingStream(FilteredStream):
    """A text stream that escapes what is written to it (`escape`)."""

    def __init__(self, stream: TextIO):
        super().__init__(stream, escape)


def raw(stream: Any) -> Any:
    """Return the stream under an `EscapingStream` (for plait's own control sequences), or `stream` itself."""
    return stream.raw if isinstance(stream, EscapingStream) else stream


@contextmanager
def escaped_output() -> Iterator[None]:
    """Escape everything written to `sys.stdout` and `sys.stderr` while the block runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(raw(sys.stdout)), EscapingStream(raw(sys.stderr))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def log_format(record: dict[str, Any]) -> str:
    """loguru `format`: the level (coloured on a terminal) and the record's message, escaped.

    The message is substituted into the format as a value, so loguru colours only plait's markup,
    and a log line stays one line on the terminal whatever the message holds.
    """
    record["extra"]["_terminal_message"] = escape(str(record["message"])).replace("\n", "\\n")
    return "<level>{level: <7}</level> {extra[_terminal_message]}\n"
