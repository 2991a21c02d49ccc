"""Files a node reads and writes, as the resume decision sees them: contents hashed behind a stat cache.

A node's tracked inputs are the files its step names: a `glob:` item (the item is the path), a
`lines:` item that names a file beside the workflow, a `template` task's `template_file`, and
the step's `input_files` (plait.compiler.tracking). Their contents make the `files` part of the
node's fingerprint (plait.runtime.fingerprint), so an edit re-runs exactly the nodes that read
the file.

Decisions:
- Contents are hashed only when a file's size or modification time differ from what the
  ledger's `files` table recorded (git's index does the same): a resume over many unchanged
  files costs a `stat` each, not a read.
- A file modified within `RACY_SECONDS` of being looked at is not trusted by its stat next time
  (its recorded time is left out): an edit in the same tick of the file system's clock, which
  leaves size and time as they were, is then still seen (git's "racily clean" entries). Nor does a
  plan whose files include such a file keep a basis (plait.runtime.decide.ledger_holds).
- What the cache learns is written when the run ends (`FileHashes.learned`), never by a dry run;
  a run killed before that only hashes the same files again.
- Paths render from the node's item when they are templates (one that fails to render names no
  file: the node fails when it runs, and says why), and a path with `*`, `?` or `[` is a glob,
  read relative to the workflow's folder: its matches are the node's files, so a file that
  appears or goes changes the node too.
- Inputs are hashed when the run decides, before any node runs: a file an upstream step writes
  reaches its readers through the upstream half of their fingerprints, not through this.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from plait.compiler import NodeSpec, StepSpec
from plait.templating import (
    ITEM_NAMES,
    PARAM_NAMES,
    RENDER_ERRORS,
    TemplateError,
    analyze,
    has_template,
    render,
    template_context,
)
from plait.terminal import escape

__all__ = ["RACY_SECONDS", "FileHashes", "Tracked"]

RACY_SECONDS = 2.0  # the coarsest modification-time tick of a common file system (FAT), in seconds
MISSING = "missing"
_BLOCK = 1 << 20
_KNOWABLE = PARAM_NAMES | ITEM_NAMES  # a template_file naming only these is known before the node runs


class FileHashes:
    """Content hashes of files, trusted from a stat cache; remembers what it learned, for the ledger.

    `recorded` loads the ledger's cache, {path: (size, mtime_ns, hash)}, when first needed.
    """

    def __init__(self, recorded: Callable[[], Mapping[str, tuple[int, int, str]]]) -> None:
        self._load = recorded
        self._recorded: Mapping[str, tuple[int, int, str]] | None = None
        self._stats: dict[str, tuple[int, int]] = {}  # (size, mtime_ns), or (-1, -1) for a missing file
        self._hashes: dict[str, str] = {}
        self.changed: set[str] = set()  # files whose content differs from what the cache recorded, or new to it
        self.racy = False  # a file looked at was modified too recently to trust its stat later
        self._cutoff = time.time_ns() - int(RACY_SECONDS * 1e9)

    @property
    def recorded(self) -> Mapping[str, tuple[int, int, str]]:
        if self._recorded is None:
            self._recorded = self._load()
        return self._recorded

    def stat(self, path: str) -> tuple[int, int]:
        """Return a file's (size, modification time in ns); looked at once. (-1, -1) when it cannot be read, or is
        no regular file (reading a FIFO or a device to hash it could block the run forever)."""
        known = self._stats.get(path)
        if known is None:
            try:
                st = os.stat(path)
                known = (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else (-1, -1)
            except (OSError, ValueError):
                known = (-1, -1)
            if known[1] >= self._cutoff:
                self.racy = True
            self._stats[path] = known
        return known

    def of(self, path: str) -> str:
        """Return 16 hex digits of a file's content hash ("missing" when it cannot be read)."""
        digest = self._hashes.get(path)
        if digest is not None:
            return digest
        size, mtime = self.stat(path)
        before = self.recorded.get(path)
        if size < 0:
            digest = MISSING
        elif before is not None and (before[0], before[1]) == (size, mtime):
            digest = before[2]
        else:
            digest = _content_hash(path)
        if (before[2] if before is not None else MISSING) != digest:  # (never seen and still missing: no news)
            self.changed.add(path)
        self._hashes[path] = digest
        return digest

    def learned(self) -> list[tuple[str, int, int, str]]:
        """Return the cache rows to keep: files hashed anew, a racy file without its time (hashed again next time).

        A file that is missing and was never seen is not kept: there is nothing to hash, and a
        `lines:` step's items name files only now and then (a million names of no file would
        make a million rows).
        """
        rows: list[tuple[str, int, int, str]] = []
        if not self._hashes:  # nothing hashed (a resume with nothing to decide): the cache is not even read
            return rows
        recorded = self.recorded
        for path, digest in self._hashes.items():
            if digest == MISSING and path not in recorded:
                continue
            size, mtime = self._stats[path]
            if mtime >= self._cutoff:
                mtime = -1
            if recorded.get(path) != (size, mtime, digest):
                rows.append((path, size, mtime, digest))
        return rows


