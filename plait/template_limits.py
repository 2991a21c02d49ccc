"""How big and how long a template may get: the sandbox's bounds on size and time.

A template is a small program, and the sandbox keeps it from Python's internals but not from the
machine: `'%3000000000s' % 'x'` asks for 3 GB, two nested `range(100000)` loops for 10^10 steps.
Every render, at compile time and at run time, is bounded here, at the few places where a
template can build or spin, rather than filter by filter.

Size
    Nothing a template builds may hold more than `MAX_CHARS` characters (a string), `MAX_ITEMS`
    items (a list, tuple or mapping) or `MAX_DIGITS` digits (an integer: Python cannot print a
    longer one, so it could never be stored). Every intercepted operation's result is measured
    (`checked`, which counts the items of nested containers too): binary operators, calls
    (methods, globals, macros), filters, and the output stream as it is joined, and `~`. A lazy
    result (a generator) is counted as it is consumed. Turning a container into text (output,
    `~`, `%`, `string`, `tojson`, `join`, …) is bounded before it starts (`text_checked`): the
    text of `[long_text] * 1000` is a thousand times what the list holds. The operations that
    can build far more than their operands hold are bounded *before* they run, from their
    operands (`before`): `*`, `**`, `+`, `%`-formatting and `str.format` widths, and the calls
    in `_GROWTH` (padding, replacing, joining, indenting, wrapping, batching, lorem ipsum), each
    by a worst-case size computed from its arguments. A list a method grows in place
    (`x.extend(x)`) is measured after the call.

Time
    A render has a deadline (`DEFAULT_SECONDS` unless the caller sets one with `render_limits`,
    for a node, the runtime passes its timeout). It is checked where a template can spin:
    every `{% for %}` loop's iterator (the code generator wraps each loop's iterable), every
    call, operator and filter, and every chunk of output. A deadline checked in the sandbox
    works in any thread and takes no signal (the runtime's node timeout owns SIGALRM).

The limits live in a context variable, so threads and nested renders each see their own.
Failures raise `TemplateTooLarge` or `TemplateTimeout` (both jinja2 `SecurityError`s), which
every caller already reports as a template error with its position.
"""

from __future__ import annotations

import math
import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError

__all__ = [
    "DEFAULT_SECONDS",
    "MAX_CHARS",
    "MAX_DIGITS",
    "MAX_ITEMS",
    "LimitedCodeGenerator",
    "TemplateTimeout",
    "TemplateTooLarge",
    "before",
    "bounded_concat",
    "bounded_filter",
    "bounded_join",
    "bounded_loop",
    "check_binop",
    "check_format",
    "checked",
    "deadlines",
    "limited",
    "render_limits",
    "text_checked",
    "tick",
]

MAX_CHARS = 10_000_000
MAX_ITEMS = 2_000_000
MAX_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300
DEFAULT_SECONDS = 10.0
_MAX_BITS = int(MAX_DIGITS * math.log2(10)) + 1
_TICK_EVERY = 256  # loop steps between two looks at the clock


class TemplateTooLarge(SecurityError):
    """A template tried to build a value past the sandbox's size bounds."""


class TemplateTimeout(SecurityError):
    """A template ran past its render deadline."""


class _Limits:
    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def restart(self) -> None:
        """Start the clock again: the deadline is `seconds` from now."""
        self.deadline = time.monotonic() + self.seconds


_LIMITS: ContextVar[_Limits | None] = ContextVar("plait_render_limits", default=None)


@contextmanager
def render_limits(seconds: float | None = None) -> Iterator[None]:
    """Give every render inside the block one deadline, `seconds` from now (None: `DEFAULT_SECONDS`).

    The runtime wraps a node's rendering (its condition and inputs) in it with the node's timeout,
    so a template that loops fails the node as the timeout would, wherever it renders.
    """
    token = _LIMITS.set(_Limits(DEFAULT_SECONDS if seconds is None else seconds))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def limited(func: Callable[..., Any], *args: Any) -> Any:
    """Return `func(*args)`, run under the current limits, or under a fresh default deadline when there are none."""
    if _LIMITS.get() is not None:
        return func(*args)
    token = _LIMITS.set(_Limits(DEFAULT_SECONDS))
    try:
        return func(*args)
    finally:
        _LIMITS.reset(token)


