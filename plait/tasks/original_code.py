"""The original engine's `python_code` and `python_function` (with positional `args`), as `python` functions.

`python_code` ran its code with the workspace as the current folder, so `open("out.txt")` wrote into
the workspace; it changed the whole process's folder around each run, on a lock, which serialised
every item and sent other threads' relative paths astray. plait never changes the folder of a process
whose threads share it. Decisions:
- Code that can touch a relative path (it calls `open`, `__import__`, or imports a module other than
  the pure ones in `_PURE`) runs in a child Python process started in the workspace: its own
  current folder, nothing shared. The names it sees go to the child as JSON, and its `result` comes
  back as JSON (a node's result must be JSON anyway); an exception comes back by type and message,
  and is raised again as the same built-in type (so `retry_on: [OSError]` still matches).
- Other code runs in the worker itself, as plait's own `code:` does: no process to start.
- The names are the original's: `args`, `env`, `steps`, `batch`, `context`, `workspace` (a `Path`,
  as the original gave it), the step's other inputs, and plait's `item` and `ctx` in-process.
  The code itself arrives rendered: the original rendered `{{ }}` inside code before running it.
- Its answer is `result` (or the variable named by `result_variable`); a missing one is an error.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import linecache
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any

from plait.compiler.plan import thaw
from plait.tasks.base import TaskContext
from plait.tasks.original import original_context

__all__ = ["call_function", "needs_own_folder", "python_code"]

_PURE = frozenset({
    "base64", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "heapq", "itertools", "json", "math", "operator", "random", "re", "statistics",
    "string", "textwrap", "time", "typing", "uuid",
})
_CHILD = r"""
import builtins, json, sys, traceback
from pathlib import Path
request = json.load(sys.stdin)
names = request["names"]
names["workspace"] = Path(names["workspace"])
out = {}
try:
    exec(compile(request["code"], request["filename"], "exec"), names)
    if request["result"] not in names:
        raise NameError(f"Result variable '{request['result']}' not found after code execution.")
    out["result"] = names[request["result"]] if request["result"] != "result" else names.get("result")
except BaseException as err:
    out["error"] = {"type": type(err).__name__, "message": str(err), "trace": traceback.format_exc()}
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(out, f, default=str)
"""


def needs_own_folder(code: str) -> bool:
    """Return True when `code` may open a path relative to the current folder (see the module's docstring)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "__import__"):
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] not in _PURE for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] not in _PURE):
            return True
    return False


def python_code(item: Any = None, *, code: str, ctx: TaskContext, names: Mapping[str, Any] | None = None,
                result_variable: str | None = None, name: str | None = None,
                error: Mapping[str, Any] | None = None) -> Any:
    """Run the original's python_code `code` (already rendered); return its `result`.

    `error` is what an error-flow target's context holds. A batch node gets its item first, as
    every `python` function does.
    """
    context = original_context(ctx, name, error)
    scope: dict[str, Any] = {"context": context, "args": context["args"], "env": context["env"],
                             "steps": context["steps"], "batch": context.get("batch", {}), "item": item,
                             "workspace": str(ctx.workspace), **thaw(names or {})}
    context["steps"] = scope["steps"]
    if "batch" in context and "item" not in scope["batch"]:
        scope["batch"] = {**scope["batch"], "item": item}
    wanted = result_variable or "result"
    filename = f"<step {ctx.step}>"
    if needs_own_folder(code):
        return _in_child(code, scope, wanted, filename, ctx)
    scope["workspace"] = Path(ctx.workspace)
    scope["ctx"] = ctx
    exec(_compile(code, filename), scope)
    if wanted != "result" and wanted not in scope:
        raise NameError(f"Result variable '{wanted}' not found after code execution.")
    return scope.get(wanted)


@lru_cache(maxsize=1024)
def _compile(source: str, filename: str) -> CodeType:
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return code


def _in_child(code: str, scope: dict[str, Any], wanted: str, filename: str, ctx: TaskContext) -> Any:
    """Run `code` in a child Python process whose current folder is the workspace; return its answer."""
    request = json.dumps({"code": code, "names": scope, "result": wanted, "filename": filename}, default=str)
    with tempfile.TemporaryDirectory(prefix="plait-code-") as tmp:
        answer = Path(tmp) / "answer.json"
        done = subprocess.run([sys.executable, "-c", _CHILD, str(answer)], input=request, text=True,
                              cwd=ctx.workspace, capture_output=True, timeout=ctx.timeout, check=False)
        if done.stdout:
            sys.stdout.write(done.stdout)
        if done.stderr:
            ctx.logger.warning(f"{ctx.node_id}: stderr of python_code:\n{done.stderr.rstrip()}")
        if not answer.exists():
            raise RuntimeError(f"python_code's process ended with exit code {done.returncode}: {done.stderr[-2000:]}")
        out = json.loads(answer.read_text(encoding="utf-8"))
    if "error" in out:
        error = out["error"]
        ctx.logger.debug(f"{ctx.node_id}: {error['trace']}")
        kind = getattr(builtins, error["type"], None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            try:
                raise kind(error["message"])
            except TypeError:
                pass
        raise RuntimeError(f"{error['type']}: {error['message']}")
    return out.get("result")


def call_function(item: Any = None, *, module: str, function: str, ctx: TaskContext, args: list | None = None,
                  kwargs: Mapping[str, Any] | None = None) -> Any:
    """Call `module.function(*args, **kwargs)`, the module looked up beside the workflow first."""
    folder = str(ctx.workflow_dir)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        func = getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"Module '{module}' not found") from err
    except AttributeError as err:
        raise AttributeError(f"Function '{function}' not found in module '{module}'") from err
    return func(*(args or []), **(kwargs or {}))
