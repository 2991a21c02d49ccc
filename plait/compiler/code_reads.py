"""What a step's raw inputs read of other steps: inline Python `code:` and templates rendered by their task.

The compiler renders a step's templates itself and a template that names a step makes it a
dependency (`plait.compiler.step_templates`). Two kinds of input are left raw, for the task:
- a template its task renders (the `template` task's body): it is parsed the same way, and the
  steps it names become dependencies too, as for any template;
- inline Python (`code:`): it is parsed with `ast` (never searched with patterns) for reads of
  `steps["X"]`, `steps.X` and `ctx.steps["X"]`. Code does not add dependencies: a node's code
  runs with the results of the steps its step depends on, and only those, so a read of any other
  step fails every time it runs (a KeyError). It is a compile error at the read's file:line:col,
  naming the `depends_on: [X]` that makes it work. A guarded read (`steps.get("X")`,
  `"X" in steps`) is left alone, and so is code that binds a name `steps` of its own.
Reads of `.result` / `.results` go on to the compiler's check that one node is read as a result
and a batch as results, as template reads do.
"""

from __future__ import annotations

import ast
import linecache
from collections.abc import Iterator, Mapping

from plait.compiler.diagnostics import Diagnostic, SourceLoc
from plait.compiler.draft import StepDraft
from plait.compiler.loader import YamlMap
from plait.compiler.step_templates import unknown_step
from plait.tasks.base import get_kind
from plait.templating import TemplateError, analyze, has_template

__all__ = ["check_raw_reads"]


def check_raw_reads(draft: StepDraft, raw: YamlMap, step_names: Mapping[str, SourceLoc]) -> list[Diagnostic]:
    """Check the reads of other steps in a step's raw inputs; add a raw template's as dependencies. Mutates `draft`."""
    inputs = raw.get("inputs")
    kind = get_kind(draft.task)
    if not isinstance(inputs, YamlMap) or kind is None or not kind.fields:
        return []
    errors: list[Diagnostic] = []
    for name, value in inputs.items():
        spec = kind.fields.get(name)
        if spec is None or spec.render != "raw" or not isinstance(value, str):
            continue
        where = inputs.value_locs[name]
        if draft.task == "python" and name == "code":
            errors += _check_code(draft, value, where, step_names)
        elif has_template(value):
            _add_template_reads(draft, value, where, step_names)
    return errors


def _add_template_reads(draft: StepDraft, text: str, where: SourceLoc, step_names: Mapping[str, SourceLoc]) -> None:
    """Make the steps a raw template names dependencies, as the compiler does for the templates it renders."""
    try:
        refs = analyze(text)
    except TemplateError:
        return  # its task reports it when it renders
    for step, attr in sorted(refs.steps, key=lambda s: (s[0], s[1] or "")):
        if step in step_names and step != draft.name:
            draft.depends_on.setdefault(step, where)
            if attr in ("result", "results"):
                draft.reads.append((step, attr, where))


def _check_code(draft: StepDraft, code: str, where: SourceLoc, step_names: Mapping[str, SourceLoc]) -> list[Diagnostic]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []  # the task reports it, with its line, when it runs
    if any(isinstance(node, ast.Name) and node.id == "steps" and isinstance(node.ctx, ast.Store)
           for node in ast.walk(tree)):
        return []  # a `steps` of the code's own
    errors = []
    for step, attr, node in _reads(tree):
        loc = _locate(where, code, node)
        shown = f"steps[{step!r}]"
        if step == draft.name:
            errors.append(Diagnostic(loc, f"step '{draft.name}' reads its own result in its code ({shown})",
                                     "a step can read the results of the steps it depends on"))
        elif step not in step_names:
            errors.append(Diagnostic(loc, f"step '{draft.name}' reads {shown} in its code, but there is no step "
                                          f"'{step}'", unknown_step(draft.name, "reads", step, step_names, loc).hint))
        elif step == draft.group_by:
            errors.append(Diagnostic(loc, f"step '{draft.name}' reads {shown} in its code, but it groups '{step}'",
                                     "read this group's items and results as group['items'] and group['results']"))
        elif draft.fans_out and step == draft.for_each:
            errors.append(Diagnostic(loc, f"step '{draft.name}' reads {shown} in its code, but '{step}' is its "
                                          "parent step", "read the parent's result as parent['result']"))
        elif step not in draft.depends_on:
            errors.append(Diagnostic(loc, f"step '{draft.name}' reads {shown} in its code, but does not depend "
                                          f"on '{step}'",
                                     f"add `depends_on: [{step}]` to step '{draft.name}': code sees only the "
                                     "results of the steps its step depends on (a template naming a step adds it; "
                                     "code does not)"))
        elif attr in ("result", "results"):
            draft.reads.append((step, attr, loc))
    return errors


def _reads(tree: ast.AST) -> Iterator[tuple[str, str | None, ast.expr]]:
    """Yield (step, "result" | "results" | None, node) for each `steps["X"]` / `steps.X` (or `ctx.steps`) read.

    The key or attribute each expression is read with is found in one walk, not one walk per read.
    """
    read_with: dict[int, object] = {}  # id of an expression -> the constant key or attribute it is read with
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            read_with[id(node.value)] = node.slice.value
        elif isinstance(node, ast.Attribute):
            read_with[id(node.value)] = node.attr
    for node in ast.walk(tree):
        step = _step_read(node)
        if step is not None:
            attr = read_with.get(id(node))
            yield step, attr if attr in ("result", "results") else None, node


def _step_read(node: ast.AST) -> str | None:
    """Return X when `node` is `steps["X"]`, `steps.X`, `ctx.steps["X"]` or `ctx.steps.X` being read."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        base, step = node.value, node.slice.value
    elif isinstance(node, ast.Attribute) and not hasattr(dict, node.attr):  # `steps.get("X")` is guarded
        base, step = node.value, node.attr
    else:
        return None
    if isinstance(base, ast.Name) and base.id == "steps":
        return step
    if isinstance(base, ast.Attribute) and base.attr == "steps" and isinstance(base.value, ast.Name) and \
            base.value.id == "ctx":
        return step
    return None


def _locate(where: SourceLoc, code: str, node: ast.expr) -> SourceLoc:
    """Return the file position of an expression in a step's code (the code's own position when unsure).

    A block scalar (`code: |`) starts on the line after its indicator, indented; a one-line
    scalar sits on the value's line, after its opening quote if it has one.
    """
    source = linecache.getline(where.file, where.line)[where.column - 1:]
    if source[:1] in ("|", ">"):
        line = where.line + node.lineno
        text = linecache.getline(where.file, line)
        indent = len(text) - len(text.lstrip(" "))
        return SourceLoc(where.file, line, indent + node.col_offset + 1) if text.strip() else where
    if node.lineno == 1 and source and "\n" not in code:
        return SourceLoc(where.file, where.line, where.column + node.col_offset + (source[0] in "'\""))
    return where
