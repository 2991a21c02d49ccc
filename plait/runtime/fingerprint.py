"""Node fingerprints: what a node would compute, so resume knows when a stored result still holds.

A node's fingerprint is made of segments of 16 hex digits: its own (a hash of its step's
signature, its kind, its key and item) and its upstream's (a hash of the fingerprints of the
nodes it depends on); then, for a task node whose step runs Python code, `c` and the code's
hash, and for one that reads tracked files, `f` and a hash of their contents
(plait.runtime.tracked_files). That text is what the ledger's readers see; the run holds and the
ledger stores it packed (`Fingerprinter.node` returns bytes): the text's hex digits two to a byte,
and a last `0` digit added when their count is odd, 16 to 33 bytes instead of 32 to 66 characters,
and made without writing hex at all. `fingerprint_text` and `packed` turn one into the other, and a
value that is not such a text (a fingerprint of an older plait) stays a text.

A step's signature hashes its configuration (task, config with params rendered and code left
out, condition, key and items templates, for_each) and the values
of the params it still reads at run time. So an edit to a step changes that step's nodes and
everything downstream of them, and nothing else; an item added to a glob adds one node and
changes only what depends on the whole batch. Retry policy, timeout, max_parallel and the
declared outputs are left out: changing them does not change what a node computes.

Code is hashed by its syntax tree, without comments, docstrings or layout (`syntax_hash`): an
edit that cannot change a result keeps the nodes; a step with `code_changes: ignore` compares
fingerprints without the code segment (plait.runtime.decide). The code is a segment of its own,
not part of the own half, for that; and a step without code keeps the fingerprints an earlier
plait gave it (`_NO_CODE` stands where the code part was).

The segments and the recorded parts (`parts`, kept per step in the ledger) let the resume
decision say what changed (plait.runtime.decide): the code, which params, the config, the item,
an input file, or an upstream node.

A plan's basis (`basis`) hashes what all of its fingerprints follow from: the plan's digest (its
nodes, keys, items and edges), every step's signature and code, and the size and time of every
tracked file (`signature`). Equal bases, equal fingerprints for every node; the ledger keeps the
basis of a plan it holds up to date, so that a resume of the same plan does not hash its nodes
again (plait.runtime.ledger).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from importlib.machinery import PathFinder
from itertools import accumulate, groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from plait.compiler import NodeSpec, StepSpec
from plait.runtime.tracked_files import FileHashes, Tracked
from plait.templating import TemplateError, analyze, has_template

__all__ = ["NO_UPSTREAM", "Fingerprint", "Fingerprinter", "Segments", "basis", "fingerprint_text", "packed",
           "syntax_hash"]

SCHEME = b"plait-fingerprint-3"  # change it with the recipe of a fingerprint: no stored basis then holds
NO_UPSTREAM = bytes(8)  # the upstream half of a node that depends on nothing: 16 zero digits, packed
Fingerprint = bytes | str  # packed; a text only when it is no fingerprint of this recipe (an older plait's)
_ODD = 25  # the bytes of a packed fingerprint whose text has an odd count of digits (one tail segment: 49)


class Segments(NamedTuple):
    """A fingerprint's segments: own and upstream halves, and the code and files hashes when it has them."""

    own: str
    upstream: str
    code: str | None
    files: str | None

    @classmethod
    def of(cls, fingerprint: Fingerprint) -> Segments:
        fingerprint = fingerprint_text(fingerprint)
        tail = fingerprint[32:]
        code = tail[1:17] if tail.startswith("c") else None
        files = tail[-16:] if tail[-17:-16] == "f" else None
        return cls(fingerprint[:16], fingerprint[16:32], code, files)


