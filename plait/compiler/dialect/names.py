"""Bind the names the original engine's templates saw, by rewriting them into what plait's templates see.

The original put more names in a template's context than plait does: the parameters at the top
level as well as under `args` (`{{ name }}`), and its run-time names. Rather than widen plait's
context (one builder, `plait.templating.template_context`, for every workflow), a template of the
dialect has each such name rewritten into an expression over plait's names:

| the original's name | becomes |
|---|---|
| a parameter `P` at the top level | `args.P` |
| `workflow_name` | the workflow's name, as text (the file's stem when it has no `name`) |
| `workflow_file` | the workflow file's absolute path, as text |
| `timestamp` | the run's start time in ISO 8601, read from `run.id` (`20261124T211809-...`) |
| `run_number` | `run.number`: the run's count among the runs of its workspace, from 1 (a note says so) |
| `workflow` | a mapping of the above, with `workspace` |
| `error` (in a step that `on_error.next` names) | `{step, message}` of the failing step |

Only names read as variables are rewritten: not an attribute (`x.timestamp`), a keyword argument,
text inside quotes, or a name the template binds itself (`{% set %}`, `{% for %}`).

The original let a template read a parameter nobody declared or gave, with a fallback:
`{{ args.X | default('v') }}`. plait refuses a name it cannot resolve, so `fill_defaults` writes
such a read as its fallback, `('v')`: with X neither declared nor given, that is what it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["TIMESTAMP", "bind_names", "fill_defaults", "literal"]

TIMESTAMP = ("(run.id[0:4] ~ '-' ~ run.id[4:6] ~ '-' ~ run.id[6:8] ~ 'T' ~ run.id[9:11] ~ ':' ~ run.id[11:13]"
             " ~ ':' ~ run.id[13:15])")
_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_DEFAULTED = re.compile(r"(?<![\w.])(?:args|params)\.([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*(?:default|d)\s*\(")
_BOUND = re.compile(r"\{%-?\s*(?:set|for)\s+([A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)")


def literal(text: str) -> str:
    """Return `text` as a Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bind_names(source: str, names: Mapping[str, str]) -> str:
    """Return `source` with each variable read of a name in `names` replaced by its expression."""
    if "{{" not in source and "{%" not in source:
        return source
    own = {n.strip() for match in _BOUND.finditer(source) for n in match.group(1).split(",")}
    wanted = {k: v for k, v in names.items() if k not in own}
    if not wanted:
        return source
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(wanted, key=len, reverse=True)))
                         + r")\b(?!\s*=[^=])")

    def in_span(span: re.Match[str]) -> str:
        parts = _STRING.split(span.group(0))
        return "".join(part if i % 2 else pattern.sub(lambda m: wanted[m.group(1)], part)
                       for i, part in enumerate(parts))

    return _SPAN.sub(in_span, source)


def fill_defaults(source: str, known: Iterable[str]) -> str:
    """Return `source` with each `args.X | default(V)` of an X not in `known` written as `(V)`."""
    if "default" not in source and "| d" not in source.replace("|d", "| d"):
        return source
    known = set(known)
    return _SPAN.sub(lambda span: _fill(span.group(0), known), source)


def _fill(text: str, known: set[str]) -> str:
    out, at = [], 0
    for match in _DEFAULTED.finditer(text):
        if match.start() < at or match.group(1) in known or _in_string(text, match.start()):
            continue
        first, end = _first_argument(text, match.end())
        if first is None:
            continue
        out += [text[at:match.start()], f"({first})"]
        at = end
    return "".join(out) + text[at:]


def _in_string(text: str, position: int) -> bool:
    """Return True when `position` of a template span stands inside a quoted string."""
    quote = None
    for i, char in enumerate(text[:position]):
        if quote:
            quote = None if char == quote and text[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
    return quote is not None


def _first_argument(text: str, start: int) -> tuple[str | None, int]:
    """Return (the first argument of the call whose `(` ends before `start`, the index after its `)`)."""
    depth, quote, comma = 0, None, None
    for i in range(start, len(text)):
        char = text[i]
        if quote:
            quote = None if char == quote and text[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        elif char == "," and not depth and comma is None:
            comma = i
        elif char == ")":
            return text[start:comma if comma is not None else i].strip(), i + 1
    return None, start
