"""Where a step's items come from: `items:`, `for_each:` (paired or fanning out per parent) or `group_by:`.

`check_items` reads a step's source into its draft: static items (a list; `range`, `glob`,
`lines`; `matrix`, `zip`) are expanded here, with their templates that read only params
rendered; a source whose templates read run-time names is kept for the runtime, with params
rendered (`StepDraft.deferred_items`): a template or a `range`, `matrix` or `zip` mapping reading
`steps`, `run`, `workspace` (a deferred step, expanded when its upstream has run) or `parent`
(with `for_each: P`, a per-parent fan-out: each node of P expands into its own children).
`glob` and `lines` read files, which the compiler does and the runtime does not, so they take
params only. `check_group_by` reads `group_by: {step, key}`.

The shape of a `matrix` or `zip` is checked where it is written, before any template renders,
so each mistake points at its own axis or entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from plait.compiler.combine import MATRIX_HINT, MATRIX_LISTS, ZIP_HINT, SourceError, matrix_items, zip_items
from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.items import glob_items, line_items, range_items
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.schema import GROUP_BY_FIELDS, check_fields
from plait.compiler.step_templates import reads_missing_param, render_params, template_strings, unknown_step
from plait.templating import (
    PARENT_NAMES,
    RENDER_ERRORS,
    RUNTIME_NAMES,
    TemplateError,
    analyze,
    has_template,
    render,
    template_context,
)

__all__ = ["ITEMS_HINT", "SOURCES", "check_group_by", "check_items", "deferred_source_items"]

SOURCES = ("range", "glob", "lines", "matrix", "zip")
ITEMS_HINT = ("items are a list, {range: [start, stop]}, {glob: PATTERN}, {lines: FILE}, {matrix: {AXIS: LIST}}, "
              "{zip: {NAME: LIST}}, or \"{{ steps.X.result }}\"")
_LATE = RUNTIME_NAMES | PARENT_NAMES  # names whose values come at run time


def check_items(draft: StepDraft, raw: YamlMap, params: Mapping[str, Any], base_dir: Any) -> list[Diagnostic]:
    """Read the step's items source into `draft`; return the errors."""
    given = [k for k in ("items", "iterate_over", "for_each", "group_by") if raw.get(k) is not None]
    draft.for_each = raw.get("for_each") if isinstance(raw.get("for_each"), str) else None
    own = [k for k in given if k in ("items", "iterate_over")]
    clash = next((k for k in given[1:] if not (k == "for_each" and len(own) == 1 and given[0] in own)), None)
    if clash is not None:
        return [Diagnostic(raw.key_locs[clash], f"step '{draft.name}' sets both '{given[0]}' and '{clash}'",
                           "a step takes its items from one place")]
    if draft.for_each and not own and raw.get("key") is not None:
        return [Diagnostic(raw.key_locs["key"], f"step '{draft.name}' sets 'key' and 'for_each'",
                           f"a for_each step takes its keys from '{draft.for_each}'; remove `key:`")]
    if not own:
        return []
    field_name = own[0]
    source, loc = raw[field_name], raw.value_locs[field_name]
    draft.items_loc = loc
    if not isinstance(source, (str, list, dict)):
        return []  # a wrong type, reported by check_fields
    if reads_missing_param(source, params):
        return []  # a parameter it reads has no valid value: reported where it is declared
    late = _reads(source, _LATE, loc)
    if draft.for_each and not late & PARENT_NAMES:
        return [Diagnostic(raw.key_locs["for_each"], f"step '{draft.name}' sets both '{field_name}' and 'for_each'",
                           "with for_each, items come from each parent's result "
                           "(`items: \"{{ parent.result }}\"`); otherwise keep one of them")]
    try:
        if isinstance(source, YamlMap):
            return _from_mapping(draft, source, params, base_dir, late)
        if late:
            draft.deferred_items = render_params(source, params, base_dir)
            return []
        if isinstance(source, str):
            source = render(source, template_context(params, workflow_dir=base_dir))
            if not isinstance(source, list):
                raise ValueError(f"the items template gave {type(source).__name__}, not a list")
        draft.items = [render_params(v, params, base_dir) for v in source]
    except (*RENDER_ERRORS, OSError) as err:
        return [Diagnostic(loc, f"step '{draft.name}': bad items: {err}", ITEMS_HINT)]
    return []


