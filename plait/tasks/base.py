"""The one task interface: a registry of task kinds, their input schemas, and the context they get.

A task kind is a handler with one signature, `handler(config, item, ctx) -> result`:
- `config` is the step's `inputs`, rendered for this node (templates filled in, types kept);
- `item` is the node's item, or None for a plain step;
- `ctx` is a `TaskContext`: where to work and who is asking.
It returns a JSON-serialisable result or raises; the runtime turns any exception into the one
error record (see `plait.runtime.outcome`).

Each kind also declares a field table for its `inputs`, so the compiler can check a step
before anything runs (unknown keys, wrong types, missing fields), and says how each field is
rendered: `value` (templates rendered, types kept), `shell` (rendered with every value
shell-quoted), or `raw` (left alone for the handler: code, or a template it renders itself).

The registry lives here, apart from both compiler and runtime, because both need it: the
compiler reads schemas, the runtime calls handlers. Users add kinds with `@plait.task("name")`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from plait.templating import template_context

__all__ = ["Field", "TaskContext", "TaskKind", "get_kind", "kinds", "task"]


@dataclass(frozen=True, slots=True)
class Field:
    """One input field of a task kind."""

    types: tuple[type, ...]
    required: bool = False
    render: str = "value"  # "value" | "shell" | "raw"
    choices: tuple[Any, ...] | None = None
    doc: str = ""


# A cross-field check returns problems as (field or None, message, hint or None).
Check = Callable[[Mapping[str, Any]], list[tuple[str | None, str, str | None]]]
Handler = Callable[[dict[str, Any], Any, "TaskContext"], Any]


@dataclass(frozen=True, slots=True)
class TaskKind:
    """A registered task kind: its handler and, when it has one, its input schema."""

    name: str
    handler: Handler
    fields: Mapping[str, Field] | None = None  # None: inputs are passed through unchecked
    check: Check | None = None
    doc: str = ""
    own_timeout: bool = False  # True: the handler enforces ctx.timeout itself (e.g. kills its subprocess)


_NOTHING: Mapping[str, Any] = MappingProxyType({})


class TaskContext(NamedTuple):
    """What a handler knows about where it runs; the same for every kind.

    A named tuple, so immutable, and built for every node much faster than a frozen dataclass
    (which sets each of its fourteen fields through `object.__setattr__`): a trivial node's time
    in a worker is mostly this (docs/performance.md).
    """

    workspace: Path
    run_id: str
    step: str
    node_id: str
    attempt: int
    retry: Any  # plait.compiler.RetryPolicy
    logger: Any  # a loguru logger bound to this node
    workflow_dir: Path
    timeout: float | None = None
    params: Mapping[str, Any] = _NOTHING
    steps: Mapping[str, Any] = _NOTHING  # upstream results this node may read
    key: Any = None
    index: int | None = None
    total: int | None = None  # the number of items in this node's batch
    run_number: int | None = None  # the run's count among the workspace's runs, from 1

    @property
    def batch(self) -> str:
        """Return the name of the batch (step) this node belongs to."""
        return self.step

    def path(self, relative: str | Path) -> Path:
        """Resolve `relative` inside the workspace; raise PermissionError when it escapes."""
        root = self.workspace.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise PermissionError(f"path '{relative}' is outside the workspace {root}")
        return target

    def template_context(self, item: Any) -> dict[str, Any]:
        """Return the names a template of this node sees (`plait.templating.template_context`)."""
        return template_context(self.params, item=item, index=self.index, key=self.key, total=self.total,
                                step=self.step, steps=self.steps, run_id=self.run_id, workspace=self.workspace,
                                run_number=self.run_number)

_REGISTRY: dict[str, TaskKind] = {}


def task(name: str, *, fields: Mapping[str, Field] | None = None, check: Check | None = None,
         doc: str = "", own_timeout: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of task kind `name`."""

    def register(handler: Handler) -> Handler:
        _REGISTRY[name] = TaskKind(name, handler, fields, check, doc or (handler.__doc__ or "").strip(),
                                   own_timeout)
        return handler

    return register


def get_kind(name: str) -> TaskKind | None:
    """Return the registered kind called `name`, or None."""
    from plait import tasks  # noqa: F401  (registers the built-in kinds on first use)

    return _REGISTRY.get(name)


def kinds() -> list[str]:
    """Return the names of every registered task kind."""
    from plait import tasks  # noqa: F401

    return sorted(_REGISTRY)
