"""A step's run policy: its retry policy, per-attempt timeout, `on_error` and failure budget.

`defaults:` gives every step a policy; a step's own keys override it key by key (a step's
`retry: {max_attempts: 5}` keeps the defaults' delay). The defaults' own values are checked once
by the compiler (which leaves a bad `defaults.retry` out of what the steps see), a step's here,
each error at the value that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.compiler.diagnostics import Diagnostic, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.loader import YamlMap
from plait.compiler.on_error import ON_ERROR, resolve_on_error
from plait.compiler.plan import RetryPolicy
from plait.compiler.schema import RETRY_FIELDS, check_fields
from plait.templating import PARAM_NAMES, TemplateError, analyze, has_template, template_context

__all__ = ["check_policy", "check_retry_values"]


def check_policy(draft: StepDraft, raw: YamlMap, defaults: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                 workflow_dir: Any = None) -> list[Diagnostic]:
    """Check and set the step's retry policy, timeout, on_error and budget; return the errors."""
    errors: list[Diagnostic] = []
    retry_values: dict[str, Any] = {}
    own = raw.get("retry") if isinstance(raw.get("retry"), YamlMap) else None
    for source in (defaults.get("retry"), own):
        if isinstance(source, YamlMap):
            retry_values.update({k: v for k, v in source.items() if k in RETRY_FIELDS and v is not None})
    if own is not None:  # defaults' own values are checked once, by the compiler
        errors += check_fields(own, RETRY_FIELDS, "a retry policy")
        errors += check_retry_values({k: v for k, v in own.items() if k in RETRY_FIELDS and v is not None}, own)
    if not errors:  # defaults.retry comes checked: the compiler leaves out a bad one
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
    errors += _check_on_error(draft, raw, defaults, params or {}, workflow_dir)
    budget = raw.get("max_failures")
    if budget is not None:
        draft.max_failures, problem = _parse_budget(budget)
        if problem:
            errors.append(Diagnostic(raw.value_locs["max_failures"], f"step '{draft.name}': {problem}",
                                     "write a count (`max_failures: 3`) or a percentage (`max_failures: 5%`)"))
    return errors


def _check_on_error(draft: StepDraft, raw: YamlMap, defaults: Mapping[str, Any], params: Mapping[str, Any],
                    workflow_dir: Any) -> list[Diagnostic]:
    """Set `on_error`: a choice, a template rendered now (params only), or one kept for each failing node."""
    fallback = defaults.get("on_error") if defaults.get("on_error") in ON_ERROR else "fail"
    draft.on_error = fallback
    value = raw.get("on_error")
    if not isinstance(value, str):
        return []  # absent, or of a wrong type that check_fields reports
    where = raw.value_locs["on_error"]
    if not has_template(value):
        if value in ON_ERROR:
            draft.on_error = value
            return []
        return [Diagnostic(where, f"'on_error' in step '{draft.name}' must be one of fail, continue, not '{value}'",
                           did_you_mean(value, ON_ERROR) or "write fail or continue, or a template giving one, e.g. "
                           "\"{{ item.experimental }}\" (true: continue)")]
    try:
        refs = analyze(value)
    except TemplateError:
        return []  # reported by check_templates
    if not refs.names <= PARAM_NAMES:
        draft.on_error_template = value  # rendered for each node that fails
        return []
    if not refs.params <= set(params):
        return []  # an unknown parameter (reported by check_templates), or one without a valid value
    decided, problem = resolve_on_error(value, template_context(params, workflow_dir=workflow_dir), fallback)
    if problem:
        return [Diagnostic(where, f"step '{draft.name}': {problem}",
                           "on_error gives fail or continue, or true (continue) or false (fail)")]
    draft.on_error = decided
    return []


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
