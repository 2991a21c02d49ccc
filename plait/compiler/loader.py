"""Load a workflow file safely, keeping the 1-based line and column of every key and value.

`yaml.safe_load` drops positions, so the text is composed (`yaml.compose`, which builds the
node tree and constructs nothing) and turned into plain values here: mappings become
`YamlMap` (a `dict` that knows where each key and value stands), sequences `YamlList`, and
scalars the ordinary Python values the safe loader would give. Where PyYAML was built with
libyaml (its wheels are), libyaml scans and parses the text, several times faster than PyYAML's
Python parser (docs/performance.md): a workflow listing its items inline is mostly parsing.
A text libyaml refuses is read again by PyYAML's parser, so errors read the same either way.

Safety is decided here, once:
- Only the safe scalar tags construct anything; a tag such as `!!python/object` is an error
  at its position, never an object.
- Aliases are shared nodes in the composed tree, so "billion laughs" costs nothing to
  compose; its expanded size is measured on the shared tree (each node once) and a document
  that would expand past `MAX_EXPANDED_NODES` is refused before anything is expanded.
  A recursive alias is refused too.
- Nesting deeper than `MAX_DEPTH` is refused where it goes too deep, before Python's recursion
  limit is near: every later pass over the values (checks, rendering, freezing, JSON) recurses.
- An integer literal longer than Python turns into text (`MAX_DIGITS`) is refused at its position:
  a number that cannot be printed or stored would break the ledger later.
- One document per file: a second `---` document is named as such, not reported as bad indentation.
- Duplicate keys, which PyYAML silently overwrites, are errors.
- Dates stay the strings they were written as, so every value is JSON-serialisable.
- A character written as a surrogate pair of escapes (`"\ud83d\udca5"`, as JSON writes it) is
  that character: PyYAML reads each escape alone, and a lone surrogate cannot be stored as UTF-8.

The same loader reads `--param` values (`plait.compiler.params`), with the same bounds.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml
    CParser = None

from plait.compiler.diagnostics import Diagnostic, SourceLoc, WorkflowError

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "MAX_EXPANDED_NODES", "YamlList", "YamlMap", "load_yaml", "read_regular_file"]

MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 100  # nested lists and mappings; a workflow needs a handful
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300  # 0 means "no limit": keep 4300

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


class YamlMap(dict):
    """A mapping from the workflow file; `.loc` is its own position, `.key_locs`/`.value_locs` its entries'."""

    __slots__ = ("key_locs", "loc", "value_locs")

    def __init__(self, loc: SourceLoc):
        super().__init__()
        self.loc = loc
        self.key_locs: dict[str, SourceLoc] = {}
        self.value_locs: dict[str, SourceLoc] = {}


class YamlList(list):
    """A sequence from the workflow file; `.loc` is its own position, `.item_locs` its elements'."""

    __slots__ = ("item_locs", "loc")

    def __init__(self, loc: SourceLoc):
        super().__init__()
        self.loc = loc
        self.item_locs: list[SourceLoc] = []


def read_regular_file(path: str | Path) -> bytes:
    """Return the bytes of a regular file; raise OSError for anything else (a FIFO, a device, a folder).

    The file is opened without blocking and checked before it is read: reading a FIFO nobody
    writes to, or `/dev/zero`, would never end.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise OSError(f"it is {kind}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


class _Depth:
    """Composing that refuses nesting deeper than MAX_DEPTH at the node that goes too deep.

    The composer recurses once a level: the bound keeps it far from the recursion limit (PyYAML's C
    composer has no such bound, so the fast loader composes in Python too).
    """

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self.depth -= 1


class _Loader(_Depth, yaml.SafeLoader):
    """PyYAML's safe loader, all in Python: it reads what libyaml refuses, and its errors are the ones plait reports."""


