"""Secret parameters: their values reach the tasks, and are shown as `***` wherever text leaves plait.

A parameter declared `secret: true` is an ordinary value to the templates and tasks that read it.
What is masked is everything plait writes out, wherever it came from: a shell command's echo in
its result, an exception's message quoting a URL with the token in it, a log line. So masking is
done on text, at the few places where text leaves the process, not message by message (as CI
systems mask their secrets in logs):
- the ledger: the params a run records, and each node's result, error record and note
  (`plait.runtime.ledger`), so `plait status`, `plait report` and every later reader see `***`;
- loguru's records, through a patcher installed with the first secret: the run's log file and
  the terminal;
- the command line's stdout and stderr (`MaskedStream`, installed by `plait.cli.main`): compile
  output, `--format json`, the run summary, error messages;
- the HTML and JSON run report (`plait.report.render`), and `plait graph -o`'s drawing.

The values to mask are registered by the compiler as it resolves a plan's params (`hide`): from
then on, in this process, they never leave it unmasked. That is the one effect compiling has,
and it writes nothing. Besides the value itself its `repr` and shell-quoted forms are masked,
as exception messages and shell commands show it, and each of them JSON-escaped, as stored.

What masking cannot do: a task that transforms a secret (base64, reverses it) and prints the
result, or a worker process writing to the terminal itself; a result masked in the ledger is
`***` to a node that reads it after a resume. Fingerprints are hashes of a node's configuration,
the secret included, so a ledger can confirm a guessed secret: a secret worth the name is long
and random. The crash journals of a run's workers (`plait.runtime.journal`) hold their nodes'
results as they are until the run ends or the next run recovers them into the ledger, masked.

Secrets are not stored: `plait resume` asks for them again (`--param NAME=VALUE` or
`--params-file`) unless they have a default.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from plait.terminal import FilteredStream

__all__ = ["MASK", "MaskedStream", "active", "hide", "mask", "mask_records"]

MASK = "***"

_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def hide(values: Iterable[Any]) -> None:
    """Mask these values (and the text inside lists and mappings) in everything plait writes from now on."""
    global _pattern
    import shlex

    from plait.terminal import escape

    found = {text for value in values for text in _texts(value) if text and text != MASK}  # `***`: masked already
    with _lock:
        forms = set(_forms)
        for text in found:
            shown = {text, repr(text)[1:-1], shlex.quote(text)}  # as written, in a message's !r, in a command
            shown |= {escape(form) for form in shown}  # as the terminal shows it (plait.terminal)
            forms |= shown | {json.dumps(form)[1:-1] for form in shown}  # and each as stored inside JSON text
        forms.discard("")
        if forms == _forms:
            return
        _forms.clear()
        _forms.update(forms)
        _pattern = re.compile("|".join(re.escape(f) for f in sorted(_forms, key=len, reverse=True)))
    _patch_loguru()


def active() -> bool:
    """Say whether any value is masked (when none is, masking costs nothing)."""
    return _pattern is not None


def mask(text: str) -> str:
    """Return `text` with every secret value shown as `***`."""
    pattern = _pattern
    if pattern is None or not isinstance(text, str):
        return text
    return pattern.sub(MASK, text)


def mask_records(records: Sequence[tuple[Any, ...]], columns: tuple[int, ...]) -> Sequence[tuple[Any, ...]]:
    """Return ledger rows with their text `columns` masked (the rows themselves when nothing is secret)."""
    if _pattern is None:
        return records
    return [tuple(mask(v) if i in columns and isinstance(v, str) else v for i, v in enumerate(row)) for row in records]


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


_patched = False


def _patch_loguru() -> None:
    """Mask every log record's message, for every sink (run log, terminal, a user's own)."""
    global _patched
    if _patched:
        return
    from loguru import logger

    def patch(record: dict[str, Any]) -> None:
        record["message"] = mask(record["message"])

    logger.configure(patcher=patch)
    _patched = True


class MaskedStream(FilteredStream):
    """A text stream that masks what is written to it, then passes it on (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream, mask)
