"""The original engine's batch step, rewritten into plait's own form.

The YAML Workflow Engine that plait grew from wrote batches as `task: batch` with
`inputs: {items, task: {task, inputs}}`. `unwrap_batch` rewrites such a step into plain `items:`
plus the inner task, positions kept, so both forms compile to the same item nodes.
"""

from __future__ import annotations

from plait.compiler.diagnostics import Diagnostic, did_you_mean
from plait.compiler.loader import YamlMap
from plait.tasks.base import kinds

__all__ = ["unwrap_batch"]

# chunk_size and max_workers were the original engine's own batching knobs; plait batches dispatch
# itself and takes its parallelism from --jobs, so they are accepted and have no effect.
_BATCH_INPUTS = ("items", "task", "chunk_size", "max_workers")


def unwrap_batch(raw: YamlMap, errors: list[Diagnostic]) -> YamlMap | None:
    """Rewrite the original engine's `task: batch` step into `items:` plus the inner task. Mutates `errors`."""
    if raw.get("task") != "batch" or "batch" in kinds():
        return raw
    inputs = raw.get("inputs")
    inner = inputs.get("task") if isinstance(inputs, YamlMap) else None
    if not isinstance(inner, YamlMap) or "items" not in inputs or not isinstance(inner.get("task"), str):
        errors.append(Diagnostic(raw.value_locs["task"], "a 'batch' step needs inputs.items and inputs.task.task",
                                 "write `inputs: {items: [...], task: {task: shell, inputs: {...}}}`, "
                                 "or use `items:` on the step itself"))
        return None
    for mapping, allowed, what in ((inputs, _BATCH_INPUTS, "a 'batch' step's inputs"),
                                   (inner, ("task", "inputs"), "a 'batch' step's inner task")):
        for key in mapping:
            if key not in allowed:
                errors.append(Diagnostic(mapping.key_locs[key], f"unknown key '{key}' in {what}",
                                         did_you_mean(key, allowed) or f"{what} accepts: {', '.join(allowed)}"))
    out = YamlMap(raw.loc)
    for key in raw:
        if key != "inputs":
            out[key], out.key_locs[key], out.value_locs[key] = raw[key], raw.key_locs[key], raw.value_locs[key]
    for key, target in (("task", "task"), ("inputs", "inputs")):
        if key in inner:
            out[target], out.key_locs[target], out.value_locs[target] = inner[key], inner.key_locs[key], \
                inner.value_locs[key]
    out["items"], out.key_locs["items"], out.value_locs["items"] = inputs["items"], inputs.key_locs["items"], \
        inputs.value_locs["items"]
    return out
