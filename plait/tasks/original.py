"""The original engine's task kinds that plait has no kind of its own for, called through one `python` step.

A step of the original dialect whose kind is one of these (or a kind registered with the original's
`register_task` decorator) is translated into `task: python` with
`function: plait.tasks.original:run_task` and `kwargs: {task: KIND, step: NAME, inputs: {...}}`, so
plait renders, retries, records and resumes it like any node, and the handler gets what the
original's handler got.

Decisions:
- `register_task` here is the original's decorator, with the same mapping of inputs to a
  function's parameters: a parameter named like an input gets it; `*strings` takes the input
  named `strings`; `**kwargs` takes what is left; a parameter named `context` gets the
  original's context mapping; one annotated with the original's `TaskConfig` gets a TaskConfig.
  The original's demonstration kinds (`fail`, `hello_world`, `add_numbers`, `join_strings`,
  `create_greeting`) are registered here with the original's signatures and results.
- A kind not registered here is looked up in the original's own registry when the original
  (`yaml_workflow`) is installed: a module that registers with `from yaml_workflow.tasks import
  register_task`, or a plugin under its `yaml_workflow.tasks` entry points (which its import
  loads), runs unchanged. Its handler gets the original's own `TaskConfig`.
- A kind the user registered (with either decorator, from a module that is neither plait's nor the
  original's) comes first, as it did in the original: it replaces a kind of the same name, even
  one plait runs with its own (`echo`, `notify`).
- Every backend sees a registered kind. The translation names the module that registered it
  (`module`), and a node in another process (loky, Dask) imports that module when the kind is not
  registered there yet. A kind registered inside a function (a test, a notebook cell) exists in its
  own process only: its nodes need `--backend threading` or `sequential`, and say so.
- `context` is rebuilt from the node's `TaskContext` in the original's shape: `args`, `env`,
  `steps` (the steps this node reads), `workspace`, `workflow_name`, `run_number` (the run's count in its
  workspace),
  `timestamp` (the run's start time, ISO 8601), and, in a step that an `on_error.next` names,
  `error` (`{step, message}` of the failure that jumped there, None when nothing failed).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, Template

from plait.compiler.plan import thaw
from plait.tasks.base import TaskContext, say

__all__ = ["REGISTRY", "find_task", "original_context", "register_task", "run_task", "user_module"]

REGISTRY: dict[str, Callable[..., Any]] = {}


def register_task(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as task kind `name` (default: its own name), as the original did."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[name or func.__name__] = func
        return func

    return register


def find_task(kind: str) -> Callable[..., Any] | None:
    """Return the handler of `kind`: the user's own first, then plait's, then the original's (see the docstring)."""
    ours = REGISTRY.get(kind)
    theirs = _original_registry(kind)
    for handler in (ours, theirs):
        if handler is not None and user_module(handler) is not None:
            return handler
    return ours or theirs


def user_module(handler: Callable[..., Any]) -> str | None:
    """Return the module that defines `handler` when it is the user's (not plait's, not the original's), else None."""
    module = getattr(handler, "__module__", None) or ""
    return None if module.split(".")[0] in ("plait", "yaml_workflow") else module


def _original_registry(kind: str) -> Callable[..., Any] | None:
    if importlib.util.find_spec("yaml_workflow") is None:
        return None
    from yaml_workflow.tasks import get_task_handler  # loads the original's plugins too

    return get_task_handler(kind)


def run_task(item: Any = None, *, task: str, ctx: TaskContext, inputs: Mapping[str, Any] | None = None,
             step: str | None = None, name: str | None = None, module: str | None = None,
             error: Mapping[str, Any] | None = None) -> Any:
    """Run the original engine's task kind `task` on rendered `inputs`; return its result.

    `module` defines the kind, for a node in a process that has not imported it; `error` is what
    an error-flow target's context holds. A batch node gets its item first, as every `python`
    function does; the inputs already hold it.
    """
    handler = find_task(task)
    if handler is None and module and module != "__main__":
        importlib.import_module(module)
        handler = find_task(task)
    if handler is None:
        where = f" (registered by {module} in another process: run the workflow with --backend threading, or " \
                "register it at the top level of an importable module)" if module else \
                " (register it with register_task, from yaml_workflow.tasks or plait.tasks.original, in a module " \
                "this process imports)"
        raise ValueError(f"Unknown task type: '{task}'{where}")
    inputs = thaw(inputs or {})
    context = original_context(ctx, name, error)
    if task not in REGISTRY or REGISTRY[task] is not handler:  # the original's own wrapper, which takes a TaskConfig
        from yaml_workflow.tasks.config import TaskConfig

        config = TaskConfig({"name": step or ctx.step, "task": task, "inputs": inputs}, context, ctx.workspace)
        config.processed_inputs = inputs  # already rendered by plait
        return handler(config)
    return call_mapped(handler, inputs, context, ctx)


