"""`on_error` as a template: what a node's own failure does, decided per node (GitHub's `continue-on-error`).

A step's `on_error` is `fail`, `continue`, or a template. A template that reads only params is
rendered once, at compile time; one that reads the node's names (`item`, `group`, `parent`,
`steps`, ...) is kept in the plan (`StepSpec.on_error_template`) and rendered where the node
failed, in the worker, with the node's own template names: only a failing node pays for it. The
answer travels in the node's error record (`on_error`: `fail` or `continue`), so the parent
judges the failure by what was decided for that node, and the step's `on_error` is only the
fallback (`fail` unless `defaults:` says otherwise).

The template may give `fail` or `continue`, or a boolean as GitHub's `continue-on-error` does
(true: continue). Anything else, or a template that fails to render, means the fallback, and
the record says why (`on_error_note`).

A step's `error_message` is the failure in the user's own words: rendered in the worker when a
node fails, with the node's names and `error` (its error record), into the record's `message`.
The record's `error` stays the exception's own text, which is what retries, `retry_on` and the
error flows read. A message that cannot render is the error's own text and why (the words "failed
to format custom message" are the original engine's, where its users would search for them).

This module imports only the templating module: a worker process loads it without the rest of
the compiler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.templating import RENDER_ERRORS, render

__all__ = ["ON_ERROR", "error_message", "resolve_on_error"]

ON_ERROR = ("fail", "continue")


def resolve_on_error(template: str, context: Mapping[str, Any], fallback: str = "fail") -> tuple[str, str | None]:
    """Render an `on_error` template; return (fail | continue, None) or (the fallback, why it was used).

    The runtime puts the first in the error record as `on_error`, and the second, when there is
    one, as `on_error_note`.
    """
    try:
        value = render(template, context)
    except RENDER_ERRORS as err:
        return fallback, f"on_error did not render ({type(err).__name__}: {err})"
    if isinstance(value, bool):
        return ("continue" if value else "fail"), None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ON_ERROR:
            return text, None
        if text in ("true", "false"):
            return ("continue" if text == "true" else "fail"), None
    return fallback, f"on_error gave {value!r}, not fail, continue, true or false"


def error_message(template: str, context: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """Render a step's `error_message` for a failed node whose error record is `record`; never raises."""
    try:
        value = render(template, {**context, "error": record})
    except RENDER_ERRORS as err:
        return f"{record.get('error')} (failed to format custom message: {type(err).__name__}: {err})"
    return value if isinstance(value, str) else str(value)
