"""Compile a workflow file into a `Plan`: load, check everything, then expand.

The compiler is pure: it reads the workflow file (and a glob's folder or a lines file) and
returns an immutable plan; no task runs and nothing is written. Its one effect in the process:
the values of parameters declared `secret: true` are registered to be masked in every output
(`plait.masking`). A file written for the original
engine is first translated into plait's own form (`plait.compiler.dialect`); the plan then
carries the notes on what behaves differently. It checks the whole file before
it builds anything and reports every error it can find in one `WorkflowError`, in file order,
each pointing at `file:line:col` with a hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from plait import collector, masking
from plait.compiler.diagnostics import Diagnostic, SourceLoc, WorkflowError
from plait.compiler.dialect import Note, is_original, translate
from plait.compiler.draft import StepDraft
from plait.compiler.expand import build_plan
from plait.compiler.loader import YamlList, YamlMap, load_yaml, read_regular_file
from plait.compiler.params import check_params_file, read_params_file, resolve_params
from plait.compiler.plan import Plan
from plait.compiler.policy import check_retry_values
from plait.compiler.schema import DEFAULTS_FIELDS, RETRY_FIELDS, WORKFLOW_FIELDS, check_fields
from plait.compiler.steps import check_step
from plait.templating import TemplateError, analyze

__all__ = ["compile_text", "compile_workflow", "in_file_order", "read_workflow"]

WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def compile_workflow(source: str | Path, params: Mapping[str, Any] | None = None,
                     params_file: str | Path | None = None) -> Plan:
    """Compile a workflow file (a path) or YAML text into a Plan. Raises WorkflowError.

    `params_file`: a YAML or JSON file of parameter values, checked against the workflow's
    declarations where each value is written; `params` override it.
    """
    text, filename, base_dir, path = read_workflow(source)
    return compile_text(text, filename, base_dir, params, path, params_file)


def read_workflow(source: str | Path) -> tuple[str, str, Path, str | None]:
    """Return (text, name for messages, folder the workflow reads from, absolute path or None)."""
    is_path = isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml")))
    if not is_path:
        return str(source), "<string>", Path.cwd(), None
    path = Path(source)
    try:
        data = read_regular_file(path)
    except OSError as err:
        raise WorkflowError([Diagnostic(None, f"cannot read workflow file '{source}': {err.strerror or err}",
                                        "check the path; it is relative to the current folder")]) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise WorkflowError([Diagnostic(SourceLoc(str(source), line, column),
                                        f"byte 0x{data[err.start]:02x} is not UTF-8 text",
                                        "save the workflow file as UTF-8")]) from err
    return text, str(source), path.resolve().parent, str(path.resolve())


def compile_text(text: str, filename: str, base_dir: Path, params: Mapping[str, Any] | None = None,
                 path: str | None = None, params_file: str | Path | None = None) -> Plan:
    """Compile YAML text; `base_dir` is where globs, lines files and Python modules are looked up."""
    with collector.paused():
        return _compile(text, filename, base_dir, params, path, params_file)


def _compile(text: str, filename: str, base_dir: Path, params: Mapping[str, Any] | None,
             path: str | None, params_file: str | Path | None = None) -> Plan:
    given = read_params_file(str(params_file)) if params_file is not None else None
    doc = load_yaml(text, filename)
    start = SourceLoc(filename, 1, 1)
    if not isinstance(doc, YamlMap):
        raise WorkflowError([Diagnostic(start, "a workflow file must be a mapping with `name:` and `steps:`",
                                        "start the file with `name: my-workflow`")])
    notes: list[Note] = []
    if is_original(doc):
        translated = translate(doc, {**(given or {}), **(params or {})})
        if translated.errors:
            raise WorkflowError(in_file_order(translated.errors))
        doc, notes = translated.tree, translated.notes
    errors = check_fields(doc, WORKFLOW_FIELDS, "the workflow")
    if given is not None:
        good, file_errors = check_params_file(given, doc.get("params"))
        errors += file_errors
        params = {**good, **(params or {})}
    name = doc.get("name")
    if isinstance(name, str) and not WORKFLOW_NAME.match(name):
        errors.append(Diagnostic(doc.value_locs["name"], f"workflow name '{name}' is not allowed",
                                 "use letters, digits, - and _"))
    values, param_errors = resolve_params(doc.get("params"), params or {}, doc.key_locs.get("params", start))
    errors += param_errors
    masking.hide(values[n] for n in _secret_params(doc.get("params")) if n in values)
    defaults = doc.get("defaults") if isinstance(doc.get("defaults"), YamlMap) else YamlMap(start)
    errors += check_fields(defaults, DEFAULTS_FIELDS, "defaults")
    if isinstance(defaults.get("retry"), YamlMap):
        retry = defaults["retry"]
        retry_errors = check_fields(retry, RETRY_FIELDS, "a retry policy")
        retry_errors += check_retry_values({k: v for k, v in retry.items() if k in RETRY_FIELDS and v is not None},
                                           retry)
        if retry_errors:  # reported once, here; the steps are checked without it
            errors += retry_errors
            defaults = _without(defaults, "retry")
    declared = set(doc["params"]) if isinstance(doc.get("params"), YamlMap) else set()
    drafts = _check_steps(doc.get("steps"), values, declared, defaults, base_dir, errors)
    order = _step_order(drafts, errors)
    if errors:
        raise WorkflowError(in_file_order(errors))
    return build_plan(name, doc.get("description"), path, values, [drafts[s] for s in order], [str(n) for n in notes],
                      base_dir)


def _secret_params(declared: Any) -> list[str]:
    """Return the parameters declared `secret: true` (their values are masked in every output: plait.masking)."""
    if not isinstance(declared, YamlMap):
        return []
    return [name for name, spec in declared.items() if isinstance(spec, YamlMap) and spec.get("secret") is True]


def _without(mapping: YamlMap, key: str) -> YamlMap:
    """Return a copy of a loaded mapping without `key`, positions kept."""
    out = YamlMap(mapping.loc)
    for name, value in mapping.items():
        if name != key:
            out[name], out.key_locs[name], out.value_locs[name] = value, mapping.key_locs[name], \
                mapping.value_locs[name]
    return out


def in_file_order(errors: list[Diagnostic]) -> list[Diagnostic]:
    """Return the errors once each, in the order of their positions in the file."""
    return sorted(dict.fromkeys(errors), key=lambda e: (e.loc.line, e.loc.column) if e.loc else (0, 0))


def _check_steps(steps: Any, params: Mapping[str, Any], param_names: set[str], defaults: YamlMap, base_dir: Path,
                 errors: list[Diagnostic]) -> dict[str, StepDraft]:
    """Check every step; return the usable drafts by name. Mutates `errors`."""
    if not isinstance(steps, YamlList):
        return {}
    if not steps:
        errors.append(Diagnostic(steps.loc, "No steps to execute: the workflow has no steps",  # the original's words
                                 "add at least one step under `steps:`"))
    names: dict[str, SourceLoc] = {}
    for raw, loc in zip(steps, steps.item_locs):
        if not isinstance(raw, YamlMap):
            errors.append(Diagnostic(loc, "a step must be a mapping with `name:` and `task:`",
                                     "write `- name: my-step` and `task: ...` under it"))
        elif isinstance(raw.get("name"), str):
            step = raw["name"]
            if step in names:
                errors.append(Diagnostic(raw.value_locs["name"], f"duplicate step name '{step}'",
                                         f"'{step}' is already defined at {names[step]}; rename one"))
            else:
                names[step] = raw.value_locs["name"]
    drafts: dict[str, StepDraft] = {}
    for position, raw in enumerate(steps):
        if not isinstance(raw, YamlMap):
            continue
        draft, step_errors = check_step(raw, position, names, params, defaults, base_dir, param_names)
        errors += step_errors
        if draft is not None and draft.name not in drafts:
            drafts[draft.name] = draft
    for draft in drafts.values():
        target = drafts.get(draft.for_each) if draft.for_each else None
        if target is not None and not target.is_batch:
            errors.append(Diagnostic(draft.depends_on[draft.for_each],
                                     f"step '{draft.name}' runs for_each over '{target.name}', which is not a batch",
                                     f"give '{target.name}' `items:`, or use `depends_on: [{target.name}]`"))
        errors += _check_group(draft, drafts)
        errors += _check_reads(draft, drafts)
    return drafts


def _check_group(draft: StepDraft, drafts: Mapping[str, StepDraft]) -> list[Diagnostic]:
    """Check a group_by step's grouped step: a batch, and one that fans out when the key reads `parent`."""
    target = drafts.get(draft.group_by) if draft.group_by and draft.group_by != draft.name else None
    if target is None or draft.group_key is None:
        return []  # an unknown step or a missing key, reported where group_by is read
    if not target.is_batch:
        return [Diagnostic(draft.depends_on[target.name], f"step '{draft.name}' groups '{target.name}', "
                                                          "which is not a batch",
                           f"give '{target.name}' `items:`, or read its result with steps.{target.name}.result")]
    try:
        reads_parent = "parent" in analyze(draft.group_key).names
    except TemplateError:
        return []  # reported where the key is written
    if reads_parent and not target.fans_out:
        return [Diagnostic(draft.group_loc, f"step '{draft.name}': its group key reads 'parent', but "
                                            f"'{target.name}' does not fan out per parent",
                           f"group by the items of '{target.name}' (`item`, `key`, `index`)")]
    return []


