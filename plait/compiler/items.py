"""Item sources and node keys: what a batch step runs over, and how each item is named.

An item's key is its part of the node ID (`resize[photo1.jpg]`) and must stay the same when
other items are added, removed or reordered, so it is derived from the item alone, never from
its position: the item itself when it is a short plain string or a number, otherwise the first
12 hex digits of a SHA-1 over its canonical JSON. A step may set its own `key:` template.

Sources (`items:` / `iterate_over:`): a literal list; `{range: N | [start, stop] | [start, stop,
step]}`; `{glob: PATTERN}` (absolute paths of the matches, relative to the workflow's folder, in
sorted order; their default key is the path as matched); `{lines: FILE}` (non-blank lines, `#`
comments skipped). Reading a folder or a file is all the compiler does here: it writes nothing.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plait.compiler.loader import read_regular_file
from plait.terminal import escape

__all__ = ["MAX_ITEMS", "MAX_KEY_LENGTH", "default_key", "glob_items", "line_items", "node_id", "node_ids",
           "range_items"]

MAX_KEY_LENGTH = 64
MAX_ITEMS = 2_000_000  # a range past this would not fit a plan in memory (docs/performance.md)
_PLAIN_KEY = re.compile(r"^[^\[\]\s\x00-\x1f\x7f]+$")


def node_id(step: str, key: Any) -> str:
    """Return the ID of an item node: `step[key]`."""
    return f"{step}[{key}]"


def node_ids(step: str, keys: Iterable[Any]) -> list[str]:
    """Return the IDs of a batch's item nodes, as `node_id` names each (without a call per item)."""
    return [f"{step}[{key}]" for key in keys]


def default_key(item: Any) -> str | int | float:
    """Return an item's key: itself when short and plain, else a short content hash."""
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return item
    if isinstance(item, str) and len(item) <= MAX_KEY_LENGTH and _PLAIN_KEY.match(item) and item.isprintable():
        return item
    return content_hash(item)


def content_hash(item: Any) -> str:
    """Return 12 hex digits of SHA-1 over the item's canonical JSON."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def check_key(key: Any) -> str | None:
    """Return why a rendered key cannot name a node, or None when it can."""
    if isinstance(key, bool) or not isinstance(key, (str, int, float)):
        return f"a key must be text or a number, not {type(key).__name__}"
    if isinstance(key, str) and not (_PLAIN_KEY.match(key) and key.isprintable()):
        return f"key {key!r} is empty or holds a space, a bracket or a character that is not printable"
    if isinstance(key, str) and len(key) > MAX_KEY_LENGTH:
        return f"key {key[:20]!r}… is longer than {MAX_KEY_LENGTH} characters"
    return None


def range_items(spec: Any) -> list[int]:
    """Expand `N`, `[stop]`, `[start, stop]` or `[start, stop, step]`; raise ValueError when malformed."""
    bounds = spec if isinstance(spec, (list, tuple)) else [spec]
    if not 1 <= len(bounds) <= 3 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise ValueError(f"range takes N, [start, stop] or [start, stop, step] as integers, not {spec!r}")
    if len(bounds) == 3 and bounds[2] == 0:
        raise ValueError("a range's step cannot be 0")
    span = range(*bounds)
    if len(span) > MAX_ITEMS:
        raise ValueError(f"a range of {len(span):,} items is more than plait compiles ({MAX_ITEMS:,})")
    return list(span)


def glob_items(pattern: str, base: Path) -> list[tuple[str, str]]:
    """Return sorted (absolute path, path as matched) pairs for a glob relative to `base`.

    The folder is resolved once, and each match joined to it as matched (a symlink among the
    matches keeps its own name): resolving each match would cost most of a large glob's compile.
    """
    root = base.resolve() if not Path(pattern).is_absolute() else Path("/")
    matches = sorted(globlib.glob(pattern, root_dir=root, recursive=True))
    folder = str(root)
    # A name that is not UTF-8 holds surrogateescape's lone surrogates, which no ledger or terminal takes: its
    # key shows them escaped (`caf\\udce9.txt`), while the item keeps the name the task must open.
    return [(os.path.normpath(os.path.join(folder, m)), escape(m)) for m in matches]


def line_items(path: str, base: Path) -> list[str]:
    """Return the non-blank, non-comment lines of a file relative to `base`. Raises OSError (a FIFO or a device
    too: reading one could block the compile forever)."""
    try:
        text = read_regular_file(base / path).decode("utf-8")
    except OSError as err:
        raise OSError(f"cannot read lines file '{path}': {err.strerror or err}") from err
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
