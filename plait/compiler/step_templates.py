"""A step's templates: check what they read, and render those that read only params.

Every template string in a step (inputs, items, key, condition, on_error, error_message) is parsed once here: a syntax
error, an unknown name, an undeclared parameter or an unknown step is reported at the string's
position. The steps a template names become the step's dependencies (`depends_on` may be left
out). Templates that read only params are rendered now, at compile time; the rest (items, steps,
run, workspace) are left for the runtime, per node.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.plan import freeze
from plait.tasks.base import get_kind
from plait.templating import (
    GROUP_NAMES,
    ITEM_NAMES,
    PARAM_NAMES,
    PARENT_NAMES,
    RENDER_ERRORS,
    RUNTIME_NAMES,
    TEMPLATE_NAMES,
    TemplateError,
    analyze,
    has_template,
    render,
    template_context,
)

__all__ = [
    "ERROR_NAME",
    "check_templates",
    "reads_missing_param",
    "render_config",
    "render_params",
    "template_strings",
    "unknown_step",
]

ERROR_NAME = "error"  # what `error_message` sees besides a template's usual names: the node's error record


def unknown_step(name: str, verb: str, dep: str, step_names: Mapping[str, SourceLoc],
                  loc: SourceLoc | None) -> Diagnostic:
    others = [s for s in step_names if s != name]
    close = difflib.get_close_matches(dep, others, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{close[0]}'? (defined at {step_names[close[0]]})"
    else:
        hint = f"steps in this workflow: {', '.join(sorted(step_names))}"
    return Diagnostic(loc, f"step '{name}' {verb} unknown step '{dep}'", hint)


def check_templates(draft: StepDraft, raw: YamlMap, step_names: Mapping[str, SourceLoc],
                     param_names: set[str]) -> list[Diagnostic]:
    """Check every template in the step: syntax, names, steps and params it reads."""
    errors = []
    for where, text, context in _templates(raw):
        try:
            refs = analyze(text)
        except TemplateError as err:
            errors.append(Diagnostic(where, f"step '{draft.name}': template error in {context}: {err}",
                                     "check the {{ … }} and {% … %} syntax"))
            continue
        known = TEMPLATE_NAMES | {ERROR_NAME} if context == "error_message" else TEMPLATE_NAMES
        for name in sorted(refs.names - known):
            errors.append(Diagnostic(where, f"step '{draft.name}': {context} uses unknown name '{name}'",
                                     did_you_mean(name, known) or f"templates see: {', '.join(sorted(known))}"))
        if refs.names & ITEM_NAMES and not draft.is_batch:
            used = sorted(refs.names & ITEM_NAMES)[0]
            errors.append(Diagnostic(where, f"step '{draft.name}' has no items, but {context} uses '{used}'",
                                     "give the step `items:` or `for_each:`, or remove the reference"))
        if context in ("key", "group_by.key") and refs.names & (RUNTIME_NAMES | GROUP_NAMES):
            name = sorted(refs.names & (RUNTIME_NAMES | GROUP_NAMES))[0]
            errors.append(Diagnostic(where, f"step '{draft.name}': a key cannot read {name}",
                                     "a key is made from the item alone, e.g. `key: \"{{ item | basename }}\"`"))
        errors += _scoped_names(draft, refs.names, where, context)
        draft.params_read |= param_names if refs.names & {"params", "args"} and not refs.params else refs.params
        for param in sorted(refs.params - param_names):
            errors.append(Diagnostic(where, f"step '{draft.name}': {context} uses unknown parameter '{param}'",
                                     did_you_mean(param, param_names) or "declare it under `params:`"))
        for step, attr in sorted(refs.steps, key=lambda s: (s[0], s[1] or "")):
            if step == draft.name:
                errors.append(Diagnostic(where, f"step '{draft.name}' reads its own result in {context}",
                                         "a step can read the results of the steps before it"))
            elif step not in step_names:
                errors.append(unknown_step(draft.name, f"reads ({context})", step, step_names, where))
            else:
                draft.depends_on.setdefault(step, where)
                if attr in ("result", "results"):
                    draft.reads.append((step, attr, where))
    return errors


def _scoped_names(draft: StepDraft, names: frozenset[str], where: SourceLoc, context: str) -> list[Diagnostic]:
    """Check the names only some steps know: `group` (a group_by step) and `parent` (a per-parent fan-out)."""
    errors = []
    own_items = context in ("items", "iterate_over")
    if names & GROUP_NAMES and context not in ("key", "group_by.key") and draft.group_by is None:
        errors.append(Diagnostic(where, f"step '{draft.name}' has no group_by, but {context} uses 'group'",
                                 "`group` (key, items, results) is known in a step with "
                                 "`group_by: {step: S, key: TEMPLATE}`"))
    if names & PARENT_NAMES and context != "group_by.key" and not draft.fans_out:
        errors.append(Diagnostic(where, f"step '{draft.name}' does not fan out per parent, but {context} uses 'parent'",
                                 "`parent` (key, item, result) is known in a step with `for_each: P` and "
                                 "`items: \"{{ parent.result }}\"`"))
    elif own_items and draft.fans_out and names & RUNTIME_NAMES:
        errors.append(Diagnostic(where, f"step '{draft.name}': the items of a per-parent fan-out cannot read "
                                        f"{sorted(names & RUNTIME_NAMES)[0]}",
                                 "they are made from each parent: they see parent (key, item, result) and params"))
    return errors


def _templates(raw: YamlMap) -> Iterator[tuple[SourceLoc, str, str]]:
    """Yield (position, text, what it is) for every template string in the step."""
    kind = get_kind(raw.get("task")) if isinstance(raw.get("task"), str) else None
    for key in ("items", "iterate_over", "key", "condition", "on_error", "error_message"):
        for loc, text in template_strings(raw.get(key), raw.value_locs.get(key)):
            yield loc, text, key
    group_by = raw.get("group_by")
    if isinstance(group_by, YamlMap):
        for loc, text in template_strings(group_by.get("key"), group_by.value_locs.get("key")):
            yield loc, text, "group_by.key"
    inputs = raw.get("inputs")
    if isinstance(inputs, YamlMap):
        for name, value in inputs.items():
            spec = kind.fields.get(name) if kind and kind.fields else None
            if spec is not None and spec.render == "raw":
                continue
            for loc, text in template_strings(value, inputs.value_locs[name]):
                yield loc, text, f"inputs.{name}"


def template_strings(value: Any, loc: SourceLoc | None) -> Iterator[tuple[SourceLoc, str]]:
    """Yield (position, text) for every string in `value` that holds a template, lists and mappings walked."""
    if isinstance(value, str) and has_template(value):
        yield loc, value
    elif isinstance(value, YamlMap):
        for k, v in value.items():
            yield from template_strings(v, value.value_locs[k])
    elif isinstance(value, YamlList):
        for v, item_loc in zip(value, value.item_locs):
            yield from template_strings(v, item_loc)


def reads_missing_param(value: Any, params: Mapping[str, Any]) -> bool:
    """Return True when a template in `value` reads a parameter that has no valid value."""
    if isinstance(value, str):
        try:
            return has_template(value) and not analyze(value).params <= set(params)
        except TemplateError:
            return False
    if isinstance(value, dict):
        return any(reads_missing_param(v, params) for v in value.values())
    if isinstance(value, list):
        return any(reads_missing_param(v, params) for v in value)
    return False


def render_config(draft: StepDraft, raw: YamlMap, params: Mapping[str, Any],
                  workflow_dir: Any = None) -> list[Diagnostic]:
    """Freeze the step's inputs as its config, rendering the templates that read only params.

    Shell-rendered and raw fields are left whole: a shell command must be quoted as it renders,
    and raw fields (code, a template body) belong to their handler.
    """
    inputs = raw.get("inputs") if isinstance(raw.get("inputs"), YamlMap) else {}
    kind = get_kind(draft.task)
    fields = kind.fields if kind and kind.fields else {}
    config = {}
    for name, value in inputs.items():
        spec = fields.get(name)
        try:
            config[name] = value if spec is not None and spec.render != "value" else \
                render_params(value, params, workflow_dir)
        except RENDER_ERRORS as err:
            draft.config = freeze({})
            return [Diagnostic(inputs.value_locs[name], f"step '{draft.name}': inputs.{name} does not render: {err}",
                               "check the parameter names and filters it uses")]
    draft.config = freeze(config)
    return []


def render_params(value: Any, params: Mapping[str, Any], workflow_dir: Any = None) -> Any:
    """Render the templates that read only params (and `workflow_dir`) now; leave the others for run time."""
    if isinstance(value, str):
        if not has_template(value):
            return value
        try:
            refs = analyze(value)
        except TemplateError:
            return value  # reported by _check_templates
        if refs.names <= PARAM_NAMES and refs.params <= set(params) and (
                workflow_dir is not None or "workflow_dir" not in refs.names):
            return render(value, template_context(params, workflow_dir=workflow_dir))
        return value
    if isinstance(value, dict):
        return {k: render_params(v, params, workflow_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [render_params(v, params, workflow_dir) for v in value]
    return value
