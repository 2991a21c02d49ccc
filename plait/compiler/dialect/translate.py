"""Translate a workflow tree written for the original engine into plait's native tree.

Decisions (each construct, and where plait's behaviour differs on purpose):
- **List order.** The original ran a step after the one before it in the list (or in the chosen
  flow), whatever became of it; a step with `depends_on` waited for exactly those steps. Each
  step without `depends_on` therefore gets `after: [the previous step]`: plait's order-only
  dependency, which a failure of that step does not skip.
- **Flows.** `flows: {default, definitions: [{name: [steps]}]}` becomes a `flow` parameter whose
  choices are the flow names (and `all`); its value (the default flow, or `--flow`/`-p flow=`)
  picks the steps, in the flow's order.
- **on_error.** `action: fail|continue` is plait's `on_error`; `continue` also tolerates the
  failure (`max_failures: 100%`), since the original then finished the run as a success.
  `retry: N` and `delay: S` become a retry policy of N+1 attempts, S seconds apart, on any
  error (the original retried everything). Without `retry`, the original retried every failing
  step 3 times; plait runs it once (a note says so), unless `action: retry` or a `delay` asks
  for retries: then 3, the original's count. `next: STEP` jumps to STEP on failure: the
  steps between are made to depend on the failing one, so they are skipped when it fails, and
  STEP runs either way; the failure is tolerated (`max_failures: 100%`), so the run succeeds
  once STEP ran, as in the original. `message` becomes the step's `error_message`, with
  `error` the original's `{step, message}`.
- **condition.** The original ran a step when its condition rendered to exactly `True`; plait runs
  it when the value is true (`true`, `yes`, a non-empty list...). A condition without `{{ }}`, or
  one that reads a name nothing defines (it never rendered, and the original skipped a step whose
  condition failed), was never `True` there, so the step never ran: it is a `noop` that is always
  skipped, with a note.
- **batch.** `task: batch` with `inputs: {items, task: {task, inputs}}` becomes plait's `items:`
  and the inner task (unwrapped by `batch_form`, as for a native file), keyed by position
  (`key: "{{ index }}"`), since the original allowed an item twice. `arg_name: x` becomes
  `item` (`args.x` in templates; in code, `x` is bound to the item); `max_workers` becomes the
  step's `max_parallel`. A failed item now fails its step (a note says so; `max_failures`
  tolerates some).
- **Templates** that read the original's wrapped results are rewritten (`results.rewrite_reads`).
- **Parameters.** `allowedValues`/`enum` become `choices`. `minLength`/`maxLength`, which the
  original checked against the default only, are checked here against the default too; the
  schema keys it never checked (`items`, `minItems`, ...) are dropped with a note.
- **settings.** `error_handling` is always on in plait (undefined names are errors); `max_workers`
  is `--jobs`. The original gave other settings only to templates (`settings.X`): a template that
  reads `settings` is refused, with a hint; a setting nothing reads gets a note.
- **Names.** A workflow name with spaces becomes one with `_` (a note says so).

A file may mix the two forms: plait's own top-level keys, step keys and task kinds are taken as
they are. Every node of the output keeps the position of the text it came from, so errors that
plait's own checks find later point into the user's file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.dialect.detect import is_marked, read_by_order
from plait.compiler.dialect.findings import Note
from plait.compiler.dialect.imports import with_imports
from plait.compiler.dialect.names import TIMESTAMP, literal
from plait.compiler.dialect.on_error import action_of
from plait.compiler.dialect.step import StepRules, failed_test, in_order
from plait.compiler.dialect.tree import located, name_list, put
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.params import PARAM_TYPES
from plait.compiler.schema import WORKFLOW_FIELDS

__all__ = ["Note", "Translation", "translate"]

_NOT_PARAMS = frozenset({"args", "params", "env", "steps", "item", "index", "key", "batch", "run", "workspace",
                         "loop", "range", "true", "false", "none", "True", "False", "None", "error"})

ALL_FLOWS = "all"
_TOP = ("name", "description", "params", "settings", "steps", "flows")
_PARAM_KEPT = {"type": "type", "default": "default", "description": "description", "required": "required",
               "allowedValues": "choices", "enum": "choices", "choices": "choices"}
_PARAM_UNCHECKED = ("items", "minItems", "maxItems", "pattern", "minimum", "maximum", "format")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Translation:
    """A workflow of the original dialect in plait's form: the tree, the notes, the errors, the flow chosen."""

    tree: YamlMap
    notes: list[Note]
    errors: list[Diagnostic]
    flow: str | None  # the flow whose steps the tree holds, when the file has `flows:`


