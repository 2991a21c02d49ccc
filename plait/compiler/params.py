"""Typed workflow parameters: declarations, defaults, and overrides from the command line.

Types use JSON Schema's names (`string`, `integer`, `number`, `boolean`, `array`, `object`),
as the engine plait grew from did; Python's short names are accepted too. A declaration is a
mapping with `type`/`default`/`description`/`choices`/`required`, or, as a shorthand, just
the default value (its type inferred). Overrides given as text (`--param size=256`) are parsed
by the declared type; typed overrides from the Python API are checked as they are.

An `array` or `object` override given as text is YAML, read by the workflow file's own loader
(`plait.compiler.loader.load_yaml`) with its bounds: no tags (`!!binary`, `!!set`, `!!python/…`),
no recursive aliases or alias bombs, no nesting past `MAX_DEPTH`, no integer past `MAX_DIGITS`.
Typed overrides are checked to be plain JSON data within the same bounds, so a parameter can
never hold a value the ledger cannot store. Values shown in messages are cut short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from plait.compiler.diagnostics import Diagnostic, SourceLoc, WorkflowError, did_you_mean
from plait.compiler.loader import MAX_DEPTH, MAX_DIGITS, YamlMap, load_yaml, read_regular_file
from plait.compiler.schema import PARAM_FIELDS, check_fields, describe_type, is_type

__all__ = ["PARAM_TYPES", "check_params_file", "parse_param_overrides", "read_params_file", "resolve_params"]

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_ALIASES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array",
            "dict": "object"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def parse_param_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ["k=v", ...] into {k: v}; raise ValueError naming a pair without '='."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param '{pair}' is not NAME=VALUE (for example --param size=256)")
        out[name.strip()] = value
    return out


def resolve_params(declared: Any, overrides: Mapping[str, Any], loc: SourceLoc) -> tuple[dict, list[Diagnostic]]:
    """Return (values, errors): every declared parameter's value after defaults and overrides."""
    errors: list[Diagnostic] = []
    values: dict[str, Any] = {}
    declared = declared if isinstance(declared, YamlMap) else YamlMap(loc)
    for name in overrides:
        if name not in declared:
            errors.append(Diagnostic(declared.loc, f"unknown parameter '{name}' given as an override",
                                     did_you_mean(name, declared) or _declared_hint(declared)))
    for name, spec in declared.items():
        where = declared.key_locs[name]
        type_name, default, has_default, spec_errors = _declaration(name, spec, where)
        errors += spec_errors
        if spec_errors:
            continue
        types = PARAM_TYPES[type_name]
        if name in overrides:
            value, problem = _coerce(overrides[name], type_name, name)
            if problem:
                errors.append(Diagnostic(where, f"parameter '{name}': {problem}",
                                         f"'{name}' is declared as {type_name} here"))
                continue
        elif has_default:
            value = default
        else:
            errors.append(Diagnostic(where, f"parameter '{name}' has no value",
                                     f"pass --param {name}=VALUE, or give it a default"))
            continue
        if value is not None and not is_type(value, types):
            errors.append(Diagnostic(where, f"parameter '{name}' must be {describe_type(types)}, not {_shown(value)}",
                                     f"'{name}' is declared as {type_name}"))
            continue
        choices = spec.get("choices") if isinstance(spec, YamlMap) and _is_declaration(spec) else None
        if choices and value not in choices:
            errors.append(Diagnostic(where, f"parameter '{name}' must be one of {list(choices)}, not {_shown(value)}",
                                     did_you_mean(str(value), [str(c) for c in choices])))
            continue
        values[name] = value
    return values, errors


def _declared_hint(declared: Mapping[str, Any]) -> str:
    return f"declared parameters: {', '.join(declared)}" if declared else "this workflow declares no params"


def _is_declaration(spec: Any) -> bool:
    """A mapping with `type` or `default` declares a parameter (its other keys are then checked);
    any other value is the shorthand: the default itself."""
    return isinstance(spec, YamlMap) and ("type" in spec or "default" in spec)


def _declaration(name: str, spec: Any, where: SourceLoc) -> tuple[str, Any, bool, list[Diagnostic]]:
    """Return (type name, default, has default, errors) for one parameter declaration."""
    if not _is_declaration(spec):
        if spec is None:
            return "string", None, False, []
        inferred = _infer_type(spec)
        return inferred, spec, True, []
    errors = check_fields(spec, PARAM_FIELDS, f"parameter '{name}'")
    type_name = spec.get("type")
    if type_name is not None and not isinstance(type_name, str):
        return "string", None, False, errors  # check_fields reported it
    if type_name is None:
        type_name = _infer_type(spec["default"]) if spec.get("default") is not None else "string"
    type_name = _ALIASES.get(type_name, type_name)
    if type_name not in PARAM_TYPES:
        choices = list(PARAM_TYPES) + list(_ALIASES)
        errors.append(Diagnostic(spec.value_locs.get("type", where),
                                 f"parameter '{name}' has unknown type '{spec.get('type')}'",
                                 did_you_mean(str(type_name), choices) or f"use one of {', '.join(PARAM_TYPES)}"))
    if spec.get("required") is False and "default" not in spec:
        return type_name, None, True, errors  # optional, and None when not given
    has_default = "default" in spec and not spec.get("required", False)
    return type_name, spec.get("default"), has_default, errors


