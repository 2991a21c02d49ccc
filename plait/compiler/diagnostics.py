"""Compiler-style error reporting: a position in the workflow file, a message, a hint.

Every definition error plait finds is a `Diagnostic` that points into the YAML file
(`file:line:col`, 1-based, as compilers print them). The compiler collects diagnostics
rather than stopping at the first, and raises them together as one `WorkflowError`, so a
user fixes a file in one pass. The exception carries the diagnostics as data (`.errors`);
nobody needs to parse its text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Diagnostic", "SourceLoc", "WorkflowError", "did_you_mean"]


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A 1-based position in a workflow file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One definition error: where, what, and how to fix it."""

    loc: SourceLoc | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class WorkflowError(Exception):
    """A workflow that cannot be compiled or run; `.errors` lists every problem found."""

    def __init__(self, errors: Iterable[Diagnostic]):
        self.errors: tuple[Diagnostic, ...] = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @property
    def loc(self) -> SourceLoc | None:
        """The position of the first error."""
        return self.errors[0].loc if self.errors else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return "did you mean 'x'?" for the closest choice, or None when none is close."""
    close = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
