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
- Shell commands never hold a value in their text: each `{{ … }}` renders to a reference to an
  environment variable that carries the value (`plait.shell_command`), written to suit where it
  stands in the command (`plait.shell_syntax`, which also refuses the places where even a
  reference would be code). `shell_refusals` lets the shell task refuse those at compile time.
- Every render is bounded in size and time (`plait.template_limits`): the sandbox checks what
  operators, calls and filters build, every loop and the output stream check a deadline, and
  `render_limits(seconds)` sets that deadline for a block (the runtime passes a node's timeout).
- A lone `{{ expr }}` that gives a lazy value (a generator from `map`, a `range`) is turned into
  a list as it renders, and any undefined value inside a result fails there, with its name: a
  value that is not data must not reach the plan or the ledger.
- Compiled templates are cached per process by their source, so a step's template is compiled
  once, however many nodes render it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from plait import template_limits as limits
from plait.shell_template import ShellCommand, collecting_values, compile_command, position, reference_filter
from plait.template_limits import TemplateTimeout, TemplateTooLarge, render_limits

__all__ = [
    "ENVIRONMENT",
    "GROUP_NAMES",
    "ITEM_NAMES",
    "PARAM_NAMES",
    "PARENT_NAMES",
    "RENDER_ERRORS",
    "RUNTIME_NAMES",
    "TEMPLATE_NAMES",
    "ItemRenderError",
    "ShellCommand",
    "TemplateError",
    "TemplateRefs",
    "TemplateSyntaxError",
    "TemplateTimeout",
    "TemplateTooLarge",
    "analyze",
    "has_template",
    "render",
    "render_items",
    "render_limits",
    "render_shell",
    "render_text",
    "render_value",
    "shell_refusals",
    "template_context",
]

_SCALAR_DATA = frozenset({str, int, float, bool, type(None)})  # what `_data` gives back as it is
_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>.*)\}\}$", re.DOTALL)


def has_template(value: Any) -> bool:
    """Return True when `value` is a string with Jinja syntax in it."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str)


# What rendering a template can raise besides TemplateError: a template is user code, and its
# expressions fail the ordinary ways (`{{ 1 / 0 }}`, `{{ 'a' + 1 }}`, a sandboxed range too long).
RENDER_ERRORS = (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, MemoryError, RuntimeError,
                 AssertionError, AttributeError)  # a filter may assert its arguments (`truncate(0)`)


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, bounded in size and time at its interception points (`plait.template_limits`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = limits.LimitedCodeGenerator
    concat = staticmethod(limits.bounded_concat)
    join_values = staticmethod(limits.bounded_join)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return limits.checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        receiver = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(receiver, str):
            limits.before(name, (receiver, *args), kwargs)
        else:
            limits.before(name if name == "generate_lorem_ipsum" else "", args, kwargs)
        result = limits.checked(super().call(__context, __obj, *args, **kwargs))
        if isinstance(receiver, (list, dict)):
            limits.checked(receiver)  # grown in place: `x.extend(x)`
        return result

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            limits.check_format(fmt, args[0] if is_map and args else args, kwargs)
            return limits.checked(wrapper(*args, **kwargs))

        return bounded


def _make_env() -> SandboxedEnvironment:
    # Not optimized: Jinja's optimizer folds a constant expression (`'x' | batch(1000000, 'z') | list`)
    # as it compiles, outside the render's deadline, and writes the value into the template's Python
    # source, which Python then compiles: about 1.5 KB a list item, a million items past a gigabyte.
    env = _BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                          finalize=limits.text_checked, optimized=False)
    env.filters.update(
        basename=posixpath.basename,
        dirname=posixpath.dirname,
        stem=lambda p: posixpath.splitext(posixpath.basename(p))[0],
        suffix=lambda p: posixpath.splitext(p)[1],
        tojson=_to_json,
        shell_quote=lambda v: shlex.quote(str(v)),
    )
    env.filters = {name: limits.bounded_filter(name, f) for name, f in env.filters.items()}
    env.filters["_plait_loop"] = limits.bounded_loop
    env.filters["_plait_value"] = reference_filter
    return env


_ENV = _make_env()
_TRIMMED_ENV = _ENV.overlay(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    match = _SINGLE_EXPRESSION.match(source)
    if match and "{{" not in match["expr"] and "}}" not in match["expr"]:
        return True, _ENV.compile_expression(match["expr"], undefined_to_none=False)
    return False, _ENV.from_string(source)


def render(source: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; a lone `{{ expr }}` keeps the expression's type.

    Raises jinja2's `TemplateError` (syntax, undefined name, sandbox refusal, size or time past
    the limits).
    """
    if not has_template(source):
        return source
    is_expression, compiled = _compiled(source)
    if not is_expression:
        return limits.limited(compiled.render, context)
    return limits.limited(_evaluate, compiled, context)


