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
  step 3 times; plait runs it once (a note says so). `next: STEP` jumps to STEP on failure: the
  steps between are made to depend on the failing one, so they are skipped when it fails, and
  STEP runs either way; the failure still fails the run (exit 1) after STEP ran. `message` is
  not used (a note says so).
- **condition.** The original ran a step when its condition rendered to exactly `True`; plait runs
  it when the value is true (`true`, `yes`, a non-empty list...). A condition without `{{ }}` was
  never `True` there, so the step never ran: that is refused, with a hint.
- **batch.** `task: batch` with `inputs: {items, task: {task, inputs}}` becomes plait's `items:`
  and the inner task (unwrapped by `batch_form`, as for a native file), keyed by position
  (`key: "{{ index }}"`), since the original allowed an item twice. `arg_name: x` becomes
  `item` (`args.x` in templates; in code, `x` is bound to the item). A failed item now fails its
  step (a note says so; `max_failures` tolerates some).
- **Templates** that read the original's wrapped results are rewritten (`results.rewrite_reads`).
- **Parameters.** `allowedValues`/`enum` become `choices`. `minLength`/`maxLength`, which the
  original checked against the default only, are checked here against the default too; the
  schema keys it never checked (`items`, `minItems`, ...) are dropped with a note.
- **settings.** `error_handling` is always on in plait (undefined names are errors); `max_workers`
  is `--jobs`. Other settings were template values (`settings.X`): they are refused, with a hint.
- **Names.** A workflow name with spaces becomes one with `_` (a note says so).

A file may mix the two forms: plait's own top-level keys, step keys and task kinds are taken as
they are. Every node of the output keeps the position of the text it came from, so errors that
plait's own checks find later point into the user's file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from plait.compiler.batch_form import unwrap_batch
from plait.compiler.diagnostics import Diagnostic, SourceLoc, did_you_mean
from plait.compiler.dialect.detect import ORIGINAL_KINDS
from plait.compiler.dialect.results import code_view, rewrite_reads
from plait.compiler.dialect.tasks import code_reads, translate_task
from plait.compiler.loader import YamlList, YamlMap
from plait.compiler.schema import STEP_FIELDS, WORKFLOW_FIELDS
from plait.tasks.base import get_kind
from plait.templating import TemplateError, analyze

__all__ = ["Note", "Translation", "translate"]

ALL_FLOWS = "all"
_TOP = ("name", "description", "params", "settings", "steps", "flows")
_STEP = ("name", "task", "description", "inputs", "condition", "on_error", "depends_on", "retry", "timeout")
_ON_ERROR = ("action", "retry", "delay", "next", "message")
_PARAM_KEPT = {"type": "type", "default": "default", "description": "description", "required": "required",
               "allowedValues": "choices", "enum": "choices", "choices": "choices"}
_PARAM_UNCHECKED = ("items", "minItems", "maxItems", "pattern", "minimum", "maximum", "format")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_STEP_ORDER = ("name", "description", "task", "depends_on", "after", "items", "key", "condition", "inputs", "retry",
               "timeout", "on_error", "max_failures")
_TIMEOUT_INPUT = ("shell", "python_module", "python_script")  # kinds whose inputs took a timeout
_RAW_TEXT = ("python",)  # code is Python, not a template: plait never renders it
_ORIGINAL_NAMES = {
    "workflow_name": "write the workflow's name itself",
    "workflow": "write the workflow's name or file itself; `workspace` and `run.id` are there",
    "workflow_file": "write the file's path itself",
    "timestamp": "`run.id` starts with the run's start time (20261124T211809-...)",
    "run_number": "plait keeps one ledger per workspace and names runs by `run.id`",
    "settings": "declare the setting as a parameter and read `args.NAME`",
    "error": "plait records the error itself: `plait status` shows it",
}
_NO_KIND_HINT = "plait has shell, python, file, template, noop and echo; rewrite the step with one of them"


@dataclass(frozen=True, slots=True)
class Note:
    """One way the translated workflow behaves differently from the original engine, and where."""

    loc: SourceLoc | None
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: note: {self.message}" if self.loc else f"note: {self.message}"


@dataclass(frozen=True, slots=True)
class Translation:
    """A workflow of the original dialect in plait's form: the tree, the notes, the errors, the flow chosen."""

    tree: YamlMap
    notes: list[Note]
    errors: list[Diagnostic]
    flow: str | None  # the flow whose steps the tree holds, when the file has `flows:`


