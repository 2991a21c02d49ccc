"""The `python` task kind: call a function from the workflow's folder, or run a few lines of code.

Decisions:
- `function: "module:func"` imports the module with the workflow folder first on `sys.path`, so a
  workflow's helpers sit beside its YAML (plait.tasks.workflow_modules: also when one process runs
  several workflows); the working directory is never changed, since threads share it.
- A batch node (one with a key) calls `func(item, **kwargs)`, a plain node `func(**kwargs)`; a
  function that has a parameter named `ctx` also gets the `TaskContext`. Whether it has one is
  looked up once per function, not once per node.
- `spread: true` spreads a mapping item into keyword arguments instead, `func(**item, **kwargs)`
  (Airflow's `expand_kwargs`; a `matrix` or `zip` item is such a mapping), and binds its fields
  as names for `code:`. A field also given in `kwargs` is an error rather than a silent choice.
- `kwargs` is a mapping, or one template that renders to a mapping (`"{{ item.options }}"`).
- `code:` is compiled once per process per source (and step name, which is its filename in
  tracebacks) and run in a fresh namespace holding the names a template sees plus `ctx`, and
  `kwargs` bound as names (rendered values, so code never needs a template inside it). It
  imports modules beside the workflow as `function:` does: the folder is on `sys.path`. The
  namespace shares the context's values rather than copying them: 10,000 nodes of
  `result = item` must each cost microseconds. The code's answer is whatever it binds to `result`.
- The source is registered with `linecache`, so a traceback through inline code shows its lines.
- A function's module is reloaded when its file changed since this process imported it: a
  long-lived process (the API in a notebook, a reused loky worker) must run the code that the
  node's fingerprint was computed from (plait.tasks.workflow_modules).
"""

from __future__ import annotations

import importlib
import inspect
import linecache
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any

from plait.tasks.base import Field, TaskContext, task
from plait.tasks.workflow_modules import fresh, use_folder

__all__ = ["FIELDS", "check_inputs", "run_python"]

_ONE_EXPRESSION = re.compile(r"^\{\{.*\}\}$", re.DOTALL)  # a lone template: it keeps its value's type

FIELDS = {
    "function": Field(types=(str,), render="value",
                      doc="'module:function' or 'package.module:function', beside the workflow or installed"),
    "code": Field(types=(str,), render="raw",
                  doc="Python statements; the names of a template are in scope, and `result` is the answer"),
    "kwargs": Field(types=(dict, str), render="value",
                    doc="keyword arguments passed to the function, or names bound for the code: a mapping, "
                        "or one template that gives one"),
    "spread": Field(types=(bool,), render="value",
                    doc="true: a batch item (a mapping) is spread into keyword arguments, function(**item)"),
}


def check_inputs(inputs: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Require exactly one of `function` and `code`, and `kwargs` as a mapping or one template."""
    given = [name for name in ("function", "code") if inputs.get(name) is not None]
    problems: list[tuple[str | None, str, str | None]] = []
    if not given:
        problems.append((None, "a 'python' task needs 'function' or 'code'",
                         "add `function: module:func` to call a function, or `code: |` with statements"))
    if len(given) == 2:
        problems.append(("code", "a 'python' task takes 'function' or 'code', not both", "keep one of them"))
    kwargs = inputs.get("kwargs")
    if isinstance(kwargs, str) and not _ONE_EXPRESSION.match(kwargs):
        problems.append(("kwargs", f"inputs.kwargs is text ({kwargs!r}), not a mapping",
                         "write a mapping (`kwargs: {size: 3}`), or one template that gives one "
                         "(`kwargs: \"{{ item.options }}\"`)"))
    return problems


@task("python", fields=FIELDS, check=check_inputs)
def run_python(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    """Call a Python function or run inline Python code; return its result."""
    kwargs = _kwargs(config, item)
    if config.get("code") is not None:
        return _run_code(config["code"], kwargs, item, ctx)
    func = _import_function(config["function"], ctx.workflow_dir)
    if _takes_ctx(func):
        kwargs["ctx"] = ctx
    if ctx.key is not None and not config.get("spread"):
        try:
            return func(item, **kwargs)
        except TypeError as err:
            raise _item_named_twice(err, config["function"], item) from None
    return func(**kwargs)


def _item_named_twice(err: TypeError, function: str, item: Any) -> TypeError:
    """Return `err`, with a hint when calling the function itself failed because a mapping item's field is also a
    keyword argument (`kwargs: "{{ item }}"`, Airflow's `expand_kwargs` written without `spread`)."""
    raised_by_the_call = err.__traceback__ is not None and err.__traceback__.tb_next is None
    if not (raised_by_the_call and isinstance(item, Mapping) and "multiple values for argument" in str(err)):
        return err
    return TypeError(f"{err}: a batch node calls {function}(item, **kwargs), so the item is its first argument; "
                     "with `spread: true` a mapping item's fields are the keyword arguments instead")


def _kwargs(config: Mapping[str, Any], item: Any) -> dict[str, Any]:
    """Return the keyword arguments: `kwargs` as rendered, and the item's fields when `spread` is set."""
    given = config.get("kwargs")
    if given is None:
        given = {}
    elif not isinstance(given, Mapping):
        raise TypeError(f"inputs.kwargs gave {type(given).__name__}, not a mapping of argument names")
    if not config.get("spread"):
        return dict(given)
    if not isinstance(item, Mapping):
        raise TypeError(f"spread: true needs a mapping item to spread into keyword arguments, not "
                        f"{type(item).__name__} {item!r}")
    both = sorted(set(item) & set(given))
    if both:
        raise TypeError(f"argument '{both[0]}' is both a field of the item and in inputs.kwargs; keep one")
    return {**item, **given}


def _import_function(spec: str, workflow_dir: Path) -> Callable[..., Any]:
    """Return the function named by 'module:func'; raise ImportError or AttributeError naming both."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name or ":" in func_name:
        raise ImportError(f"function '{spec}' is not of the form 'module:function'",
                          name=module_name or None)
    folder = use_folder(workflow_dir)
    try:
        module = fresh(importlib.import_module(module_name))
    except ModuleNotFoundError as err:
        raise ImportError(f"cannot import module '{module_name}' for function '{func_name}': {err}"
                          f" (looked in {folder} and sys.path)", name=module_name) from err
    try:
        func = getattr(module, func_name)
    except AttributeError as err:
        raise AttributeError(f"module '{module_name}' has no function '{func_name}'") from err
    if not callable(func):
        raise TypeError(f"'{func_name}' in module '{module_name}' is {type(func).__name__}, not a function")
    return func


@lru_cache(maxsize=1024)
def _takes_ctx(func: Callable[..., Any]) -> bool:
    """Return True when `func` has a parameter named `ctx`."""
    try:
        return "ctx" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


def _run_code(source: str, names: Mapping[str, Any] | None, item: Any, ctx: TaskContext) -> Any:
    """Run `source` in a fresh namespace, with `names` (kwargs) bound; return what it binds to `result`."""
    use_folder(ctx.workflow_dir)
    namespace = ctx.template_context(item)
    if names:
        namespace.update(names)
    namespace["ctx"] = ctx
    exec(_compile(source, f"<step {ctx.step}>"), namespace)
    return namespace.get("result")


@lru_cache(maxsize=1024)
def _compile(source: str, filename: str) -> CodeType:
    """Compile `source` once per process, and let tracebacks show its lines."""
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return code
