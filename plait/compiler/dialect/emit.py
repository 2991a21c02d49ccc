"""Write a translated workflow tree back out as YAML text, with the source file's comments.

PyYAML drops comments, so they are found in the source text itself: PyYAML's scanner gives the
span of every token, and a `#` outside all of them (at a line's start or after a space) opens a
comment. A comment on a line of its own belongs to the next line that holds YAML; a comment at
the end of a line belongs to that line. Every key and list item of the tree keeps the line it came
from, so the writer puts each comment back beside the same key. When the tree runs in the file's
order, comments of dropped keys come out just before the next key written; a key moved out of
order (a flow that lists steps in another order) brings only its own comments.

Values are written in block style; short lists of plain values in flow style (`[a, b]`); text
with line breaks as a literal block (`|`), or double-quoted with escapes when a block cannot hold
it exactly; a key too long for YAML's simple keys as an explicit `? key`. `migrate` checks that
the text loads back to the same values.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from plait.compiler.dialect.tree import plain
from plait.compiler.loader import YamlList, YamlMap

__all__ = ["to_yaml"]

_INDENT = "  "
_FLOW_WIDTH = 72
_SIMPLE_KEY = 1000
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def to_yaml(tree: YamlMap, source: str, header: list[str]) -> str:
    """Return `tree` as YAML text, comments from `source` kept, `header` lines as comments on top."""
    writer = _Writer(_comments(source))
    lines = [f"# {line}" if line else "#" for line in header]
    writer.mapping(tree, 0, lines)
    lines += writer.leftover()
    return "\n".join(lines) + "\n"


class _Writer:
    """Emit lines, placing comments by source line. Mutates its pending comments as it writes."""

    def __init__(self, comments: tuple[dict[int, list[str]], dict[int, str]]):
        self.above, self.trailing = comments
        self.last_line = 0

    def comments_for(self, line: int, indent: int, out: list[str]) -> str:
        """Append the full-line comments due before source `line`; return its end-of-line comment."""
        due = [n for n in self.above if n == line or self.last_line < n <= line]
        for n in sorted(due):
            out += [f"{_INDENT * indent}{text}" for text in self.above.pop(n)]
        self.last_line = max(self.last_line, line)
        trailing = self.trailing.pop(line, None)
        return f"  {trailing}" if trailing else ""

    def leftover(self) -> list[str]:
        return [text for n in sorted(self.above) for text in self.above[n]]

    def mapping(self, value: YamlMap, indent: int, out: list[str], first_prefix: str | None = None) -> None:
        for position, (key, inner) in enumerate(value.items()):
            loc = value.key_locs.get(key)
            eol = self.comments_for(loc.line, indent, out) if loc else ""
            pad = first_prefix if first_prefix is not None and position == 0 else _INDENT * indent
            written = _key(key)
            if len(written) > _SIMPLE_KEY:  # YAML allows 1,024 characters before the `:` of a plain key
                out.append(f"{pad}? {written}")
                pad = _INDENT * indent
                written = ""
            self.entry(f"{pad}{written}:", inner, indent, out, eol)

    def entry(self, head: str, value: Any, indent: int, out: list[str], eol: str) -> None:
        """Write `head` followed by `value`, nested one level deeper when it is a container."""
        if isinstance(value, dict) and value:
            out.append(head + eol)
            self.mapping(_as_map(value), indent + 1, out)
        elif isinstance(value, list) and value and not _flow_list(value):
            out.append(head + eol)
            self.sequence(_as_list(value), indent + 1, out)
        elif isinstance(value, str) and "\n" in value.rstrip("\n") and _literal_ok(value):
            out.append(f"{head} {_literal_indicator(value)}{eol}")
            lines = value.split("\n")
            if value.endswith("\n"):
                lines.pop()  # the final line break is the indicator's business
            out += [f"{_INDENT * (indent + 1)}{line}" if line else "" for line in lines]
        else:
            out.append(f"{head} {_inline(value)}{eol}")

    def sequence(self, value: YamlList, indent: int, out: list[str]) -> None:
        for inner, loc in zip(value, value.item_locs):
            eol = self.comments_for(loc.line, indent, out) if loc else ""
            pad = _INDENT * indent
            if isinstance(inner, dict) and inner:
                before = len(out)
                self.mapping(_as_map(inner), indent + 1, out, first_prefix=f"{pad}- ")
                if eol and len(out) > before:
                    out[before] += eol
            else:
                self.entry(f"{pad}-", inner, indent, out, eol)


def _as_map(value: dict) -> YamlMap:
    if isinstance(value, YamlMap):
        return value
    out = YamlMap(None)  # type: ignore[arg-type]
    out.update(value)
    return out


def _as_list(value: list) -> YamlList:
    if isinstance(value, YamlList) and len(value.item_locs) == len(value):
        return value
    out = YamlList(None)  # type: ignore[arg-type]
    out.extend(value)
    out.item_locs.extend([None] * len(value))  # type: ignore[list-item]
    return out


def _flow_list(value: list) -> bool:
    """Return True for a short list of plain values, written as `[a, b]`."""
    if not all(isinstance(v, (str, int, float, bool)) and not (isinstance(v, str) and "\n" in v) for v in value):
        return False
    return len(_inline(list(value))) <= _FLOW_WIDTH


def _inline(value: Any) -> str:
    """Return `value` as one line of YAML."""
    if isinstance(value, (dict, list)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    style = '"' if isinstance(value, str) and ("\n" in value or not value.isprintable()) else None
    text = yaml.safe_dump(plain(value), default_flow_style=True, default_style=style, width=10**9,
                          allow_unicode=True, sort_keys=False)
    text = text[:-len("\n...\n")] if text.endswith("\n...\n") else text.rstrip("\n")
    if "\n" in text:  # a flow collection holding text with line breaks: escape them all
        text = yaml.safe_dump(plain(value), default_flow_style=True, default_style='"', width=10**9,
                              allow_unicode=True, sort_keys=False).rstrip("\n")
    return text


def _key(key: Any) -> str:
    """Return a mapping key as written: bare when YAML reads it back as the same text (`yes` is not)."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key) and yaml.safe_load(key) == key:
        return key
    return _inline(key)