def _type_of(value: Any) -> str:
    """Return the parameter type of a value given for an undeclared parameter."""
    for type_name, types in PARAM_TYPES.items():
        if isinstance(value, types) and not (isinstance(value, bool) and type_name != "boolean"):
            return type_name
    return "string"


def translate(doc: YamlMap, overrides: Mapping[str, Any]) -> Translation:
    """Translate a workflow in the original dialect into plait's native tree."""
    return _Translator(doc, overrides).run()


class _Translator(StepRules):
    """The workflow-wide half of one translation: parameters, settings, flows and list order."""

    def __init__(self, doc: YamlMap, overrides: Mapping[str, Any]):
        super().__init__(doc)
        self.overrides = overrides
        self.flow: str | None = None
        self.workflow_name: Any = None
        self.param_names: list[str] = []
        self.names: dict[str, str] = {}
        self.jump_sources: dict[Any, list[str]] = {}

    def run(self) -> Translation:
        doc = self.doc
        out = YamlMap(doc.loc)
        self.keep_own_keys(doc, out, (*_TOP, "imports", "secrets"), WORKFLOW_FIELDS, "the top level",
                           f"allowed: {', '.join(_TOP)}")
        if "secrets" in doc:
            self._secrets(doc["secrets"], doc.value_locs["secrets"])
        if "imports" in doc:
            doc = self.doc = with_imports(doc, self)
        self._by_order(doc)
        named = "name" in doc
        put(out, "name", self._name(doc), doc, "name" if named else None, loc=None if named else doc.loc)
        if "description" in doc:
            put(out, "description", doc["description"], doc, "description")
        params = self._params(doc.get("params"))
        steps = self._steps(doc.get("steps"))
        flow_steps = self._flow(doc.get("flows"), steps, params)
        if not flow_steps and not self.errors:
            self.error(doc.value_locs.get("steps", doc.loc), "No steps to execute: the workflow (or its flow) has no "
                                                             "steps", "add at least one step under `steps:`")
        self.param_names = [p for p in params if isinstance(p, str) and p.isidentifier() and p not in _NOT_PARAMS]
        self.names = self._run_names()
        if "settings" in doc:
            self._settings(doc["settings"], doc.key_locs["settings"])
        if params:
            put(out, "params", params, doc, "params" if "params" in doc else "flows")
        if "steps" in doc:
            put(out, "steps", self._sequence(flow_steps, doc["steps"], steps), doc, "steps")
        notes = sorted(self.notes, key=lambda n: (n.loc.line, n.loc.column) if n.loc else (0, 0))
        return Translation(out, notes, self.errors, self.flow)

    # --- the workflow ----------------------------------------------------------------------------

    def _by_order(self, doc: YamlMap) -> None:
        """Explain, in one note, why a file with nothing of either form is read as the original's, and how not to.

        Such a file was most likely written for plait: the notes about the original's other
        behaviours (its retries) would only confuse, so they are left out.
        """
        reasons = [] if is_marked(doc) else read_by_order(doc)
        if not reasons:
            return
        ordered = "its steps have no `depends_on`" in reasons
        fixes = [] if reasons == ["its steps have no `depends_on`"] else ["the workflow a name (letters, digits, - "
                                                                          "and _)"]
        if ordered:
            fixes.append("each step `depends_on` (`[]` for none)")
        self.note(doc.key_locs.get("steps", doc.loc), f"read as a file of the original engine (yaml-workflow) "
                  f"because {' and '.join(reasons)}" + (": its steps run one after another, in list order" if ordered
                                                        else "") +
                  f". To write plait's own form instead, give {' and '.join(fixes)}" +
                  (": steps that do not depend on each other then run at once" if ordered else ""),
                  once="read-by-order")
        self.noted.add("retries")

    def _name(self, doc: YamlMap) -> Any:
        """Return the plait name of the workflow: its `name`, or the file's stem as the original took."""
        if "name" not in doc:
            file = doc.loc.file if doc.loc else "<string>"
            name = self.workflow_name = Path(file).stem if file and not file.startswith("<") else "Unnamed Workflow"
            fixed = _NAME_BAD.sub("_", name.strip()).strip("_") or "workflow"
            self.note(doc.loc, f"the workflow has no name: it is '{fixed}' (from the file's name, as the original "
                               f"took it), and its default workspace is runs/{fixed}")
            return fixed
        name = self.workflow_name = doc["name"]
        if isinstance(name, str) and _NAME_BAD.search(name):
            fixed = _NAME_BAD.sub("_", name.strip()).strip("_") or "workflow"
            self.note(doc.value_locs["name"], f"workflow name '{name}' becomes '{fixed}' (plait names are "
                                              "letters, digits, - and _): its default workspace is runs/" + fixed)
            return fixed
        return name

    def _run_names(self) -> dict[str, str]:
        """Return {the original's name: the expression over plait's names that stands for it} (names.py)."""
        file = self.doc.loc.file if self.doc.loc else ""
        path = str(Path(file).resolve()) if file and not file.startswith("<") else ""
        name = literal(str(self.workflow_name))
        names = {param: f"args.{param}" for param in self.param_names}
        names.update(workflow_name=name, workflow_file=literal(path), timestamp=TIMESTAMP, run_number="run.number",
                     workflow=f"{{'name': {name}, 'file': {literal(path)}, 'workspace': workspace, "
                              f"'run_number': run.number, 'timestamp': {TIMESTAMP}}}")
        return names

    def _secrets(self, secrets: Any, loc: SourceLoc) -> None:
        """Check the environment variables `secrets` lists are set, as the original did before running."""
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            self.error(loc, "'secrets' must be a list of environment variable names")
            return
        missing = [name for name in secrets if not os.environ.get(name)]
        if missing:
            self.error(loc, f"Missing required secrets (environment variables): {', '.join(missing)}",
                       "set them in the environment plait runs in")

    def _params(self, params: Any) -> YamlMap:
        out = YamlMap(getattr(params, "loc", self.doc.loc))
        if params is not None and not isinstance(params, YamlMap):
            self.error(self.doc.value_locs.get("params"), "params must be a mapping of name: declaration",
                       "write `params: {name: {type: string, default: x}}`")
            return out
        out = self._declared(params if isinstance(params, YamlMap) else YamlMap(self.doc.loc), out)
        for name, value in self.overrides.items():
            if name in out or name == "flow":
                continue
            declared = located({"type": _type_of(value), "required": False}, self.doc.loc)
            put(out, name, declared, loc=self.doc.loc)
            self.note(self.doc.loc, f"parameter '{name}' is not declared: it is taken as given, as the original "
                                    "took any name=value", once="undeclared")
        return out

    def _declared(self, params: YamlMap, out: YamlMap) -> YamlMap:
        """Translate the declared parameters into `out`. Mutates `out`."""
        for name, spec in params.items():
            if not isinstance(spec, YamlMap):
                put(out, name, spec, params, name)
                continue
            declared = YamlMap(spec.loc)
            for key, value in spec.items():
                if key in _PARAM_KEPT:
                    target = _PARAM_KEPT[key]
                    declared[target] = value
                    declared.key_locs[target], declared.value_locs[target] = spec.key_locs[key], spec.value_locs[key]
                elif key in ("minLength", "maxLength"):
                    self._length(name, spec, key)
                elif key in _PARAM_UNCHECKED:
                    self.note(spec.key_locs[key], f"parameter '{name}': '{key}' is not checked (nor was it by the "
                                                  "original engine)")
                else:
                    self.error(spec.key_locs[key], f"parameter '{name}': unknown key '{key}'",
                               did_you_mean(key, [*_PARAM_KEPT, "minLength", "maxLength"])
                               or "a parameter takes type, default, description, required, allowedValues")
            if spec.get("required") is True and "default" not in spec and name not in self.overrides:
                self.error(params.key_locs[name], f"Required parameter '{name}' is undefined",
                           f"pass --param {name}=VALUE, or give it a default")
            if "default" not in declared and "required" not in declared:
                declared["required"] = False  # the original gave an undeclared default as None
                declared.key_locs["required"] = declared.value_locs["required"] = spec.loc
            if "type" not in declared and "default" not in declared:  # the original took any value: the one given
                declared["type"] = _type_of(self.overrides[name]) if name in self.overrides else "string"
                declared.key_locs["type"] = declared.value_locs["type"] = spec.loc
            put(out, name, declared, params, name)
        return out

    def _length(self, name: str, spec: YamlMap, key: str) -> None:
        """Check minLength/maxLength where the original did: the default, and a required parameter's minLength."""
        limit, default = spec[key], spec.get("default")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            self.error(spec.value_locs[key], f"parameter '{name}': {key} must be a whole number, 0 or more")
            return
        if isinstance(default, str) and (len(default) < limit if key == "minLength" else len(default) > limit):
            self.error(spec.value_locs["default"], f"parameter '{name}': the default {default!r} breaks "
                                                   f"{key} {limit}", "change the default or the limit")
        given = self.overrides.get(name)
        if key == "minLength" and spec.get("required") is True and given is not None and len(str(given)) < limit:
            self.error(spec.key_locs[key], f"Parameter '{name}' must be at least {limit} characters long",
                       f"pass a longer --param {name}=VALUE")
        self.note(spec.key_locs[key], f"parameter '{name}': {key} is checked against the default (and minLength "
                                      "against the value of a required parameter), as the original engine did; "
                                      "other values given are not checked", once="length")

    def _settings(self, settings: Any, loc: SourceLoc) -> None:
        if not isinstance(settings, YamlMap):
            self.error(loc, "settings must be a mapping")
            return
        for key in settings:
            if key == "error_handling":
                self.note(settings.key_locs[key], "settings.error_handling: plait always treats an undefined "
                                                  "name in a template as an error")
            elif key == "max_workers":
                self.note(settings.key_locs[key], "settings.max_workers: plait takes its parallelism from "
                                                  "`plait run --jobs N`")
            else:  # the original only handed it to templates, where reading `settings` is refused
                self.note(settings.key_locs[key], f"settings.{key}: the original engine only gave it to templates "
                                                  f"(settings.{key}), and plait's templates do not see it")

    # --- steps and flows -------------------------------------------------------------------------

    def _steps(self, steps: Any) -> list[YamlMap]:
        """Return the original steps as a list of mappings (the original also took a mapping by name)."""
        if isinstance(steps, YamlMap):
            listed = []
            for name, spec in steps.items():
                if isinstance(spec, YamlMap):
                    named = YamlMap(spec.loc)  # a copy: the loaded document stays as it was read
                    if "name" not in spec:
                        put(named, "name", name, steps, name, loc=steps.key_locs[name])
                    for key in spec:
                        put(named, key, spec[key], spec, key)
                    listed.append(named)
                else:
                    self.error(steps.value_locs[name], f"step '{name}' must be a mapping")
            return listed
        if isinstance(steps, YamlList):
            return list(steps)
        return []

    def _flow(self, flows: Any, steps: list, params: YamlMap) -> list:
        """Return the steps of the chosen flow, in its order; declare the `flow` parameter. Mutates `params`."""
        if flows is None:
            if self.overrides.get("flow", ALL_FLOWS) != ALL_FLOWS:
                self.error(self.doc.loc, f"Flow '{self.overrides['flow']}' not found",
                           "the workflow defines no flows (`flows:`); run it without --flow")
            elif "flow" in self.overrides and "flow" not in params:  # `--flow all`, which the original took
                put(params, "flow", located({"type": "string", "default": ALL_FLOWS, "choices": [ALL_FLOWS]},
                                            self.doc.loc), loc=self.doc.loc)
            return steps
        loc = self.doc.key_locs["flows"]
        defined: dict[str, tuple[list, SourceLoc]] = {}
        if not isinstance(flows, YamlMap) or not isinstance(flows.get("definitions"), YamlList):
            self.error(loc, "flows must be a mapping with `definitions:`, a list of {flow name: [step names]}",
                       "write `flows: {default: main, definitions: [{main: [a, b]}]}`")
            return steps
        for key in flows:
            if key not in ("default", "definitions"):
                self.error(flows.key_locs[key], f"unknown key '{key}' in flows", "flows takes default and definitions")
        for entry, entry_loc in zip(flows["definitions"], flows["definitions"].item_locs):
            if not isinstance(entry, YamlMap):
                self.error(entry_loc, "each flow definition must be {flow name: [step names]}")
                continue
            for name, listed in entry.items():
                if name in defined:
                    self.error(entry.key_locs[name], f"flow '{name}' is defined twice")
                elif not isinstance(listed, YamlList) or not all(isinstance(s, str) for s in listed):
                    self.error(entry.value_locs[name], f"flow '{name}' must list step names")
                else:
                    defined[name] = (listed, entry.value_locs[name])
        names = [*defined, ALL_FLOWS]
        default = flows.get("default", ALL_FLOWS)
        if default not in names:
            self.error(flows.value_locs["default"], f"Flow '{default}' not found: the default flow is not defined",
                       did_you_mean(str(default), names) or f"flows: {', '.join(names)}")
            return steps
        if "flow" in params:
            self.error(params.key_locs["flow"], "a parameter named 'flow' clashes with the flow choice that "
                                                "`flows:` adds", "rename the parameter")
            return steps
        declared = YamlMap(loc)
        for key, value in (("type", "string"), ("default", default), ("choices", names),
                           ("description", "the flow to run (from flows:)")):
            declared[key] = value
            declared.key_locs[key] = declared.value_locs[key] = loc
        put(params, "flow", declared, self.doc, "flows")
        chosen = self.flow = self.overrides.get("flow", default)
        if chosen not in names:
            self.error(loc, f"Flow '{chosen}' not found", f"flows: {', '.join(map(str, names))}")
            return steps
        if chosen == ALL_FLOWS:
            return steps
        by_name = {s["name"]: s for s in steps if isinstance(s, YamlMap) and isinstance(s.get("name"), str)}
        listed, _ = defined[chosen]
        picked = []
        for name, name_loc in zip(listed, listed.item_locs):
            if name in by_name:
                picked.append(by_name[name])
            else:
                self.error(name_loc, f"flow '{chosen}' lists unknown step '{name}'",
                           did_you_mean(name, [n for n in by_name if isinstance(n, str)]) or None)
        return picked

    def _sequence(self, steps: list, source: Any, every: list) -> YamlList:
        """Translate each step and chain the ones without `depends_on` in list order (`every`: all steps).

        Error flows (`on_error.next`) are wired here: see `_error_flows`.
        """
        out = YamlList(getattr(source, "loc", self.doc.loc))
        steps, failure_only = self._error_flows(steps, every)
        named = [s for s in steps if isinstance(s, YamlMap) and isinstance(s.get("name"), str)]
        kinds = {s["name"]: s["task"] for s in named if isinstance(s.get("task"), str)}
        batch_items = {s["name"]: s["inputs"].get("items") for s in named
                       if s.get("task") == "batch" and isinstance(s.get("inputs"), YamlMap)}
        order = [s.get("name") if isinstance(s, YamlMap) else None for s in steps]  # by position in `steps`
        jumps = self._jumps(steps, order, every)
        self.jump_sources = {}
        for src, (_, end) in jumps.items():
            if isinstance(order[end], str):
                self.jump_sources.setdefault(order[end], []).append(src)
        previous: str | None = None
        for position, raw in enumerate(steps):
            if not isinstance(raw, YamlMap):
                self.error(getattr(raw, "loc", out.loc), "a step must be a mapping with `name:` and `task:`")
                continue
            earlier = {k: v for k, v in kinds.items() if k in order[:position]}
            step = self._step(raw, earlier, batch_items)
            if "depends_on" not in raw and previous is not None:
                put(step, "after", name_list([previous], raw.loc), raw, "name", loc=raw.loc)
            passed = [src for src, (start, end) in jumps.items() if start < position < end]
            failed = failure_only.get(raw["name"], []) if isinstance(raw.get("name"), str) else []
            if passed or failed:
                _guard(step, raw, passed, failed)
            out.append(in_order(step))
            out.item_locs.append(raw.loc)
            previous = _name(raw) or previous
        return out

    def _error_flows(self, steps: list, every: list) -> tuple[list, dict[str, list[str]]]:
        """Return (the steps with the error flows' steps the flow leaves out, {such step: the steps it handles}).

        On a failure with `on_error.next: T`, the original ran T and every step after T in the
        file, whether the chosen flow listed them or not. A T (and the steps after it) that the flow
        leaves out is put in the list at its place in the file, and runs only when a step that
        jumps to it failed; the steps of the flow between the failing step and T run only when it
        did not fail (`_guard`).
        """
        names = [_name(s) for s in every]
        listed = [_name(s) for s in steps]
        failure_only: dict[str, list[str]] = {}
        steps = list(steps)
        for raw in list(steps):
            on_error = raw.get("on_error") if isinstance(raw, YamlMap) else None
            target = on_error.get("next") if isinstance(on_error, YamlMap) else None
            if not isinstance(target, str) or target not in names or target in listed or \
                    not isinstance(raw.get("name"), str):
                continue
            start = names.index(target)
            for extra in every[start:]:
                if not isinstance(extra, YamlMap) or not isinstance(extra.get("name"), str):
                    continue  # reported where the step is translated
                if extra.get("name") in listed and extra.get("name") not in failure_only:
                    continue
                failure_only.setdefault(extra["name"], []).append(raw["name"])
                if extra.get("name") not in listed:
                    at = next((i for i, n in enumerate(listed) if n in names and names.index(n) > names.index(
                        extra["name"])), len(steps))
                    steps.insert(at, extra)
                    listed.insert(at, extra["name"])
        return steps, failure_only

    def _jumps(self, steps: list, order: list, every: list) -> dict[str, tuple[int, int]]:
        """Return {failing step: (its position, the `on_error.next` target's position)}."""
        jumps = {}
        for position, raw in enumerate(steps):
            on_error = raw.get("on_error") if isinstance(raw, YamlMap) else None
            if not isinstance(on_error, YamlMap) or action_of(on_error) != "next" or "next" not in on_error:
                continue  # without `next:`, an error of its own (see _on_error)
            target = on_error["next"]
            if target not in order:
                self.error(on_error.value_locs["next"], f"Invalid on_error.next target '{target}': no step has that "
                                                        "name",
                           did_you_mean(str(target), [o for o in order if isinstance(o, str)]) or None)
            elif order.index(target) <= position:
                self.error(on_error.value_locs["next"], f"on_error.next jumps back to '{target}'",
                           "plait runs each step once per run; point `next` at a later step")
            elif isinstance(raw.get("name"), str):
                jumps[raw["name"]] = (position, order.index(target))
        return jumps


