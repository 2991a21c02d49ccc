"""The plan: what the compiler hands the runtime. Immutable data, JSON-serialisable.

A `Plan` is a `networkx.DiGraph` over node IDs plus one `NodeSpec` per node and one `StepSpec`
per step. Step-level settings (task, config, retry policy, timeout, position) are built once
per step and shared by reference between that step's nodes, so 100,000 item nodes cost one
small record each (`NodeSpec` uses slots) and not 100,000 copies of their step's config.

The node specs are kept in an ordered dict beside the graph rather than as graph attributes:
a networkx attribute dict costs ~180 bytes a node, the specs dict a few dozen. That dict's
order is the plan's topological order: steps in dependency order (ties broken by their place
in the file), each step's nodes in item order. It is the same under any PYTHONHASHSEED.

Node kinds:
- `task`: runs the step's task, once (a plain step: ID `name`) or per item (ID `name[key]`).
- `deferred`: a placeholder for nodes known only at run time, after which it stays as a `join`
  of the nodes it became. Two sorts, told apart by the key:
  - a step placeholder (key None, ID `name`): a batch step whose items come from an upstream
    result, a step running for_each over one, or a group_by step whose groups are known only
    once its items are; `expand_deferred` expands it;
  - a per-parent placeholder (key = the parent's key, ID `name[key]`): one for each node of P
    in a step that runs `for_each: P` with items from the parent's result (a fan-out), or that
    follows such a step; `expand_parent` expands the placeholders waiting on a parent node
    that has finished, into children `name[key/child]`.
- `join`: waits for every item of a batch step and collects their results, running no task.
  Used where a batch waits for a whole batch (n + m edges instead of n × m).

Step shapes (`StepSpec`): a `group_by` step has one node per distinct group key of the
items of the step it groups, each waiting for its own group's members only; its templates
see `group` (`plait.compiler.scopes` builds it at run time). A fan-out step (`for_each` and
`items` both set) is deferred: its nodes come per parent, and its templates see `parent`.

Config values are frozen (`FrozenDict`, tuples) so nobody can mutate a plan that other
nodes share; `thaw` gives back plain dicts and lists.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from plait.compiler.diagnostics import SourceLoc

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["FrozenDict", "NodeSpec", "Plan", "RetryPolicy", "StepSpec", "freeze", "plain", "thaw"]

PLAN_FORMAT = 1


class FrozenDict(dict):
    """A dict that refuses mutation; still JSON-serialisable and picklable."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("plan values are immutable")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze(value: Any) -> Any:
    """Return a deep immutable copy: dicts become FrozenDict, lists tuples."""
    if type(value) in _SCALARS or type(value) is FrozenDict:  # most items: skip the Mapping check, an ABC's
        return value  # (a FrozenDict is frozen already: plait builds them from frozen values only)
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def plain(values: Iterable[Any]) -> bool:
    """Say whether every value is a plain scalar (text, a number, a boolean, null), which `freeze` leaves as it is."""
    return set(map(type, values)) <= _SCALARS