def _literal_ok(text: str) -> bool:
    """Return True when a literal block can hold `text` exactly."""
    return all(c.isprintable() or c in "\n\t" for c in text) and not text.startswith((" ", "\n"))


def _literal_indicator(text: str) -> str:
    stripped = text.rstrip("\n")
    trailing = len(text) - len(stripped)
    return "|" if trailing == 1 else "|-" if trailing == 0 else "|+"


def _comments(source: str) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Return ({line: full-line comments that come before it}, {line: its end-of-line comment})."""
    lines = source.split("\n")
    covered: dict[int, list[tuple[int, int]]] = {}
    try:
        for token in yaml.scan(source, Loader=yaml.SafeLoader):
            start, end = token.start_mark, token.end_mark
            for line in range(start.line, end.line + 1):
                first = start.column if line == start.line else 0
                last = end.column if line == end.line else len(lines[line]) if line < len(lines) else 0
                covered.setdefault(line, []).append((first, last))
    except yaml.YAMLError:
        return {}, {}
    above: dict[int, list[str]] = {}
    trailing: dict[int, str] = {}
    waiting: list[str] = []
    for number, text in enumerate(lines):
        spans = covered.get(number, [])
        comment_at = next((i for i, c in enumerate(text) if c == "#" and (i == 0 or text[i - 1] in " \t")
                           and not any(a <= i < b for a, b in spans)), None)
        holds_yaml = any(a < b for a, b in spans) and (comment_at is None or any(a < comment_at for a, _ in spans))
        if comment_at is not None and not holds_yaml:
            waiting.append(text[comment_at:].rstrip())
        elif holds_yaml:
            if waiting:
                above[number + 1] = waiting
                waiting = []
            if comment_at is not None:
                trailing[number + 1] = text[comment_at:].rstrip()
    if waiting:
        above[len(lines) + 1] = waiting
    return above, trailing
