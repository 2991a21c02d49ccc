"""Combined item sources: `matrix` (a cross product, GitHub Actions' rules) and `zip` (position by position).

Both give items that are mappings `{axis: value}` and a default key that joins the values with
`-` (`map_reads[A-1]`), so a combination keeps its node ID whatever else the matrix holds.

The matrix follows GitHub Actions' `strategy.matrix` exactly:
- the axes' cross product, in axis order, the first axis varying slowest;
- `exclude` removes every combination that matches an entry on all of the entry's keys (a
  partial match is enough), and runs before `include`;
- each `include` entry is added to every *original* combination (left after `exclude`) it can
  join without changing one of that combination's axis values; it may change what an earlier
  include added. An entry that joins no original combination becomes a combination of its own
  (and later entries never join such a combination). A matrix of include entries alone is that list.

Keys are checked where it is cheap: each axis value once, not each combination, so a matrix of
100,000 combinations costs about what a `range` of 100,000 does. Values whose text could not
name a node (a space, a bracket, a mapping) make that item's key a content hash instead.
Functions here raise `SourceError` (a `ValueError`) with the message and hint the compiler
shows, at compile time or when a deferred source expands; they read no file.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from plait.compiler.items import MAX_ITEMS, MAX_KEY_LENGTH, check_key, content_hash
from plait.compiler.plan import FrozenDict, freeze, plain

__all__ = ["MATRIX_HINT", "MATRIX_LISTS", "ZIP_HINT", "SourceError", "joined_key", "matrix_items", "value_text",
           "zip_items"]

MATRIX_LISTS = ("include", "exclude")  # keys of `matrix:` that are not axes
MATRIX_HINT = "a matrix is `{matrix: {AXIS: [values], ..., include: [{...}], exclude: [{...}]}}`"
ZIP_HINT = "zip takes values position by position: give every list the same length, or use `matrix:` for every " \
           "combination"
_INT = frozenset({int})


class SourceError(ValueError):
    """A matrix or zip that cannot give items; `.hint` says how to fix it."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def value_text(value: Any) -> str | None:
    """Return a value's part of a joined key, or None when it cannot be part of a node ID."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and check_key(value) is None:
        return value
    return None


def matrix_items(axes: Mapping[str, Sequence[Any]], include: Sequence[Mapping[str, Any]] = (),
                 exclude: Sequence[Mapping[str, Any]] = ()) -> tuple[list[FrozenDict], list[Any]]:
    """Return (items, default keys) of a matrix. Raises ValueError for a bad axis or entry."""
    names = list(axes)
    for name, values in axes.items():
        if not isinstance(values, (list, tuple)):
            raise SourceError(f"matrix axis '{name}' must be a list, not {_kind(values)}", MATRIX_HINT)
        if not values:
            raise SourceError(f"matrix axis '{name}' is an empty list", MATRIX_HINT)
    for what, entries in (("include", include), ("exclude", exclude)):
        _check_entries(what, entries, names if what == "exclude" else None)
    size = 1
    for values in axes.values():
        size *= len(values)
    if size > MAX_ITEMS:
        raise SourceError(f"a matrix of {size:,} combinations is more than plait compiles ({MAX_ITEMS:,})",
                          "use fewer values, or split the work over several steps")
    if not names:
        combos: list[dict] = []
    elif not include and not exclude:
        return _product(names, [list(axes[n]) for n in names])
    else:
        combos = [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]
    if exclude:
        combos = [c for c in combos if not any(_matches(c, entry) for entry in exclude)]
    extra: list[dict] = []
    for entry in include:
        joined = False
        for combo in combos:
            if all(combo[k] == v for k, v in entry.items() if k in axes):
                combo.update(entry)
                joined = True
        if not joined:
            extra.append(dict(entry))
    items = [freeze(c) for c in (*combos, *extra)]
    if len(items) > MAX_ITEMS:
        raise SourceError(f"a matrix of {len(items):,} combinations is more than plait compiles ({MAX_ITEMS:,})",
                          "use fewer values, or split the work over several steps")
    return items, [joined_key(item) for item in items]


def _product(names: list[str], axes: list[list[Any]]) -> tuple[list[FrozenDict], list[Any]]:
    """Return the plain cross product's items and keys: the hot path, each value's text worked out once."""
    frozen = [list(values) if plain(values) else [freeze(v) for v in values] for values in axes]
    items = list(map(FrozenDict, map(zip, itertools.repeat(names), itertools.product(*frozen))))
    return items, _joined_keys(items, frozen, lambda texts: itertools.product(*texts))


def _joined_keys(items: list[FrozenDict], columns: list[list[Any]], rows: Any) -> list[Any]:
    """Return each item's joined key, each value's text worked out once per column, not once per item.

    `rows(texts)` lays the columns' texts out in item order (a product, or position by position).
    """
    texts = [list(map(str, values)) if set(map(type, values)) <= _INT else [value_text(v) for v in values]
             for values in columns]
    if any(None in values for values in texts):
        return [joined_key(item) for item in items]
    keys = list(map("-".join, rows(texts)))
    widest = sum(max(map(len, values), default=0) for values in texts) + len(columns) - 1  # type: ignore[arg-type]
    if widest > MAX_KEY_LENGTH:
        keys = [k if len(k) <= MAX_KEY_LENGTH else content_hash(item) for k, item in zip(keys, items)]
    return keys


def joined_key(item: Mapping[str, Any]) -> Any:
    """Return an item's values joined with `-`, or its content hash when one cannot be part of a node ID."""
    parts = [value_text(v) for v in item.values()]
    if None not in parts:
        key = "-".join(parts)  # type: ignore[arg-type]
        if len(key) <= MAX_KEY_LENGTH:
            return key
    return content_hash(item)


def zip_items(lists: Mapping[str, Sequence[Any]]) -> tuple[list[FrozenDict], list[Any]]:
    """Return (items, default keys) of lists taken position by position. Raises ValueError when lengths differ."""
    for name, values in lists.items():
        if not isinstance(values, (list, tuple)):
            raise SourceError(f"zip list '{name}' must be a list, not {_kind(values)}", ZIP_HINT)
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"'{n}' has {k}" for n, k in lengths.items())
        raise SourceError(f"zip lists differ in length: {shown}", ZIP_HINT)
    names = list(lists)
    frozen = [list(lists[n]) if plain(lists[n]) else [freeze(v) for v in lists[n]] for n in names]
    items = list(map(FrozenDict, map(zip, itertools.repeat(names), zip(*frozen))))
    return items, _joined_keys(items, frozen, lambda texts: zip(*texts))


def _check_entries(what: str, entries: Any, axes: list[str] | None) -> None:
    if not isinstance(entries, (list, tuple)):
        raise SourceError(f"matrix {what} must be a list of mappings, not {_kind(entries)}", MATRIX_HINT)
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not entry:
            raise SourceError(f"matrix {what} entry {i + 1} must be a mapping of axis: value, "
                              f"not {_kind(entry) if not isinstance(entry, Mapping) else 'an empty mapping'}",
                              MATRIX_HINT)
        unknown = [k for k in entry if axes is not None and k not in axes]
        if unknown:
            raise SourceError(f"matrix exclude entry {i + 1} names '{unknown[0]}', which is not an axis",
                              f"the axes are: {', '.join(axes) if axes else 'none'}")


def _matches(combo: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in entry.items())


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return f"text {value!r}"
    return "null" if value is None else type(value).__name__
