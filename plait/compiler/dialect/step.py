"""One step of the original dialect, translated: its task, inputs and condition (on_error: `on_error.py`).

`StepRules` holds the per-step half of the translation (see `plait.compiler.dialect.translate` for
each decision and why); the workflow-wide half (parameters, flows, list order) mixes it in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, nodes

from plait.compiler.batch_form import unwrap_batch
from plait.compiler.diagnostics import SourceLoc
from plait.compiler.dialect.detect import ORIGINAL_KINDS
from plait.compiler.dialect.names import bind_names, fill_defaults, literal
from plait.compiler.dialect.on_error import ErrorRules
from plait.compiler.dialect.results import code_view, rewrite_reads
from plait.compiler.dialect.tasks import CODE_FUNCTION, KINDS, TASK_FUNCTION, translate_task
from plait.compiler.dialect.tree import located, map_strings, name_list, put
from plait.compiler.loader import YamlMap
from plait.compiler.schema import STEP_FIELDS
from plait.compiler.step_templates import template_strings
from plait.tasks.base import get_kind
from plait.templating import TEMPLATE_NAMES, TemplateError, analyze

__all__ = ["StepRules", "failed_test", "in_order"]

_STEP_KEYS = ("name", "task", "description", "inputs", "condition", "on_error", "depends_on", "retry", "timeout")
_STEP_ORDER = ("name", "description", "task", "depends_on", "after", "items", "key", "condition", "inputs", "retry",
               "timeout", "on_error", "max_failures", "error_message")
_TIMEOUT_INPUT = ("shell", "python_module", "python_script")  # kinds whose inputs took a timeout
_CODE = ("code",)  # Python, not a template: plait never renders it (a `template:` it does, at run time)
_ORIGINAL_NAMES = {  # the original's names that no rewriting binds (see names.py for those that are)
    "settings": "declare the setting as a parameter and read `args.NAME`",
    "error": "only a step that an on_error.next names sees the error; plait status shows every error",
}
_PARSER = Environment()  # to read a template's syntax tree: what it tests is defined (`_guarded`)
_NO_KIND_HINT = ("plait runs the original's kinds and those registered with its register_task (from "
                 "yaml_workflow.tasks or plait.tasks.original); or rewrite the step with shell, python, file, "
                 "template, noop or echo")


class StepRules(ErrorRules):
    """Translate one step of the original dialect into plait's form (mixed into the workflow's translator)."""

    def _templates(self, value: Any, loc: SourceLoc) -> None:
        """Refuse the original's run-time names plait has no counterpart for; note how values render."""
        for where, text in template_strings(value, loc):
            try:
                names = analyze(text).names
            except TemplateError:
                continue  # plait's own checks report it, with its position
            for name in sorted(names & _ORIGINAL_NAMES.keys()):
                self.error(where, f"templates of the original engine saw '{name}'; plait's do not",
                           _ORIGINAL_NAMES[name])
            self.note(where, "a value that is one {{ expression }} keeps its type, and text stays text; the original "
                             "rendered every value to text and parsed it back ('007' became 7)", once="render")

    def _step(self, raw: YamlMap, kinds: Mapping[str, str], batch_items: Mapping[str, Any]) -> YamlMap:
        """Return the native form of one step; `kinds` are the original kinds of the steps before it."""
        out = YamlMap(raw.loc)
        self.keep_own_keys(raw, out, _STEP_KEYS, STEP_FIELDS, "a step", f"a step takes: {', '.join(_STEP_KEYS)}",
                           ignored=True)
        for key in ("name", "description", "depends_on", "timeout"):
            if key in raw:
                put(out, key, raw[key], raw, key)
        task = raw.get("task")
        inputs = raw.get("inputs") if isinstance(raw.get("inputs"), YamlMap) else YamlMap(raw.loc)
        if "task" in raw and (_never_runs(raw.get("condition")) or self._undefined(raw.get("condition"))):
            # the original skipped it, after refusing a step without a task (as plait's own check does)
            task, inputs = "noop", YamlMap(raw.loc)
        if isinstance(task, str):
            self._task(out, raw, task, inputs, kinds, batch_items)
        elif "task" in raw:
            put(out, "task", task, raw, "task")  # plait's own check reports the type
        if "condition" in raw:
            self._condition(out, raw, kinds)
        self._bind(out)
        for key in ("items", "condition"):
            if key in out:
                self._templates(out[key], out.value_locs[key])
        if isinstance(out.get("inputs"), YamlMap):
            for key, value in out["inputs"].items():
                if key not in _CODE:
                    self._templates(value, out["inputs"].value_locs[key])
        self._on_error(out, raw)
        return out

    def _bind(self, out: YamlMap) -> None:
        """Rewrite the original's own names in the step's templates into plait's (`names.py`). Mutates `out`."""
        names = dict(self.names)
        error = self._jump_error(out.get("name"))
        if error is not None:
            names["error"] = error
        for key in ("items", "condition", "inputs"):
            if key in out:
                before = out[key]
                bound = map_strings(before, lambda text: bind_names(text, names))
                filled = map_strings(bound, lambda text: fill_defaults(text, self.param_names))
                if filled != bound:
                    self.note(out.value_locs[key], "args.X | default(V) of a parameter X that is neither declared nor "
                                                   "given is V, as it was in the original (declare X to give it)",
                              once="defaulted")
                put(out, key, map_strings(filled, _defined), out, key)
                if "run_number" in names and _reads(before, "run_number"):
                    self.note(out.value_locs[key], "run_number counts the runs of the workspace (plait runs again in "
                                                   "one workspace; the original made a new one per run, numbered)",
                              once="run_number")
                if any(_reads(before, p) for p in self.param_names):
                    self.note(out.value_locs[key], "a parameter read at the top level ({{ name }}) is read as "
                                                   "args.name, as the original gave both", once="top-level")

    def _jump_error(self, name: Any) -> str | None:
        """Return the expression of `error` in a step that an `on_error.next` names, or None for another step.

        It is `{step, message}` of the first jumping step that failed, and none when none did, as
        the original's context held it.
        """
        sources = self.jump_sources.get(name) if isinstance(name, str) else None
        if not sources:
            return None
        expression = "none"
        for src in reversed(sources):
            expression = (f"({{'step': {literal(src)}, 'message': steps.{src}.error.error}} if {failed_test(src)} "
                          f"else {expression})")
        return expression

    def _task(self, out: YamlMap, raw: YamlMap, task: str, inputs: YamlMap, kinds: Mapping[str, str],
              batch_items: Mapping[str, Any]) -> None:
        """Put the plait task and inputs of `raw` into `out`. Mutates `out`."""
        if task == "batch":
            self._batch(out, raw, inputs, kinds)
            return
        if task in _TIMEOUT_INPUT and "timeout" in inputs and "timeout" not in raw:
            put(out, "timeout", inputs["timeout"], inputs, "timeout")  # plait's timeout is the step's
        if task not in ORIGINAL_KINDS and task not in KINDS and get_kind(task) is not None:
            translated: Any = task, inputs, []  # plait's own kind, in a file that mixes the two
        else:
            translated = translate_task(task, inputs, raw.value_locs["task"], raw.get("name"))
        if translated is None:
            self.error(raw.value_locs["task"], f"Unknown task type: '{task}'",
                       _NO_KIND_HINT)
            return
        kind, native, errors = translated
        self.errors += errors
        put(out, "task", kind, raw, "task")
        native = _rewritten(native, kinds)
        if _is_code(native):
            self._code_names(native, kinds, batch_items)
        error = self._jump_error(raw.get("name"))
        if error is not None and native.get("function") in (CODE_FUNCTION, TASK_FUNCTION):
            put(native["kwargs"], "error", f"{{{{ {error} }}}}", loc=raw.value_locs["task"])
        if native or "inputs" in raw:
            put(out, "inputs", native, raw, "inputs", loc=raw.key_locs.get("inputs", raw.loc))
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
        put(out, "depends_on", name_list([*existing, *(s for s in read if s not in existing)], raw.loc), raw,
             "inputs", loc=raw.value_locs.get("inputs", raw.loc))

    def _batch(self, out: YamlMap, raw: YamlMap, inputs: YamlMap, kinds: Mapping[str, str]) -> None:
        """Unwrap `task: batch` into plait's `items:` plus the inner task, translated; keyed by position.

        `arg_name: x` becomes `item`. The unwrapping itself, and its errors, are plait's own
        (`batch_form`), which its native format shares. Mutates `out`.
        """
        if "steps" in inputs and "task" not in inputs:
            self.error(inputs.key_locs["steps"], "a batch of several steps per item (`inputs.steps`) is not "
                                                 "translated: the original engine (0.9.6) did not run it either, "
                                                 "it requires `inputs.task`", "write each inner step as a plait "
                                                 "step: the first "
                                                 "with `items:`, each next one with `for_each:` the one before "
                                                 "(its nodes then follow item by item)")
            return
        arg_name = str(inputs.get("arg_name", "item"))
        step = YamlMap(raw.loc)
        put(step, "task", "batch", raw, "task")
        batch = YamlMap(inputs.loc)
        for key in inputs:
            if key != "arg_name":
                put(batch, key, inputs[key], inputs, key)
        inner = inputs.get("task")
        if isinstance(inner, YamlMap) and isinstance(inner.get("task"), str):
            translated = self._inner(inner, arg_name, kinds, raw.get("name"))
            if translated is None:
                return
            put(batch, "task", translated, inputs, "task")
        put(step, "inputs", batch, raw, "inputs")
        unwrapped = unwrap_batch(step, self.errors)
        if unwrapped is None:
            return
        for key in ("task", "items", "inputs"):
            if key in unwrapped:
                value = _rewritten(unwrapped[key], kinds) if key != "task" else unwrapped[key]
                put(out, key, value, unwrapped, key)
        put(out, "key", "{{ index }}", unwrapped, "items")
        if "max_workers" in inputs:  # at most that many items at once: plait's own limit on a step
            put(out, "max_parallel", inputs["max_workers"], inputs, "max_workers")
        if "chunk_size" in inputs:
            self.note(inputs.key_locs["chunk_size"], "batch chunk_size: no effect, plait dispatches the items "
                                                     "itself, in chunks it sizes", once="knobs")
        self.note(raw.value_locs["task"], "a failed batch item fails its step (the original recorded it and went "
                                          "on); set `max_failures` to tolerate some", once="batch")
        self.note(raw.value_locs["task"], "batch items are keyed by position (`name[0]`, `name[1]`...), since the "
                                          "original allowed an item twice; a `key:` of your own keeps an item's "
                                          "node when the list changes", once="batch-key")

    def _code_names(self, native: YamlMap, kinds: Mapping[str, str], batch_items: Mapping[str, Any]) -> None:
        """Bind, for python_code, `steps` in the original's result shapes and the workflow's name. Mutates `native`.

        `steps` holds the steps the code names, as templates over plait's results (`code_view`);
        the code's runner builds the rest of the original's names (`plait.tasks.original_code`).
        """
        kwargs = native["kwargs"]
        view = code_view(kwargs["code"], kinds, batch_items)
        if view is not None:
            names = kwargs.get("names") or YamlMap(kwargs.loc)
            put(names, "steps", located(view, kwargs.value_locs["code"]), kwargs, "code")
            put(kwargs, "names", names, kwargs, "code")
        put(kwargs, "name", self.workflow_name, kwargs, "code")

    def _inner(self, inner: YamlMap, arg_name: str, kinds: Mapping[str, str], step: Any) -> YamlMap | None:
        """Return a batch's inner task translated to plait's kind and inputs, or None (an error is recorded)."""
        inner_inputs = inner.get("inputs") if isinstance(inner.get("inputs"), YamlMap) else YamlMap(inner.loc)
        translated = translate_task(inner["task"], _renamed_item(inner_inputs, arg_name), inner.value_locs["task"],
                                    step)
        if translated is None:
            self.error(inner.value_locs["task"], f"Unknown task type: '{inner['task']}'", _NO_KIND_HINT)
            return None
        kind, native, errors = translated
        self.errors += errors
        if _is_code(native):
            self._code_names(native, kinds, {})
            if arg_name != "item":
                kwargs = native["kwargs"]
                names = kwargs.get("names") or YamlMap(kwargs.loc)
                put(names, arg_name, "{{ item }}", kwargs, "code")
                put(kwargs, "names", names, kwargs, "code")
        out = YamlMap(inner.loc)
        put(out, "task", kind, inner, "task")
        put(out, "inputs", native, inner, "inputs" if "inputs" in inner else "task")
        for key in inner:
            if key not in ("task", "inputs"):
                put(out, key, inner[key], inner, key)  # for plait's own check to report
        return out

    def _undefined(self, condition: Any) -> list[str]:
        """Return the names a condition reads that neither plait nor the original's context ever defines.

        A parameter nobody declared or gave counts (`args.X`). A name that the condition also tests
        (`X is defined`) or gives a `default` is left out: reading it did not fail in the original.
        """
        if not isinstance(condition, str) or ("{{" not in condition and "{%" not in condition):
            return []
        try:
            refs = analyze(condition)
        except TemplateError:
            return []  # plait's own checks report it, with its position
        names = refs.names - TEMPLATE_NAMES - self.names.keys() - _ORIGINAL_NAMES.keys()
        params = {f"args.{p}" for p in refs.params - set(self.param_names)}
        return sorted((names | params) - _guarded(condition))

    def _condition(self, out: YamlMap, raw: YamlMap, kinds: Mapping[str, str]) -> None:
        condition = raw["condition"]
        loc = raw.value_locs["condition"]
        if isinstance(condition, str) and "{{" not in condition and "{%" not in condition:
            if condition.strip() != "True":
                put(out, "condition", "{{ false }}", raw, "condition")
                self.note(loc, "this condition has no {{ }}, so the original never ran the step (it ran a step only "
                               "when the condition rendered to exactly 'True'); neither does plait",
                          once="never")
            return
        undefined = self._undefined(condition)
        if undefined:
            put(out, "condition", "{{ false }}", raw, "condition")
            self.note(loc, f"this condition reads {', '.join(map(repr, undefined))}, which nothing defines (a typo?): "
                           "it could never render, and the original skipped a step whose condition failed to render, "
                           "so it never ran the step; neither does plait")
            return
        put(out, "condition", _rewritten(condition, kinds), raw, "condition")
        self.note(loc, "a condition runs its step when it renders to a true value (true, yes, 1, a non-empty "
                       "list...), and one that cannot render fails the node; the original ran the step only for "
                       "the exact text 'True', and skipped it when the condition failed", once="condition")

