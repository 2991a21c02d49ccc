"""Jinja2 templates in a sandbox, shared by the compiler (analysis, params) and the runtime (per node).

Decisions:
- Every template renders in a `SandboxedEnvironment` with `StrictUndefined`: a template cannot
  reach Python internals (`''.__class__` is refused) and a misspelt name is an error, not "".
- A string that is one expression and nothing else, not even white space
  (`"{{ steps.list.result }}"`), renders to the expression's own value, so a list stays a list
  and a number stays a number. Any other template renders to text. (Jinja's NativeEnvironment
  would instead `literal_eval` the text, turning the string "007" into 7.)
- Strings that hold no `{{` or `{%` are returned as they are, without Jinja: most values in a big
  workflow are plain, and this is the hot path.
- Shell commands render in a second environment whose every `{{ … }}` output is shell-quoted
  (a list becomes several quoted words, a mapping one word of JSON), so an item value can never
  become shell syntax.
- Compiled templates are cached per process by their source, so a step's template is compiled
  once, however many nodes render it.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "ENVIRONMENT",
    "ITEM_NAMES",
    "PARAM_NAMES",
    "RENDER_ERRORS",
    "RUNTIME_NAMES",
    "TEMPLATE_NAMES",
    "TemplateError",
    "TemplateRefs",
    "TemplateSyntaxError",
    "analyze",
    "has_template",
    "render",
    "render_shell",
    "render_text",
    "render_value",
    "template_context",
]

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>.*)\}\}$", re.DOTALL)


def has_template(value: Any) -> bool:
    """Return True when `value` is a string with Jinja syntax in it."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str)


# What rendering a template can raise besides TemplateError: a template is user code, and its
# expressions fail the ordinary ways (`{{ 1 / 0 }}`, `{{ 'a' + 1 }}`, a sandboxed range too long).
RENDER_ERRORS = (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, MemoryError, RecursionError)

MAX_SIZE = 10_000_000  # the longest string or list `*` may build, and about the most digits `**` may


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, with `*` and `**` bounded: `{{ 'x' * 10**10 }}` or `{{ 9 ** 9 ** 9 }}` is refused, not run."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_SIZE:
                    raise SecurityError(f"a template tried to build a value of {len(seq) * count:,} items")
        elif isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(left) > 1 and right > 0:
            digits = right * math.log10(abs(left))
            if digits > MAX_SIZE:
                raise SecurityError(f"a template tried to compute a number of about {digits:,.0f} digits")
        return super().call_binop(context, operator, left, right)


def _make_env(finalize: Any = None) -> SandboxedEnvironment:
    env = _BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                          finalize=finalize)
    env.filters.update(
        basename=posixpath.basename,
        dirname=posixpath.dirname,
        stem=lambda p: posixpath.splitext(posixpath.basename(p))[0],
        suffix=lambda p: posixpath.splitext(p)[1],
        tojson=_to_json,
        shell_quote=lambda v: shlex.quote(str(v)),
    )
    return env


def _shell_quote(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_shell_quote(v) for v in value)
    if isinstance(value, Mapping):
        return shlex.quote(json.dumps(value, default=str))
    return shlex.quote("" if value is None else str(value))


