"""What a translation finds: the notes on behaviour that differs, and the errors.

`Findings` is the state the translator's parts share (`StepRules` for one step, `_Translator` for
the workflow): each note or error is recorded with the position that shows it; a note given a
`once` tag is recorded the first time only, so a file gets one note per behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.dialect.tree import put
from plait.compiler.loader import YamlMap

__all__ = ["Findings", "Note"]


@dataclass(frozen=True, slots=True)
class Note:
    """One way the translated workflow behaves differently from the original engine, and where."""

    loc: SourceLoc | None
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: note: {self.message}" if self.loc else f"note: {self.message}"


class Findings:
    """The notes and errors of one translation, and the document translated. Mutates its lists only."""

    def __init__(self, doc: YamlMap):
        self.doc = doc
        self.notes: list[Note] = []
        self.errors: list[Diagnostic] = []
        self.noted: set[str] = set()

    def note(self, loc: SourceLoc | None, message: str, once: str | None = None) -> None:
        """Record a difference in behaviour; with `once`, only the first one tagged so."""
        if once is not None:
            if once in self.noted:
                return
            self.noted.add(once)
        self.notes.append(Note(loc, message))

    def keep_own_keys(self, raw: YamlMap, out: YamlMap, original: tuple[str, ...], own: Iterable[str],
                      what: str, hint: str, ignored: bool = False) -> None:
        """Copy plait's own keys of `raw` into `out` as they are; report keys of neither format. Mutates both.

        With `ignored`, a key of neither format is noted and dropped, as the original dropped it
        (it read a step's keys by name and never looked at the others).
        """
        for key in raw:
            if key in own and key not in original:
                put(out, key, raw[key], raw, key)  # a file may mix the two formats
            elif key not in original and ignored:
                guess = did_you_mean(key, [*original, *own])
                self.note(raw.key_locs[key], f"unknown key '{key}' in {what} is ignored, as the original engine "
                                             f"ignored it{' (' + guess + ')' if guess else ''}")
            elif key not in original:
                self.error(raw.key_locs[key], f"unknown key '{key}' in {what} of the original engine's format",
                           did_you_mean(key, [*original, *own]) or hint)

    def error(self, loc: SourceLoc | None, message: str, hint: str | None = None) -> None:
        """Record what plait cannot honour, where it stands."""
        self.errors.append(Diagnostic(loc, message, hint))
