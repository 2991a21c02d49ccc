"""Hostile values: items never become shell syntax, file paths never leave the workspace, templates never
reach Python internals.

The runs are `plait run` commands (in-process: their shell tasks are real processes) with HOME set to
a folder of the test's (holding a canary file), so a command that did run `rm -rf ~` or `touch pwned`
would show, and harm nothing.
"""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

import pytest
import yaml
from runtime.support import Flow, error, plait

from reliability.harness import ledger_path, rows, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

HOSTILE = ["; rm -rf ~", "$(touch pwned)", "`touch pwned`", "a\nb; touch pwned", "../../etc/passwd", "-n",
           "--help", "' \" \\", "$HOME", "*", "|| touch pwned &&", "", "%s%s%n", "\u202e💥 名前"]


def home(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "canary").write_text("still here")
    return {"HOME": str(folder)}


def pwned(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*pwned*") if p.name.startswith("pwned"))


def test_hostile_items_reach_a_shell_command_as_one_literal_argument_each(flow: Flow, tmp_path: Path) -> None:
    workflow = {"name": "hostile", "steps": [{"name": "echo", "task": "shell", "items": HOSTILE, "inputs": {
        "command": "mkdir -p out && printf '%s\\n' {{ item }} > out/{{ index }}.txt"}}]}
    flow.path.write_text(yaml.safe_dump(workflow, allow_unicode=True), encoding="utf-8")
    env = home(tmp_path)
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir,
                 env=env)
    assert done.returncode == 0, done.stderr
    written = {int(p.stem): p.read_text(encoding="utf-8") for p in (flow.ws / "out").iterdir()}
    assert written == {i: value + "\n" for i, value in enumerate(HOSTILE)}
    assert (pwned(tmp_path), (Path(env["HOME"]) / "canary").read_text()) == ([], "still here")


@pytest.mark.parametrize("quoted", ['echo "{{ item }}" > said.txt', "echo '{{ item }}' > said.txt"])
def test_hostile_items_inside_quotes_of_the_users_own_do_not_run_either(flow: Flow, tmp_path: Path,
                                                                       quoted: str) -> None:
    workflow = {"name": "quoted", "steps": [{"name": "echo", "task": "shell", "items": ["$(touch pwned)"],
                                             "inputs": {"command": quoted}}]}
    flow.path.write_text(yaml.safe_dump(workflow), encoding="utf-8")
    plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir,
          env=home(tmp_path))
    assert pwned(tmp_path) == []  # refused at compile, or run as text: either way `touch pwned` never runs


def test_file_tasks_refuse_paths_that_leave_the_workspace_and_write_nothing_outside(flow: Flow,
                                                                                    tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("keep me")
    flow.ws.mkdir()
    (flow.ws / "link").symlink_to(outside)  # a link inside the workspace pointing out of it
    (flow.ws / "inside.txt").write_text("inside")
    escapes = ["../outside/escaped.txt", str(outside / "absolute.txt"), "link/through-link.txt",
               "ok/../../outside/dotdot.txt", "../../etc/passwd"]
    flow.write(f"""
        name: paths
        steps:
          - name: write
            task: file
            items: {json.dumps([*escapes, "ok/fine.txt"])}
            key: "{{{{ index }}}}"
            on_error: continue
            inputs: {{action: write, path: "{{{{ item }}}}", content: "pwned"}}
          - name: read
            task: file
            on_error: continue
            inputs: {{action: read, path: ../../../../../../etc/passwd}}
          - name: delete
            task: file
            on_error: continue
            inputs: {{action: delete, path: link/canary}}
          - name: copy
            task: file
            on_error: continue
            inputs: {{action: copy, path: inside.txt, to: ../outside/copied.txt}}
    """)
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir)
    assert done.returncode == 1, done.stderr
    root = flow.ws.resolve()

    def refused(node: str, path: str, item: str | None = None) -> tuple[str, int, None, dict]:
        # retryable: a PermissionError is an OSError, which the default policy retries (max_attempts is 1 here)
        return ("failed", 1, None, error(node, "PermissionError", f"path '{path}' is outside the workspace {root}",
                                         item=item, retryable=True))

    assert rows(flow.ws) == {
        **{f"write[{i}]": refused(f"write[{i}]", path, item=path) for i, path in enumerate(escapes)},
        "write[5]": ("succeeded", 1, {"path": "ok/fine.txt", "bytes": 5}, None),
        "read": refused("read", "../../../../../../etc/passwd"),
        "delete": refused("delete", "link/canary"),
        "copy": refused("copy", "../outside/copied.txt"),
    }
    assert sorted(p.name for p in outside.iterdir()) == ["canary"]
    assert (outside / "canary").read_text() == "keep me"
    assert (flow.ws / "ok" / "fine.txt").read_text() == "pwned"  # inside is fine


