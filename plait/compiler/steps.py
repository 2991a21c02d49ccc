"""Validate one step: its keys, task inputs, items source, templates, retry policy and limits.

`check_step` turns a step mapping into a `StepDraft` (what `expand` needs to build nodes) and
a list of diagnostics. It checks everything that can be checked from the step alone and the
names of the other steps; how steps fit together (unknown dependencies, cycles) is checked by
`plait.compiler.compile` once every step is read.

The engine plait grew from wrote batches as `task: batch` with
`inputs: {items, task: {task, inputs}}`; such a step is rewritten here into plain `items:` plus
the inner task, so both forms compile to the same item nodes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.items import glob_items, line_items, range_items
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.plan import RetryPolicy, freeze
from plait.compiler.schema import RETRY_FIELDS, STEP_FIELDS, check_fields
from plait.tasks.base import get_kind, kinds
from plait.templating import TemplateError, analyze, has_template, render

__all__ = ["ITEM_NAMES", "RUNTIME_NAMES", "StepDraft", "check_retry_values", "check_step"]

STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ITEM_NAMES = frozenset({"item", "index", "key", "batch"})
RUNTIME_NAMES = frozenset({"steps", "run", "workspace"})
TEMPLATE_NAMES = frozenset({"params", "args"}) | ITEM_NAMES | RUNTIME_NAMES
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class StepDraft:
    """A checked step, before node expansion."""

    name: str
    task: str
    loc: SourceLoc
    position: int
    config: Any = None
    items: list | None = None  # static items (a batch step)
    item_keys: list | None = None  # their keys as matched (glob), else None
    deferred_items: str | None = None  # an items template over upstream results
    items_loc: SourceLoc | None = None
    for_each: str | None = None
    depends_on: dict[str, SourceLoc] = field(default_factory=dict)  # explicit, for_each, from templates
    reads: list[tuple[str, str, SourceLoc]] = field(default_factory=list)  # (step, result|results, where)
    key: str | None = None
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    on_error: str = "fail"
    max_failures: int | float | None = None
    allow_empty: bool = False
    description: str | None = None

    @property
    def is_batch(self) -> bool:
        return self.items_loc is not None or self.for_each is not None


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
    raw = _unwrap_batch(raw, errors)
    if raw is None:
        return None, errors
    task = raw.get("task")
    draft = StepDraft(name=name, task=task, loc=raw.key_locs.get("name", raw.loc), position=position,
                      description=raw.get("description"))
    errors += _check_inputs(draft, raw)
    errors += _check_items(draft, raw, params, base_dir)
    errors += _check_dependencies(draft, raw, step_names)
    errors += _check_policy(draft, raw, defaults)
    errors += _check_templates(draft, raw, step_names, param_names)
    errors += _render_config(draft, raw, params)
    draft.condition = raw.get("condition") if isinstance(raw.get("condition"), str) else (
        None if raw.get("condition") in (None, True) else "{{ false }}")
    draft.key = raw.get("key")
    draft.allow_empty = bool(raw.get("allow_empty", False))
    return draft, errors


# chunk_size and max_workers were the original engine's own batching knobs; plait batches dispatch
# itself and takes its parallelism from --jobs, so they are accepted and have no effect.
_BATCH_INPUTS = ("items", "task", "chunk_size", "max_workers")


def _unwrap_batch(raw: YamlMap, errors: list[Diagnostic]) -> YamlMap | None:
    """Rewrite the original engine's `task: batch` step into `items:` plus the inner task. Mutates `errors`."""
    if raw.get("task") != "batch" or "batch" in kinds():
        return raw
    inputs = raw.get("inputs")
    inner = inputs.get("task") if isinstance(inputs, YamlMap) else None
    if not isinstance(inner, YamlMap) or "items" not in inputs or not isinstance(inner.get("task"), str):
        errors.append(Diagnostic(raw.value_locs["task"], "a 'batch' step needs inputs.items and inputs.task.task",
                                 "write `inputs: {items: [...], task: {task: shell, inputs: {...}}}`, "
                                 "or use `items:` on the step itself"))
        return None
    for mapping, allowed, what in ((inputs, _BATCH_INPUTS, "a 'batch' step's inputs"),
                                   (inner, ("task", "inputs"), "a 'batch' step's inner task")):
        for key in mapping:
            if key not in allowed:
                errors.append(Diagnostic(mapping.key_locs[key], f"unknown key '{key}' in {what}",
                                         did_you_mean(key, allowed) or f"{what} accepts: {', '.join(allowed)}"))
    out = YamlMap(raw.loc)
    for key in raw:
        if key != "inputs":
            out[key], out.key_locs[key], out.value_locs[key] = raw[key], raw.key_locs[key], raw.value_locs[key]
    for key, target in (("task", "task"), ("inputs", "inputs")):
        if key in inner:
            out[target], out.key_locs[target], out.value_locs[target] = inner[key], inner.key_locs[key], \
                inner.value_locs[key]
    out["items"], out.key_locs["items"], out.value_locs["items"] = inputs["items"], inputs.key_locs["items"], \
        inputs.value_locs["items"]
    return out


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
    if _reads_missing_param(source, params):
        return []  # a parameter it reads has no valid value: reported where it is declared
    try:
        if isinstance(source, str):
            refs = analyze(source)
            if refs.names & RUNTIME_NAMES:
                draft.deferred_items = source
                return []
            source = render(source, {"params": params, "args": params})
            if not isinstance(source, list):
                raise ValueError(f"the items template gave {type(source).__name__}, not a list")
        if isinstance(source, YamlMap):
            return _items_from_mapping(draft, source, params, base_dir)
        draft.items = [_render_params(v, params) for v in source]
    except (TemplateError, ValueError, OSError) as err:
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
    spec = _render_params(spec, params)
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
    depends = raw.get("depends_on") or []
    depends_locs = raw.value_locs.get("depends_on")
    if isinstance(depends, str):
        depends = [depends]
    elif not isinstance(depends, list):
        depends = []  # a wrong type, reported by check_fields
    for i, dep in enumerate(depends):
        loc = depends.item_locs[i] if isinstance(depends, YamlList) else depends_locs
        if not isinstance(dep, str):
            errors.append(Diagnostic(loc, f"step '{draft.name}': depends_on lists step names, not {dep!r}"))
        elif dep not in step_names:
            errors.append(_unknown_step(draft.name, "depends on", dep, step_names, loc))
        else:
            draft.depends_on.setdefault(dep, loc)
    if draft.for_each:
        loc = raw.value_locs["for_each"]
        if draft.for_each not in step_names:
            errors.append(_unknown_step(draft.name, "runs for_each over", draft.for_each, step_names, loc))
        else:
            draft.depends_on.setdefault(draft.for_each, loc)
    return errors


