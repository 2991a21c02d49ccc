"""Tell a file written for the original engine from a native plait file.

A file is read as the original dialect when it has one thing a native file cannot have: the
top-level keys `settings`, `flows`, `imports` or `secrets`; steps given as a mapping; a step whose
task is one of the original's kinds (`python_code`, `read_file`, ...) or a kind plait does not
have that the original's `register_task` registered in this process (or a plugin did); an
`on_error` mapping or a number as a step's `retry`; or a parameter with the original's schema
keys, or declared with only `required` and `description` (plait's own reading takes a mapping
without `type` or `default` as the parameter's value). A file with something only plait has
(`defaults`, a step's `after`, `items`, `for_each`, `key`, `max_failures` or retry policy, the
kinds `python` and `file`) is native. A file with neither is read as the original's where
plait's own reading would refuse it or change what it does: it has no `name`, a name plait does
not allow (`Hello World`), or two steps or more that the list orders and no `depends_on` does
(the original ran them one after the other; plait would run them at once). Otherwise it is
native: the two readings run it the same way. The original's `task: batch` form alone does not
make a file the original's: plait's own format accepts it (with `arg_name` or `steps` in its
inputs, it does).
"""

from __future__ import annotations

import re
from typing import Any

from plait.compiler.loader import YamlMap

__all__ = ["ORIGINAL_KINDS", "is_marked", "is_original", "read_by_order"]

ORIGINAL_KINDS = frozenset({
    "python_code", "python_function", "python_module", "python_script",
    "read_file", "write_file", "append_file", "copy_file", "move_file", "delete_file",
    "read_json", "write_json", "read_yaml", "write_yaml", "print_message", "print_vars",
    "http.request", "notify", "hello_world", "add_numbers", "join_strings", "fail", "create_greeting",
})
_TOP_MARKERS = ("settings", "flows", "imports", "secrets")
_NATIVE_TOP = ("defaults",)
_NATIVE_STEP = ("after", "items", "iterate_over", "key", "for_each", "max_failures")
_NATIVE_KINDS = ("python", "file")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PARAM_MARKERS = ("allowedValues", "enum", "minLength", "maxLength", "minItems", "maxItems", "pattern")


def is_original(doc: Any) -> bool:
    """Return True when the loaded workflow is written in the original engine's dialect."""
    if not isinstance(doc, YamlMap):
        return False
    return is_marked(doc) or (not _native(doc) and bool(read_by_order(doc)))


def is_marked(doc: YamlMap) -> bool:
    """Return True when the file has something only the original's form has (see the module's docstring)."""
    if any(key in doc for key in _TOP_MARKERS) or isinstance(doc.get("steps"), YamlMap):
        return True
    params = doc.get("params")
    if isinstance(params, dict) and any(isinstance(p, dict) and (any(k in p for k in _PARAM_MARKERS) or _bare(p))
                                        for p in params.values()):
        return True
    steps = doc.get("steps")
    return isinstance(steps, list) and any(_original_step(step) for step in steps)


def read_by_order(doc: YamlMap) -> list[str]:
    """Return why a file with nothing of either form is read as the original's (nothing: it is not).

    The reasons are the ones `is_original` weighs last: the file has no `name`, a name plait
    refuses, or steps that only the list orders; each is a phrase for a note.
    """
    reasons = []
    name = doc.get("name")
    if name is None:
        reasons.append("it has no `name`")
    elif isinstance(name, str) and not _NAME.match(name):
        reasons.append(f"its name '{name}' is not a plait name")
    steps = doc.get("steps")
    listed = [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []
    if len(listed) > 1 and any("depends_on" not in s for s in listed[1:]):
        reasons.append("its steps have no `depends_on`")
    return reasons


def _bare(param: dict) -> bool:
    """Return True for a declaration of only `required`/`description`: plait's reading takes it as the value."""
    return bool(param) and set(param) <= {"required", "description"}


def _native(doc: YamlMap) -> bool:
    """Return True when the file has something only plait's own format has."""
    if any(key in doc for key in _NATIVE_TOP):
        return True
    steps = doc.get("steps") if isinstance(doc.get("steps"), list) else []
    return any(isinstance(step, dict) and (any(key in step for key in _NATIVE_STEP) or step.get("task") in _NATIVE_KINDS
                                           or isinstance(step.get("retry"), dict)) for step in steps)


def _original_step(step: Any) -> bool:
    if not isinstance(step, dict):
        return False
    task, inputs = step.get("task"), step.get("inputs")
    if task == "batch" and isinstance(inputs, dict) and ("steps" in inputs or "arg_name" in inputs):
        return True  # the original's batch, with what plait's own `task: batch` does not take
    return ((isinstance(task, str) and (task in ORIGINAL_KINDS or _registered_there(task)))
            or isinstance(step.get("on_error"), dict)
            or (isinstance(step.get("retry"), int) and not isinstance(step.get("retry"), bool)))


def _registered_there(task: str) -> bool:
    """Return True for a kind plait does not have that the original's `register_task` (or plugins) registered."""
    from plait.tasks.base import get_kind
    from plait.tasks.original import find_task

    return get_kind(task) is None and find_task(task) is not None
