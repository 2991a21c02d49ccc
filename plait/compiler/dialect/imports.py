"""The original engine's `imports:`: steps and parameters taken from other workflow files.

As the original did: each file listed (a path, or `{path: ...}`, relative to the importing file) is
read, its own imports first; its steps come before the importing file's steps, in import order, and
its parameters are defaults that the importing file's own declarations override. A file imported
twice on one chain is a cycle, and an error. The imported trees keep their own positions, so an
error in an imported step points into the imported file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plait.compiler.diagnostics import WorkflowError
from plait.compiler.dialect.findings import Findings
from plait.compiler.dialect.tree import put
from plait.compiler.loader import YamlList, YamlMap, load_yaml, read_regular_file

__all__ = ["with_imports"]


def with_imports(doc: YamlMap, findings: Findings, chain: tuple[str, ...] = ()) -> YamlMap:
    """Return `doc` with its imports merged in and `imports` dropped; record errors in `findings`."""
    here = Path(doc.loc.file).resolve() if doc.loc and not doc.loc.file.startswith("<") else None
    imports = doc.get("imports")
    if here is None or not isinstance(imports, list):
        findings.error(doc.key_locs.get("imports"), "imports are only supported in a workflow file, as a list of paths",
                       "write `imports: [./shared/steps.yaml]`")
        return _without(doc, [], YamlMap(doc.loc))
    chain = (*chain, str(here))
    steps: list[Any] = []
    params = YamlMap(doc.loc)
    for entry, loc in zip(imports, imports.item_locs if isinstance(imports, YamlList) else [doc.loc] * len(imports)):
        path = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(path, str) or not path:
            continue
        target = (here.parent / path).resolve()
        if str(target) in chain:
            findings.error(loc, f"Circular import detected: {' -> '.join([*chain, str(target)])}")
            continue
        try:
            text = read_regular_file(target).decode("utf-8")
        except FileNotFoundError:
            findings.error(loc, f"Failed to import '{path}': File not found: {target}")
            continue
        except OSError as err:  # a FIFO or a device too: reading one could block the compile forever
            findings.error(loc, f"Failed to import '{path}': {err.strerror or err}: {target}")
            continue
        try:
            imported = load_yaml(text, str(target))
        except WorkflowError as err:
            findings.errors += err.errors
            continue
        if not isinstance(imported, YamlMap):
            findings.error(loc, f"Failed to import '{path}': Root must be a mapping")
            continue
        if "imports" in imported:
            imported = with_imports(imported, findings, chain)
        steps += _step_list(imported.get("steps"))
        if isinstance(imported.get("params"), YamlMap):
            for name, spec in imported["params"].items():
                if name not in params:
                    put(params, name, spec, imported["params"], name)
    return _without(doc, steps, params)


def _step_list(steps: Any) -> list[Any]:
    if isinstance(steps, YamlList):
        return list(steps)
    if isinstance(steps, YamlMap):
        listed = []
        for name, spec in steps.items():
            if isinstance(spec, YamlMap) and "name" not in spec:
                named = YamlMap(spec.loc)
                put(named, "name", name, steps, name, loc=steps.key_locs[name])
                for key in spec:
                    put(named, key, spec[key], spec, key)
                spec = named
            listed.append(spec)
        return listed
    return []


def _without(doc: YamlMap, steps: list[Any], params: YamlMap) -> YamlMap:
    """Return a copy of `doc` without `imports`, the imported steps first and parameters merged."""
    out = YamlMap(doc.loc)
    for key in doc:
        if key == "imports":
            continue
        value = doc[key]
        if key == "steps" and steps:
            merged = YamlList(getattr(value, "loc", doc.loc))
            for step in [*steps, *_step_list(value)]:
                merged.append(step)
                merged.item_locs.append(getattr(step, "loc", doc.loc))
            value = merged
        elif key == "params" and isinstance(value, YamlMap) and params:
            merged_params = YamlMap(value.loc)
            for name in params:
                put(merged_params, name, params[name], params, name)
            for name in value:
                put(merged_params, name, value[name], value, name)
            value = merged_params
        put(out, key, value, doc, key)
    if "params" not in doc and params:
        put(out, "params", params, loc=doc.loc)
    return out
