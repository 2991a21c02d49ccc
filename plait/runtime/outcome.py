"""Outcomes and the one error format: what a node attempt gives back, and when to retry it.

Every failure, whichever handler raised it and wherever in the runtime it happened, becomes one
record: `{success: false, error, error_type, item, node, attempt, retryable}`, plus `exit_code`
and `stderr_tail` when the exception carries them (a shell command). `retryable` is decided by
the node's retry policy: the exception's class or any base class named in `retry_on` (OSError
and TimeoutError by default), or an exit code in `retry_on_exit_codes`.
"""

from __future__ import annotations

import random
from typing import Any

from plait.compiler import RetryPolicy

__all__ = ["FAILED", "NOT_STARTED", "SKIPPED", "SUCCEEDED", "error_record", "is_retryable", "retry_delay"]

SUCCEEDED, FAILED, SKIPPED, NOT_STARTED = "succeeded", "failed", "skipped", "not_started"


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    """Return True when the policy says this exception is worth another attempt."""
    exit_code = getattr(exc, "exit_code", None)
    if exit_code is not None and exit_code in policy.retry_on_exit_codes:
        return True
    return any(cls.__name__ in policy.retry_on for cls in type(exc).__mro__)


def error_record(exc: BaseException, *, node: str, item: Any, attempt: int, policy: RetryPolicy) -> dict[str, Any]:
    """Return the one error record for an exception raised while running `node`."""
    record = {
        "success": False,
        "error": str(exc) or type(exc).__name__,
        "error_type": type(exc).__name__,
        "item": item,
        "node": node,
        "attempt": attempt,
        "retryable": is_retryable(policy, exc),
    }
    for extra in ("exit_code", "stderr_tail"):
        if getattr(exc, extra, None) is not None:
            record[extra] = getattr(exc, extra)
    return record


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Return the seconds to wait after failed attempt number `attempt` (1-based), with jitter."""
    base = min(policy.delay * policy.backoff ** (attempt - 1), policy.max_delay)
    return max(0.0, base * (1 + policy.jitter * rng.uniform(-1.0, 1.0)))
