"""The original engine's task kinds, each mapped onto one of plait's kinds.

Decisions:
- The file tasks become plait's `file` task (`read_file` -> `action: read`, `copy_file`'s
  `source`/`destination` -> `path`/`to`, ...), so they gain its rule that every path stays inside
  the workspace.
- `python_code` becomes a `python` task with `code`; its other inputs, which the original bound as
  names, go into `kwargs`, which plait binds the same way. `result_variable: x` appends
  `result = x`. The original's `context` mapping is bound in `kwargs` by the translator; code that
  uses its `config` object is refused with its position: plait's code sees `params`/`args`, `env`,
  `item`, `batch`, `steps`, `workspace`, `ctx`.
  So is code that opens a relative path literal (`open("out/x")`, `Path("out/x")`): the original
  changed the process's folder to the workspace around python_code (serialising every item on a
  lock); plait never changes folders, so such a path would land beside plait, not in the workspace.
- `noop` with inputs returns what the original's returned, `{processed_inputs, task_name,
  task_type}`: its inputs go under `processed_inputs` (plait's noop returns its inputs).
- `template` keeps its inputs and gets `whitespace: trim`: the original rendered with Jinja's
  `trim_blocks`/`lstrip_blocks` and dropped the final line break, and a file's output must not change.
- `python_function` becomes `function: module:function`; `python_module` and `python_script`
  become shell commands running `python3`.
- A shell command is kept as written: plait's shell task passes every `{{ }}` value as data
  wherever it stands, the command's own quotes included (`plait.shell_template`), and refuses at
  compile time, in the user's file, the few places where a value would be code.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Callable

from plait.compiler.diagnostics import Diagnostic, SourceLoc
from plait.compiler.dialect.tree import put
from plait.compiler.loader import YamlMap

__all__ = ["KINDS", "code_reads", "translate_task"]

# original kind -> (plait kind, {original input: plait input}, fixed plait inputs)
_FILE = {
    "read_file": ("read", {"file": "path", "encoding": "encoding"}),
    "write_file": ("write", {"file": "path", "content": "content", "encoding": "encoding"}),
    "append_file": ("append", {"file": "path", "content": "content", "encoding": "encoding"}),
    "copy_file": ("copy", {"source": "path", "destination": "to"}),
    "move_file": ("move", {"source": "path", "destination": "to"}),
    "delete_file": ("delete", {"file": "path"}),
    "read_json": ("read_json", {"file": "path", "encoding": "encoding"}),
    "write_json": ("write_json", {"file": "path", "data": "content", "encoding": "encoding"}),
    "read_yaml": ("read_yaml", {"file": "path", "encoding": "encoding"}),
    "write_yaml": ("write_yaml", {"file": "path", "data": "content", "encoding": "encoding"}),
}
_CODE_NAMES_MISSING = ("config",)

Result = tuple[str, YamlMap, list[Diagnostic]]


def translate_task(kind: str, inputs: YamlMap, loc: SourceLoc, step: str) -> Result | None:
    """Return (plait kind, plait inputs, errors) for an original task, or None for a kind nobody registered.

    A kind of the original that plait has no kind for (`fail`, `print_vars`, `http.request`...), and a
    kind registered with the original's `register_task`, runs through `plait.tasks.original`; so
    does a kind of the original that the user registered again themselves (theirs replaced it).
    """
    from plait.tasks.original import find_task, user_module

    handler = find_task(kind)
    if handler is not None and user_module(handler) is not None:
        return registered(kind, inputs, loc)
    if kind in _FILE:
        return _file(kind, inputs)
    translate = KINDS.get(kind)
    if translate is not None:
        return translate(inputs, loc, step)
    return registered(kind, inputs, loc) if handler is not None else None


def _unknown(inputs: YamlMap, allowed: tuple[str, ...], kind: str) -> list[Diagnostic]:
    return [Diagnostic(inputs.key_locs[key], f"unknown input '{key}' for the original '{kind}' task",
                       f"'{kind}' takes: {', '.join(allowed)}") for key in inputs if key not in allowed]


def _file(kind: str, inputs: YamlMap) -> Result:
    action, names = _FILE[kind]
    out = YamlMap(inputs.loc)
    put(out, "action", action, loc=inputs.loc)
    errors = _unknown(inputs, (*names, "indent") if kind == "write_json" else tuple(names), kind)
    if kind == "write_json" and inputs.get("indent", 2) != 2:
        errors.append(Diagnostic(inputs.value_locs["indent"], "plait writes JSON indented by 2 spaces",
                                 "remove `indent`, or write the file from a python step with json.dumps"))
    for key in inputs:
        if key in names:
            value = inputs[key]
            if key == "content" and isinstance(value, str) and ("{{" in value or "{%" in value) \
                    and value.endswith("\n"):
                value = value[:-1]  # the original rendered it with Jinja, which drops one final line break
            put(out, names[key], value, inputs, key)
    return "file", out, errors


def _shell(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
    out = YamlMap(inputs.loc)
    errors = _unknown(inputs, ("command", "env", "timeout", "working_dir", "shell"), "shell")
    for key in ("working_dir", "shell"):
        if key in inputs:
            errors.append(Diagnostic(inputs.key_locs[key], f"the shell input '{key}' has no plait counterpart",
                                     "plait runs every command with /bin/sh in the workspace; use `cd` in the "
                                     "command"))
    env = YamlMap(inputs.loc)
    if isinstance(inputs.get("env"), YamlMap):  # copied: the loaded document stays as it was read
        for name, value in inputs["env"].items():
            put(env, name, value, inputs["env"])
    if "command" in inputs:
        put(out, "command", inputs["command"], inputs)
    if env:
        put(out, "env", env, loc=inputs.key_locs.get("env", inputs.loc))
    return "shell", out, errors


CODE_FUNCTION = "plait.tasks.original_code:python_code"
TASK_FUNCTION = "plait.tasks.original:run_task"
CALL_FUNCTION = "plait.tasks.original_code:call_function"


def _python_code(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
    """Run the code through `plait.tasks.original_code`, which gives it the original's names and folder."""
    out = YamlMap(inputs.loc)
    errors: list[Diagnostic] = []
    code = inputs.get("code")
    if not isinstance(code, str):
        return "python", out, [Diagnostic(inputs.value_locs.get("code", loc), "a 'python_code' task needs `code:` text",
                                          "write `code: |` with Python statements that set `result`")]
    result_variable = inputs.get("result_variable")
    if result_variable is not None and not (isinstance(result_variable, str) and result_variable.isidentifier()):
        errors.append(Diagnostic(inputs.value_locs["result_variable"], "result_variable must be a Python name",
                                 "name the variable that holds the answer, or set `result` in the code"))
    errors += _code_names(code, inputs.value_locs["code"])
    put(out, "function", CODE_FUNCTION, loc=inputs.value_locs["code"])
    kwargs = YamlMap(inputs.loc)
    put(kwargs, "code", code, inputs)
    if isinstance(result_variable, str):
        put(kwargs, "result_variable", result_variable, inputs)
    names = YamlMap(inputs.loc)
    for key in inputs:
        if key not in ("code", "result_variable"):
            put(names, key, inputs[key], inputs)
    if names:
        put(kwargs, "names", names, loc=inputs.loc)
    put(out, "kwargs", kwargs, loc=inputs.loc)
    return "python", out, errors


