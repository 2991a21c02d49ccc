"""What a step tells the resume decision beyond its config: files it reads and writes, how code edits count.

- `input_files:` files the step's nodes read (paths or globs relative to the workflow's folder,
  templates of params and the item allowed): their contents are part of each node's fingerprint,
  so editing one re-runs exactly the nodes that read it (reason `input file`). A `glob:` or
  `lines:` step's items that name files, and a `template` task's `template_file`, are tracked
  the same way without being declared.
- `output_files:` files each node writes, relative to the workspace: a node done before whose
  output is missing runs again (reason `output missing`).
- `code_changes: ignore` keeps finished nodes when the step's code changes (a function module or
  inline code): for a step whose results do not depend on its code's history (a refactor, a log
  line). The default, `rerun`, re-runs them when the code's syntax changes (comments and
  docstrings never count: plait.runtime.fingerprint).
- `max_parallel: N` lets at most N of the step's nodes run at once (a rate-limited API, a licence).
Each is checked here, where it stands, like every step key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.compiler.diagnostics import Diagnostic, did_you_mean
from plait.compiler.draft import StepDraft
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.step_templates import render_params
from plait.templating import ITEM_NAMES, PARAM_NAMES, TemplateError, analyze, has_template

__all__ = ["CODE_CHANGES", "check_tracking"]

CODE_CHANGES = ("rerun", "ignore")


def check_tracking(draft: StepDraft, raw: YamlMap, params: Mapping[str, Any], base_dir: Any) -> list[Diagnostic]:
    """Check and set the step's input_files, output_files, code_changes and max_parallel; return the errors."""
    errors: list[Diagnostic] = []
    for key in ("input_files", "output_files"):
        paths, problems = _paths(draft, raw, key, params, base_dir)
        errors += problems
        setattr(draft, key, paths)
    code_changes = raw.get("code_changes")
    if code_changes is not None and code_changes not in CODE_CHANGES:
        errors.append(Diagnostic(raw.value_locs["code_changes"], f"step '{draft.name}': code_changes must be "
                                 f"rerun or ignore, not {code_changes!r}",
                                 did_you_mean(str(code_changes), CODE_CHANGES) or "ignore keeps finished nodes when "
                                 "the code changes; rerun (the default) runs them again"))
    elif code_changes is not None:
        draft.code_changes = code_changes
    limit = raw.get("max_parallel")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            errors.append(Diagnostic(raw.value_locs["max_parallel"], f"step '{draft.name}': max_parallel must be a "
                                     f"whole number of 1 or more, not {limit!r}",
                                     "write how many of the step's nodes may run at once, e.g. `max_parallel: 2`"))
        else:
            draft.max_parallel = limit
    return errors


def _paths(draft: StepDraft, raw: YamlMap, key: str, params: Mapping[str, Any],
           base_dir: Any) -> tuple[tuple[str, ...] | None, list[Diagnostic]]:
    """Return a step's declared paths (params rendered, item templates left for each node) and the errors."""
    value = raw.get(key)
    if value is None:
        return None, []
    values, locs = ([value], [raw.value_locs[key]]) if isinstance(value, str) else (
        (list(value), list(value.item_locs)) if isinstance(value, YamlList) else ([], []))
    if not values and not isinstance(value, YamlList):
        return None, [Diagnostic(raw.value_locs[key], f"step '{draft.name}': {key} takes a path or a list of paths, "
                                 f"not {type(value).__name__}", f"write `{key}: [data/input.csv]`")]
    allowed = PARAM_NAMES | (ITEM_NAMES if draft.is_batch else frozenset())
    errors: list[Diagnostic] = []
    paths = []
    for path, loc in zip(values, locs):
        if not isinstance(path, str) or not path:
            errors.append(Diagnostic(loc, f"step '{draft.name}': {key} lists paths, not {path!r}"))
            continue
        if has_template(path):
            try:
                names = analyze(path).names
            except TemplateError as err:
                errors.append(Diagnostic(loc, f"step '{draft.name}': template error in {key}: {err}",
                                         "check the {{ … }} syntax"))
                continue
            if names - allowed:
                name = sorted(names - allowed)[0]
                why = ("the step has no items" if name in ITEM_NAMES else
                       "a file's name must be known before the run starts")
                errors.append(Diagnostic(loc, f"step '{draft.name}': {key} cannot read '{name}': {why}",
                                         f"{key} may read {', '.join(sorted(allowed))}"))
                continue
        paths.append(render_params(path, params, base_dir))
    return tuple(paths), errors
