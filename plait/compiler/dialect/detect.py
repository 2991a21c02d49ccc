"""Tell a file written for the original engine from a native plait file.

A file is read as the original dialect when it has one thing a native file cannot have: the
top-level keys `settings`, `flows`, `imports` or `secrets`; steps given as a mapping; a step whose
task is one of the original's kinds (`python_code`, `read_file`, ...); an `on_error`
mapping or a number as a step's `retry`; or a parameter with the original's schema keys. A file
with none of these is native: its steps run in dependency order, not in list order (`plait
migrate` reads any file as the original's, to write list order out as `after:`). The original's
`task: batch` form alone does not make a file the original's: plait's own format accepts it
(with `arg_name` or `steps` in its inputs, it does).
"""

from __future__ import annotations

from typing import Any

from plait.compiler.loader import YamlMap

__all__ = ["ORIGINAL_KINDS", "is_original"]

ORIGINAL_KINDS = frozenset({
    "python_code", "python_function", "python_module", "python_script",
    "read_file", "write_file", "append_file", "copy_file", "move_file", "delete_file",
    "read_json", "write_json", "read_yaml", "write_yaml", "print_message", "print_vars",
    "http.request", "notify", "hello_world", "add_numbers", "join_strings", "fail", "create_greeting",
})
_TOP_MARKERS = ("settings", "flows", "imports", "secrets")
_PARAM_MARKERS = ("allowedValues", "enum", "minLength", "maxLength", "minItems", "maxItems", "pattern")


def is_original(doc: Any) -> bool:
    """Return True when the loaded workflow is written in the original engine's dialect."""
    if not isinstance(doc, YamlMap):
        return False
    if any(key in doc for key in _TOP_MARKERS) or isinstance(doc.get("steps"), YamlMap):
        return True
    params = doc.get("params")
    if isinstance(params, dict) and any(isinstance(p, dict) and any(k in p for k in _PARAM_MARKERS)
                                        for p in params.values()):
        return True
    steps = doc.get("steps")
    return isinstance(steps, list) and any(_original_step(step) for step in steps)


def _original_step(step: Any) -> bool:
    if not isinstance(step, dict):
        return False
    task, inputs = step.get("task"), step.get("inputs")
    if task == "batch" and isinstance(inputs, dict) and ("steps" in inputs or "arg_name" in inputs):
        return True  # the original's batch, with what plait's own `task: batch` does not take
    return ((isinstance(task, str) and task in ORIGINAL_KINDS) or isinstance(step.get("on_error"), dict)
            or (isinstance(step.get("retry"), int) and not isinstance(step.get("retry"), bool)))