if CParser is not None:
    class _FastLoader(_Depth, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml scans and parses (most of the time a file takes), PyYAML's composer and constructors do the rest.

        The tree it builds is the one `_Loader` builds, with the same marks; it only reads valid
        YAML faster: a text libyaml refuses is read again by `_Loader`, whose errors plait reports.
        """

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


class _TooDeep(Exception):
    def __init__(self, mark: Any):
        super().__init__()
        self.mark = mark


def load_yaml(text: str, filename: str) -> Any:
    """Parse `text` into values with positions; raise `WorkflowError` for bad YAML or unsafe content."""
    loader = None
    try:
        composed = _fast_compose(text)
        if composed is not None:
            loader, root = composed
        else:
            loader = _Loader(text)  # the reader already refuses characters YAML forbids
            root = loader.get_single_node()
    except _TooDeep as err:
        raise _too_deep(filename, err.mark) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if "a single document" in (err.context or ""):
            raise WorkflowError([Diagnostic(_loc(filename, mark), "the file holds several YAML documents; a second "
                                            "one starts here", "a workflow is one document: remove this `---` and "
                                            "what follows, or put it in a file of its own")]) from err
        raise WorkflowError([
            Diagnostic(
                _loc(filename, mark),
                f"invalid YAML: {err.problem or err.context}",
                "check the indentation (spaces, not tabs) and the quoting near this position",
            )
        ]) from err
    except yaml.reader.ReaderError as err:  # a character YAML forbids (NUL, most control characters)
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise WorkflowError([Diagnostic(SourceLoc(filename, line, column),
                                        f"character {_codepoint(err.character)} is not allowed in YAML",
                                        "remove it; YAML files hold printable text, tabs and newlines")]) from err
    except yaml.YAMLError as err:
        raise WorkflowError([Diagnostic(SourceLoc(filename, 1, 1), f"invalid YAML: {err}")]) from err
    except RecursionError as err:  # MAX_DEPTH keeps the composer far from it; a deep stack of our caller's may not
        raise _too_deep(filename, loader.get_mark()) from err
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise WorkflowError([
            Diagnostic(SourceLoc(filename, 1, 1), "the workflow file is empty",
                       "a workflow needs at least `name:` and `steps:`")
        ])
    _check_size(root, filename)
    return _Converter(loader, filename).convert(root)


def _fast_compose(text: str) -> tuple[Any, Node | None] | None:
    """Return libyaml's loader and tree of `text`; None where PyYAML was built without libyaml or libyaml refuses the
    text: PyYAML's own parser then reads it, so that what plait says of a bad file never depends on libyaml."""
    if CParser is None:
        return None
    loader = _FastLoader(text)
    try:
        return loader, loader.get_single_node()
    except (yaml.YAMLError, UnicodeError, RecursionError):  # a lone surrogate cannot be handed to libyaml as UTF-8
        loader.dispose()
        return None


def _too_deep(filename: str, mark: Any) -> WorkflowError:
    return WorkflowError([Diagnostic(_loc(filename, mark), f"the YAML nests deeper than {MAX_DEPTH} levels here",
                                     "a workflow needs a few levels of nesting; flatten the data")])


def _loc(filename: str, mark: Any) -> SourceLoc:
    if mark is None:
        return SourceLoc(filename, 1, 1)
    return SourceLoc(filename, mark.line + 1, mark.column + 1)


def _check_size(root: Node, filename: str) -> None:
    """Refuse recursive aliases and documents whose aliases expand past MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: deep nesting must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise WorkflowError([
                    Diagnostic(
                        _loc(filename, node.start_mark),
                        f"this YAML expands to more than {MAX_EXPANDED_NODES:,} values through aliases",
                        "nested aliases (*name) multiply; write the data out or load it with `items: {lines: FILE}`",
                    )
                ])
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise WorkflowError([
                Diagnostic(_loc(filename, node.start_mark), "a YAML alias refers to the value that contains it",
                           "an anchor (&name) cannot be used inside its own value")
            ])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _Converter:
    """Turns a composed node tree into YamlMap / YamlList / scalars, collecting errors."""

    def __init__(self, loader: yaml.SafeLoader, filename: str):
        self.loader = loader
        self.filename = filename
        self.errors: list[Diagnostic] = []

    def convert(self, root: Node) -> Any:
        value = self._value(root)
        if self.errors:
            raise WorkflowError(self.errors)
        return value

    def _value(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        loc = _loc(self.filename, node.start_mark)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self._unsafe_tag(node)
            out = YamlList(loc)
            for child in node.value:
                out.append(self._value(child))
                out.item_locs.append(_loc(self.filename, child.start_mark))
            return out
        if node.tag != _MAP:
            self._unsafe_tag(node)
        return self._mapping(node, loc)

    def _mapping(self, node: MappingNode, loc: SourceLoc) -> YamlMap:
        out = YamlMap(loc)
        merged: list[YamlMap] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node))
                continue
            key_loc = _loc(self.filename, key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.errors.append(Diagnostic(key_loc, "a key must be a plain word, not a list or mapping",
                                              "write the key as text, e.g. `name:`"))
                continue
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = key_node.value  # `1:` or `true:` as a key: keep the text as written
            if key in out.key_locs:
                self.errors.append(Diagnostic(key_loc, f"duplicate key '{key}'",
                                              f"'{key}' is already set at {out.key_locs[key]}; keep one"))
                continue
            out[key] = self._value(value_node)
            out.key_locs[key] = key_loc
            out.value_locs[key] = _loc(self.filename, value_node.start_mark)
        for source in merged:  # YAML merge keys (<<): explicit keys win
            for key, value in source.items():
                if key not in out.key_locs:
                    out[key] = value
                    out.key_locs[key] = source.key_locs[key]
                    out.value_locs[key] = source.value_locs[key]
        return out

    def _merge_sources(self, node: Node) -> list[YamlMap]:
        value = self._value(node)
        sources = value if isinstance(value, list) else [value]
        if all(isinstance(s, YamlMap) for s in sources):
            return sources
        self.errors.append(Diagnostic(_loc(self.filename, node.start_mark),
                                      "a merge key (<<) must name a mapping or a list of mappings",
                                      "write `<<: *anchor` where the anchor is a mapping"))
        return []

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self._unsafe_tag(node)
            return node.value
        try:
            value = self.loader.construct_object(node)
        except ValueError:  # an integer past Python's digit limit for text (`int()` refuses it)
            digits = sum(c.isdigit() for c in node.value)
            self.errors.append(Diagnostic(_loc(self.filename, node.start_mark),
                                          f"an integer of {digits:,} digits is longer than plait handles "
                                          f"({MAX_DIGITS:,} digits)",
                                          "quote it to keep it as text: \"123...\""))
            return None
        if isinstance(value, str) and _SURROGATE.search(value):  # "\ud83d\udca5" escapes, as JSON writes them
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return value

    def _unsafe_tag(self, node: Node) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        self.errors.append(Diagnostic(
            _loc(self.filename, node.start_mark),
            f"YAML tag '{tag}' is not allowed",
            "plait loads YAML safely and constructs no objects from tags; remove the tag",
        ))


def _codepoint(character: int | str) -> str:
    """Return "U+0000" for a character PyYAML reports (as its code, or as the character)."""
    return f"U+{character if isinstance(character, int) else ord(character):04X}"