def _infer_type(value: Any) -> str:
    for type_name, types in PARAM_TYPES.items():
        if is_type(value, types):
            return type_name
    return "string"


def _coerce(value: Any, type_name: str, name: str) -> tuple[Any, str | None]:
    """Parse a text override by its declared type; check a typed one is plain data (the type is checked later)."""
    if not isinstance(value, str):
        return value, _not_plain(value)
    if type_name == "string":
        return value, None
    text = value.strip()
    try:
        if type_name == "integer":
            return int(text), None
        if type_name == "number":
            return (int(text) if text.lstrip("-").isdigit() else float(text)), None
    except ValueError:
        if text.lstrip("-").isdigit():
            return None, f"an integer of {len(text.lstrip('-')):,} digits is longer than plait handles ({MAX_DIGITS:,})"
        return None, f"{_shown(value)} is not {describe_type(PARAM_TYPES[type_name])}"
    if type_name == "boolean":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE, None
        return None, f"{_shown(value)} is not true or false"
    return _yaml_value(text, type_name, name)


def _yaml_value(text: str, type_name: str, name: str) -> tuple[Any, str | None]:
    """Read an `array` or `object` override as YAML, with the workflow file's loader and bounds."""
    if not text:
        return None, f"'' is not {describe_type(PARAM_TYPES[type_name])}"
    try:
        return _plain(load_yaml(text, f"--param {name}")), None
    except WorkflowError as err:
        first = err.errors[0]
        where = f"line {first.loc.line}, column {first.loc.column}: " if first.loc else ""
        return None, f"the value does not read as YAML: {where}{first.message}" + (
            f" ({first.hint})" if first.hint else "")


def _plain(value: Any) -> Any:
    """Return a loaded value as plain dicts and lists (its depth is bounded by the loader)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _not_plain(value: Any) -> str | None:
    """Return what makes a typed override unfit to store as JSON (a set, bytes, a cycle, too deep), or None."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"the value nests deeper than {MAX_DEPTH} levels"
        if isinstance(item, (list, tuple, dict)):
            if id(item) in seen:
                return "the value contains itself, or shares a part (plait keeps plain data)"
            seen.add(id(item))
            if isinstance(item, dict):
                if not all(isinstance(k, str) for k in item):
                    return "a mapping in the value has a key that is not text"
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if item and math.log10(abs(item)) >= MAX_DIGITS:
                return f"an integer in the value is longer than plait handles ({MAX_DIGITS:,} digits)"
        elif not (item is None or isinstance(item, (str, float, bool))):
            return f"the value holds {type(item).__name__}, which plait cannot store: use text, numbers, " \
                   "lists and mappings"
    return None


def _shown(value: Any, limit: int = 60) -> str:
    """Return `repr(value)`, cut to about `limit` characters for a message."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for text
        return f"an integer of more than {MAX_DIGITS:,} digits"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def read_params_file(path: str) -> YamlMap:
    """Load a params file (YAML, or JSON, which is YAML): a mapping of parameter names to values.

    Raises WorkflowError, located in the file, when it cannot be read or is not such a mapping.
    """
    try:
        text = read_regular_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise WorkflowError([Diagnostic(None, f"cannot read params file '{path}': {reason}",
                                        "check the path; it is relative to the current folder")]) from err
    given = load_yaml(text, path)
    if not isinstance(given, YamlMap):
        raise WorkflowError([Diagnostic(SourceLoc(path, 1, 1), "a params file is a mapping of parameter names to "
                                                               "values", "write one `name: value` a line, "
                                                                         "e.g. `size: 256`")])
    return given


def check_params_file(given: YamlMap, declared: Any) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Return (the good values, errors) of a params file checked against the workflow's declarations.

    Each error is located where the value is given, its hint naming where it is declared.
    A value in a file is typed as it is written, as a default in the workflow is: `size: "256"` is
    text, and not an integer (only `--param`'s text is parsed by the declared type).
    """
    declared = declared if isinstance(declared, YamlMap) else YamlMap(given.loc)
    errors: list[Diagnostic] = []
    good: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            errors.append(Diagnostic(given.key_locs[name], f"unknown parameter '{name}' in the params file",
                                     did_you_mean(str(name), declared) or _declared_hint(declared)))
            continue
        type_name, _, _, problems = _declaration(name, declared[name], declared.key_locs[name])
        if problems:
            continue  # reported where it is declared
        found = len(errors)
        declared_at = f"'{name}' is declared as {type_name} at {declared.key_locs[name]}"
        spec = declared[name]
        choices = spec.get("choices") if _is_declaration(spec) else None
        if value is not None and not is_type(value, PARAM_TYPES[type_name]):
            shown = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else _shown(value)
            errors.append(Diagnostic(given.value_locs[name], f"parameter '{name}' must be "
                                     f"{describe_type(PARAM_TYPES[type_name])}, not {shown}", declared_at))
        elif choices and value not in choices:
            errors.append(Diagnostic(given.value_locs[name], f"parameter '{name}' must be one of {list(choices)}, "
                                     f"not {_shown(value)}", did_you_mean(str(value), [str(c) for c in choices])
                                     or declared_at))
        if len(errors) == found:
            good[name] = value
    return good, errors