def translate(doc: YamlMap, overrides: Mapping[str, Any]) -> Translation:
    """Translate a workflow in the original dialect into plait's native tree."""
    return _Translator(doc, overrides).run()


class _Translator:
    """One translation's state: the notes and errors found so far. Mutates its lists only."""

    def __init__(self, doc: YamlMap, overrides: Mapping[str, Any]):
        self.doc, self.overrides = doc, overrides
        self.notes: list[Note] = []
        self.errors: list[Diagnostic] = []
        self.noted: set[str] = set()
        self.flow: str | None = None

    def note(self, loc: SourceLoc | None, message: str, once: str | None = None) -> None:
        if once is not None:
            if once in self.noted:
                return
            self.noted.add(once)
        self.notes.append(Note(loc, message))

    def error(self, loc: SourceLoc | None, message: str, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(loc, message, hint))

    def run(self) -> Translation:
        doc = self.doc
        out = YamlMap(doc.loc)
        for key in doc:
            if key in WORKFLOW_FIELDS and key not in _TOP:
                _put(out, key, doc[key], doc, key)  # plait's own key, in a file that mixes the two
            elif key not in _TOP:
                self.error(doc.key_locs[key], f"unknown top-level key '{key}' for the original engine's format",
                           did_you_mean(key, _TOP) or (f"plait cannot honour '{key}'; remove it" if key in
                                                       ("imports", "secrets") else f"allowed: {', '.join(_TOP)}"))
        if "name" in doc:
            _put(out, "name", self._name(doc), doc, "name")
        if "description" in doc:
            _put(out, "description", doc["description"], doc, "description")
        params = self._params(doc.get("params"))
        steps = self._steps(doc.get("steps"))
        flow_steps = self._flow(doc.get("flows"), steps, params)
        if "settings" in doc:
            self._settings(doc["settings"], doc.key_locs["settings"])
        if params:
            _put(out, "params", params, doc, "params" if "params" in doc else "flows")
        if "steps" in doc:
            _put(out, "steps", self._sequence(flow_steps, doc["steps"]), doc, "steps")
        in_order = sorted(self.notes, key=lambda n: (n.loc.line, n.loc.column) if n.loc else (0, 0))
        return Translation(out, in_order, self.errors, self.flow)

    # --- the workflow ----------------------------------------------------------------------------

    def _name(self, doc: YamlMap) -> Any:
        name = doc["name"]
        if isinstance(name, str) and _NAME_BAD.search(name):
            fixed = _NAME_BAD.sub("_", name.strip()).strip("_") or "workflow"
            self.note(doc.value_locs["name"], f"workflow name '{name}' becomes '{fixed}' (plait names are "
                                              "letters, digits, - and _): its default workspace is runs/" + fixed)
            return fixed
        return name

    def _params(self, params: Any) -> YamlMap:
        out = YamlMap(getattr(params, "loc", self.doc.loc))
        if not isinstance(params, YamlMap):
            if params is not None:
                self.error(self.doc.value_locs.get("params"), "params must be a mapping of name: declaration",
                           "write `params: {name: {type: string, default: x}}`")
            return out
        for name, spec in params.items():
            if not isinstance(spec, YamlMap):
                _put(out, name, spec, params, name)
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
            if "default" not in declared and "required" not in declared:
                declared["required"] = False  # the original gave an undeclared default as None
                declared.key_locs["required"] = declared.value_locs["required"] = spec.loc
            _put(out, name, declared, params, name)
        return out

    def _length(self, name: str, spec: YamlMap, key: str) -> None:
        """Check minLength/maxLength against the default, as the original did; note the overrides are not."""
        limit, default = spec[key], spec.get("default")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            self.error(spec.value_locs[key], f"parameter '{name}': {key} must be a whole number, 0 or more")
            return
        if isinstance(default, str) and (len(default) < limit if key == "minLength" else len(default) > limit):
            self.error(spec.value_locs["default"], f"parameter '{name}': the default {default!r} breaks "
                                                   f"{key} {limit}", "change the default or the limit")
        self.note(spec.key_locs[key], f"parameter '{name}': {key} is checked against the default only, "
                                      "as the original engine did", once="length")

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
            else:
                self.error(settings.key_locs[key], f"settings.{key} has no plait counterpart",
                           f"declare it as a parameter (`params: {{{key}: ...}}`) and read `args.{key}`")

    # --- steps and flows -------------------------------------------------------------------------

    def _steps(self, steps: Any) -> list[YamlMap]:
        """Return the original steps as a list of mappings (the original also took a mapping by name)."""
        if isinstance(steps, YamlMap):
            listed = []
            for name, spec in steps.items():
                if isinstance(spec, YamlMap):
                    if "name" not in spec:
                        spec["name"] = name
                        spec.key_locs["name"] = spec.value_locs["name"] = steps.key_locs[name]
                    listed.append(spec)
                else:
                    self.error(steps.value_locs[name], f"step '{name}' must be a mapping")
            return listed
        if isinstance(steps, YamlList):
            return list(steps)
        return []

    def _flow(self, flows: Any, steps: list, params: YamlMap) -> list:
        """Return the steps of the chosen flow, in its order; declare the `flow` parameter. Mutates `params`."""
        if flows is None:
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
            self.error(flows.value_locs["default"], f"the default flow '{default}' is not defined",
                       did_you_mean(str(default), names) or f"flows: {', '.join(names)}")
            default = ALL_FLOWS
        if "flow" in params:
            self.error(params.key_locs["flow"], "a parameter named 'flow' clashes with the flow choice that "
                                                "`flows:` adds", "rename the parameter")
            return steps
        declared = YamlMap(loc)
        for key, value in (("type", "string"), ("default", default), ("choices", names),
                           ("description", "the flow to run (from flows:)")):
            declared[key] = value
            declared.key_locs[key] = declared.value_locs[key] = loc
        _put(params, "flow", declared, self.doc, "flows")
        chosen = self.flow = self.overrides.get("flow", default)
        if not isinstance(chosen, str) or chosen not in defined:
            return steps  # `all`, or a value the parameter's choices refuse with their own message
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

    def _sequence(self, steps: list, source: Any) -> YamlList:
        """Translate each step and chain the ones without `depends_on` in list order."""
        out = YamlList(getattr(source, "loc", self.doc.loc))
        named = [s for s in steps if isinstance(s, YamlMap) and isinstance(s.get("name"), str)]
        kinds = {s["name"]: s["task"] for s in named if isinstance(s.get("task"), str)}
        batch_items = {s["name"]: s["inputs"].get("items") for s in named
                       if s.get("task") == "batch" and isinstance(s.get("inputs"), YamlMap)}
        order = [s.get("name") for s in steps if isinstance(s, YamlMap)]
        jumps = self._jumps(steps, order)
        previous: str | None = None
        for position, raw in enumerate(steps):
            if not isinstance(raw, YamlMap):
                self.error(getattr(raw, "loc", out.loc), "a step must be a mapping with `name:` and `task:`")
                continue
            earlier = {k: v for k, v in kinds.items() if k in order[:position]}
            step = self._step(raw, earlier, batch_items)
            if "depends_on" not in raw and previous is not None:
                _put(step, "after", _names([previous], raw.loc), raw, "name", loc=raw.loc)
            guarded = [src for src, (start, end) in jumps.items() if start < position < end]
            if guarded:
                extra = YamlList(raw.loc)
                for name in guarded:
                    extra.append(name)
                    extra.item_locs.append(raw.loc)
                existing = step.get("depends_on")
                if isinstance(existing, str):
                    existing = _names([existing], raw.value_locs["depends_on"])
                merged = _names([*(existing or []), *extra], raw.loc)
                _put(step, "depends_on", merged, raw, "name", loc=raw.loc)
            out.append(_in_order(step))
            out.item_locs.append(raw.loc)
            previous = raw.get("name") if isinstance(raw.get("name"), str) else previous
        return out

    def _jumps(self, steps: list, order: list) -> dict[str, tuple[int, int]]:
        """Return {failing step: (its position, the `on_error.next` target's position)}."""
        jumps = {}
        for position, raw in enumerate(steps):
            on_error = raw.get("on_error") if isinstance(raw, YamlMap) else None
            if not isinstance(on_error, YamlMap) or _action(on_error) != "next" or "next" not in on_error:
                continue  # without `next:`, an error of its own (see _on_error)
            target = on_error["next"]
            if target not in order:
                self.error(on_error.value_locs["next"], f"on_error.next names unknown step '{target}'",
                           did_you_mean(str(target), [o for o in order if isinstance(o, str)]) or None)
            elif order.index(target) <= position:
                self.error(on_error.value_locs["next"], f"on_error.next jumps back to '{target}'",
                           "plait runs each step once per run; point `next` at a later step")
            elif isinstance(raw.get("name"), str):
                jumps[raw["name"]] = (position, order.index(target))
        return jumps

    def _templates(self, value: Any, loc: SourceLoc) -> None:
        """Refuse the original's run-time names plait has no counterpart for; note how values render."""
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                names = analyze(value).names
            except TemplateError:
                return  # plait's own checks report it, with its position
            for name in sorted(names & _ORIGINAL_NAMES.keys()):
                self.error(loc, f"templates of the original engine saw '{name}'; plait's do not",
                           _ORIGINAL_NAMES[name])
            self.note(loc, "a value that is one {{ expression }} keeps its type, and text stays text; the original "
                           "rendered every value to text and parsed it back ('007' became 7)", once="render")
        elif isinstance(value, YamlMap):
            for key, inner in value.items():
                self._templates(inner, value.value_locs.get(key, loc))
        elif isinstance(value, YamlList):
            for inner, inner_loc in zip(value, value.item_locs):
                self._templates(inner, inner_loc)

    def _step(self, raw: YamlMap, kinds: Mapping[str, str], batch_items: Mapping[str, Any]) -> YamlMap:
        out = YamlMap(raw.loc)
        for key in raw:
            if key in STEP_FIELDS and key not in _STEP:
                _put(out, key, raw[key], raw, key)  # plait's own key, in a file that mixes the two
            elif key not in _STEP:
                self.error(raw.key_locs[key], f"unknown key '{key}' in a step of the original engine's format",
                           did_you_mean(key, [*_STEP, *STEP_FIELDS]) or f"a step takes: {', '.join(_STEP)}")
        for key in ("name", "description", "depends_on", "timeout"):
            if key in raw:
                _put(out, key, raw[key], raw, key)
        task = raw.get("task")
        inputs = raw.get("inputs") if isinstance(raw.get("inputs"), YamlMap) else YamlMap(raw.loc)
        if isinstance(task, str):
            self._task(out, raw, task, inputs, kinds, batch_items)
        elif "task" in raw:
            _put(out, "task", task, raw, "task")  # plait's own check reports the type
        if "condition" in raw:
            self._condition(out, raw, kinds)
        for key in ("items", "inputs", "condition"):
            if key in out and (key != "inputs" or out["task"] not in _RAW_TEXT):
                self._templates(out[key], out.value_locs[key])
        self._on_error(out, raw)
        return out

    def _task(self, out: YamlMap, raw: YamlMap, task: str, inputs: YamlMap, kinds: Mapping[str, str],
              batch_items: Mapping[str, Any]) -> None:
        """Put the plait task and inputs of `raw` into `out`. Mutates `out`."""
        if task == "batch":
            self._batch(out, raw, inputs, kinds)
            return
        if task in _TIMEOUT_INPUT and "timeout" in inputs and "timeout" not in raw:
            _put(out, "timeout", inputs["timeout"], inputs, "timeout")  # plait's timeout is the step's
        translated = translate_task(task, inputs, raw.value_locs["task"], raw.get("name"))
        if translated is None and task not in ORIGINAL_KINDS and get_kind(task) is not None:
            translated = task, inputs, []  # plait's own kind, in a file that mixes the two
        if translated is None:
            self.error(raw.value_locs["task"], f"the original engine's task '{task}' has no plait counterpart",
                       _NO_KIND_HINT)
            return
        kind, native, errors = translated
        self.errors += errors
        _put(out, "task", kind, raw, "task")
        native = _rewritten(native, kinds)
        if kind == "python" and isinstance(native.get("code"), str):
            self._code_names(native, kinds, batch_items, in_batch=False)
        if native or "inputs" in raw:
            _put(out, "inputs", native, raw, "inputs", loc=raw.key_locs.get("inputs", raw.loc))
        if kind == "template" and isinstance(native.get("template"), str):
            self._raw_reads(out, raw, native["template"], kinds)

    def _raw_reads(self, out: YamlMap, raw: YamlMap, text: str, kinds: Mapping[str, str]) -> None:
        """Add the earlier steps that raw text reads (`steps.X`) to `depends_on`: plait shows only those.

        Mutates `out`.
        """
        read = [step for step in kinds if re.search(rf"\bsteps\.{re.escape(step)}\b|\bsteps\[['\"]"
                                                      rf"{re.escape(step)}['\"]\]", text)]
        if not read:
            return
        existing = out.get("depends_on") or []
        existing = [existing] if isinstance(existing, str) else list(existing)
        _put(out, "depends_on", _names([*existing, *(s for s in read if s not in existing)], raw.loc), raw,
             "inputs", loc=raw.value_locs.get("inputs", raw.loc))

    def _batch(self, out: YamlMap, raw: YamlMap, inputs: YamlMap, kinds: Mapping[str, str]) -> None:
        """Unwrap `task: batch` into plait's `items:` plus the inner task, translated; keyed by position.

        `arg_name: x` becomes `item`. The unwrapping itself, and its errors, are plait's own
        (`batch_form`), which its native format shares. Mutates `out`.
        """
        arg_name = str(inputs.get("arg_name", "item"))
        step = YamlMap(raw.loc)
        _put(step, "task", "batch", raw, "task")
        batch = YamlMap(inputs.loc)
        for key in inputs:
            if key != "arg_name":
                _put(batch, key, inputs[key], inputs, key)
        inner = inputs.get("task")
        if isinstance(inner, YamlMap) and isinstance(inner.get("task"), str):
            translated = self._inner(inner, arg_name, kinds, raw.get("name"))
            if translated is None:
                return
            _put(batch, "task", translated, inputs, "task")
        _put(step, "inputs", batch, raw, "inputs")
        unwrapped = unwrap_batch(step, self.errors)
        if unwrapped is None:
            return
        for key in ("task", "items", "inputs"):
            if key in unwrapped:
                value = _rewritten(unwrapped[key], kinds) if key != "task" else unwrapped[key]
                _put(out, key, value, unwrapped, key)
        _put(out, "key", "{{ index }}", unwrapped, "items")
        knobs = [key for key in ("chunk_size", "max_workers") if key in inputs]
        if knobs:
            self.note(inputs.key_locs[knobs[0]], f"batch {' and '.join(knobs)}: no effect, plait dispatches the "
                                                 "items itself, on `plait run --jobs N` workers", once="knobs")
        self.note(raw.value_locs["task"], "a failed batch item fails its step (the original recorded it and went "
                                          "on); set `max_failures` to tolerate some", once="batch")
        self.note(raw.value_locs["task"], "batch items are keyed by position (`name[0]`, `name[1]`...), since the "
                                          "original allowed an item twice; a `key:` of your own keeps an item's "
                                          "node when the list changes", once="batch-key")

    def _code_names(self, native: YamlMap, kinds: Mapping[str, str], batch_items: Mapping[str, Any],
                    in_batch: bool) -> None:
        """Bind, in `kwargs`, what the original gave python_code that plait's code lacks. Mutates `native`.

        `steps` in the original's result shapes, for the steps the code names; and `context`, the
        original's whole template context, when the code reads it (its `args`, `env`, `steps`,
        `workspace`, `workflow_name` and, in a batch, `batch`).
        """
        code = native["code"]
        view = code_view(code, kinds, batch_items)
        bound: dict[str, Any] = {}
        if view is not None:
            bound["steps"] = view
        if "context" in code_reads(code):
            bound["context"] = {"args": "{{ args }}", "env": "{{ env }}", "steps": view or {},
                                "workspace": "{{ workspace }}", "workflow_name": self.doc.get("name"),
                                **({"batch": "{{ batch }}"} if in_batch else {})}
        if bound:
            kwargs = native.get("kwargs") or YamlMap(native.loc)
            for name, value in bound.items():
                _put(kwargs, name, _located(value, native.value_locs["code"]), native, "code")
            _put(native, "kwargs", kwargs, native, "code")

    def _inner(self, inner: YamlMap, arg_name: str, kinds: Mapping[str, str], step: Any) -> YamlMap | None:
        """Return a batch's inner task translated to plait's kind and inputs, or None (an error is recorded)."""
        inner_inputs = inner.get("inputs") if isinstance(inner.get("inputs"), YamlMap) else YamlMap(inner.loc)
        translated = translate_task(inner["task"], _renamed_item(inner_inputs, arg_name), inner.value_locs["task"],
                                    step)
        if translated is None:
            self.error(inner.value_locs["task"], f"the original engine's task '{inner['task']}' has no plait "
                                                 "counterpart", _NO_KIND_HINT)
            return None
        kind, native, errors = translated
        self.errors += errors
        if kind == "python" and isinstance(native.get("code"), str):
            self._code_names(native, kinds, {}, in_batch=True)
            if arg_name != "item":
                kwargs = native.get("kwargs") or YamlMap(native.loc)
                _put(kwargs, arg_name, "{{ item }}", native, "code")
                _put(native, "kwargs", kwargs, native, "code")
        out = YamlMap(inner.loc)
        _put(out, "task", kind, inner, "task")
        _put(out, "inputs", native, inner, "inputs" if "inputs" in inner else "task")
        for key in inner:
            if key not in ("task", "inputs"):
                _put(out, key, inner[key], inner, key)  # for plait's own check to report
        return out

    def _condition(self, out: YamlMap, raw: YamlMap, kinds: Mapping[str, str]) -> None:
        condition = raw["condition"]
        loc = raw.value_locs["condition"]
        if isinstance(condition, str) and "{{" not in condition and "{%" not in condition:
            self.error(loc, "this condition has no {{ }}, so the original engine never ran the step "
                            "(it ran a step only when the condition rendered to exactly 'True')",
                       f"write `condition: \"{{{{ {condition} }}}}\"`, or remove the step")
            return
        _put(out, "condition", _rewritten(condition, kinds), raw, "condition")
        self.note(loc, "a condition runs its step when it renders to a true value (true, yes, 1, a non-empty "
                       "list...), and one that cannot render fails the node; the original ran the step only for "
                       "the exact text 'True', and skipped it when the condition failed", once="condition")

    def _on_error(self, out: YamlMap, raw: YamlMap) -> None:
        """Put `on_error` and the retry policy of `raw` into `out`. Mutates `out`."""
        on_error = raw.get("on_error")
        retry = raw.get("retry")
        if isinstance(retry, int) and not isinstance(retry, bool):
            self._retry(out, raw, retry, 0, raw.value_locs["retry"])
        elif isinstance(retry, YamlMap):
            _put(out, "retry", retry, raw, "retry")  # plait's own retry policy
        elif retry is not None:
            self.error(raw.value_locs["retry"], "a step's retry must be a number of retries",
                       "write `on_error: {retry: 3, delay: 1}`")
        if on_error is None:
            if retry is None:
                self.note(raw.loc, "a failing step runs once: the original retried every failing step 3 times "
                                   "unless on_error.retry said otherwise", once="retries")
            return
        if isinstance(on_error, str):
            if on_error in ("fail", "continue"):
                _put(out, "on_error", on_error, raw, "on_error")
                if on_error == "continue":
                    _put(out, "max_failures", "100%", raw, "on_error")
            else:
                self.error(raw.value_locs["on_error"], f"on_error '{on_error}' is not fail or continue",
                           "write `on_error: continue`, or a mapping with action, retry, delay, next")
            return
        if not isinstance(on_error, YamlMap):
            self.error(raw.value_locs["on_error"], "on_error must be fail, continue, or a mapping")
            return
        for key in on_error:
            if key not in _ON_ERROR:
                self.error(on_error.key_locs[key], f"unknown key '{key}' in on_error",
                           did_you_mean(key, _ON_ERROR) or f"on_error takes: {', '.join(_ON_ERROR)}")
        action = _action(on_error)
        given = on_error.get("action")
        if given not in (None, "fail", "continue", "next"):
            self.note(on_error.value_locs["action"], f"on_error.action '{given}' is read as '{action}', as the "
                                                     "original read any action but continue")
        if action == "next" and "next" not in on_error:
            self.error(on_error.value_locs["action"], "on_error.action 'next' needs `next: STEP`")
        else:
            _put(out, "on_error", "fail" if action == "fail" else "continue", on_error,
                 "action" if "action" in on_error else "next")
            if action == "continue":
                _put(out, "max_failures", "100%", on_error, "action")
            if action == "next":
                self.note(on_error.value_locs["next"], f"on_error.next: on failure the steps up to "
                                                       f"'{on_error['next']}' are skipped and it runs; the failure "
                                                       "still fails the run at the end (exit 1)", once="next")
        if "retry" in on_error:
            count, delay = on_error["retry"], on_error.get("delay", 0)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                self.error(on_error.value_locs["retry"], "on_error.retry must be a whole number, 0 or more")
            elif not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
                self.error(on_error.value_locs["delay"], "on_error.delay must be a number of seconds, 0 or more")
            else:
                self._retry(out, on_error, count, delay, on_error.value_locs["retry"])
        elif retry is None:
            self.note(on_error.loc, "a failing step runs once: the original retried every failing step 3 times "
                                    "unless on_error.retry said otherwise", once="retries")
        if "message" in on_error:
            self.note(on_error.key_locs["message"], "on_error.message is not shown: plait records the error "
                                                    "itself (plait status, the run's log)", once="message")

    def _retry(self, out: YamlMap, where: YamlMap, count: int, delay: float, loc: SourceLoc) -> None:
        policy = YamlMap(loc)
        for key, value in (("max_attempts", count + 1), ("delay", delay), ("backoff", 1), ("jitter", 0),
                           ("retry_on", _names(["Exception"], loc))):
            policy[key] = value
            policy.key_locs[key] = policy.value_locs[key] = loc
        _put(out, "retry", policy, where, "retry")


