"""Shell command templates: rendered to a script `/bin/sh` runs, and the values it references.

A shell command's template never puts a value into the command's text. Each `{{ … }}` renders
to a reference, `"${PLAIT_V1}"`, and the value travels beside the script as the environment
variable `PLAIT_V1`. The shell parses the script, which holds only what the workflow's author
wrote, and expands each reference as data: no value, whatever it holds (quotes, `$( )`, a
newline, a heredoc's delimiter), is ever parsed as shell syntax. How a reference is written
depends on where it stands (`plait.shell_syntax` decides; `reference` writes it).

Decisions:
- Environment variables, not positional parameters: `$1` means something else inside a shell
  function, and `set --` would lose them; a variable is seen everywhere in the script.
- A value becomes text as it would print: None is "", a mapping (or a list inside a list) is
  JSON, anything else `str()`. A list in a bare word becomes one word per element (none for an
  empty list); inside quotes or a heredoc its elements are joined by spaces.
- An environment variable cannot hold a NUL character: such a value is an error where it renders.
- `str(command)` shows the command as a person reads it, each reference replaced by its value,
  quoted and cut short; `script` is what runs. Logs and messages show the former.
- The template is rewritten once (cached by `plait.templating`): its literal text, with each value
  cut out, goes to `plait.shell_syntax`, which says where each value stands, and each
  `{{ expr }}` becomes `{{ (expr)|_plait_value(kind) }}`. That filter (`reference_filter`) keeps
  the value in the list of the render under way (`collecting_values`) and writes its reference.
- `{% macro %}`, `{% call %}`, `{% filter %}` and block `{% set %}` are refused in a command:
  they capture the text of their body, which holds references, not values.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from jinja2.exceptions import TemplateError

from plait.shell_syntax import VALUE, Refusal, place_values
from plait.template_limits import text_checked

__all__ = ["PREFIX", "ShellCommand", "collecting_values", "compile_command", "position", "reference",
           "reference_filter", "shell_text"]

PREFIX = "PLAIT_V"
_SHOWN = 80  # characters of a value shown in `str(command)`
_REFERENCE = re.compile(r"'\"\$\{PLAIT_V(\d+)\}\"'|\"\$\{PLAIT_V(\d+)\}\"|\$\{PLAIT_V(\d+)\}")


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """A command for `/bin/sh -c`: `script`, which references `values` as $PLAIT_V1, $PLAIT_V2, …"""

    script: str
    values: tuple[str, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        """Return the environment variables that carry the values."""
        return {f"{PREFIX}{n}": value for n, value in enumerate(self.values, 1)}

    def __str__(self) -> str:
        return _REFERENCE.sub(self._shown, self.script)

    def _shown(self, match: re.Match[str]) -> str:
        number = int(next(g for g in match.groups() if g))
        if number > len(self.values):
            return match[0]
        value = self.values[number - 1]
        value = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
        return value if match[3] else shlex.quote(value)


def shell_text(value: Any) -> str:
    """Return a value as the text a shell variable holds (None is empty, containers are JSON)."""
    if value is None:
        return ""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(text_checked(value), default=str, ensure_ascii=False)
    text = str(value)
    if "\0" in text:
        raise ValueError("a value holds a NUL character, which no shell variable can hold")
    return text


def reference(values: list[str], value: Any, kind: str) -> str:
    """Add `value` to `values` (mutates) and return the reference that stands for it in a `kind` slot."""
    if isinstance(value, (list, tuple)) and kind == "word":
        return " ".join(reference(values, item, kind) for item in value)
    if isinstance(value, (list, tuple)):
        values.append(" ".join(shell_text(item) for item in value))
    else:
        values.append(shell_text(value))
    name = f"${{{PREFIX}{len(values)}}}"
    return {"word": f'"{name}"', "quoted": name, "single": f"'\"{name}\"'"}[kind]


_VALUES: ContextVar[list[str] | None] = ContextVar("plait_shell_values", default=None)


def reference_filter(value: Any, kind: str) -> str:
    """The filter every `{{ … }}` of a shell command goes through: keep the value, write its reference."""
    values = _VALUES.get()
    if values is None:
        raise TemplateError("_plait_value is plait's own filter for shell commands")
    return reference(values, value, kind)


@contextmanager
def collecting_values() -> Iterator[list[str]]:
    """Collect the values of the shell command rendered inside the block, in reference order."""
    values: list[str] = []
    token = _VALUES.set(values)
    try:
        yield values
    finally:
        _VALUES.reset(token)


_BLOCKS_REFUSED = {"macro": "a macro", "call": "a call block", "filter": "a filter block", "set": "a set block"}


def compile_command(env: Environment, source: str) -> tuple[Any, list[tuple[int, str, str]]]:
    """Compile a shell command template whose every `{{ … }}` writes a reference to its value.

    The command's literal text, with each value cut out, goes to `plait.shell_syntax`, which
    says where each value stands; each `{{ expr }}` is then rewritten `{{ (expr)|_plait_value(kind) }}`.
    """
    tokens = list(env.lexer.tokeniter(source, None))
    text: list[str] = []
    offsets: list[int] = []  # where each `{{` stands in the source
    refusals: list[tuple[int, str, str]] = []
    at = 0
    for index, (_, kind, value) in enumerate(tokens):
        at = max(source.find(value, at), at)
        if kind == "data":
            text.append(value)
            if VALUE in value:
                refusals.append((at + value.index(VALUE), "the command holds a NUL character", "remove it"))
        elif kind == "variable_begin":
            text.append(VALUE)
            offsets.append(at)
        elif kind == "block_begin":
            name = next((v for _, k, v in tokens[index + 1:index + 3] if k == "name"), "")
            is_block_set = name == "set" and not any(
                k == "operator" and v == "=" for _, k, v in _until(tokens, index, "block_end"))
            if name in _BLOCKS_REFUSED and (name != "set" or is_block_set):
                refusals.append((at, f"{_BLOCKS_REFUSED[name]} in a shell command would capture plait's "
                                           "references to values, not the values",
                                 "compute the value in an expression: `{{ … }}`, `{% set x = … %}`"))
        at += len(value)
    slots = place_values("".join(text))
    for offset, slot in zip(offsets, slots):
        if isinstance(slot, Refusal):
            refusals.append((offset, slot.message, slot.hint))
    refusals.sort()
    kinds = iter(slot.kind if not isinstance(slot, Refusal) else "word" for slot in slots)
    rewritten: list[str] = []
    expression: list[str] | None = None
    for _, kind, value in tokens:
        if kind == "variable_begin":
            expression = []
            rewritten.append(value)
        elif kind == "variable_end" and expression is not None:
            inner = "".join(expression)
            rewritten.append(f"({inner})|_plait_value({next(kinds)!r})" if inner.strip() else inner)
            rewritten.append(value)
            expression = None
        elif expression is not None:
            expression.append(value)
        else:
            rewritten.append(value)
    return env.from_string("".join(rewritten)), refusals


def _until(tokens: list[tuple[int, str, str]], start: int, end: str) -> list[tuple[int, str, str]]:
    stop = next((i for i in range(start, len(tokens)) if tokens[i][1] == end), len(tokens))
    return tokens[start:stop]


def position(source: str, offset: int) -> str:
    """Return "line L, column C" (1-based) of `offset` in a multi-line source, "column C" in a one-line one."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}" if "\n" in source.rstrip("\n") else f"column {column}"