@contextmanager
def deadlines() -> Iterator[Callable[[], None]]:
    """Bound a series of renders in the block, each by a deadline of its own: call what this gives before each.

    One bound is set for the series and its clock restarted per render, where `limited` would
    set a bound per render. Under limits set already (a node's), the series keeps them.
    """
    if _LIMITS.get() is not None:
        yield _keep
        return
    own = _Limits(DEFAULT_SECONDS)
    token = _LIMITS.set(own)
    try:
        yield own.restart
    finally:
        _LIMITS.reset(token)


def _keep() -> None:
    """Leave the current deadline as it is."""


def tick() -> None:
    """Raise TemplateTimeout when the current render is past its deadline."""
    limits = _LIMITS.get()
    if limits is not None and time.monotonic() > limits.deadline:
        raise TemplateTimeout(f"the template ran past its time budget of {limits.seconds:g} s")


def checked(value: Any) -> Any:
    """Return `value`, or raise TemplateTooLarge when it is past the size bounds.

    A lazy value (a generator, as `batch` and `map` give) is returned wrapped, so that whatever
    consumes it (`list`, `join`, a loop) stops at MAX_ITEMS items and looks at the clock.
    """
    if isinstance(value, Iterator):
        return _counted(value)
    if isinstance(value, str):
        if len(value) > MAX_CHARS:
            raise TemplateTooLarge(f"a template built text of {len(value):,} characters (at most {MAX_CHARS:,})")
    elif isinstance(value, (list, tuple, dict)):
        items = _nested_items(value)
        if items > MAX_ITEMS:
            raise TemplateTooLarge(f"a template built {items:,} items (at most {MAX_ITEMS:,})")
    elif isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise TemplateTooLarge(f"a template built a number of about {value.bit_length() * math.log10(2):,.0f} "
                               f"digits (at most {MAX_DIGITS:,})")
    return value