def _action(on_error: YamlMap) -> str:
    """Return what an on_error mapping does, as the original read it: continue, next (a jump) or fail."""
    if on_error.get("action") == "continue":
        return "continue"
    return "next" if "next" in on_error or on_error.get("action") == "next" else "fail"


def _located(value: Any, loc: SourceLoc) -> Any:
    """Return plain data as the loader's mappings and lists, every position `loc`: plait's checks read those."""
    if isinstance(value, dict):
        out = YamlMap(loc)
        for key, inner in value.items():
            out[key] = _located(inner, loc)
            out.key_locs[key] = out.value_locs[key] = loc
        return out
    if isinstance(value, list):
        out_list = YamlList(loc)
        for inner in value:
            out_list.append(_located(inner, loc))
            out_list.item_locs.append(loc)
        return out_list
    return value


def _in_order(step: YamlMap) -> YamlMap:
    """Return `step` with its keys in the order plait's docs write them: who it is, when, then what."""
    out = YamlMap(step.loc)
    for key in sorted(step, key=lambda k: _STEP_ORDER.index(k) if k in _STEP_ORDER else len(_STEP_ORDER)):
        _put(out, key, step[key], step, key)
    return out


def _put(out: YamlMap, key: str, value: Any, source: YamlMap, source_key: str, loc: SourceLoc | None = None) -> None:
    """Set `out[key]` with the positions of `source[source_key]` (or `loc`). Mutates `out`."""
    out[key] = value
    out.key_locs[key] = loc or source.key_locs.get(source_key, source.loc)
    out.value_locs[key] = loc or source.value_locs.get(source_key, source.loc)