def _reads(value: Any, names: frozenset[str], loc: SourceLoc) -> frozenset[str]:
    """Return which of `names` the templates in `value` read (a bad template reads nothing here)."""
    found: set[str] = set()
    for _, text in template_strings(value, loc):
        with contextlib.suppress(TemplateError):  # a bad template is reported by check_templates
            found |= analyze(text).names & names
    return frozenset(found)


def _from_mapping(draft: StepDraft, source: YamlMap, params: Mapping[str, Any], base_dir: Any,
                  late: frozenset[str]) -> list[Diagnostic]:
    source_loc = draft.items_loc
    if len(source) != 1 or next(iter(source)) not in SOURCES:
        unknown = next((k for k in source if k not in SOURCES), None)
        hint = did_you_mean(unknown, SOURCES) if unknown else None
        return [Diagnostic(source.loc, f"step '{draft.name}': items take one of {', '.join(SOURCES[:-1])} or zip",
                           hint or ITEMS_HINT)]
    (kind, spec), = source.items()
    where = source.value_locs[kind]
    if kind in ("matrix", "zip"):
        errors = _check_shape(draft, kind, spec, where)
        if errors:
            return errors
    if late:
        if kind in ("glob", "lines"):
            draft.deferred_items = {kind: spec}  # known late all the same: no second error for `parent`
            read = sorted(late)[0]
            hint = ("list the files in the parent step and give them as its result "
                    "(`items: \"{{ parent.result }}\"`)" if read == "parent" else
                    "read the files in an upstream step and give its result as the items "
                    "(`items: \"{{ steps.X.result }}\"`)")
            return [Diagnostic(where, f"step '{draft.name}': a {kind} is read when the workflow compiles, "
                                      f"so it cannot read {read}", hint)]
        draft.deferred_items = {kind: render_params(spec, params, base_dir)}
        return []
    spec = render_params(spec, params, base_dir)
    try:
        if kind == "matrix":
            axes = {k: v for k, v in spec.items() if k not in MATRIX_LISTS}
            draft.items, draft.item_keys = matrix_items(axes, spec.get("include") or (), spec.get("exclude") or ())
            draft.keys_checked = True
        elif kind == "zip":
            draft.items, draft.item_keys = zip_items(spec)
            draft.keys_checked = True
        elif kind == "range":
            draft.items = range_items(spec)
        elif not isinstance(spec, str):
            raise ValueError(f"{kind} takes a path as text, not {spec!r}")
        elif kind == "glob":
            matches = glob_items(spec, base_dir)
            draft.items, draft.item_keys = [m[0] for m in matches], [m[1] for m in matches]
            draft.file_items = kind
        else:
            draft.items = line_items(spec, base_dir)
            draft.file_items = kind
    except SourceError as err:
        return [Diagnostic(where, f"step '{draft.name}': {err}", err.hint)]
    except (ValueError, OSError) as err:
        return [Diagnostic(source_loc, f"step '{draft.name}': bad items: {err}", ITEMS_HINT)]
    return []


_HINTS = {"matrix": MATRIX_HINT, "zip": ZIP_HINT}


