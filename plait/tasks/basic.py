"""The `noop` and `echo` task kinds: steps that do nothing but pass values on.

Decisions:
- `noop` takes any inputs and returns them rendered, so a step can gather values for later steps
  or hold a place in a workflow being sketched. `should_fail: true` makes it fail on purpose, to
  try out retries and `on_error` without writing code (the original engine's `noop` did the same).
- `echo` returns its `message` and logs it at info level, one line for the node; the message is
  the result, so later steps can read it as `steps.X.result`.
"""

from __future__ import annotations

from typing import Any

from plait.tasks.base import Field, TaskContext, task

__all__ = ["ECHO_FIELDS", "run_echo", "run_noop"]

ECHO_FIELDS = {"message": Field(types=(object,), required=True, doc="the value to log and return")}


@task("noop")
def run_noop(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    """Return the rendered inputs; fail on purpose when `should_fail` is true."""
    if config.get("should_fail") is True:
        raise RuntimeError("Task failed as requested (should_fail: true)")
    return dict(config)


@task("echo", fields=ECHO_FIELDS)
def run_echo(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    """Log `message` and return it."""
    ctx.logger.info(f"{ctx.node_id}: {config['message']}")
    return config["message"]