def _code_names(code: str, loc: SourceLoc) -> list[Diagnostic]:
    """Refuse code that reads `config`, the original's task object, which plait's code does not get."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []  # plait reports it when the node runs, with the line
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _CODE_NAMES_MISSING and node.id not in assigned:
            at = SourceLoc(loc.file, loc.line + node.lineno, loc.column)
            return [Diagnostic(at, f"the code reads '{node.id}', a name only the original engine gave python_code",
                               "read `args` (the params), `env`, `steps`, `batch`, `workspace` or `context` instead")]
    return []


def code_reads(code: str) -> set[str]:
    """Return the names `code` reads without binding them itself (none when it does not parse)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - assigned


def _python_function(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
    out = YamlMap(inputs.loc)
    errors = _unknown(inputs, ("module", "function", "kwargs", "args"), "python_function")
    module, function = inputs.get("module"), inputs.get("function")
    if not (isinstance(module, str) and isinstance(function, str)):
        errors.append(Diagnostic(loc, "a 'python_function' task needs `module:` and `function:`",
                                 "name the module and the function in it"))
        return "python", out, errors
    if "args" not in inputs:
        put(out, "function", f"{module}:{function}", loc=inputs.value_locs["function"])
        if "kwargs" in inputs:
            put(out, "kwargs", inputs["kwargs"], inputs)
        return "python", out, errors
    put(out, "function", CALL_FUNCTION, loc=inputs.value_locs["function"])  # positional args: called as given
    kwargs = YamlMap(inputs.loc)
    for key in ("module", "function", "args", "kwargs"):
        if key in inputs:
            put(kwargs, key, inputs[key], inputs)
    put(out, "kwargs", kwargs, loc=inputs.loc)
    return "python", out, errors


def _python_run(what: str) -> Callable[[YamlMap, SourceLoc, str], Result]:
    """Return the translation of `python_module` (`what` = "module") or `python_script` ("script_path")."""
    kind = "python_module" if what == "module" else "python_script"

    def translate(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
        out = YamlMap(inputs.loc)
        errors = _unknown(inputs, (what, "args", "timeout", "check"), kind)
        target, args = inputs.get(what), inputs.get("args") or []
        if not isinstance(target, str) or not isinstance(args, list):
            errors.append(Diagnostic(loc, f"a '{kind}' task needs `{what}:` text and `args:` as a list",
                                     f"write `{what}: ...` and `args: [...]`"))
            return "shell", out, errors
        if inputs.get("check") is False:
            errors.append(Diagnostic(inputs.value_locs["check"], "`check: false` has no plait counterpart",
                                     "a non-zero exit fails the node; end the command with `|| true` in a shell task"))
        words = ["python3", *(["-m"] if what == "module" else []), target, *map(str, args)]
        command = " ".join(w if "{{" in w else shlex.quote(w) for w in words)
        put(out, "command", command, loc=inputs.value_locs[what])
        return "shell", out, errors

    return translate


def _same(kind: str, allowed: tuple[str, ...] | None = None) -> Callable[[YamlMap, SourceLoc, str], Result]:
    """Return the translation of a kind that plait has under `kind`, inputs unchanged."""

    def translate(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
        errors = _unknown(inputs, allowed, kind) if allowed else []
        out = YamlMap(inputs.loc)
        for key in inputs:
            if allowed is None or key in allowed:
                put(out, key, inputs[key], inputs)
        return kind, out, errors

    return translate


def registered(kind: str, inputs: YamlMap, loc: SourceLoc) -> Result:
    """Return a step of the original's kind `kind` run by `plait.tasks.original.run_task`, inputs as they are.

    A kind the user registered names its module, for nodes that run in another process.
    """
    from plait.tasks.original import find_task, user_module

    handler = find_task(kind)
    out = YamlMap(inputs.loc)
    put(out, "function", TASK_FUNCTION, loc=loc)
    kwargs = YamlMap(inputs.loc)
    put(kwargs, "task", kind, loc=loc)
    module = user_module(handler) if handler is not None else None
    if module:
        put(kwargs, "module", module, loc=loc)
    put(kwargs, "inputs", inputs, loc=inputs.loc)
    put(out, "kwargs", kwargs, loc=inputs.loc)
    return "python", out, []


def _template(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
    """Keep the template's inputs, rendered with the original's whitespace rules (`whitespace: trim`)."""
    kind, out, errors = _same("template", ("template", "template_file", "output_file"))(inputs, loc, step)
    put(out, "whitespace", "trim", loc=inputs.loc)
    return kind, out, errors


def _noop(inputs: YamlMap, loc: SourceLoc, step: str) -> Result:
    """Return plait's noop with the inputs under `processed_inputs`, so it returns the original's result shape.

    A noop without inputs (a placeholder) stays one.
    """
    out = YamlMap(inputs.loc)
    if not inputs:
        return "noop", out, []
    if "should_fail" in inputs:
        put(out, "should_fail", inputs["should_fail"], inputs)
    wrapped = YamlMap(inputs.loc)
    for key in inputs:
        put(wrapped, key, inputs[key], inputs)
    put(out, "processed_inputs", wrapped, loc=inputs.loc)
    put(out, "task_name", step, loc=loc)
    put(out, "task_type", "noop", loc=loc)
    return "noop", out, []


KINDS: dict[str, Callable[[YamlMap, SourceLoc, str], Result]] = {
    "shell": _shell,
    "python_code": _python_code,
    "python_function": _python_function,
    "python_module": _python_run("module"),
    "python_script": _python_run("script_path"),
    "template": _template,
    "noop": _noop,
    "echo": _same("echo", ("message",)),
}
