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
| `run_number` | `run.id`: plait names runs, it does not number them (a note says so) |
| `workflow` | a mapping of the above, with `workspace` |
| `error` (in a step that `on_error.next` names) | `{step, message}` of the failing step |

Only names read as variables are rewritten: not an attribute (`x.timestamp`), a keyword argument,
text inside quotes, or a name the template binds itself (`{% set %}`, `{% for %}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["TIMESTAMP", "bind_names", "literal"]

TIMESTAMP = ("(run.id[0:4] ~ '-' ~ run.id[4:6] ~ '-' ~ run.id[6:8] ~ 'T' ~ run.id[9:11] ~ ':' ~ run.id[11:13]"
             " ~ ':' ~ run.id[13:15])")
_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
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
