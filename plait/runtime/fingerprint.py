"""Node fingerprints: what a node would compute, so resume knows when a stored result still holds.

A node's fingerprint has two halves of 16 hex digits: its own (a hash of its step's signature,
its kind, its key and item) and its upstream's (a hash of the fingerprints of the nodes it
depends on). A step's signature hashes three parts: its configuration (task, config with params
rendered, condition, key and items templates, for_each), its code (the source of the Python
function it calls) and the values of the params it still reads at run time. So an edit to a
step changes that step's nodes and everything downstream of them, and nothing else; an item
added to a glob adds one node and changes only what depends on the whole batch. Retry policy
and timeout are left out: changing them does not change what a node computes.

The halves and the recorded parts (`parts`, kept per step in the ledger) let the resume decision
say what changed (`plait.runtime.decide`): the code, which params, the config, the item, or an
upstream node.

A plan's basis (`basis`) hashes what all of its fingerprints follow from: the plan's digest (its
nodes, keys, items and edges) and every step's signature. Equal bases, equal fingerprints for
every node; the ledger keeps the basis of a plan it holds up to date, so that a resume of the
same plan does not hash its nodes again (`plait.runtime.ledger`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Collection, Iterator, Mapping
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

from plait.compiler import NodeSpec, StepSpec
from plait.templating import TemplateError, analyze, has_template

__all__ = ["NO_UPSTREAM", "Fingerprinter", "basis"]

SCHEME = b"plait-fingerprint-2"  # change it with the recipe of a fingerprint: no stored basis then holds
NO_UPSTREAM = "0" * 16  # the upstream half of a node that depends on nothing


class Fingerprinter:
    """Computes node fingerprints for one plan, caching each step's signature."""

    def __init__(self, steps: Mapping[str, StepSpec], workflow_dir: Path, params: Mapping[str, Any]):
        self.steps = steps
        self.workflow_dir = workflow_dir
        self.params = params
        self._parts: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, bytes] = {}
        self._started: dict[tuple[str, str], Any] = {}  # (step, kind) -> a hash fed with its signature

    def node(self, node: NodeSpec, upstream: Collection[str]) -> str:
        """Return the fingerprint of `node` given its predecessors' fingerprints."""
        started = self._started.get((node.step, node.kind))
        if started is None:
            started = self._started[node.step, node.kind] = hashlib.sha256(self._signature(node.step))
            started.update(node.kind.encode())
        digest = started.copy()
        if node.key is not None:
            digest.update(_item_bytes(node.key, node.item))
        if not upstream:
            return digest.hexdigest()[:16] + NO_UPSTREAM
        return digest.hexdigest()[:16] + hashlib.sha256("".join(sorted(upstream)).encode()).hexdigest()[:16]

    def parts(self, step: str) -> dict[str, Any]:
        """Return the hashes of a step's signature's parts: {"config", "code", "params": {name: hash}}."""
        if step not in self._parts:
            spec = self.steps[step]
            self._parts[step] = {
                "config": _short([spec.task, spec.config, spec.condition, spec.key, spec.items, spec.for_each]),
                "code": _short(self._code(spec)),
                "params": {name: _short(value) for name, value in self._params_read(spec).items()},
            }
        return self._parts[step]

    def steps_signature(self) -> bytes:
        """Return a hash of every step's signature and the folder the steps' modules are found from."""
        digest = hashlib.sha256(str(self.workflow_dir).encode())
        for step in sorted(self.steps):
            digest.update(self._signature(step))
        return digest.digest()

    def _signature(self, step: str) -> bytes:
        if step not in self._signatures:
            body = json.dumps(self.parts(step), sort_keys=True)
            self._signatures[step] = hashlib.sha256(body.encode()).digest()
        return self._signatures[step]

    def _params_read(self, spec: StepSpec) -> dict[str, Any]:
        """Return the params a step reads at run time (templates left for run time, inline code)."""
        texts = [t for t in _strings([spec.config, spec.condition, spec.items]) if "params" in t or "args" in t]
        names: set[str] = set()
        for text in texts:
            if not has_template(text):
                return dict(self.params)  # inline code or a raw template body: it may read any param
            try:
                refs = analyze(text)
            except TemplateError:
                return dict(self.params)
            if refs.names & {"params", "args"} and not refs.params:
                return dict(self.params)  # reads params as a whole (`params | tojson`)
            names |= refs.params
        return {name: self.params.get(name) for name in sorted(names)}

    def _code(self, spec: StepSpec) -> str | None:
        """Return a hash of the source of the module a python step's function lives in."""
        function = spec.config.get("function") if spec.task == "python" else None
        if not isinstance(function, str) or ":" not in function:
            return None
        source = _module_file(function.partition(":")[0], [str(self.workflow_dir), *sys.path])
        if source is None:
            return "missing"
        try:
            return hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError:
            return "unreadable"


def basis(plan_digest: str, steps_signature: bytes) -> str:
    """Return the basis of a plan: what every one of its node fingerprints follows from."""
    return hashlib.sha256(SCHEME + plan_digest.encode() + steps_signature).hexdigest()


def _short(value: Any) -> str:
    """Return 16 hex digits of a hash over a value's canonical JSON."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _item_bytes(key: Any, item: Any) -> bytes:
    """Encode a key and item canonically; plain numbers and strings skip the JSON encoder (the hot path)."""
    if type(item) in (int, str) and type(key) in (int, str):
        return f"{key!r}\x00{item!r}".encode()
    return json.dumps([key, item], sort_keys=True, default=str).encode()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _module_file(module: str, path: list[str]) -> str | None:
    """Find a module's source file without importing it (or anything else)."""
    search: list[str] | None = path
    spec = None
    for part in module.split("."):
        spec = PathFinder.find_spec(part, search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    return spec.origin if spec is not None and spec.has_location else None