_ENV = _make_env()
_TRIMMED_ENV = _ENV.overlay(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
_SHELL_ENV = _make_env(finalize=_shell_quote)


@lru_cache(maxsize=4096)
def _compiled(source: str, shell: bool) -> Any:
    env = _SHELL_ENV if shell else _ENV
    match = _SINGLE_EXPRESSION.match(source)
    if not shell and match and "{{" not in match["expr"] and "}}" not in match["expr"]:
        return True, env.compile_expression(match["expr"], undefined_to_none=False)
    return False, env.from_string(source)


def render(source: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; a lone `{{ expr }}` keeps the expression's type.

    Raises jinja2's `TemplateError` (syntax, undefined name, sandbox refusal).
    """
    if not has_template(source):
        return source
    is_expression, compiled = _compiled(source, False)
    if not is_expression:
        return compiled.render(context)
    value = compiled(**context)
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def render_text(source: str, context: Mapping[str, Any], *, trim: bool = False) -> str:
    """Render a template to text, always (a template file's body, where types do not apply).

    `trim` renders with Jinja's `trim_blocks` and `lstrip_blocks` and drops the final line break,
    as the original engine rendered its templates: a `{% for %}` line leaves no blank line.
    """
    if not trim and not has_template(source):
        return source
    return _text_template(source, trim).render(context)


@lru_cache(maxsize=256)
def _text_template(source: str, trim: bool) -> Any:
    return (_TRIMMED_ENV if trim else _ENV).from_string(source)


def render_shell(source: str, context: Mapping[str, Any]) -> str:
    """Render a shell command, quoting every substituted value."""
    if not has_template(source):
        return source
    return _compiled(source, True)[1].render(context)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside a (nested) value; containers come back as fresh dicts/lists."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(v, context) for v in value]
    return value


# The process's environment, read-only and live: `{{ env.HOME }}` reads it when the node renders.
ENVIRONMENT = MappingProxyType(os.environ)


def template_context(params: Mapping[str, Any], *, item: Any = None, index: int | None = None, key: Any = None,
                     total: int | None = None, step: str | None = None, steps: Mapping[str, Any] | None = None,
                     run_id: str | None = None, workspace: Any = None, run_number: int | None = None) -> dict[str, Any]:
    """Return the names a template sees (docs/workflow-format.md lists them), in three layers.

    `params` (also as `args`) are known when the workflow compiles; an item's names (`item`,
    `index`, `key`, `batch`) for a node of step `step` (given); the run's
    names (`steps`, `run`, `workspace`, `env`) once a run is going (`run_id` given). The compiler,
    the scheduler and every task build their contexts here, and the name sets below come from it.
    """
    context: dict[str, Any] = {"params": params, "args": params}
    if step is not None:
        context["item"] = item
        context["index"] = index
        context["key"] = key
        context["batch"] = {"item": item, "index": index, "total": total, "name": step}
    if run_id is not None:
        context["steps"] = steps if steps is not None else {}
        context["run"] = {"id": run_id, "number": run_number}
        context["workspace"] = str(workspace)
        context["env"] = ENVIRONMENT
    return context


PARAM_NAMES = frozenset(template_context({}))
ITEM_NAMES = frozenset(template_context({}, step="")) - PARAM_NAMES
RUNTIME_NAMES = frozenset(template_context({}, run_id="")) - PARAM_NAMES
TEMPLATE_NAMES = PARAM_NAMES | ITEM_NAMES | RUNTIME_NAMES


@dataclass(frozen=True, slots=True)
class TemplateRefs:
    """What a template reads: top-level names, `steps.X[.attr]` and `params.X` references."""

    names: frozenset[str]
    steps: frozenset[tuple[str, str | None]]
    params: frozenset[str]


@lru_cache(maxsize=4096)
def analyze(source: str) -> TemplateRefs:
    """Parse a template and list what it reads. Raises `TemplateSyntaxError`."""
    from jinja2 import meta

    tree = _ENV.parse(source)
    names = meta.find_undeclared_variables(tree)
    steps: set[tuple[str, str | None]] = set()
    params: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        attr = _member(node)
        if isinstance(inner, nodes.Name) and inner.name == "steps" and attr:
            steps.add((attr, None))
        elif isinstance(inner, nodes.Name) and inner.name in ("params", "args") and attr:
            params.add(attr)
        elif (isinstance(inner, (nodes.Getattr, nodes.Getitem)) and isinstance(inner.node, nodes.Name)
              and inner.node.name == "steps" and _member(inner)):
            steps.add((_member(inner), attr))
    return TemplateRefs(frozenset(names), frozenset(steps), frozenset(params))


def _member(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    arg = node.arg
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None