def _guard(step: YamlMap, raw: YamlMap, passed: list[str], failed: list[str]) -> None:
    """Run `step` only when every step of `passed` succeeded and, with `failed`, one of those failed.

    A failing step that jumps (`on_error.next`) has its failure tolerated, so the steps that depend
    on it still run: the condition tells a failure (`steps.X.status` is set) from a success.
    Mutates `step`.
    """
    existing = step.get("depends_on") or []
    existing = [existing] if isinstance(existing, str) else list(existing)
    put(step, "depends_on", name_list([*existing, *(s for s in [*passed, *failed] if s not in existing)], raw.loc),
        raw, "name", loc=raw.loc)
    tests = [f"steps.{s}.status is not defined" for s in passed]
    if failed:
        tests.append("(" + " or ".join(failed_test(s) for s in failed) + ")")
    test = " and ".join(tests)
    condition = step.get("condition")
    text = (f"{{% if {test} %}}{condition}{{% else %}}False{{% endif %}}" if isinstance(condition, str)
            else f"{{{{ {test} }}}}")
    put(step, "condition", text, raw, "condition" if "condition" in raw else "name",
        loc=None if "condition" in raw else raw.loc)


def _name(step: Any) -> str | None:
    """Return a step's name when it has a usable one (a wrong one is reported where steps are checked)."""
    name = step.get("name") if isinstance(step, YamlMap) else None
    return name if isinstance(name, str) else None
