"""Field tables for every kind of mapping in a workflow file, and the one checker that applies them.

One table per kind (doit's `valid_attr`): the workflow, a step, `defaults`, a retry policy, a
parameter. Task kinds bring their own tables for `inputs` (`plait.tasks`), checked by the same
function. Unknown keys are rejected where they stand, with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.compiler.diagnostics import Diagnostic, did_you_mean
from plait.compiler.loader import YamlMap
from plait.compiler.on_error import ON_ERROR
from plait.tasks.base import Field

__all__ = [
    "DEFAULTS_FIELDS",
    "GROUP_BY_FIELDS",
    "PARAM_FIELDS",
    "RETRY_FIELDS",
    "STEP_FIELDS",
    "WORKFLOW_FIELDS",
    "check_fields",
    "describe_type",
]

_NUMBER = (int, float)

WORKFLOW_FIELDS: dict[str, Field] = {
    "name": Field((str,), required=True, doc="the workflow's name: letters, digits, - and _"),
    "description": Field((str,)),
    "params": Field((dict,)),
    "defaults": Field((dict,)),
    "steps": Field((list,), required=True),
}

STEP_FIELDS: dict[str, Field] = {
    "name": Field((str,), required=True),
    "task": Field((str,), required=True),
    "description": Field((str,)),
    "inputs": Field((dict,)),
    "depends_on": Field((list, str)),
    "after": Field((list, str)),
    "items": Field((list, dict, str)),
    "iterate_over": Field((list, dict, str)),
    "key": Field((str,)),
    "for_each": Field((str,)),
    "group_by": Field((dict,), doc="`group_by: {step: STEP, key: TEMPLATE}`"),
    "condition": Field((str, bool)),
    "retry": Field((dict,)),
    "timeout": Field(_NUMBER),
    "on_error": Field((str,)),  # fail, continue, or a template: checked by plait.compiler.policy
    "error_message": Field((str,), doc="words of your own for a failure, a template that also sees `error` (the "
                                       "error record): `error_message: \"no price for {{ item }}: "
                                       "{{ error.error }}\"`"),
    "max_failures": Field((int, str)),
    "allow_empty": Field((bool,)),
    "input_files": Field((list, str), doc="files each node reads, relative to the workflow's folder: "
                                          "`input_files: [data/reference.csv]`"),
    "output_files": Field((list, str), doc="files each node writes, relative to the workspace: "
                                           "`output_files: [\"out/{{ item }}.txt\"]`"),
    "code_changes": Field((str,), doc="rerun (the default) or ignore"),  # checked by plait.compiler.tracking
    "max_parallel": Field((int,), doc="how many of the step's nodes may run at once, 1 or more"),
}

DEFAULTS_FIELDS: dict[str, Field] = {
    "retry": Field((dict,)),
    "timeout": Field(_NUMBER),
    "on_error": Field((str,), choices=ON_ERROR),
}

GROUP_BY_FIELDS: dict[str, Field] = {
    "step": Field((str,), required=True, doc="the step whose items are grouped"),
    "key": Field((str,), required=True, doc="a template giving each item's group, e.g. \"{{ item.sample }}\""),
}

RETRY_FIELDS: dict[str, Field] = {
    "max_attempts": Field((int,), doc="1 or more"),
    "delay": Field(_NUMBER, doc="seconds before the 2nd attempt"),
    "backoff": Field(_NUMBER, doc="factor applied to the delay after each attempt"),
    "max_delay": Field(_NUMBER),
    "jitter": Field(_NUMBER, doc="a fraction of the delay, from 0 to 1"),
    "retry_on": Field((list,), doc="exception names"),
    "retry_on_exit_codes": Field((list,), doc="shell exit codes"),
}

PARAM_FIELDS: dict[str, Field] = {
    "type": Field((str,)),
    "default": Field((object,)),
    "description": Field((str,)),
    "choices": Field((list,)),
    "required": Field((bool,)),
    "secret": Field((bool,), doc="true: the value reaches the tasks, and is shown as *** in every output"),
}

_TYPE_NAMES = {str: "text", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping", object: "any value"}


def describe_type(types: tuple[type, ...]) -> str:
    """Return "an integer or text" for (int, str)."""
    names = [_TYPE_NAMES.get(t, t.__name__) for t in types if not (t is int and float in types)]
    return " or ".join(dict.fromkeys(names))


def is_type(value: Any, types: tuple[type, ...]) -> bool:
    """Return True when `value` is one of `types` (a bool is not an integer or a number here)."""
    if isinstance(value, bool):
        return bool in types or object in types
    return isinstance(value, types)


def check_fields(mapping: YamlMap, table: Mapping[str, Field], what: str) -> list[Diagnostic]:
    """Check `mapping` against `table`: unknown keys, missing required ones, wrong types, bad choices."""
    errors = []
    for key in mapping:
        if key not in table:
            hint = did_you_mean(key, table) or f"{what} accepts: {', '.join(table)}"
            errors.append(Diagnostic(mapping.key_locs[key], f"unknown key '{key}' in {what}", hint))
            continue
        spec, value = table[key], mapping[key]
        if value is None and not spec.required:
            continue
        if not is_type(value, spec.types):
            errors.append(Diagnostic(
                mapping.value_locs[key],
                f"'{key}' in {what} must be {describe_type(spec.types)}, not {_shown(value)}",
                spec.doc or None,
            ))
        elif spec.choices and value not in spec.choices:
            hint = did_you_mean(str(value), [str(c) for c in spec.choices])
            allowed = ", ".join(str(c) for c in spec.choices)
            errors.append(Diagnostic(mapping.value_locs[key],
                                     f"'{key}' in {what} must be one of {allowed}, not '{value}'", hint))
    for key, spec in table.items():
        if spec.required and mapping.get(key) is None:
            errors.append(Diagnostic(mapping.loc, f"'{key}' is required in {what}",
                                     f"add `{key}:`" + (f" ({spec.doc})" if spec.doc else "")))
    return errors


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "a list" if isinstance(value, list) else "a mapping"
    return repr(value)