def call_mapped(func: Callable[..., Any], inputs: dict[str, Any], context: dict[str, Any], ctx: TaskContext) -> Any:
    """Call `func` with `inputs` mapped onto its parameters the way the original's `register_task` did."""
    params = inspect.signature(func).parameters
    kwargs: dict[str, Any] = {}
    positional: list[Any] = []
    left = dict(inputs)
    rest: str | None = None
    for pname, param in params.items():
        if pname == "context":
            kwargs[pname] = context
        elif pname == "ctx":
            kwargs[pname] = ctx
        elif param.kind == param.VAR_POSITIONAL:
            value = left.pop(pname, [])
            positional = list(value) if isinstance(value, (list, tuple)) else [value]
        elif param.kind == param.VAR_KEYWORD:
            rest = pname
        elif pname in left:
            kwargs[pname] = left.pop(pname)
        elif param.default is inspect.Parameter.empty:
            raise ValueError(f"Missing required parameter: {pname}")
    if rest is not None:
        kwargs.update(left)
    return func(*positional, **kwargs)


def original_context(ctx: TaskContext, name: str | None = None,
                     error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the original engine's context mapping for this node (see the module's docstring)."""
    workspace = str(ctx.workspace)
    stamp = _run_start(ctx.run_id)
    workflow = {"name": name, "workspace": workspace, "run_number": ctx.run_number, "timestamp": stamp}
    context: dict[str, Any] = {"args": thaw(ctx.params), "env": dict(os.environ), "steps": thaw(ctx.steps),
                               "workspace": workspace, "workflow_name": name, "run_number": ctx.run_number,
                               "timestamp": stamp, "workflow": workflow, "error": thaw(error)}
    if ctx.total is not None:
        context["batch"] = {"index": ctx.index, "total": ctx.total, "name": ctx.step}
    return context


def _run_start(run_id: str) -> str:
    """Return the start time that `run_id` begins with (`20261124T211809-...`), in ISO 8601."""
    try:
        return datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S").isoformat()
    except ValueError:
        return run_id


# --- the original's demonstration kinds, with its signatures and results ---------------------------

@register_task()
def fail(message: str = "Task failed") -> None:
    """Fail on purpose with `message`."""
    raise RuntimeError(message)


@register_task()
def hello_world(name: str = "World") -> str:
    """Return a greeting."""
    return f"Hello, {name}!"


@register_task()
def add_numbers(a: float, b: float) -> float:
    """Return a + b."""
    return a + b


@register_task()
def join_strings(*strings: str, separator: str = " ") -> str:
    """Return the strings joined by `separator`."""
    return separator.join(strings)


@register_task()
def create_greeting(name: str, context: dict[str, Any]) -> str:
    """Return 'Hello NAME!', rendered as a template over the context as the original did."""
    return Template("Hello {{ name }}!", undefined=StrictUndefined).render(**{**context, "name": name})


@register_task()
def print_message(message: str = "") -> dict[str, Any]:
    """Print `message` on standard output (the original's print_message)."""
    text = str(message)
    say(text)
    return {"success": True, "printed_length": len(text)}


@register_task()
def print_vars(context: dict[str, Any], message: str = "Current Context Variables:") -> dict[str, Any]:
    """Print the context's names on standard output, for debugging, as the original did."""
    lines = [f"\n--- {message} ---", "Workflow Variables:", "==================",
             *(f"{key}: {context.get(key)}" for key in ("args", "workflow_name", "workspace", "output",
                                                        "run_number", "timestamp")),
             "\nStep Results:", "============="]
    steps = context.get("steps") or {}
    lines += [f"  {name}: {value}" for name, value in steps.items()] or ["  (No step results yet)"]
    say("\n".join([*lines, "--------------------\n"]))
    return {"success": True}



from plait.tasks import original_io  # noqa: E402, F401  (registers http.request and notify)