INTERNALS = ["''.__class__.__mro__", "cycler.__init__.__globals__", "self._TemplateReference__context",
             "lipsum.__globals__['os']", "joiner.__init__.__globals__", "namespace.__init__.__globals__.sys",
             "workspace.__class__.__mro__[1].__subclasses__()", "range.__self__", "params.__class__.__base__",
             "steps.items.__self__"]
# What leaked internals would look like in any output: reprs of classes, modules, functions, contexts.
LEAKS = ["<class '", "<module '", "<function ", "<built-in", "<Context ", " object at 0x", "__builtins__':"]

PLACES = {  # where a template sits in a step
    "python kwargs": {"task": "python", "inputs": {"function": "os.path:join", "kwargs": {"a": "{{ EXPR }}"}}},
    "file content": {"task": "file", "inputs": {"action": "write", "path": "out.txt", "content": "{{ EXPR }}"}},
    "shell command": {"task": "shell", "inputs": {"command": "echo {{ EXPR }} > out.txt"}},
    "condition": {"task": "shell", "condition": "{{ EXPR }}", "inputs": {"command": "echo ran > out.txt"}},
    "template task": {"task": "template", "inputs": {"template": "{{ EXPR }}"}},
    "per item": {"task": "file", "items": [1], "inputs": {"action": "write", "path": "out.txt",
                                                         "content": "{{ item }}{{ EXPR }}"}},
}


def sandbox_workflow(cases: dict[str, tuple[str, str]]) -> str:
    """Return a workflow (JSON, which is YAML) with one step per case: {step name: (expression, place)}."""
    steps = []
    for name, (expr, place) in cases.items():
        step = json.loads(json.dumps(PLACES[place]).replace("EXPR", expr.replace('"', '\\"')))
        steps.append({"name": name, "on_error": "continue", **step})
    return json.dumps({"name": "sandboxed", "steps": steps}, indent=1)


def everything_printed(flow: Flow, *outputs: str) -> str:
    logs = [p.read_text() for p in (flow.ws / ".plait" / "logs").glob("*.log")] if flow.ws.exists() else []
    ledger = [json.dumps(rows(flow.ws))] if ledger_path(flow.ws).exists() else []
    files = [p.read_text() for p in flow.ws.rglob("out.txt")] if flow.ws.exists() else []
    return "\n".join([*outputs, *logs, *ledger, *files])


def test_templates_cannot_reach_python_internals(flow: Flow) -> None:
    """Every case fails at compile (with its position) or its node fails with SecurityError or UndefinedError."""
    cases = {f"s{i}-{j}": (expr, place) for i, expr in enumerate(INTERNALS) for j, place in enumerate(PLACES)}
    flow.path.write_text(sandbox_workflow(cases), encoding="utf-8")
    compiled = plait("compile", "workflow.yaml", cwd=flow.dir)
    refused = set(re.findall(r"^workflow\.yaml:\d+:\d+: error: step '([^']+)'", compiled.stderr, re.MULTILINE))
    assert (compiled.returncode, "Traceback" in compiled.stderr) == (2 if refused else 0, False), compiled.stderr

    flow.path.write_text(sandbox_workflow({n: c for n, c in cases.items() if n not in refused}), encoding="utf-8")
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir)
    printed = everything_printed(flow, compiled.stdout, compiled.stderr, done.stdout, done.stderr)
    assert ([leak for leak in LEAKS if leak in printed], "Traceback" in printed) == ([], False), printed
    outcome = {name: "refused at compile" for name in refused}
    for node, (status, _, result, record) in rows(flow.ws).items():
        outcome[node.partition("[")[0]] = record["error_type"] if status == "failed" else f"{status}: {result}"
    assert set(outcome) == set(cases)
    assert {n: o for n, o in outcome.items()
            if o not in ("refused at compile", "SecurityError", "UndefinedError")} == {}
    assert not list(flow.ws.rglob("out.txt"))  # no step got as far as writing


def one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("expr", ["'x' * 10**10", "9 ** (9 ** 9)", "range(10**9) | length"])
def test_template_arithmetic_that_would_exhaust_the_machine_is_an_error(tmp_path: Path, expr: str) -> None:
    (tmp_path / "workflow.yaml").write_text(
        "name: bomb\nsteps:\n  - name: s\n    task: file\n"
        f"    inputs: {{action: write, path: out.txt, content: \"{{{{ {expr} }}}}\"}}\n", encoding="utf-8")
    done = run("compile", "workflow.yaml", cwd=tmp_path, timeout=60, preexec_fn=one_gib)  # the timeout: a hang
    assert (done.returncode, "Traceback" in done.stderr, done.stderr.startswith("workflow.yaml:5:")) == (
        2, False, True), done.stderr