def _check_reads(draft: StepDraft, drafts: Mapping[str, StepDraft]) -> list[Diagnostic]:
    """Check `steps.X.result` is read from one node and `steps.X.results` from a whole batch."""
    errors = []
    for step, attr, where in draft.reads:
        upstream = drafts.get(step)
        if upstream is None:
            continue
        if step == draft.group_by:
            errors.append(Diagnostic(where, f"step '{draft.name}' reads steps.{step}.{attr}, but it groups '{step}'",
                                     "read this group's items and results as group.items and group.results"))
            continue
        if draft.fans_out and step == draft.for_each:
            errors.append(Diagnostic(where, f"step '{draft.name}' reads steps.{step}.{attr}, but '{step}' is its "
                                            "parent step",
                                     "read the parent's result as parent.result (and parent.key, parent.item)"))
            continue
        one = not upstream.is_batch or step == draft.for_each  # a plain step, or this item's partner
        if attr == "results" and one:
            what = f"'{step}' is this item's partner" if upstream.is_batch else f"'{step}' is one node"
            errors.append(Diagnostic(where, f"step '{draft.name}' reads steps.{step}.results, but {what}",
                                     f"use steps.{step}.result"))
        elif attr == "result" and not one:
            errors.append(Diagnostic(where, f"step '{draft.name}' reads steps.{step}.result, but '{step}' is a batch",
                                     f"use steps.{step}.results (a list in item order), or `for_each: {step}` "
                                     "to pair items one to one"))
    return errors


def _step_order(drafts: Mapping[str, StepDraft], errors: list[Diagnostic]) -> list[str]:
    """Return the steps in dependency order, ties in file order; report a cycle. Mutates `errors`."""
    graph = nx.DiGraph()
    graph.add_nodes_from(drafts)
    graph.add_edges_from((dep, d.name) for d in drafts.values() for dep in (*d.depends_on, *d.after) if dep in drafts)
    try:
        return list(nx.lexicographical_topological_sort(graph, key=lambda s: drafts[s].position))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(graph)]
        first = min(cycle, key=lambda s: drafts[s].position)
        start = cycle.index(first)
        path = [*cycle[start:], *cycle[:start], first]
        errors.append(Diagnostic(drafts[first].loc, f"steps depend on each other in a cycle: {' -> '.join(path)}",
                                 "remove one of these dependencies "
                                 "(depends_on, after, for_each or a steps.X template)"))
        return []