class Fingerprinter:
    """Computes node fingerprints for one plan, caching what each step contributes.

    `workspace` is where declared outputs are looked for; `recorded_files` loads the ledger's
    cache of file hashes (plait.runtime.tracked_files).
    """

    def __init__(self, steps: Mapping[str, StepSpec], workflow_dir: Path, params: Mapping[str, Any], *,
                 workspace: Path | None = None,
                 recorded_files: Callable[[], Mapping[str, tuple[int, int, str]]] = dict) -> None:
        self.steps = steps
        self.workflow_dir = workflow_dir
        self.params = params
        self.tracked = Tracked(steps, params, workflow_dir, workspace, FileHashes(recorded_files))
        self._parts: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, bytes] = {}
        self._codes: dict[str, str | None] = {}
        self._started: dict[tuple[str, str], tuple[Any, str, bytes, bool]] = {}  # (step, kind) -> (hash, code text,
        # the code segment packed, reads files)
        self._signature: bytes | None = None
        self._upstream: tuple[Collection[Fingerprint] | None, bytes] = (None, NO_UPSTREAM)  # the last upstream half

    def node(self, node: NodeSpec, upstream: Collection[Fingerprint]) -> bytes:
        """Return the fingerprint of `node`, packed, given its predecessors' fingerprints.

        The upstream half hashes the predecessors' fingerprints as text, as it did when they
        were kept as text, so a ledger of an earlier plait still matches.
        """
        started = self._started.get((node.step, node.kind))
        if started is None:
            started = self._start(node.step, node.kind)
        own, code, tail, reads = started
        digest = own.copy()
        if node.key is not None:
            digest.update(_item_bytes(node.key, node.item))
        head = digest.digest()[:8] + self._half(upstream)
        return head + packed_digits(code + "f" + self.tracked.digest(node)) if reads else head + tail

    def fill(self, fp: dict[str, Fingerprint], nodes: Sequence[str], specs: Sequence[NodeSpec],
             preds: Sequence[Collection[str]]) -> None:
        """Set `fp[nodes[i]]` to what `node` gives `specs[i]`, whose predecessors are `preds[i]`, for each i. Mutates.

        `nodes` come in plan order: a node's predecessors are in `fp` before it. A run of nodes of
        one step and kind that share one collection of predecessors (a batch's items, which have
        none; a growth's children) is hashed in one loop, its upstream half once; nodes whose keys
        and items are plain numbers and texts without a call a node. Others go through `node`.
        """
        start = 0
        runs = groupby(zip(map(_STEP, specs), map(_KIND, specs), map(id, preds)))
        for stop in accumulate(len(list(run)) for _, run in runs):
            before = preds[start]
            upstream = [fp[p] for p in before] if before else ()
            block = specs[start:stop]
            first = block[0]
            started = self._started.get((first.step, first.kind)) or self._start(first.step, first.kind)
            keys, items = list(map(_KEY, block)), list(map(_ITEM, block))
            if started[3] or not set(map(type, keys)) | set(map(type, items)) <= _PLAIN:
                fp.update(zip(nodes[start:stop], [self.node(spec, upstream) for spec in block]))
            else:  # what `node` does, a node's item encoded as `_item_bytes` does a plain one
                copy, rest = started[0].copy, self._half(upstream) + started[2]
                hashed = []
                for key, item in zip(keys, items):
                    digest = copy()
                    digest.update(f"{key!r}\x00{item!r}".encode())
                    hashed.append(digest.digest()[:8] + rest)
                fp.update(zip(nodes[start:stop], hashed))
            start = stop

    def _half(self, upstream: Collection[Fingerprint]) -> bytes:
        """Return the upstream half of a node whose predecessors' fingerprints are `upstream`."""
        if not upstream:
            return NO_UPSTREAM
        if upstream != self._upstream[0]:  # the children of one parent, decided in a row, share theirs
            half = hashlib.sha256("".join(sorted(map(fingerprint_text, upstream))).encode()).digest()[:8]
            self._upstream = (upstream, half)
        return self._upstream[1]

    def _start(self, step: str, kind: str) -> tuple[Any, str, bytes, bool]:
        own = hashlib.sha256(self._step_signature(step))
        own.update(kind.encode())
        code = self.code(step) if kind == "task" else None
        text = "" if code is None else "c" + code
        started = self._started[step, kind] = (own, text, packed_digits(text),
                                               kind == "task" and self.tracked.reads(step))
        return started

    def parts(self, step: str) -> dict[str, Any]:
        """Return the hashes a step's fingerprints are made of, and what tells their changes apart.

        {"config": …, "params": {name: hash}} make the signature: the config with params rendered,
        and the params read at run time. "written" (the step as written) and "reads" (every param
        its templates read, when compiled or run) say whether a changed config is an edit of the
        step or a param's new value (plait.runtime.decide).
        """
        if step not in self._parts:
            spec = self.steps[step]
            config = spec.config
            if spec.task == "python" and "code" in config:  # inline code is a segment of its own
                config = {k: v for k, v in config.items() if k != "code"}
            at_run = self._params_read(spec)
            reads = {**{name: self.params.get(name) for name in spec.params_read or ()}, **at_run}
            self._parts[step] = {
                "config": _short([spec.task, config, spec.condition, spec.key, spec.items, spec.for_each]),
                "params": {name: _short(value) for name, value in at_run.items()},
                "written": spec.written,
                "reads": {name: _short(value) for name, value in sorted(reads.items())},
            }
        return self._parts[step]

    def code(self, step: str) -> str | None:
        """Return 16 hex digits over the syntax of a python step's code (its function's module, or inline), or None."""
        if step not in self._codes:
            self._codes[step] = self._code(self.steps[step])
        return self._codes[step]

    def signature(self, nodes: Iterable[NodeSpec]) -> bytes | None:
        """Return a hash of every step's signature and code, the folder modules are found from, and the size and
        time of every file `nodes` read; None when one of those files changed too recently to trust its time."""
        if self._signature is None:
            files = self.tracked.state(iter(nodes))
            if files is None:
                return None
            digest = hashlib.sha256(str(self.workflow_dir).encode())
            for step in sorted(self.steps):
                digest.update(self._step_signature(step))
                digest.update(str(self.code(step)).encode())
            digest.update(files)
            self._signature = digest.digest()
        return self._signature

    def _step_signature(self, step: str) -> bytes:
        if step not in self._signatures:
            parts = self.parts(step)
            body = json.dumps({"config": parts["config"], "params": parts["params"], "code": _NO_CODE}, sort_keys=True)
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
        """Return the syntax hash of a python step's inline code, or of the module its function lives in."""
        if spec.task != "python":
            return None
        inline = spec.config.get("code")
        if isinstance(inline, str):
            return syntax_hash(inline)
        function = spec.config.get("function")
        if not isinstance(function, str) or ":" not in function:
            return None
        source = _module_file(function.partition(":")[0], [str(self.workflow_dir), *sys.path])
        if source is None:
            return _short("missing")
        try:
            return syntax_hash(Path(source).read_text(encoding="utf-8", errors="surrogateescape"))
        except OSError:
            return _short("unreadable")


