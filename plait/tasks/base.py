"""The one task interface: a registry of task kinds, their input schemas, and the context they get.

A task kind is a handler with one signature, `handler(config, item, ctx) -> result`:
- `config` is the step's `inputs`, rendered for this node (templates filled in, types kept);
- `item` is the node's item, or None for a plain step;
- `ctx` is a `TaskContext`: where to work and who is asking.
It returns a JSON-serialisable result or raises; the runtime turns any exception into the one
error record (see `plait.runtime.outcome`).

Each kind also declares a field table for its `inputs`, so the compiler can check a step
before anything runs (unknown keys, wrong types, missing fields), and says how each field is
rendered: `value` (templates rendered, types kept), `shell` (rendered to a `ShellCommand`,
every value passed as data), or `raw` (left alone for the handler: code, or a template it
renders itself).

The registry lives here, apart from both compiler and runtime, because both need it: the
compiler reads schemas, the runtime calls handlers. Users add kinds with `@plait.task("name")`.

Kinds from other packages come through the entry-point group `plait.tasks`: an entry point's
name is the kind's, its value a module that registers it with `@plait.task` (`mykind =
"mypkg.kinds"`) or the handler itself (`mykind = "mypkg.kinds:run"`, registered with no field
table). An entry point is loaded only when its kind is first asked for (a workflow names it), or
all of them when the list of kinds is (a did-you-mean, `plait schema`), so installed plugins
cost nothing to a workflow that does not use them. Worker processes need no registry: each
step's handler travels to them by reference (module and name) and is imported there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from plait.limits import MAX_RESULT_BYTES
from plait.plugins import PluginError
from plait.templating import template_context
from plait.workspace import STATE_DIR, state_dir

__all__ = ["ENTRY_POINTS", "Field", "TaskContext", "TaskKind", "get_kind", "kinds", "say", "task"]

ENTRY_POINTS = "plait.tasks"


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
    (which sets each of its sixteen fields through `object.__setattr__`): a trivial node's time
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
    group: Mapping[str, Any] | None = None  # a group_by node's {key, items, results}
    parent: Mapping[str, Any] | None = None  # a per-parent fan-out node's parent {key, item, result}
    max_result_bytes: int = MAX_RESULT_BYTES  # the most a node may return (--max-result-size): output past it fails
    run_number: int | None = None  # the run's count among the workspace's runs, from 1

    @property
    def batch(self) -> str:
        """Return the name of the batch (step) this node belongs to."""
        return self.step

    def path(self, relative: str | Path) -> Path:
        """Resolve `relative` inside the workspace; raise PermissionError when it escapes, or reaches plait's folder.

        Symbolic links are followed first, so a link cannot lead out of the workspace, nor into
        `.plait/`, where plait keeps the ledger and the lock (`plait.workspace`).
        """
        root = self.workspace.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise PermissionError(f"path '{relative}' is outside the workspace {root}")
        own = state_dir(root)
        if target == own or own in target.parents:
            raise PermissionError(f"path '{relative}' is in {STATE_DIR}/, where plait keeps the workspace's ledger "
                                  "and lock; tasks cannot touch it: write somewhere else in the workspace")
        return target

    def template_context(self, item: Any) -> dict[str, Any]:
        """Return the names a template of this node sees (`plait.templating.template_context`)."""
        return template_context(self.params, item=item, index=self.index, key=self.key, total=self.total,
                                step=self.step, steps=self.steps, run_id=self.run_id, workspace=self.workspace,
                                workflow_dir=self.workflow_dir, group=self.group, parent=self.parent,
                                run_number=self.run_number)

def say(text: str) -> None:
    """Print `text` on the run's terminal as well as into the node's output: for a task whose job is to print.

    While plait runs a node, `sys.stdout` keeps what it prints (plait.runtime.output: shown by
    `plait logs`); `say` also shows it on the run's terminal, escaped, above a live progress block
    (from a worker process, through the run's own process).
    """
    print(text, flush=True)
    show = getattr(sys.stdout, "say", None)
    if show is not None:
        show(text)


_REGISTRY: dict[str, TaskKind] = {}


def task(name: str, *, fields: Mapping[str, Field] | None = None, check: Check | None = None,
         doc: str = "", own_timeout: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of task kind `name`."""

    def register(handler: Handler) -> Handler:
        _REGISTRY[name] = TaskKind(name, handler, fields, check, doc or (handler.__doc__ or "").strip(),
                                   own_timeout)
        return handler

    return register


_tried: set[str | None] = set()  # entry-point names looked up already (None: all of them)


def get_kind(name: str) -> TaskKind | None:
    """Return the registered kind called `name` (loading its entry point if one has that name), or None.

    Raises PluginError when that entry point cannot be loaded.
    """
    from plait import tasks  # noqa: F401  (registers the built-in kinds on first use)

    if name not in _REGISTRY and name not in _tried and None not in _tried:
        _load_entry_points(name)
    return _REGISTRY.get(name)


def kinds() -> list[str]:
    """Return the names of every registered task kind, those of installed plugins included."""
    from plait import tasks  # noqa: F401

    if None not in _tried:
        _load_entry_points(None)
    return sorted(_REGISTRY)


def _load_entry_points(name: str | None) -> None:
    """Load the `plait.tasks` entry points called `name` (all of them for None). Mutates the registry."""
    from importlib.metadata import entry_points

    _tried.add(name)
    for point in entry_points(group=ENTRY_POINTS):
        if (name is not None and point.name != name) or point.name in _REGISTRY:
            continue
        try:
            loaded = point.load()
        except Exception as err:
            raise PluginError(f"task kind '{point.name}' (entry point '{point.value}' of group {ENTRY_POINTS}) "
                              f"cannot be loaded: {type(err).__name__}: {err}") from err
        if point.name not in _REGISTRY and callable(loaded):
            task(point.name)(loaded)