_CONTAINERS = (list, tuple, dict)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _nested_items(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> int:
    """Count the items of a container and of every container inside it; stop counting past MAX_ITEMS."""
    count, stack = 0, [value]
    while stack and count <= MAX_ITEMS:
        item = stack.pop()
        count += len(item)
        values = item.values() if isinstance(item, dict) else item
        if set(map(type, values)) <= _SCALARS:
            continue  # numbers and texts (a `range(n) | list`): nothing nested, found in one C-level pass
        stack.extend(v for v in values if isinstance(v, _CONTAINERS))
    return count


def text_checked(value: Any) -> Any:
    """Return `value`; refuse a container whose text (what `str()` or JSON would build) is past MAX_CHARS.

    Turning a container into text costs far more than the text: every element's text is built
    first. A list of one long string repeated a thousand times is small, and its text is not.
    """
    if isinstance(value, _CONTAINERS):
        size, stack = 0, [value]
        while stack and size <= MAX_CHARS:
            item = stack.pop()
            if isinstance(item, str):
                size += len(item) + 4
            elif isinstance(item, dict):
                size += 2 + 4 * len(item)
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                size += 2 + 2 * len(item)
                stack.extend(item)
            else:
                size += 8
        _refuse(size, "the text of a value")
    return value


def _counted(items: Iterator[Any]) -> Iterator[Any]:
    for count, item in enumerate(items, 1):
        if count > MAX_ITEMS:
            raise TemplateTooLarge(f"a template built more than {MAX_ITEMS:,} items")
        if not count % _TICK_EVERY:
            tick()
        yield item


def _refuse(size: float, what: str, bound: int = MAX_CHARS) -> None:
    if size > bound:
        raise TemplateTooLarge(f"a template tried to build {what} of {size:,.0f} characters or items "
                               f"(at most {bound:,})")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operator whose result would be past the bounds, before computing it."""
    tick()
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                _refuse(len(seq) * count, "a value", MAX_CHARS if isinstance(seq, str) else MAX_ITEMS)
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > _MAX_BITS:
            raise TemplateTooLarge(f"a template tried to compute a number of more than {MAX_DIGITS:,} digits")
    elif operator == "**":
        if isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(left) > 1 and right > 0:
            digits = right * math.log10(abs(left))
            if digits > MAX_DIGITS:
                raise TemplateTooLarge(f"a template tried to compute a number of about {digits:,.0f} digits "
                                       f"(at most {MAX_DIGITS:,})")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            _refuse(len(left) + len(right), "a value", MAX_CHARS if isinstance(left, str) else MAX_ITEMS)
    elif operator == "%" and isinstance(left, str):
        check_format(left, right if isinstance(right, (tuple, Mapping)) else (right,), {})
        text_checked(right)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def check_format(fmt: str, args: Any, kwargs: Mapping[str, Any]) -> None:
    """Refuse `%` or `str.format` formatting whose widths or precisions would build past the bounds."""
    text_checked(args)
    text_checked(kwargs)
    widths: list[int] = []
    starred = False
    if "%" in fmt:
        for match in _PERCENT_SPEC.finditer(fmt):
            for group in match.groups():
                starred |= group == "*"
                widths += [int(group)] if group and group != "*" else []
    if "{" in fmt:
        try:
            for _, _, spec, _ in string.Formatter().parse(fmt):
                if spec:
                    starred |= "{" in spec
                    widths += [int(d) for d in _DIGITS.findall(spec)]
        except ValueError:
            pass  # a malformed format string: formatting it raises the error
    if starred:  # a width taken from the arguments
        values = list(args.values()) if isinstance(args, Mapping) else list(args)
        widths += [v for v in [*values, *kwargs.values()] if isinstance(v, int)]
    _refuse(sum(widths), "formatted text")


def _replace_size(s: Any, old: Any = "", new: Any = "", count: Any = -1, *_: Any) -> float:
    n, grow = _size(s), max(_size(new) - _size(old), 0)
    times = n // max(_size(old), 1) + 1
    return n + (min(times, count) if isinstance(count, int) and count >= 0 else times) * grow


def _join_size(sep: Any, items: Any = (), *_: Any) -> float:
    if not hasattr(items, "__len__"):
        return 0  # a lazy iterable: its result is measured when it comes back
    parts = sum(_size(i) for i in items) if isinstance(items, (list, tuple)) else 0
    return _size(sep) * len(items) + parts


# name -> worst-case size of the result, from (receiver or filtered value, *arguments): the calls
# and filters that can build far more than their arguments hold. Keyword arguments are passed by name.
_GROWTH: dict[str, Callable[..., float]] = {
    "center": lambda s, width=80, *_: max(_size(s), width if isinstance(width, int) else 0),
    "ljust": lambda s, width=0, *_: max(_size(s), width if isinstance(width, int) else 0),
    "rjust": lambda s, width=0, *_: max(_size(s), width if isinstance(width, int) else 0),
    "zfill": lambda s, width=0, *_: max(_size(s), width if isinstance(width, int) else 0),
    "expandtabs": lambda s, tabsize=8, *_: _size(s) * max(tabsize if isinstance(tabsize, int) else 1, 1),
    "replace": _replace_size,
    "join": _join_size,
    "translate": lambda s, table=None, *_: _size(s) * max(
        [_size(v) for v in table.values()] if isinstance(table, Mapping) and table else [1]),
    "indent": lambda s, width=4, *_: _size(s) + (str(s).count("\n") + 1) * (
        width if isinstance(width, int) else _size(width)),
    "wordwrap": lambda s, width=79, brk=True, wrapstring=None, *_: _size(s) * (1 + _size(wrapstring or "\n")),
    "batch": lambda value, linecount=1, *_: linecount if isinstance(linecount, int) else 0,
    "slice": lambda value, slices=1, *_: slices if isinstance(slices, int) else 0,
    "generate_lorem_ipsum": lambda n=5, html=True, low=20, high=100: (n if isinstance(n, int) else 0) * (
        high if isinstance(high, int) else 100) * 12,
}
_KEYWORDS = {  # the names of the arguments _GROWTH reads, in order after the receiver
    "center": ("width",), "ljust": ("width",), "rjust": ("width",), "zfill": ("width",),
    "expandtabs": ("tabsize",), "replace": ("old", "new", "count"), "join": ("d",), "translate": ("table",),
    "indent": ("width",), "wordwrap": ("width", "break_long_words", "wrapstring"), "batch": ("linecount",),
    "slice": ("slices",), "generate_lorem_ipsum": ("n", "html", "min", "max"),
}


# The filters that turn the value they filter into text (`str()` or JSON), whatever it is.
_TEXT_FILTERS = frozenset({"string", "tojson", "pprint", "join", "center", "indent", "wordwrap", "replace", "format",
                           "truncate", "upper", "lower", "title", "capitalize", "trim", "striptags", "urlize",
                           "urlencode", "wordcount", "escape", "e", "forceescape", "basename", "dirname", "stem",
                           "suffix", "shell_quote"})


def before(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Check the time, and refuse a call or filter `name` whose result could be past the bounds.

    `args` starts with the receiver of a method or the value a filter filters.
    """
    tick()
    if name in _TEXT_FILTERS and args:
        text_checked(args[0])
    if name == "format" and args and isinstance(args[0], str):  # the filter: `value % (kwargs or args)`
        check_format(args[0], kwargs or args[1:], {})
        return
    growth = _GROWTH.get(name)
    if growth is None:
        return
    if kwargs:
        names = _KEYWORDS[name]
        first = 0 if name == "generate_lorem_ipsum" else 1
        args = list(args)
        for index, keyword in enumerate(names, start=first):
            if keyword in kwargs:
                args += [None] * (index + 1 - len(args))
                args[index] = kwargs[keyword]
    if name == "join" and len(args) >= 2 and not isinstance(args[0], str):
        args = [args[1], args[0]]  # the filter joins its value with `d`; the method joins its argument
    try:
        size = growth(*args)
    except (TypeError, ValueError, AttributeError):
        return  # arguments of the wrong kind: the call itself reports them
    _refuse(size, f"a value with {name}()", MAX_ITEMS if name in ("batch", "slice") else MAX_CHARS)


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap filter `func` so that it checks the time and its size bounds (it keeps jinja's pass_* marker)."""
    passes = getattr(func, "jinja_pass_arg", None) is not None

    def bounded(*args: Any, **kwargs: Any) -> Any:
        before(name, args[1:] if passes else args, kwargs)
        return checked(func(*args, **kwargs))

    bounded.__dict__.update(getattr(func, "__dict__", {}))
    bounded.__name__ = bounded.__qualname__ = getattr(func, "__name__", name)
    bounded.__doc__ = func.__doc__
    return bounded


def bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Yield from `iterable`, looking at the clock every few steps (every `{% for %}` goes through here)."""
    tick()
    for count, item in enumerate(iterable, 1):
        if not count % _TICK_EVERY:
            tick()
        yield item


def bounded_concat(chunks: Iterable[str]) -> str:
    """Join a template's output, refusing it past MAX_CHARS and checking the time as it grows."""
    parts: list[str] = []
    size = 0
    for count, chunk in enumerate(chunks, 1):
        size += len(chunk)
        if size > MAX_CHARS:
            raise TemplateTooLarge(f"a template's output grew past {MAX_CHARS:,} characters")
        parts.append(chunk)
        if not count % _TICK_EVERY:
            tick()
    return "".join(parts)


def bounded_join(values: Iterable[Any]) -> str:
    """Join the operands of `~` as text, refusing a result past MAX_CHARS before building it."""
    parts = [str(text_checked(v)) for v in values]
    _refuse(sum(map(len, parts)), "text with ~")
    tick()
    return "".join(parts)


class LimitedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every `{% for %}` iterating through the `_plait_loop` filter and
    every `~` joining through `environment.join_values` (`bounded_join`). Autoescaping is never on.
    """

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_plait_loop", [], [], None, None, lineno=loop.lineno)
            loop.iter.set_environment(self.environment)
        super().visit_Template(node, frame)
