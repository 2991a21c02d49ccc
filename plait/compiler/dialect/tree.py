"""Build the loader's mappings and lists by hand, positions kept: the translation's output.

Every mapping and list the translator writes must look as if the loader had read it: plait's own
checks read `key_locs`, `value_locs` and `item_locs` to point at the user's file. A value made up
by the translation takes the position of the text it stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plait.compiler.diagnostics import SourceLoc
from plait.compiler.loader import YamlList, YamlMap

__all__ = ["located", "map_strings", "name_list", "plain", "put"]


def put(out: YamlMap, key: str, value: Any, source: YamlMap | None = None, source_key: str | None = None,
        loc: SourceLoc | None = None) -> None:
    """Set `out[key]` at `loc`, or where `source[source_key]` stands (`source_key` defaults to `key`). Mutates `out`."""
    out[key] = value
    if loc is None:
        assert source is not None, "put needs a source or a position"
        source_key = key if source_key is None else source_key
        out.key_locs[key] = source.key_locs.get(source_key, source.loc)
        out.value_locs[key] = source.value_locs.get(source_key, source.loc)
    else:
        out.key_locs[key] = out.value_locs[key] = loc


def name_list(names: list, loc: SourceLoc) -> YamlList:
    """Return `names` as a list whose every element stands at `loc`."""
    out = YamlList(loc)
    for name in names:
        out.append(name)
        out.item_locs.append(loc)
    return out


def located(value: Any, loc: SourceLoc) -> Any:
    """Return plain data as the loader's mappings and lists, every position `loc`: plait's checks read those."""
    if isinstance(value, dict):
        out = YamlMap(loc)
        for key, inner in value.items():
            out[key] = located(inner, loc)
            out.key_locs[key] = out.value_locs[key] = loc
        return out
    if isinstance(value, list):
        out_list = YamlList(loc)
        for inner in value:
            out_list.append(located(inner, loc))
            out_list.item_locs.append(loc)
        return out_list
    return value


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """Return a copy of `value` with `change` applied to every string holding a template, positions kept."""
    if isinstance(value, str):
        return change(value) if "{{" in value or "{%" in value else value
    if isinstance(value, YamlMap):
        out = YamlMap(value.loc)
        for key, inner in value.items():
            put(out, key, map_strings(inner, change), value, key)
        return out
    if isinstance(value, YamlList):
        out_list = YamlList(value.loc)
        for inner, loc in zip(value, value.item_locs):
            out_list.append(map_strings(inner, change))
            out_list.item_locs.append(loc)
        return out_list
    return value


def plain(value: Any) -> Any:
    """Return the loader's mappings and lists as plain dicts and lists, as `yaml.safe_load` gives them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
