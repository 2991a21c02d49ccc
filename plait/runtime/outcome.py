"""Outcomes and the one error format: what a node attempt gives back, and when to retry it.

Every failure, whichever handler raised it and wherever in the runtime it happened, becomes one
record: `{success: false, error, error_type, item, node, attempt, retryable}`, plus `exit_code`
and `stderr_tail` when the exception carries them (a shell command), and `traceback` and `where`
(the file and line that raised) when the user's own code is on the stack: the frames of plait,
the standard library and installed packages are left out of it, and it keeps its last
`TRACEBACK_CHARS` characters. `retryable` is decided by
the node's retry policy: the exception's class or any base class named in `retry_on` (OSError
and TimeoutError by default), or an exit code in `retry_on_exit_codes`.

Anything a task raises is its node's failure, `BaseException` included (`sys.exit()`,
`KeyboardInterrupt` raised by the task's own code, `GeneratorExit`), so no task can end a run or
lose the outcomes of its neighbours: only `RunInterrupted`, which plait itself raises when a
second Ctrl-C asks the run to stop at once, goes through. The record is built so that it cannot
fail either: an exception whose `__str__` or attributes raise still gives a record.
"""

from __future__ import annotations

import os
import random
import site
import sys
import traceback
from pathlib import Path
from typing import Any

from plait.compiler import RetryPolicy
from plait.limits import TRACEBACK_CHARS

__all__ = ["FAILED", "NOT_STARTED", "SKIPPED", "SUCCEEDED", "RunInterrupted", "error_record", "is_retryable",
           "retry_delay"]

SUCCEEDED, FAILED, SKIPPED, NOT_STARTED = "succeeded", "failed", "skipped", "not_started"


class RunInterrupted(KeyboardInterrupt):
    """The run was told to stop at once (a second Ctrl-C or SIGTERM): not any node's failure."""


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    """Return True when the policy says this exception is worth another attempt."""
    exit_code = _attribute(exc, "exit_code")
    if exit_code is not None and exit_code in policy.retry_on_exit_codes:
        return True
    return any(cls.__name__ in policy.retry_on for cls in type(exc).__mro__)


def error_record(exc: BaseException, *, node: str, item: Any, attempt: int, policy: RetryPolicy) -> dict[str, Any]:
    """Return the one error record for an exception raised while running `node` (never raises for `exc`)."""
    record = {
        "success": False,
        "error": _message(exc),
        "error_type": type(exc).__name__,
        "item": item,
        "node": node,
        "attempt": attempt,
        "retryable": is_retryable(policy, exc),
    }
    for extra in ("exit_code", "stderr_tail"):
        value = _attribute(exc, extra)
        if value is not None:
            record[extra] = value
    text, where = _traceback(exc)
    if text is not None:
        record["traceback"], record["where"] = text, where
    return record


# Frames that are not the user's: plait's own, the standard library's and installed packages' (Jinja2 rendering
# a template, say). A traceback keeps the others: the user's modules and inline code.
_NOT_USERS = tuple({str(Path(__file__).resolve().parents[1]) + os.sep,
                    *(str(Path(p).resolve()) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}),
                    *(str(Path(p).resolve()) + os.sep for p in [*site.getsitepackages(), site.getusersitepackages()])})


def _users(filename: str) -> bool:
    """Say whether a frame's file is the user's: inline code (`<step X>`) or a file outside plait and Python."""
    if filename.startswith("<"):
        return filename.startswith("<step ")
    return not filename.startswith(_NOT_USERS)


def _traceback(exc: BaseException) -> tuple[str | None, str | None]:
    """Return (the traceback of the user's frames, "file:line" that raised), or (None, None) with no user frame."""
    try:
        summary = traceback.TracebackException.from_exception(exc)
        seen = set()
        link: traceback.TracebackException | None = summary
        while link is not None and id(link) not in seen:  # the exception and those it was raised from
            seen.add(id(link))
            link.stack = traceback.StackSummary.from_list(
                [frame for frame in link.stack if _users(frame.filename)])
            link = link.__cause__ or link.__context__
        if not summary.stack:
            return None, None
        last = summary.stack[-1]
        text = "".join(summary.format())
    except Exception:  # a traceback that cannot be formatted leaves the record without one
        return None, None
    if len(text) > TRACEBACK_CHARS:
        text = "… (earlier frames left out)\n" + text[-TRACEBACK_CHARS:]
    return text, f"{last.filename}:{last.lineno}"


def _message(exc: BaseException) -> str:
    """Return an exception's message, or its type's name when it has none or cannot give one."""
    try:
        text = str(exc)
    except Exception as err:  # a hostile or broken __str__
        return f"{type(exc).__name__} (its message could not be read: {type(err).__name__})"
    return text if isinstance(text, str) and text else type(exc).__name__


def _attribute(exc: BaseException, name: str) -> Any:
    """Return an attribute of an exception, or None when it has none or reading it fails."""
    try:
        return getattr(exc, name, None)
    except Exception:
        return None


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Return the seconds to wait after failed attempt number `attempt` (1-based), with jitter."""
    base = min(policy.delay * policy.backoff ** (attempt - 1), policy.max_delay)
    return max(0.0, base * (1 + policy.jitter * rng.uniform(-1.0, 1.0)))