_DEFINED = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*) is (not )?defined\b")


def _defined(text: str) -> str:
    """Make `steps.X is defined` true only when X succeeded, as in the original (plait shows a skipped X too)."""
    return _DEFINED.sub(lambda m: f"(steps.{m[1]} is not defined or steps.{m[1]}.status is defined)" if m[2]
                        else f"(steps.{m[1]} is defined and steps.{m[1]}.status is not defined)", text)


def failed_test(step: str) -> str:
    """Return the template test that is true when `step` failed (its failure tolerated, as a jump's is)."""
    return f"(steps.{step}.status is defined and steps.{step}.status == 'failed')"


def _guarded(text: str) -> set[str]:
    """Return the names (and `args.X`) a template tests with `is defined`/`is undefined` or gives a `default`."""
    guarded = set()
    for node in _PARSER.parse(text).find_all((nodes.Test, nodes.Filter)):
        subject = node.node
        if node.name not in ("defined", "undefined", "default", "d"):
            continue
        if isinstance(subject, nodes.Name):
            guarded.add(subject.name)
        elif isinstance(subject, nodes.Getattr) and isinstance(subject.node, nodes.Name) and \
                subject.node.name in ("args", "params"):
            guarded.add(f"args.{subject.attr}")
    return guarded


def _never_runs(condition: Any) -> bool:
    """Return True for a condition without {{ }} other than 'True': the original never ran its step."""
    return (isinstance(condition, str) and "{{" not in condition and "{%" not in condition
            and condition.strip() != "True")