class Tracked:
    """The files each node of a plan reads and writes, and their state: what fingerprints and decisions ask.

    `workflow_dir` is where inputs are read from; `workspace` where outputs are written.
    """

    def __init__(self, steps: Mapping[str, StepSpec], params: Mapping[str, Any], workflow_dir: Path,
                 workspace: Path | None, hashes: FileHashes) -> None:
        self.steps = steps
        self.params = params
        self.workflow_dir = workflow_dir
        self.workspace = workspace
        self.hashes = hashes
        self._templates = {name: _input_templates(step) for name, step in steps.items()}
        self._globs: dict[str, list[str]] = {}
        self._folder = str(workflow_dir)

    def reads(self, step: str) -> bool:
        """Say whether the nodes of `step` read tracked files."""
        return bool(self._templates[step]) or self.steps[step].file_items is not None

    def inputs(self, node: NodeSpec) -> list[str]:
        """Return the files `node` reads, as absolute paths (a glob's matches in order)."""
        paths = []
        item = node.item
        if node.kind == "task" and self.steps[node.step].file_items is not None and isinstance(item, str):
            paths.append(item if os.path.isabs(item) else os.path.join(self._folder, item))  # a glob's is absolute
        for template in self._templates[node.step]:
            paths += self._expand(self._render(template, node))
        return paths

    def digest(self, node: NodeSpec) -> str:
        """Return 16 hex digits over the contents of the files `node` reads."""
        digest = hashlib.sha256()
        for path in self.inputs(node):
            digest.update(f"{path}\x00{self.hashes.of(path)}\x00".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:16]

    def changed_input(self, node: NodeSpec) -> str | None:
        """Return a file `node` reads that is new or changed since the cache last saw it (or its only file), as
        written beside the workflow; None when none is (a file that went, or one the cache saw changed already)."""
        paths = self.inputs(node)
        changed = next((p for p in paths if p in self.hashes.changed), None) or (paths[0] if len(paths) == 1 else None)
        if changed is None:
            return None
        shown = Path(changed)
        return escape(str(shown.relative_to(self.workflow_dir)) if shown.is_relative_to(self.workflow_dir) else changed)

    def missing_output(self, node: NodeSpec) -> str | None:
        """Return the first declared output of `node` that is not in the workspace (as written), or None."""
        if self.workspace is None:
            return None
        for template in self.steps[node.step].output_files or ():
            path = self._render(template, node)
            if not (self.workspace / path).exists():
                return escape(path)
        return None

    def state(self, nodes: Iterator[NodeSpec]) -> bytes | None:
        """Return a digest of every tracked input's path, size and time; None when one is too recent to trust."""
        readers = {step for step in self.steps if self.reads(step)}
        if not readers:
            return b""
        stat, inputs = self.hashes.stat, self.inputs
        parts = [f"{path}\x00{stat(path)}\x00" for node in nodes if node.kind == "task" and node.step in readers
                 for path in inputs(node)]
        if self.hashes.racy:
            return None
        return hashlib.sha256("".join(parts).encode("utf-8", "surrogatepass")).digest()

    def _render(self, template: str, node: NodeSpec) -> str:
        if not has_template(template):
            return template
        context = template_context(self.params, item=node.item, index=node.index, key=node.key, step=node.step,
                                   workflow_dir=self.workflow_dir)
        try:
            return str(render(template, context))
        except RENDER_ERRORS:
            return template

    def _expand(self, path: str) -> list[str]:
        """Return a path made absolute, or a glob's sorted matches."""
        full = os.path.join(self._folder, path)
        if not globlib.has_magic(path):
            return [full]
        if full not in self._globs:
            self._globs[full] = sorted(globlib.glob(full, recursive=True))
        return self._globs[full]


def _input_templates(step: StepSpec) -> list[str]:
    """Return the paths a step's nodes read as written: `input_files` and a `template_file` known before it runs."""
    paths = list(step.input_files or ())
    template_file = step.config.get("template_file") if step.task == "template" else None
    if isinstance(template_file, str):
        try:
            knowable = not has_template(template_file) or analyze(template_file).names <= _KNOWABLE
        except TemplateError:
            knowable = False
        if knowable:
            paths.append(template_file)
    return paths


def _content_hash(path: str) -> str:
    """Return 16 hex digits of the SHA-256 of a file's bytes, read in blocks ("missing" when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while block := file.read(_BLOCK):
                digest.update(block)
    except OSError:
        return MISSING
    return digest.hexdigest()[:16]
