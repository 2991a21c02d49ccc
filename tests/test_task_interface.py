"""The task registry: built-in kinds, their field tables and checks, user kinds, and the context."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

import plait.tasks
from plait.tasks import Field, TaskContext, TaskKind, get_kind, kinds
from plait.tasks import base as tasks_base

BUILT_IN = ("echo", "file", "noop", "python", "shell", "template")


def test_every_built_in_kind_is_registered() -> None:
    assert set(BUILT_IN) <= set(kinds())
    assert all(isinstance(get_kind(name), TaskKind) for name in BUILT_IN)


def test_every_built_in_kind_has_a_field_table_but_noop() -> None:
    assert get_kind("noop").fields is None  # noop takes any inputs and returns them
    tables = {name: get_kind(name).fields for name in BUILT_IN if name != "noop"}
    assert all(isinstance(spec, Field) and spec.doc for table in tables.values() for spec in table.values())
    shapes = {name: {f: (spec.types, spec.required, spec.render) for f, spec in table.items()}
              for name, table in tables.items()}
    assert shapes == {
        "echo": {"message": ((object,), True, "value")},
        "file": {
            "action": ((str,), True, "value"),
            "path": ((str,), True, "value"),
            "content": ((object,), False, "value"),
            "to": ((str,), False, "value"),
            "encoding": ((str,), False, "value"),
        },
        "python": {
            "function": ((str,), False, "value"),
            "code": ((str,), False, "raw"),
            "kwargs": ((dict, str), False, "value"),
            "spread": ((bool,), False, "value"),
        },
        "shell": {
            "command": ((str,), True, "shell"),
            "env": ((dict,), False, "value"),
        },
        "template": {
            "template": ((str,), False, "raw"),
            "template_file": ((str,), False, "value"),
            "output_file": ((str,), False, "value"),
            "whitespace": ((str,), False, "value"),
        },
    }
    assert get_kind("file").fields["action"].choices == (
        "read", "read_json", "read_yaml", "write", "write_json", "write_yaml", "append", "copy", "move", "delete")


def test_only_shell_enforces_its_own_timeout() -> None:
    assert {name: get_kind(name).own_timeout for name in BUILT_IN} == {
        "echo": False, "file": False, "noop": False, "python": False, "shell": True, "template": False}


def test_every_handler_has_the_same_signature() -> None:
    signatures = {name: list(inspect.signature(get_kind(name).handler).parameters) for name in BUILT_IN}
    assert signatures == {name: ["config", "item", "ctx"] for name in BUILT_IN}


def test_every_kind_has_a_doc() -> None:
    assert all(get_kind(name).doc for name in BUILT_IN)


@pytest.mark.parametrize(("kind", "inputs", "problems"), [
    ("python", {"function": "m:f"}, []),
    ("python", {"code": "result = 1"}, []),
    ("python", {}, [(None, "a 'python' task needs 'function' or 'code'",
                     "add `function: module:func` to call a function, or `code: |` with statements")]),
    ("python", {"function": None, "code": None}, [(None, "a 'python' task needs 'function' or 'code'",
                     "add `function: module:func` to call a function, or `code: |` with statements")]),
    ("python", {"function": "m:f", "code": "x"},
     [("code", "a 'python' task takes 'function' or 'code', not both", "keep one of them")]),
    ("python", {"code": "x", "kwargs": {"a": 1}}, []),
    ("template", {"template": "x"}, []),
    ("template", {"template_file": "t.j2", "output_file": "o.txt"}, []),
    ("template", {"output_file": "o.txt"}, [(None, "a 'template' task needs 'template' or 'template_file'",
                  "add `template: |` with the text, or `template_file:` with a path beside the workflow")]),
    ("template", {"template": "x", "template_file": "t.j2"},
     [("template_file", "a 'template' task takes 'template' or 'template_file', not both",
       "keep one of them")]),
    ("file", {"action": "read", "path": "a"}, []),
    ("file", {"action": "write", "path": "a", "content": ""}, []),
    ("file", {"action": "write", "path": "a"},
     [("content", "a 'file' task with action 'write' needs 'content'", "add `content:`")]),
    ("file", {"action": "append", "path": "a", "content": None},
     [("content", "a 'file' task with action 'append' needs 'content'", "add `content:`")]),
    ("file", {"action": "copy", "path": "a"},
     [("to", "a 'file' task with action 'copy' needs 'to'", "add `to:`")]),
    ("file", {"action": "read", "path": "a", "content": "x", "to": "b"}, [
        ("content", "'content' is not used by action 'read'", "used only by write, write_json, write_yaml, append"),
        ("to", "'to' is not used by action 'read'", "used only by copy, move"),
    ]),
    ("file", {"action": "copy", "path": "a", "to": "b", "content": "x"},
     [("content", "'content' is not used by action 'copy'", "used only by write, write_json, write_yaml, append")]),
    ("file", {"action": "shred", "path": "a"}, []),  # the field table's choices report this one
])
def test_cross_field_checks(kind: str, inputs: dict[str, Any], problems: list[Any]) -> None:
    assert get_kind(kind).check(inputs) == problems


def test_shell_takes_values_inside_its_own_quotes_and_refuses_them_where_they_would_be_code() -> None:
    check = get_kind("shell").check
    arithmetic = ("compute it in the template instead (`{{ item + 1 }}`): bash evaluates a value inside arithmetic "
                  "as an expression, and `a[$(cmd)]` there runs cmd")
    assert [check({"command": c}) for c in ('echo "{{ item }}"', "echo '{{ item }}'", "echo {{ item }} 'x'",
                                             "echo $(( {{ item }} * 2 ))", "echo {{ x }}\nexit $(({{ n }}))",
                                             "true", "echo {{ x }}")] == [
        [], [], [],
        [("command", "a {{ }} is inside shell arithmetic: `{{ item }}` at column 10 of the command", arithmetic)],
        [("command", "a {{ }} is inside shell arithmetic: `{{ n }}` at line 2, column 9 of the command", arithmetic)],
        [], [],
    ]
    assert check({"command": "echo", "env": {"PLAIT_V1": "x", "PLAIT_VAR": "y"}}) == [
        ("env", "the environment variable 'PLAIT_V1' is plait's own",
         "plait passes the command's values as PLAIT_V1, PLAIT_V2, …; choose another name")]


@pytest.fixture
def registry() -> Iterator[None]:
    """Restore the registry after a test registers its own kinds."""
    saved = dict(tasks_base._REGISTRY)
    yield
    tasks_base._REGISTRY.clear()
    tasks_base._REGISTRY.update(saved)


def test_user_kind_is_found_by_get_kind(registry: None) -> None:
    fields = {"url": Field(types=(str,), required=True, doc="where to send the request")}

    @plait.tasks.task("http", fields=fields)
    def http(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
        """Fetch a URL."""
        return {"url": config["url"], "item": item}

    kind = get_kind("http")
    assert kind == TaskKind("http", http, fields, None, "Fetch a URL.", False)
    assert "http" in kinds()
    assert kind.handler({"url": "https://example.org"}, 1, None) == {"url": "https://example.org", "item": 1}


def test_unknown_kind_is_none() -> None:
    assert get_kind("no-such-kind") is None


@pytest.fixture
def ctx(tmp_path: Path) -> TaskContext:
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "ws" / "out-link").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "ws" / "in-link").symlink_to(tmp_path / "ws" / "sub")
    return TaskContext(workspace=tmp_path / "ws", run_id="run-1", step="step", node_id="step", attempt=1,
                       retry=None, logger=logger.bind(node="step"), workflow_dir=tmp_path)


ESCAPES = ["../x", "/etc/passwd", "out-link", "sub/../../x", "in-link/../../x", ".."]


@pytest.mark.parametrize("relative", ESCAPES)
def test_context_path_refuses_escapes(ctx: TaskContext, relative: str) -> None:
    with pytest.raises(PermissionError, match="is outside the workspace"):
        ctx.path(relative)


def test_context_path_resolves_inside(ctx: TaskContext) -> None:
    root = ctx.workspace.resolve()
    assert [ctx.path(p) for p in (".", "a.txt", "sub/../b.txt", "in-link/c.txt", str(root / "d.txt"))] == [
        root, root / "a.txt", root / "b.txt", root / "sub" / "c.txt", root / "d.txt"]


def test_template_context_names(ctx: TaskContext) -> None:
    names = ctx.template_context("it")
    assert set(names) == {"params", "args", "workflow_dir", "item", "index", "key", "batch", "steps", "run",
                          "workspace", "env"}
    assert names["workflow_dir"] == str(ctx.workflow_dir)
    assert dict(names["env"]) == dict(os.environ)
