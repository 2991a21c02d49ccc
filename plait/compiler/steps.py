"""Validate one step: its keys, task inputs, items source, templates, retry policy and limits.

`check_step` turns a step mapping into a `StepDraft` (what `expand` needs to build nodes) and
a list of diagnostics. It checks everything that can be checked from the step alone and the
names of the other steps; how steps fit together (unknown dependencies, cycles) is checked by
`plait.compiler.compile` once every step is read.

The checks live beside it: `step_templates` (what templates read, params rendered now),
`code_reads` (what inline code and task-rendered templates read of other steps),
`policy` (retry, timeout, on_error, budget) and `batch_form` (the original engine's `task: batch`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from plait.compiler.batch_form import unwrap_batch
from plait.compiler.code_reads import check_raw_reads
from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.policy import check_policy
from plait.compiler.schema import STEP_FIELDS, check_fields
from plait.compiler.sources import check_group_by, check_items
from plait.compiler.step_templates import check_templates, render_config, unknown_step
from plait.compiler.tracking import check_tracking
from plait.tasks.base import get_kind, kinds

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
    errors += check_items(draft, raw, params, base_dir)
    errors += check_group_by(draft, raw, step_names)
    errors += _check_dependencies(draft, raw, step_names)
    errors += check_policy(draft, raw, defaults, params, base_dir)
    errors += check_templates(draft, raw, step_names, param_names)
    errors += check_raw_reads(draft, raw, step_names)
    errors += render_config(draft, raw, params, base_dir)
    errors += _check_kwargs(draft, raw)
    errors += check_tracking(draft, raw, params, base_dir)
    draft.condition = raw.get("condition") if isinstance(raw.get("condition"), str) else (
        None if raw.get("condition") in (None, True) else "{{ false }}")
    draft.key = raw.get("key")
    draft.error_message = raw.get("error_message") if isinstance(raw.get("error_message"), str) else None
    draft.allow_empty = bool(raw.get("allow_empty", False))
    draft.written = _written(raw)
    return draft, errors


def _written(raw: YamlMap) -> str:
    """Return 16 hex digits over what a step computes as written, params unrendered: what `config` changes name."""
    fields = {k: raw.get(k) for k in ("task", "inputs", "key", "condition", "for_each", "group_by")}
    fields["items"] = raw.get("items", raw.get("iterate_over"))  # the same items, however they are written
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_inputs(draft: StepDraft, raw: YamlMap) -> list[Diagnostic]:
    kind = get_kind(draft.task)
    if kind is None:
        return [Diagnostic(raw.value_locs["task"], f"step '{draft.name}' has unknown task '{draft.task}'",
                           did_you_mean(draft.task, kinds()) or f"known tasks: {', '.join(kinds())}; a kind of your "
                           "own is registered by a module given as --plugin MODULE (docs/tasks.md)")]
    inputs = raw.get("inputs")
    if not isinstance(inputs, YamlMap):
        inputs = YamlMap(raw.loc)
    if kind.fields is None:
        return []
    errors = check_fields(inputs, kind.fields,
                          f"the inputs of step '{draft.name}' ({_article(draft.task)} {draft.task} task)")
    for field_name, message, hint in kind.check(inputs) if kind.check else []:
        loc = inputs.value_locs.get(field_name) if field_name else None
        errors.append(Diagnostic(loc or raw.key_locs.get("inputs", raw.loc), f"step '{draft.name}': {message}", hint))
    function = inputs.get("function")
    if draft.task == "python" and isinstance(function, str) and not _FUNCTION.match(function):
        errors.append(Diagnostic(inputs.value_locs["function"],
                                 f"step '{draft.name}': '{function}' is not module:function",
                                 "write it as `function: mymodule:myfunction` (a module in the workflow's folder)"))
    return errors


def _check_kwargs(draft: StepDraft, raw: YamlMap) -> list[Diagnostic]:
    """Check that a python step's `kwargs`, when one template rendered now, gave a mapping."""
    kwargs = draft.config.get("kwargs") if draft.task == "python" and draft.config is not None else None
    if kwargs is None or isinstance(kwargs, (Mapping, str)):
        return []  # a mapping, or a template left for run time
    inputs = raw["inputs"]
    shown = "a list" if isinstance(kwargs, (list, tuple)) else type(kwargs).__name__
    return [Diagnostic(inputs.value_locs["kwargs"], f"step '{draft.name}': inputs.kwargs gave {shown}, "
                                                    "not a mapping",
                       "kwargs is a mapping of argument names, or one template that gives one")]


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


def _article(word: str) -> str:
    """Return "an" before a word that starts with a vowel letter ("an echo task"), else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"