def _evaluate(expression: Any, context: Mapping[str, Any]) -> Any:
    return _data(expression(**context))


class ItemRenderError(Exception):
    """A template that did not render for one row of `render_items`: the row's `position`, and the `error` that
    `render` would have raised (also the exception's cause)."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(f"row {position}: {error}")
        self.position = position
        self.error = error


def render_items(source: str, params: Mapping[str, Any],
                 rows: Iterable[tuple[Any, int | None, Any, Mapping[str, Any] | None]], *, total: int | None,
                 step: str, workflow_dir: Any = None) -> list[Any]:
    """Return what `render` gives for each (item, index, key, parent) row of a step's items, in order, for less.

    Each row renders as with `template_context(params, item=, index=, key=, total=, step=,
    workflow_dir=, parent=)`. For the templates the compiler renders once per item (a key, a group
    key), thousands of times: most of a lone `{{ expr }}`'s render through `render` is Jinja
    building a fresh context from the template's globals (a ChainMap, read key by key) and setting
    up the render's bound. Here one Jinja context holds what every row shares (globals, params,
    `workflow_dir`) and a row's own names are its variables, which Jinja looks up first; `batch`
    is built only for a template that reads it. Each row's render has a deadline of its own (one
    bound for the series, its clock restarted per row: `template_limits.deadlines`). Raises
    `ItemRenderError` for the first row that fails, with what `render` raises for it.
    """
    if not has_template(source):
        return [source for _ in rows]
    is_expression, compiled = _compiled(source)
    template = compiled._template if is_expression else compiled  # `{% set result = expr %}`, for an expression
    context = template.new_context(template_context(params, workflow_dir=workflow_dir))
    root, concat = template.root_render_func, _ENV.concat
    with_batch = "batch" in analyze(source).names
    rendered: list[Any] = []
    with limits.deadlines() as restart:
        for position, (item, index, key, parent) in enumerate(rows):
            names = _item_names(item, index, key, total, step, with_batch)
            if parent is not None:
                names["parent"] = parent
            context.vars = names
            restart()
            try:
                if is_expression:
                    next(root(context), None)  # the generator yields nothing: one step runs it to the end
                    rendered.append(_data(names["result"]))
                else:
                    rendered.append(concat(root(context)))
            except RENDER_ERRORS as err:
                raise ItemRenderError(position, err) from err
    return rendered


def _data(value: Any, depth: int = 0) -> Any:
    """Return an expression's value as data: lazy sequences listed, undefined values failing here."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth > 100:
        raise TemplateTooLarge("a template built a value nested more than 100 levels deep")
    if isinstance(value, Mapping):
        return {k: _data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if set(map(type, value)) <= _SCALAR_DATA:  # a list of numbers or texts, as `range(n) | list` gives
            return list(value)
        return [_data(v, depth + 1) for v in value]
    if isinstance(value, Iterable):
        return [_data(v, depth + 1) for v in _listed(value)]
    return value


def _listed(values: Iterable[Any]) -> Iterator[Any]:
    for count, value in enumerate(limits.bounded_loop(values), 1):
        if count > limits.MAX_ITEMS:
            raise TemplateTooLarge(f"a template built more than {limits.MAX_ITEMS:,} items")
        yield value


def render_text(source: str, context: Mapping[str, Any], *, trim: bool = False) -> str:
    """Render a template to text, always (a template file's body, where types do not apply).

    `trim` renders with Jinja's `trim_blocks` and `lstrip_blocks` and drops the final line break,
    as the original engine rendered its templates: a `{% for %}` line leaves no blank line.
    """
    if not trim and not has_template(source):
        return source
    return limits.limited(_text_template(source, trim).render, context)


@lru_cache(maxsize=256)
def _text_template(source: str, trim: bool) -> Any:
    return (_TRIMMED_ENV if trim else _ENV).from_string(source)


def render_shell(source: str, context: Mapping[str, Any]) -> ShellCommand | str:
    """Render a shell command: its values become references, carried beside the script.

    Returns the source itself when it holds no template. Raises TemplateError for a value in a
    place `shell_refusals` names (the compiler reports those first, with their position).
    """
    if not has_template(source):
        return source
    template, refusals = _command(source)
    if refusals:
        offset, message, _ = refusals[0]
        raise TemplateError(f"{message} (at {position(source, offset)} of the command)")
    with collecting_values() as values:
        script = limits.limited(template.render, context)
    return ShellCommand(script, tuple(values))


def shell_refusals(source: str) -> list[tuple[int, str, str]]:
    """Return (offset in `source`, message, hint) for each value a shell command may not hold where it is.

    A template that does not parse gives none here (its syntax error is reported on its own).
    """
    try:
        return _command(source)[1]
    except TemplateSyntaxError:
        return []


@lru_cache(maxsize=1024)
def _command(source: str) -> tuple[Any, list[tuple[int, str, str]]]:
    return compile_command(_ENV, source)


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
                     run_id: str | None = None, workspace: Any = None, workflow_dir: Any = None,
                     run_number: int | None = None,
                     group: Mapping[str, Any] | None = None, parent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the names a template sees (docs/workflow-format.md lists them), in layers.

    `params` (also as `args`) and `workflow_dir` (the workflow file's folder, given) are known
    when the workflow compiles; an item's names (`item`, `index`, `key`, `batch`) for a node of
    step `step` (given); `group` for a node of a `group_by` step and `parent` for a node of a
    per-parent fan-out (given); the run's names (`steps`, `run`, `workspace`, `env`) once a run
    is going (`run_id` given). A name whose layer is not given is left out, so a template that
    reads it fails as undefined rather than seeing None. The compiler, the scheduler and every
    task build their contexts here, and the name sets below come from it.
    """
    context: dict[str, Any] = {"params": params, "args": params}
    if workflow_dir is not None:
        context["workflow_dir"] = str(workflow_dir)
    if step is not None:
        context.update(_item_names(item, index, key, total, step, True))
    if group is not None:
        context["group"] = group
    if parent is not None:
        context["parent"] = parent
    if run_id is not None:
        context["steps"] = steps if steps is not None else {}
        context["run"] = {"id": run_id, "number": run_number}
        context["workspace"] = str(workspace)
        context["env"] = ENVIRONMENT
    return context


def _item_names(item: Any, index: int | None, key: Any, total: int | None, step: str, batch: bool) -> dict[str, Any]:
    """Return an item's layer of a template's names (`template_context`); `batch` only when asked (`render_items`
    leaves it out for a template that does not read it)."""
    names = {"item": item, "index": index, "key": key}
    if batch:
        names["batch"] = {"item": item, "index": index, "total": total, "name": step}
    return names


PARAM_NAMES = frozenset(template_context({}, workflow_dir=""))
ITEM_NAMES = frozenset(template_context({}, step="")) - PARAM_NAMES
GROUP_NAMES = frozenset(template_context({}, group={})) - PARAM_NAMES
PARENT_NAMES = frozenset(template_context({}, parent={})) - PARAM_NAMES
RUNTIME_NAMES = frozenset(template_context({}, run_id="")) - PARAM_NAMES
TEMPLATE_NAMES = PARAM_NAMES | ITEM_NAMES | GROUP_NAMES | PARENT_NAMES | RUNTIME_NAMES


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