def _check_shape(draft: StepDraft, kind: str, spec: Any, where: SourceLoc) -> list[Diagnostic]:
    """Check a matrix's or zip's shape as written: lists (or templates) where they belong, each at its place."""
    name = f"step '{draft.name}'"
    if not isinstance(spec, YamlMap) or not spec:
        return [Diagnostic(where, f"{name}: {kind} takes a mapping of NAME: list", _HINTS[kind])]
    errors = []
    noun = "axis" if kind == "matrix" else "list"
    axes = [k for k in spec if kind == "zip" or k not in MATRIX_LISTS]
    for axis in axes:
        value = spec[axis]
        if isinstance(value, YamlList) and not value:
            errors.append(Diagnostic(spec.value_locs[axis], f"{name}: {kind} {noun} '{axis}' is empty",
                                     "give it at least one value, or remove it"))
        elif not isinstance(value, YamlList) and not has_template(value):
            errors.append(Diagnostic(spec.value_locs[axis], f"{name}: {kind} {noun} '{axis}' must be a list or a "
                                                            f"template giving one, not {_shown(value)}",
                                     f"write `{axis}: [a, b]`, or `{axis}: \"{{{{ params.{axis} }}}}\"`"))
    if kind == "zip":
        lengths = {a: len(spec[a]) for a in axes if isinstance(spec[a], YamlList)}
        if len(set(lengths.values())) > 1 and not errors:
            first = next(iter(lengths.values()))
            odd = next(a for a, n in lengths.items() if n != first)
            shown = ", ".join(f"'{a}' has {n}" for a, n in lengths.items())
            errors.append(Diagnostic(spec.value_locs[odd], f"{name}: zip lists differ in length: {shown}",
                                     _HINTS["zip"]))
        return errors
    for entries_name in MATRIX_LISTS:
        entries = spec.get(entries_name)
        if entries is None or isinstance(entries, str):
            continue
        if not isinstance(entries, YamlList):
            errors.append(Diagnostic(spec.value_locs[entries_name], f"{name}: matrix {entries_name} must be a list "
                                                                    f"of mappings, not {_shown(entries)}",
                                     f"write `{entries_name}: [{{AXIS: value, ...}}]`"))
            continue
        for entry, entry_loc in zip(entries, entries.item_locs):
            if not isinstance(entry, YamlMap) or not entry:
                errors.append(Diagnostic(entry_loc, f"{name}: a matrix {entries_name} entry must be a mapping of "
                                                    f"AXIS: value, not {_shown(entry)}",
                                         "write e.g. `- {os: windows, version: 16}`"))
            elif entries_name == "exclude" and axes:
                errors += [Diagnostic(entry.key_locs[k], f"{name}: matrix exclude names '{k}', which is not an axis",
                                      did_you_mean(k, axes) or f"the axes are: {', '.join(axes) or 'none'}")
                           for k in entry if k not in axes]
    if not axes and not isinstance(spec.get("include"), (YamlList, str)):
        errors.append(Diagnostic(where, f"{name}: a matrix needs at least one axis or an include list",
                                 _HINTS["matrix"]))
    return errors


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an empty mapping" if not value else "a mapping"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else repr(value)


def deferred_source_items(source: Any) -> tuple[list, list | None]:
    """Return (items, default keys or None) of a deferred source after its templates rendered. Raises ValueError.

    `source` is a list (an items template's value) or a mapping `{range | matrix | zip: ...}`
    whose templates have rendered; the runtime and the per-parent expansion both come here.
    """
    if isinstance(source, (list, tuple)):
        return list(source), None
    if isinstance(source, Mapping) and len(source) == 1:
        (kind, spec), = source.items()
        if kind == "range":
            return range_items(spec), None
        if kind == "zip" and isinstance(spec, Mapping):
            return zip_items(spec)
        if kind == "matrix" and isinstance(spec, Mapping):
            axes = {k: v for k, v in spec.items() if k not in MATRIX_LISTS}
            return matrix_items(axes, spec.get("include") or (), spec.get("exclude") or ())
    kind = "null" if source is None else type(source).__name__
    raise ValueError(f"gave {kind}, not a list")


def check_group_by(draft: StepDraft, raw: YamlMap, step_names: Mapping[str, SourceLoc]) -> list[Diagnostic]:
    """Read `group_by: {step, key}` into `draft`; return the errors."""
    spec = raw.get("group_by")
    if not isinstance(spec, YamlMap):
        return []  # absent, or of a wrong type that check_fields reports
    errors = check_fields(spec, GROUP_BY_FIELDS, "group_by")
    if raw.get("key") is not None:
        errors.append(Diagnostic(raw.key_locs["key"], f"step '{draft.name}' sets 'key' and 'group_by'",
                                 "a group_by step's nodes are named by their group key; remove `key:`"))
    step, key = spec.get("step"), spec.get("key")
    if not isinstance(step, str):
        return errors
    # Set even when something is wrong, so the step's templates are checked as a group's (no second error).
    draft.group_by = step
    draft.group_key = key if isinstance(key, str) else None
    draft.group_loc = spec.value_locs.get("key", spec.loc)
    where = spec.value_locs["step"]
    if step == draft.name:
        errors.append(Diagnostic(where, f"step '{draft.name}' groups its own items",
                                 "group the items of an earlier step"))
    elif step not in step_names:
        errors.append(unknown_step(draft.name, "groups", step, step_names, where))
    elif not errors:
        draft.depends_on.setdefault(step, where)
    return errors