def syntax_hash(source: str) -> str:
    """Return 16 hex digits over Python source's syntax tree: comments, docstrings and layout left out.

    Source that does not parse (a template, another language's text) is hashed as it is.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _short(["text", source])
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:16]


def fingerprint_text(fingerprint: Fingerprint) -> str:
    """Return a fingerprint as text (its hex digits: what the ledger's readers see); a text as it is."""
    if type(fingerprint) is str:
        return fingerprint
    text = fingerprint.hex()
    return text[:-1] if len(fingerprint) == _ODD else text


def packed(text: Fingerprint) -> Fingerprint:
    """Return a fingerprint's text packed (see the module docstring); a text that is none stays as it is."""
    if type(text) is str and _FINGERPRINT.fullmatch(text):
        return packed_digits(text)
    return text


def packed_digits(digits: str) -> bytes:
    """Return hex digits two to a byte, with a `0` digit added to an odd count."""
    return bytes.fromhex(digits + "0" if len(digits) & 1 else digits)


# The text of a fingerprint of this recipe: own and upstream halves, then a code segment, a files one, or both.
_FINGERPRINT = re.compile("[0-9a-f]{32}(?:c[0-9a-f]{16})?(?:f[0-9a-f]{16})?")


def basis(plan_digest: str, signature: bytes) -> str:
    """Return the basis of a plan: what every one of its node fingerprints follows from (`Fingerprinter.signature`)."""
    return hashlib.sha256(SCHEME + plan_digest.encode() + signature).hexdigest()


def _short(value: Any) -> str:
    """Return 16 hex digits of a hash over a value's canonical JSON."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_NO_CODE = _short(None)  # where a step's signature held its code's hash before the code became a segment


_STEP, _KIND, _KEY, _ITEM = (itemgetter(i) for i in (1, 2, 8, 9))  # a NodeSpec's step, kind, key and item
_PLAIN = {int, str}  # keys and items `_item_bytes` encodes without JSON


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