def _names(names: list, loc: SourceLoc) -> YamlList:
    out = YamlList(loc)
    for name in names:
        out.append(name)
        out.item_locs.append(loc)
    return out


def _rewritten(value: Any, kinds: Mapping[str, str]) -> Any:
    """Return `value` with every template's reads of the original's result shapes rewritten."""
    return _map_strings(value, lambda text: rewrite_reads(text, kinds))


def _renamed_item(value: Any, arg_name: str) -> Any:
    """Return `value` with the batch item's `args.<arg_name>` written as plait's `item`."""
    pattern = re.compile(rf"\bargs\.{re.escape(arg_name)}\b")
    return _map_strings(value, lambda text: pattern.sub("item", text))


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """Return a copy of `value` with `change` applied to every string holding a template, positions kept."""
    if isinstance(value, str):
        return change(value) if "{{" in value or "{%" in value else value
    if isinstance(value, YamlMap):
        out = YamlMap(value.loc)
        for key, inner in value.items():
            _put(out, key, _map_strings(inner, change), value, key)
        return out
    if isinstance(value, YamlList):
        out_list = YamlList(value.loc)
        for inner, loc in zip(value, value.item_locs):
            out_list.append(_map_strings(inner, change))
            out_list.item_locs.append(loc)
        return out_list
    return value