def _unknown_step(name: str, verb: str, dep: str, step_names: Mapping[str, SourceLoc],
                  loc: SourceLoc | None) -> Diagnostic:
    others = [s for s in step_names if s != name]
    close = difflib.get_close_matches(dep, others, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{close[0]}'? (defined at {step_names[close[0]]})"
    else:
        hint = f"steps in this workflow: {', '.join(sorted(step_names))}"
    return Diagnostic(loc, f"step '{name}' {verb} unknown step '{dep}'", hint)


def _check_policy(draft: StepDraft, raw: YamlMap, defaults: Mapping[str, Any]) -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    retry_values: dict[str, Any] = {}
    own = raw.get("retry") if isinstance(raw.get("retry"), YamlMap) else None
    for source in (defaults.get("retry"), own):
        if isinstance(source, YamlMap):
            retry_values.update({k: v for k, v in source.items() if k in RETRY_FIELDS and v is not None})
    if own is not None:  # defaults' own values are checked once, by the compiler
        errors += check_fields(own, RETRY_FIELDS, "a retry policy")
        errors += check_retry_values({k: v for k, v in own.items() if k in RETRY_FIELDS and v is not None}, own)
    if not errors:
        for names in ("retry_on", "retry_on_exit_codes"):
            if names in retry_values:
                retry_values[names] = tuple(retry_values[names])
        draft.retry = RetryPolicy(**retry_values)
    timeout = raw.get("timeout", defaults.get("timeout"))
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        timeout = None  # absent, or of a wrong type that check_fields reports
    if timeout is not None and timeout <= 0:
        errors.append(Diagnostic(raw.value_locs.get("timeout", raw.loc), f"timeout must be a positive number of "
                                 f"seconds, not {timeout!r}", "write e.g. `timeout: 300`"))
    else:
        draft.timeout = float(timeout) if timeout is not None else None
    draft.on_error = raw.get("on_error") or defaults.get("on_error") or "fail"
    budget = raw.get("max_failures")
    if budget is not None:
        draft.max_failures, problem = _parse_budget(budget)
        if problem:
            errors.append(Diagnostic(raw.value_locs["max_failures"], f"step '{draft.name}': {problem}",
                                     "write a count (`max_failures: 3`) or a percentage (`max_failures: 5%`)"))
    return errors


def check_retry_values(values: Mapping[str, Any], where: YamlMap) -> list[Diagnostic]:
    """Check a retry policy's values (types and ranges); positions come from `where`."""
    rules = {
        "max_attempts": (lambda v: isinstance(v, int) and v >= 1, "at least 1"),
        "delay": (lambda v: v >= 0, "0 or more seconds"),
        "backoff": (lambda v: v >= 1, "1 or more"),
        "max_delay": (lambda v: v >= 0, "0 or more seconds"),
        "jitter": (lambda v: 0 <= v <= 1, "from 0 to 1"),
        "retry_on": (lambda v: all(isinstance(n, str) and n.isidentifier() for n in v), "exception names"),
        "retry_on_exit_codes": (lambda v: all(isinstance(c, int) and 0 < c < 256 for c in v), "exit codes 1-255"),
    }
    errors = []
    for name, value in values.items():
        ok, allowed = rules[name]
        try:
            good = not isinstance(value, bool) and ok(value)
        except TypeError:
            good = False
        if not good:
            errors.append(Diagnostic(where.value_locs.get(name, where.loc),
                                     f"retry {name} must be {allowed}, not {value!r}",
                                     "see docs/errors-and-retries.md for the retry policy's fields"))
    return errors


def _parse_budget(value: Any) -> tuple[int | float | None, str | None]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, None
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            pct = -1.0
        if 0 <= pct <= 100:
            return pct / 100.0, None
    return None, f"max_failures must be a count or a percentage, not {value!r}"


def _check_templates(draft: StepDraft, raw: YamlMap, step_names: Mapping[str, SourceLoc],
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
        for name in sorted(refs.names - TEMPLATE_NAMES):
            errors.append(Diagnostic(where, f"step '{draft.name}': {context} uses unknown name '{name}'",
                                     did_you_mean(name, TEMPLATE_NAMES) or
                                     f"templates see: {', '.join(sorted(TEMPLATE_NAMES))}"))
        if refs.names & ITEM_NAMES and not draft.is_batch:
            used = sorted(refs.names & ITEM_NAMES)[0]
            errors.append(Diagnostic(where, f"step '{draft.name}' has no items, but {context} uses '{used}'",
                                     "give the step `items:` or `for_each:`, or remove the reference"))
        if context == "key" and refs.names & RUNTIME_NAMES:
            name = sorted(refs.names & RUNTIME_NAMES)[0]
            errors.append(Diagnostic(where, f"step '{draft.name}': a key cannot read {name}",
                                     "a key is made from the item alone, e.g. `key: \"{{ item | basename }}\"`"))
        for param in sorted(refs.params - param_names):
            errors.append(Diagnostic(where, f"step '{draft.name}': {context} uses unknown parameter '{param}'",
                                     did_you_mean(param, param_names) or "declare it under `params:`"))
        for step, attr in sorted(refs.steps, key=lambda s: (s[0], s[1] or "")):
            if step == draft.name:
                errors.append(Diagnostic(where, f"step '{draft.name}' reads its own result in {context}",
                                         "a step can read the results of the steps before it"))
            elif step not in step_names:
                errors.append(_unknown_step(draft.name, f"reads ({context})", step, step_names, where))
            else:
                draft.depends_on.setdefault(step, where)
                if attr in ("result", "results"):
                    draft.reads.append((step, attr, where))
    return errors


def _templates(raw: YamlMap) -> Iterator[tuple[SourceLoc, str, str]]:
    """Yield (position, text, what it is) for every template string in the step."""
    kind = get_kind(raw.get("task")) if isinstance(raw.get("task"), str) else None
    for key in ("items", "iterate_over", "key", "condition"):
        for loc, text in _strings(raw.get(key), raw.value_locs.get(key)):
            yield loc, text, key
    inputs = raw.get("inputs")
    if isinstance(inputs, YamlMap):
        for name, value in inputs.items():
            spec = kind.fields.get(name) if kind and kind.fields else None
            if spec is not None and spec.render == "raw":
                continue
            for loc, text in _strings(value, inputs.value_locs[name]):
                yield loc, text, f"inputs.{name}"


def _strings(value: Any, loc: SourceLoc | None) -> Iterator[tuple[SourceLoc, str]]:
    if isinstance(value, str) and has_template(value):
        yield loc, value
    elif isinstance(value, YamlMap):
        for k, v in value.items():
            yield from _strings(v, value.value_locs[k])
    elif isinstance(value, YamlList):
        for v, item_loc in zip(value, value.item_locs):
            yield from _strings(v, item_loc)


def _reads_missing_param(value: Any, params: Mapping[str, Any]) -> bool:
    """Return True when a template in `value` reads a parameter that has no valid value."""
    if isinstance(value, str):
        try:
            return has_template(value) and not analyze(value).params <= set(params)
        except TemplateError:
            return False
    if isinstance(value, dict):
        return any(_reads_missing_param(v, params) for v in value.values())
    if isinstance(value, list):
        return any(_reads_missing_param(v, params) for v in value)
    return False


def _render_config(draft: StepDraft, raw: YamlMap, params: Mapping[str, Any]) -> list[Diagnostic]:
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
            config[name] = value if spec is not None and spec.render != "value" else _render_params(value, params)
        except TemplateError as err:
            draft.config = freeze({})
            return [Diagnostic(inputs.value_locs[name], f"step '{draft.name}': inputs.{name} does not render: {err}",
                               "check the parameter names and filters it uses")]
    draft.config = freeze(config)
    return []


def _render_params(value: Any, params: Mapping[str, Any]) -> Any:
    """Render the templates that read only params now; leave the others for run time."""
    if isinstance(value, str):
        if not has_template(value):
            return value
        try:
            refs = analyze(value)
        except TemplateError:
            return value  # reported by _check_templates
        if refs.names <= {"params", "args"} and refs.params <= set(params):
            return render(value, {"params": params, "args": params})
        return value
    if isinstance(value, dict):
        return {k: _render_params(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_params(v, params) for v in value]
    return value
