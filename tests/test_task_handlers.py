"""The built-in task kinds, called through the registry with a real context, real files and processes."""

from __future__ import annotations

import builtins
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, UndefinedError
from loguru import logger

from plait.tasks import TaskContext, get_kind
from plait.tasks.shell import CommandFailed
from plait.templating import render_shell

MakeCtx = Callable[..., TaskContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    """Return a factory of contexts for node `step` of run `run-1`, working in `tmp_path/ws`."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "flow").mkdir()

    def make(**changes: Any) -> TaskContext:
        values: dict[str, Any] = {
            "workspace": tmp_path / "ws", "run_id": "run-1", "step": "step", "node_id": "step",
            "attempt": 1, "retry": None, "logger": logger.bind(node="step"),
            "workflow_dir": tmp_path / "flow",
        }
        return TaskContext(**{**values, **changes})

    return make


@pytest.fixture
def ctx(make_ctx: MakeCtx) -> TaskContext:
    return make_ctx()


def run(kind: str, config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    handler = get_kind(kind).handler
    return handler(config, item, ctx)


# --- python: function -----------------------------------------------------------------------------

HELPERS = '''
def double(item, factor=2):
    return item * factor

def describe(item, ctx, label="node"):
    return {"label": label, "item": item, "node": ctx.node_id, "attempt": ctx.attempt}

def total(a, b):
    return a + b

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def helpers(ctx: TaskContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write the module `plait_test_helpers` beside the workflow; undo its import and sys.path entry."""
    (ctx.workflow_dir / "plait_test_helpers.py").write_text(HELPERS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "plait_test_helpers"
    sys.modules.pop("plait_test_helpers", None)


def test_function_gets_the_item_of_a_batch_node(make_ctx: MakeCtx, helpers: str) -> None:
    ctx = make_ctx(key="a", index=0, total=1)
    assert run("python", {"function": f"{helpers}:double"}, 21, ctx) == 42


def test_function_gets_kwargs(make_ctx: MakeCtx, helpers: str) -> None:
    ctx = make_ctx(key="a", index=0, total=1)
    assert run("python", {"function": f"{helpers}:double", "kwargs": {"factor": 3}}, "ab", ctx) == "ababab"


def test_function_gets_ctx_when_it_asks_for_it(make_ctx: MakeCtx, helpers: str) -> None:
    ctx = make_ctx(key="x", index=4, total=5, node_id="step[x]", attempt=2)
    result = run("python", {"function": f"{helpers}:describe", "kwargs": {"label": "L"}}, "x", ctx)
    assert result == {"label": "L", "item": "x", "node": "step[x]", "attempt": 2}


def test_plain_node_calls_with_kwargs_only(ctx: TaskContext, helpers: str) -> None:
    assert run("python", {"function": f"{helpers}:total", "kwargs": {"a": 1, "b": 2}}, None, ctx) == 3


def test_workflow_folder_is_added_to_sys_path_once_and_cwd_is_kept(make_ctx: MakeCtx, helpers: str) -> None:
    ctx = make_ctx(key="a", index=0, total=1)
    cwd = os.getcwd()
    for _ in range(3):
        run("python", {"function": f"{helpers}:double"}, 1, ctx)
    assert sys.path.count(str(ctx.workflow_dir)) == 1
    assert sys.path[0] == str(ctx.workflow_dir)
    assert os.getcwd() == cwd


@pytest.mark.parametrize(("function", "error", "message"), [
    ("plait_test_helpers", ImportError, "function 'plait_test_helpers' is not of the form 'module:function'"),
    (":double", ImportError, "function ':double' is not of the form 'module:function'"),
    ("helpers:", ImportError, "function 'helpers:' is not of the form 'module:function'"),
    ("a:b:c", ImportError, "function 'a:b:c' is not of the form 'module:function'"),
    ("plait_test_helpers:triple", AttributeError, "module 'plait_test_helpers' has no function 'triple'"),
    ("plait_test_helpers:NOT_A_FUNCTION", TypeError,
     "'NOT_A_FUNCTION' in module 'plait_test_helpers' is int, not a function"),
])
def test_bad_function_names_the_module_and_function(ctx: TaskContext, helpers: str, function: str,
                                                    error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        run("python", {"function": function}, None, ctx)
    assert str(caught.value) == message


def test_missing_module_says_where_it_looked(ctx: TaskContext, helpers: str) -> None:
    with pytest.raises(ImportError) as caught:
        run("python", {"function": "no_such_module_xyz:main"}, None, ctx)
    assert str(caught.value) == (
        "cannot import module 'no_such_module_xyz' for function 'main': No module named 'no_such_module_xyz'"
        f" (looked in {ctx.workflow_dir} and sys.path)"
    )
    assert caught.value.name == "no_such_module_xyz"


# --- python: code ---------------------------------------------------------------------------------

def test_code_result_is_the_item(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(key="k", index=0, total=1)
    item = {"id": 7, "tags": ["a"]}
    assert run("python", {"code": "result = item"}, item, ctx) is item


def test_code_sees_item_params_steps_and_batch(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(step="shape", key="b", index=1, total=3, params={"n": 10},
                   steps={"fetch": {"result": [1, 2]}})
    code = (
        "result = {'item': item, 'n': params['n'], 'args_is_params': args is params,\n"
        "          'up': steps['fetch']['result'], 'key': key, 'index': index, 'batch': batch,\n"
        "          'step': ctx.step}\n"
    )
    assert run("python", {"code": code}, "B", ctx) == {
        "item": "B", "n": 10, "args_is_params": True, "up": [1, 2], "key": "b", "index": 1,
        "batch": {"item": "B", "index": 1, "total": 3, "name": "shape"}, "step": "shape",
    }


def test_code_sees_its_kwargs_as_names(make_ctx: MakeCtx) -> None:
    config = {"code": "result = [rows, factor * item]", "kwargs": {"rows": [1, 2], "factor": 3}}
    assert run("python", config, 5, make_ctx(key=5)) == [[1, 2], 15]


def test_code_without_result_returns_none(ctx: TaskContext) -> None:
    assert run("python", {"code": "x = 1 + 1"}, None, ctx) is None


def test_code_runs_in_a_fresh_namespace_each_time(ctx: TaskContext) -> None:
    code = "result = 'seen' if 'leftover' in dir() else 'fresh'\nleftover = True"
    assert [run("python", {"code": code}, None, ctx) for _ in range(2)] == ["fresh", "fresh"]


def test_code_is_compiled_once_for_many_nodes(ctx: TaskContext, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_compile = builtins.compile

    def counting_compile(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(builtins, "compile", counting_compile)
    code = f"result = item  # {ctx.workspace}"  # a source no other test has compiled
    results = [run("python", {"code": code}, i, ctx) for i in range(1000)]
    assert results == list(range(1000))
    assert calls == ["<step step>"]


def test_ten_thousand_trivial_code_nodes_are_fast(ctx: TaskContext) -> None:
    handler = get_kind("python").handler
    config = {"code": "result = item"}
    start = time.perf_counter()
    for i in range(10_000):
        handler(config, i, ctx)
    assert time.perf_counter() - start < 1.0  # about 20 µs a node allowed, on a slow machine


def test_code_traceback_names_the_step_and_shows_the_line(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(step="transform")
    with pytest.raises(ValueError, match=r"^bad item$") as caught:
        run("python", {"code": "x = 1\nraise ValueError(item)\n"}, "bad item", ctx)
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno, frame.line) == ("<step transform>", 2, "raise ValueError(item)")


# --- shell ----------------------------------------------------------------------------------------

def test_shell_returns_stdout_stderr_and_exit_code(ctx: TaskContext) -> None:
    result = run("shell", {"command": "echo hello; echo careful >&2"}, None, ctx)
    assert result == {"stdout": "hello\n", "stderr": "careful\n", "exit_code": 0}


def test_shell_runs_in_the_workspace_and_creates_it(make_ctx: MakeCtx, tmp_path: Path) -> None:
    ctx = make_ctx(workspace=tmp_path / "new" / "ws")
    result = run("shell", {"command": "pwd -P"}, None, ctx)
    assert result["stdout"] == f"{(tmp_path / 'new' / 'ws').resolve()}\n"


def test_shell_env_is_added_to_the_environment(ctx: TaskContext) -> None:
    command = 'printf "%s|%s|%s" "$GREETING" "$PORT" "$(command -v sh)"'
    result = run("shell", {"command": command, "env": {"GREETING": "hi there", "PORT": 8080}}, None, ctx)
    assert result["stdout"].split("|")[:2] == ["hi there", "8080"]
    assert result["stdout"].split("|")[2] != ""  # PATH still came from os.environ


def test_shell_stdin_is_empty(ctx: TaskContext) -> None:
    assert run("shell", {"command": "cat"}, None, ctx)["stdout"] == ""


def test_shell_nonzero_exit_raises_with_code_and_stderr_tail(ctx: TaskContext) -> None:
    with pytest.raises(CommandFailed) as caught:
        run("shell", {"command": "echo out; echo first >&2; echo boom >&2; exit 3"}, None, ctx)
    err = caught.value
    assert (str(err), err.exit_code, err.stderr_tail) == (
        "command exited with code 3: boom", 3, "first\nboom")


def test_shell_failure_without_stderr(ctx: TaskContext) -> None:
    with pytest.raises(CommandFailed) as caught:
        run("shell", {"command": "exit 7"}, None, ctx)
    assert (str(caught.value), caught.value.exit_code, caught.value.stderr_tail) == (
        "command exited with code 7", 7, "")


def test_stderr_tail_keeps_the_last_20_lines(ctx: TaskContext) -> None:
    with pytest.raises(CommandFailed) as caught:
        run("shell", {"command": "seq 1 100 >&2; exit 1"}, None, ctx)
    assert caught.value.stderr_tail == "\n".join(str(n) for n in range(81, 101))


def test_stderr_tail_keeps_the_last_2000_characters(ctx: TaskContext) -> None:
    command = "python3 -c \"import sys; sys.stderr.write('a' * 3000 + 'z')\"; exit 1"
    with pytest.raises(CommandFailed) as caught:
        run("shell", {"command": command}, None, ctx)
    assert caught.value.stderr_tail == "a" * 1999 + "z"


def test_command_failed_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(CommandFailed(2, "no such file")))
    assert (type(err), str(err), err.exit_code, err.stderr_tail) == (
        CommandFailed, "command exited with code 2: no such file", 2, "no such file")


def _running(pid: int) -> bool:
    """Return True while `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to see the child")
def test_shell_timeout_kills_the_command_and_its_children(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(timeout=0.5)
    command = "sleep 30 & echo $! > child.pid; sleep 30; wait"
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^command timed out after 0\.5 s$"):
        run("shell", {"command": command}, None, ctx)
    assert time.monotonic() - start < 15  # not the 30 s its commands would take: a bound, not a timing
    child = int((ctx.workspace / "child.pid").read_text())
    deadline = time.monotonic() + 15
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _running(child)


@pytest.mark.parametrize("value", ["; rm -rf ~", "$(touch pwned)", "`touch pwned`", "a  b", "it's", "*", ""])
def test_hostile_item_stays_one_argument(ctx: TaskContext, tmp_path: Path, value: str) -> None:
    command = render_shell("printf '%s\\n' {{ item }}", {"item": value})
    env = {"HOME": str(tmp_path / "home")}  # if quoting ever broke, `~` would be this folder
    result = run("shell", {"command": command, "env": env}, value, ctx)
    assert result == {"stdout": value + "\n", "stderr": "", "exit_code": 0}
    assert list(ctx.workspace.iterdir()) == []


@pytest.fixture
def debug_lines() -> Iterator[list[str]]:
    """Collect plait's DEBUG messages; plait is silent until enabled, so enable it for the test."""
    lines: list[str] = []
    logger.enable("plait")
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="DEBUG")
    yield lines
    logger.remove(sink)
    logger.disable("plait")


def test_shell_logs_at_most_50_lines_per_stream(ctx: TaskContext, debug_lines: list[str]) -> None:
    run("shell", {"command": "seq 1 60; echo warn >&2"}, None, ctx)
    assert debug_lines == ["command: seq 1 60; echo warn >&2", *(f"stdout: {n}" for n in range(1, 51)),
                           "stdout: … 10 more lines", "stderr: warn"]


# --- file -----------------------------------------------------------------------------------------

def test_write_text_then_read(ctx: TaskContext) -> None:
    assert run("file", {"action": "write", "path": "out/a.txt", "content": "héllo\n"}, None, ctx) == {
        "path": "out/a.txt", "bytes": 7}
    assert (ctx.workspace / "out" / "a.txt").read_bytes() == "héllo\n".encode()
    assert run("file", {"action": "read", "path": "out/a.txt"}, None, ctx) == "héllo\n"


def test_write_value_as_json(ctx: TaskContext) -> None:
    content = {"b": [1, 2], "a": None}
    result = run("file", {"action": "write", "path": "data.json", "content": content}, None, ctx)
    text = '{\n  "b": [\n    1,\n    2\n  ],\n  "a": null\n}\n'
    assert result == {"path": "data.json", "bytes": len(text)}
    assert (ctx.workspace / "data.json").read_text() == text


def test_write_replaces_and_append_adds(ctx: TaskContext) -> None:
    run("file", {"action": "write", "path": "log.txt", "content": "old\n"}, None, ctx)
    run("file", {"action": "write", "path": "log.txt", "content": "one\n"}, None, ctx)
    result = run("file", {"action": "append", "path": "log.txt", "content": 2}, None, ctx)
    assert result == {"path": "log.txt", "bytes": 2}
    assert (ctx.workspace / "log.txt").read_text() == "one\n2\n"


def test_encoding_is_used_both_ways(ctx: TaskContext) -> None:
    config = {"action": "write", "path": "l1.txt", "content": "café", "encoding": "latin-1"}
    assert run("file", config, None, ctx) == {"path": "l1.txt", "bytes": 4}
    assert (ctx.workspace / "l1.txt").read_bytes() == b"caf\xe9"
    assert run("file", {"action": "read", "path": "l1.txt", "encoding": "latin-1"}, None, ctx) == "café"


def test_copy_creates_folders(ctx: TaskContext) -> None:
    (ctx.workspace / "src.txt").write_text("payload")
    result = run("file", {"action": "copy", "path": "src.txt", "to": "backup/dst.txt"}, None, ctx)
    assert result == {"path": "src.txt", "to": "backup/dst.txt"}
    assert (ctx.workspace / "backup" / "dst.txt").read_text() == "payload"


def test_delete_present_then_missing(ctx: TaskContext) -> None:
    (ctx.workspace / "gone.txt").write_text("x")
    config = {"action": "delete", "path": "gone.txt"}
    assert [run("file", config, None, ctx) for _ in range(2)] == [
        {"path": "gone.txt", "deleted": True}, {"path": "gone.txt", "deleted": False}]
    assert not (ctx.workspace / "gone.txt").exists()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the workspace, with a symlink to it from inside the workspace."""
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (tmp_path / "ws" / "link.txt").symlink_to(secret)
    return secret


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "link.txt", "sub/../../secret.txt"])
@pytest.mark.parametrize("config", [
    {"action": "read"},
    {"action": "write", "content": "pwned"},
    {"action": "append", "content": "pwned"},
    {"action": "copy", "to": "copy.txt"},
    {"action": "delete"},
])
def test_paths_outside_the_workspace_are_refused(ctx: TaskContext, outside: Path, path: str,
                                                 config: dict[str, Any]) -> None:
    with pytest.raises(PermissionError, match="is outside the workspace"):
        run("file", {**config, "path": path}, None, ctx)
    assert outside.read_text() == "secret"
    assert sorted(p.name for p in ctx.workspace.iterdir()) == ["link.txt"]


def test_copy_destination_outside_is_refused(ctx: TaskContext, outside: Path) -> None:
    (ctx.workspace / "src.txt").write_text("payload")
    with pytest.raises(PermissionError, match="is outside the workspace"):
        run("file", {"action": "copy", "path": "src.txt", "to": "link.txt"}, None, ctx)
    assert outside.read_text() == "secret"


@pytest.mark.parametrize(("action", "on_disk"), [
    ("write_json", '{\n  "a": [\n    1,\n    "x"\n  ]\n}\n'),
    ("write_yaml", "a:\n- 1\n- x\n"),
])
def test_structured_writes_read_back_as_the_same_value(ctx: TaskContext, action: str, on_disk: str) -> None:
    run("file", {"action": action, "path": "d/v", "content": {"a": [1, "x"]}}, None, ctx)
    assert (ctx.workspace / "d" / "v").read_text() == on_disk
    read = "read_json" if action == "write_json" else "read_yaml"
    assert run("file", {"action": read, "path": "d/v"}, None, ctx) == {"a": [1, "x"]}


def test_write_json_encodes_text_as_a_json_string(ctx: TaskContext) -> None:
    run("file", {"action": "write_json", "path": "s.json", "content": "hi"}, None, ctx)
    assert (ctx.workspace / "s.json").read_text() == '"hi"\n'


def test_read_yaml_builds_no_python_objects(ctx: TaskContext) -> None:
    (ctx.workspace / "bad.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(Exception, match="could not determine a constructor"):
        run("file", {"action": "read_yaml", "path": "bad.yaml"}, None, ctx)


def test_move_leaves_no_source(ctx: TaskContext) -> None:
    (ctx.workspace / "a.txt").write_text("x")
    assert run("file", {"action": "move", "path": "a.txt", "to": "sub/b.txt"}, None, ctx) == \
        {"path": "a.txt", "to": "sub/b.txt"}
    assert (not (ctx.workspace / "a.txt").exists(), (ctx.workspace / "sub" / "b.txt").read_text()) == (True, "x")


def test_read_missing_file_raises(ctx: TaskContext) -> None:
    with pytest.raises(FileNotFoundError):
        run("file", {"action": "read", "path": "nope.txt"}, None, ctx)


# --- noop and echo -------------------------------------------------------------------------------

def test_noop_returns_its_inputs_and_fails_when_asked(ctx: TaskContext) -> None:
    assert run("noop", {"a": 1, "b": [2]}, None, ctx) == {"a": 1, "b": [2]}
    with pytest.raises(RuntimeError, match="should_fail"):
        run("noop", {"should_fail": True}, None, ctx)


def test_echo_logs_and_returns_its_message(ctx: TaskContext, debug_lines: list[str]) -> None:
    assert run("echo", {"message": {"n": 1}}, None, ctx) == {"n": 1}
    assert debug_lines == ["step: {'n': 1}"]


# --- template -------------------------------------------------------------------------------------

def test_inline_template_returns_text(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(key="a", index=0, total=2, params={"greeting": "Hello"})
    template = "{{ params.greeting }}, {{ item.name }} ({{ batch.index + 1 }}/{{ batch.total }})\n"
    assert run("template", {"template": template}, {"name": "Ada"}, ctx) == "Hello, Ada (1/2)\n"


def test_lone_expression_is_rendered_as_text(ctx: TaskContext) -> None:
    assert run("template", {"template": "{{ 6 * 7 }}"}, None, ctx) == "42"


def test_template_file_to_output_file(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(params={"title": "Report"}, steps={"count": {"result": 3}})
    (ctx.workflow_dir / "templates").mkdir()
    (ctx.workflow_dir / "templates" / "report.md.j2").write_text(
        "# {{ params.title }}\n{% for n in range(steps.count.result) %}- {{ n }}\n{% endfor %}")
    config = {"template_file": "templates/report.md.j2", "output_file": "out/report.md"}
    text = "# Report\n- 0\n- 1\n- 2\n"
    assert run("template", config, None, ctx) == {"path": "out/report.md", "bytes": len(text)}
    assert (ctx.workspace / "out" / "report.md").read_text() == text


@pytest.mark.parametrize("template", ["{{ ''.__class__.__mro__ }}", "x {{ ''.__class__.__mro__ }}"])
def test_template_cannot_reach_python_internals(ctx: TaskContext, template: str) -> None:
    with pytest.raises(SecurityError):
        run("template", {"template": template}, None, ctx)


def test_template_undefined_name_is_an_error(ctx: TaskContext) -> None:
    with pytest.raises(UndefinedError, match="'itme' is undefined"):
        run("template", {"template": "{{ itme }} and more"}, "x", ctx)


def test_template_output_outside_the_workspace_is_refused(ctx: TaskContext) -> None:
    with pytest.raises(PermissionError, match="is outside the workspace"):
        run("template", {"template": "x", "output_file": "../escaped.txt"}, None, ctx)
    assert not (ctx.workspace.parent / "escaped.txt").exists()