def _reads(value: Any, name: str) -> bool:
    """Return True when a template inside `value` reads `name` at the top level."""
    return any(bind_names(text, {name: "x"}) != text for text in _strings(value))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return []


def _is_code(native: YamlMap) -> bool:
    """Return True for a translated python_code step (its code is run by plait.tasks.original_code)."""
    return native.get("function") == CODE_FUNCTION and isinstance(native.get("kwargs"), YamlMap)


def in_order(step: YamlMap) -> YamlMap:
    """Return `step` with its keys in the order plait's docs write them: who it is, when, then what."""
    out = YamlMap(step.loc)
    for key in sorted(step, key=lambda k: _STEP_ORDER.index(k) if k in _STEP_ORDER else len(_STEP_ORDER)):
        put(out, key, step[key], step, key)
    return out


def _rewritten(value: Any, kinds: Mapping[str, str]) -> Any:
    """Return `value` with every template's reads of the original's result shapes rewritten."""
    return map_strings(value, lambda text: rewrite_reads(text, kinds))


def _renamed_item(value: Any, arg_name: str) -> Any:
    """Return `value` with the batch item's `args.<arg_name>` written as plait's `item`."""
    pattern = re.compile(rf"\bargs\.{re.escape(arg_name)}\b")
    return map_strings(value, lambda text: pattern.sub("item", text))
