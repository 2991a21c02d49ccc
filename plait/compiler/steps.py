"""Validate one step: its keys, task inputs, items source, templates, retry policy and limits.

`check_step` turns a step mapping into a `StepDraft` (what `expand` needs to build nodes) and
a list of diagnostics. It checks everything that can be checked from the step alone and the
names of the other steps; how steps fit together (unknown dependencies, cycles) is checked by
`plait.compiler.compile` once every step is read.

The checks live beside it: `step_templates` (what templates read, params rendered now),
`policy` (retry, timeout, on_error, budget) and `batch_form` (the original engine's `task: batch`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plait.compiler.batch_form import unwrap_batch
from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.items import glob_items, line_items, range_items
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.policy import check_policy
from plait.compiler.schema import STEP_FIELDS, check_fields
from plait.compiler.step_templates import (
    check_templates,
    reads_missing_param,
    render_config,
    render_params,
    unknown_step,
)
from plait.tasks.base import get_kind, kinds
from plait.templating import RENDER_ERRORS, RUNTIME_NAMES, analyze, render, template_context

__all__ = ["check_step"]

STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_step(raw: YamlMap, position: int, step_names: Mapping[str, SourceLoc], params: Mapping[str, Any],
               defaults: Mapping[str, Any], base_dir: Any,
               param_names: set[str] | None = None) -> tuple[StepDraft | None, list[Diagnostic]]:
    """Check one step mapping; return its draft (None when unusable) and the errors found.

    `step_names` maps every step's name to where it is defined. `params` holds the values of the
    valid parameters; `param_names` every declared one (a parameter with a bad value is reported
    where it is declared, not again where it is used).
    """
    param_names = set(params) if param_names is None else param_names
    errors = check_fields(raw, STEP_FIELDS, f"step '{raw.get('name', '?')}'" if raw.get("name") else "a step")
    name, task = raw.get("name"), raw.get("task")
    if not isinstance(name, str) or not isinstance(task, str):
        return None, errors
    if not STEP_NAME.match(name):
        errors.append(Diagnostic(raw.value_locs["name"], f"step name '{name}' is not allowed",
                                 "use letters, digits, - and _, starting with a letter or _"))
    raw = unwrap_batch(raw, errors)
    if raw is None:
        return None, errors
    task = raw.get("task")
    draft = StepDraft(name=name, task=task, loc=raw.key_locs.get("name", raw.loc), position=position,
                      description=raw.get("description"))
    errors += _check_inputs(draft, raw)
    errors += _check_items(draft, raw, params, base_dir)
    errors += _check_dependencies(draft, raw, step_names)
    errors += check_policy(draft, raw, defaults)
    errors += check_templates(draft, raw, step_names, param_names)
    errors += render_config(draft, raw, params)
    draft.condition = raw.get("condition") if isinstance(raw.get("condition"), str) else (
        None if raw.get("condition") in (None, True) else "{{ false }}")
    draft.key = raw.get("key")
    draft.allow_empty = bool(raw.get("allow_empty", False))
    return draft, errors


def _check_inputs(draft: StepDraft, raw: YamlMap) -> list[Diagnostic]:
    kind = get_kind(draft.task)
    if kind is None:
        return [Diagnostic(raw.value_locs["task"], f"step '{draft.name}' has unknown task '{draft.task}'",
                           did_you_mean(draft.task, kinds()) or f"known tasks: {', '.join(kinds())}")]
    inputs = raw.get("inputs")
    if not isinstance(inputs, YamlMap):
        inputs = YamlMap(raw.loc)
    if kind.fields is None:
        return []
    errors = check_fields(inputs, kind.fields, f"the inputs of step '{draft.name}' (a {draft.task} task)")
    for field_name, message, hint in kind.check(inputs) if kind.check else []:
        loc = inputs.value_locs.get(field_name) if field_name else None
        errors.append(Diagnostic(loc or raw.key_locs.get("inputs", raw.loc), f"step '{draft.name}': {message}", hint))
    function = inputs.get("function")
    if draft.task == "python" and isinstance(function, str) and not _FUNCTION.match(function):
        errors.append(Diagnostic(inputs.value_locs["function"],
                                 f"step '{draft.name}': '{function}' is not module:function",
                                 "write it as `function: mymodule:myfunction` (a module in the workflow's folder)"))
    return errors


def _check_items(draft: StepDraft, raw: YamlMap, params: Mapping[str, Any], base_dir: Any) -> list[Diagnostic]:
    both = [k for k in ("items", "iterate_over", "for_each") if raw.get(k) is not None]
    draft.for_each = raw.get("for_each") if isinstance(raw.get("for_each"), str) else None
    if len(both) > 1:
        return [Diagnostic(raw.key_locs[both[1]], f"step '{draft.name}' sets both '{both[0]}' and '{both[1]}'",
                           "a step takes its items from one place")]
    if not both or draft.for_each:
        if draft.for_each and raw.get("key") is not None:
            return [Diagnostic(raw.key_locs["key"], f"step '{draft.name}' sets 'key' and 'for_each'",
                               f"a for_each step takes its keys from '{draft.for_each}'; remove `key:`")]
        return []
    field_name = both[0]
    source, loc = raw[field_name], raw.value_locs[field_name]
    draft.items_loc = loc
    if not isinstance(source, (str, list, dict)):
        return []  # a wrong type, reported by check_fields
    if reads_missing_param(source, params):
        return []  # a parameter it reads has no valid value: reported where it is declared
    try:
        if isinstance(source, str):
            refs = analyze(source)
            if refs.names & RUNTIME_NAMES:
                draft.deferred_items = source
                return []
            source = render(source, template_context(params))
            if not isinstance(source, list):
                raise ValueError(f"the items template gave {type(source).__name__}, not a list")
        if isinstance(source, YamlMap):
            return _items_from_mapping(draft, source, params, base_dir)
        draft.items = [render_params(v, params) for v in source]
    except (*RENDER_ERRORS, OSError) as err:
        return [Diagnostic(loc, f"step '{draft.name}': bad items: {err}", _ITEMS_HINT)]
    return []


_ITEMS_HINT = "items are a list, {range: [start, stop]}, {glob: PATTERN}, {lines: FILE}, or \"{{ steps.X.result }}\""


def _items_from_mapping(draft: StepDraft, source: YamlMap, params: Mapping[str, Any],
                        base_dir: Any) -> list[Diagnostic]:
    if len(source) != 1 or next(iter(source)) not in ("range", "glob", "lines"):
        unknown = next((k for k in source if k not in ("range", "glob", "lines")), None)
        hint = did_you_mean(unknown, ("range", "glob", "lines")) if unknown else None
        return [Diagnostic(source.loc, f"step '{draft.name}': items take one of range, glob or lines",
                           hint or _ITEMS_HINT)]
    (kind, spec), = source.items()
    spec = render_params(spec, params)
    if kind == "range":
        draft.items = range_items(spec)
    elif not isinstance(spec, str):
        raise ValueError(f"{kind} takes a path as text, not {spec!r}")
    elif kind == "glob":
        matches = glob_items(spec, base_dir)
        draft.items, draft.item_keys = [m[0] for m in matches], [m[1] for m in matches]
    else:
        draft.items = line_items(spec, base_dir)
    return []


def _check_dependencies(draft: StepDraft, raw: YamlMap, step_names: Mapping[str, SourceLoc]) -> list[Diagnostic]:
    errors = []
    for field, target, verb in (("depends_on", draft.depends_on, "depends on"), ("after", draft.after, "runs after")):
        names = raw.get(field) or []
        if isinstance(names, str):
            names = [names]
        elif not isinstance(names, list):
            names = []  # a wrong type, reported by check_fields
        for i, dep in enumerate(names):
            loc = names.item_locs[i] if isinstance(names, YamlList) else raw.value_locs.get(field)
            if not isinstance(dep, str):
                errors.append(Diagnostic(loc, f"step '{draft.name}': {field} lists step names, not {dep!r}"))
            elif dep not in step_names:
                errors.append(unknown_step(draft.name, verb, dep, step_names, loc))
            else:
                target.setdefault(dep, loc)
    if draft.for_each:
        loc = raw.value_locs["for_each"]
        if draft.for_each not in step_names:
            errors.append(unknown_step(draft.name, "runs for_each over", draft.for_each, step_names, loc))
        else:
            draft.depends_on.setdefault(draft.for_each, loc)
    return errors