def thaw(value: Any) -> Any:
    """Return a deep mutable copy: mappings become dicts, tuples lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a node is retried, and which errors are worth it."""

    max_attempts: int = 1
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[str, ...] = ("OSError", "TimeoutError")
    retry_on_exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step as the file defines it, validated and with its params rendered."""

    name: str
    task: str
    config: Mapping[str, Any]
    kind: str  # "single" | "batch" | "deferred"
    loc: SourceLoc
    depends_on: tuple[str, ...] = ()  # every upstream step: explicit, for_each, group_by, and named in templates
    after: tuple[str, ...] = ()  # order only: steps this one waits for, however they ended
    for_each: str | None = None
    items: Any = None  # a deferred step's items: a template, or a {range | matrix | zip: ...} holding templates
    key: str | None = None  # the key template, if the step sets one
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    on_error: str = "fail"  # "fail" | "continue"; the fallback when on_error_template is set
    max_failures: int | float | None = None  # a count, or a fraction of the batch when a float
    allow_empty: bool = False
    description: str | None = None
    items_loc: SourceLoc | None = None  # where the items source is written
    group_by: str | None = None  # the step whose items this one groups
    group_key: str | None = None  # the template giving each of those items its group
    on_error_template: str | None = None  # rendered for each node that fails (plait.compiler.on_error)
    error_message: str | None = None  # rendered for each node that fails, into its error record's `message`
    input_files: tuple[str, ...] | None = None  # files each node reads (templates of the item left): tracked
    output_files: tuple[str, ...] | None = None  # files each node writes, in the workspace: a missing one re-runs
    code_changes: str | None = None  # "ignore": a code edit does not re-run finished nodes
    max_parallel: int | None = None  # at most this many of the step's nodes run at once
    file_items: str | None = None  # "glob" | "lines": the items name files, tracked by content
    params_read: tuple[str, ...] | None = None  # the params its templates read: a change is said as `params`
    written: str | None = None  # a hash of the step as written: an edit is said as `config`

    @property
    def fans_out(self) -> bool:
        """Say whether the step's items come from each parent's result (`for_each` and `items` both set)."""
        return self.for_each is not None and self.items is not None


class NodeSpec(NamedTuple):
    """One node of the plan: a step, or one item of a batch step.

    A named tuple, not a frozen dataclass: as immutable, a little smaller, and built several
    times faster (a frozen dataclass sets each of its eleven fields through `object.__setattr__`),
    once per item of every compile (docs/performance.md).
    """

    id: str
    step: str
    kind: str  # "task" | "deferred" | "join"
    task: str
    config: Mapping[str, Any]
    retry: RetryPolicy
    timeout: float | None
    loc: SourceLoc
    key: Any = None
    item: Any = None
    index: int | None = None


# The columns of a node the digest hashes besides its ID: kind, key, item, index (positions in NodeSpec).
_HASHED_COLUMNS = (2, 8, 9, 10)


class Plan:
    """An immutable compiled workflow: steps, node specs, and the dependency graph between nodes."""

    __slots__ = ("_counts", "_digest", "_folder", "description", "graph", "nodes", "notes", "params", "source",
                 "steps", "workflow")

    def __init__(self, workflow: str, description: str | None, source: str | None, params: Mapping[str, Any],
                 steps: Mapping[str, StepSpec], nodes: Mapping[str, NodeSpec], graph: nx.DiGraph,
                 notes: tuple[str, ...] = (), workflow_dir: str | Path | None = None,
                 counts: Counter | None = None):
        self.workflow = workflow
        self.description = description
        self.source = source
        # Where the compiler looked up globs, lines files and modules: the runtime runs from the same folder.
        self._folder = str(workflow_dir or (Path(source).parent if source else Path.cwd()))
        self.params = freeze(params)
        self.steps: Mapping[str, StepSpec] = steps if type(steps) is FrozenDict else FrozenDict(steps)
        self.nodes: Mapping[str, NodeSpec] = nodes if type(nodes) is FrozenDict else FrozenDict(nodes)
        import networkx as nx  # here, not at the top: a worker unpickling a RetryPolicy needs no graphs

        self.graph: nx.DiGraph = nx.freeze(graph)
        self.notes = tuple(notes)  # how a file in the original engine's dialect behaves differently here
        # How many nodes each (step, kind) has, in the order the nodes first show them: the compiler knows them as
        # it builds the steps (`counts`), else they are counted once, when first asked.
        self._counts: Counter | None = Counter(counts) if counts is not None else None
        self._digest: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in ("_digest", "_counts") and hasattr(self, "_digest"):
            raise AttributeError("a Plan is immutable")
        object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[NodeSpec]:
        """Iterate the node specs in topological order."""
        return iter(self.nodes.values())

    @property
    def edge_count(self) -> int:
        """Return how many edges the graph has (counted from networkx's successor dicts, at C speed)."""
        return sum(map(len, self.graph._succ.values()))

    def node_counts(self) -> Counter:
        """Return how many nodes each (step, kind) has, in the order the nodes first show each (a copy: yours)."""
        if self._counts is None:
            nodes = self.nodes.values()
            self._counts = Counter(zip(map(itemgetter(1), nodes), map(itemgetter(2), nodes)))
        return self._counts.copy()

    @property
    def deferred(self) -> list[str]:
        """Return the steps whose items are still to be expanded at run time, once each, in node order."""
        return [step for step, kind in self.node_counts() if kind == "deferred"]

    @property
    def workflow_dir(self) -> Path:
        """Return the folder the workflow reads from: the one it was compiled for (its file's, or the folder given
        with its text), at compile time and at run time alike."""
        return Path(self._folder)

    @property
    def digest(self) -> str:
        """Return a SHA-256 over what the plan is: equal plans, equal digests.

        It hashes the plan's JSON without its nodes and edges (workflow, params, every step as
        compiled), then the nodes as columns: ids, kinds, keys, items, indexes, each as
        `_column_bytes` writes it, after its length (C-speed, and deterministic: the plan holds
        plain values and frozen mappings built in file order). A node's step and task follow
        from its ID and kind, and the edges from the steps and nodes (the compiler's wiring: a
        change to it changes `PLAN_FORMAT`), so they add nothing. Every run and resume pays for
        it (docs/performance.md).

        Where the file is (its path, the positions in it) is left out: the same workflow has the
        same digest in any checkout, named from any folder.
        """
        if self._digest is None:
            nodes = list(self.nodes.values())
            body = self._body(nodes=False, edges=False)
            del body["source"]  # where the plan was read from is not what it does (docs show the digest)
            for step in body["steps"]:
                step.pop("loc"), step.pop("items_loc", None)
            head = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.sha256(head.encode())
            for column in (list(self.nodes), *(list(map(itemgetter(i), nodes)) for i in _HASHED_COLUMNS)):
                data = _column_bytes(column)
                digest.update(b"%d:" % len(data))
                digest.update(data)
            self._digest = digest.hexdigest()
        return self._digest

    def _body(self, nodes: bool = True, edges: bool = True) -> dict[str, Any]:
        body = {
            "format": PLAN_FORMAT,
            "workflow": self.workflow,
            "description": self.description,
            "source": self.source,
            "params": self.params,
            "steps": [_step_json(s) for s in self.steps.values()],
        }
        if edges:
            body["edges"] = sorted([u, v] for u, v in self.graph.edges)
        if nodes:
            body["nodes"] = [{"id": n.id, "step": n.step, "key": n.key, "task": n.task, "kind": n.kind,
                              "item": n.item, "index": n.index} for n in self.nodes.values()]
        return body

    def step_graph(self) -> list[dict[str, Any]]:
        """Return the steps and how they connect, JSON-ready: what a run keeps in the ledger for reports."""
        return [{"name": s.name, "task": s.task, "kind": s.kind, "depends_on": list(s.depends_on),
                 "for_each": s.for_each, "after": list(s.after), "group_by": s.group_by} for s in self.steps.values()]

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data (`Plan.from_json` reads it back)."""
        return {**self._body(), "notes": list(self.notes), "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from `to_json` output."""
        steps = {s["name"]: _step_from_json(s) for s in data["steps"]}
        nodes = {}
        for n in data["nodes"]:
            step = steps[n["step"]]
            nodes[n["id"]] = NodeSpec(
                id=n["id"], step=n["step"], kind=n["kind"], task=n["task"],
                config=FrozenDict() if n["kind"] == "join" else step.config,
                retry=step.retry, timeout=step.timeout, loc=step.loc, key=freeze(n["key"]),
                item=freeze(n["item"]), index=n["index"])
        from plait.compiler.graph import node_graph

        graph = node_graph(nodes, (tuple(e) for e in data["edges"]))
        return cls(data["workflow"], data["description"], data["source"], data["params"], steps, nodes, graph,
                   tuple(data.get("notes", ())))


def _column_bytes(values: list) -> bytes:
    """Return a column of node values as bytes that tell any two columns apart, the common ones without a `repr`.

    Texts are joined by NUL (which no node ID holds: a column whose texts do hold one is written
    as its `repr`), whole numbers packed as 64-bit little-endian integers, anything else written
    as its `repr`; a tag byte says which, so that no two forms are confused.
    """
    kinds = set(map(type, values))
    if kinds == {str}:
        joined = "\x00".join(values)
        if joined.count("\x00") == len(values) - 1:
            return b"s" + joined.encode("utf-8", "surrogatepass")
    elif kinds == {int}:
        try:
            packed = array("q", values)
        except OverflowError:
            pass  # a number past 64 bits: written as its repr
        else:
            if sys.byteorder != "little":
                packed.byteswap()
            return b"i" + packed.tobytes()
    return b"r" + repr(values).encode("utf-8", "surrogatepass")


# Left out of a plan's JSON when unset, so that the digests of plans from before they were hold.
_LATER_FIELDS = ("items_loc", "group_by", "group_key", "on_error_template", "input_files", "output_files",
                 "code_changes", "max_parallel", "file_items", "params_read", "written", "error_message")


def _step_json(step: StepSpec) -> dict[str, Any]:
    data = {f: getattr(step, f) for f in StepSpec.__slots__ if f not in _LATER_FIELDS or getattr(step, f) is not None}
    data["retry"] = asdict(step.retry)
    data["loc"] = [step.loc.file, step.loc.line, step.loc.column]
    if step.items_loc is not None:
        data["items_loc"] = [step.items_loc.file, step.items_loc.line, step.items_loc.column]
    return data


def _step_from_json(data: Mapping[str, Any]) -> StepSpec:
    values = dict(data)
    retry = dict(values.pop("retry"))
    retry["retry_on"] = tuple(retry["retry_on"])
    retry["retry_on_exit_codes"] = tuple(retry["retry_on_exit_codes"])
    values["retry"] = RetryPolicy(**retry)
    values["loc"] = SourceLoc(*values["loc"])
    values["items_loc"] = SourceLoc(*values["items_loc"]) if values.get("items_loc") else None
    values["items"] = freeze(values.get("items"))
    values["config"] = freeze(values["config"])
    values["depends_on"] = tuple(values["depends_on"])
    values["after"] = tuple(values.get("after", ()))
    for name in ("input_files", "output_files", "params_read"):
        values[name] = tuple(values[name]) if values.get(name) is not None else None
    return StepSpec(**values)
