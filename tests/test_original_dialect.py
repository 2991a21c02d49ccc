"""Workflows written for the original engine run through plait's CLI, migrate, and run again the same.

Each folder of `examples/original/` holds a workflow in the original dialect and `expected.json`:
the files that the original engine itself (yaml-workflow 0.9.6) wrote under `output/`, and the
command it ran (see that folder's README). Here each one runs through `plait run`, is migrated
with `plait migrate`, and the migrated file runs again; all three must agree. Two differences are
plait's on purpose and compared as such: JSON files end with a line break (compared as values),
and nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime.support import plait, plait_process

from plait.compiler import compile_workflow
from plait.compiler.dialect import is_original
from plait.compiler.loader import load_yaml
from plait.runtime.ledger import Ledger

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ORIGINAL = Path(__file__).resolve().parent.parent / "examples" / "original"
_spec = importlib.util.spec_from_file_location("record_package", ORIGINAL / "record_package.py")
record_package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record_package)


def write_workflow(folder: Path, text: str) -> None:
    (folder / "wf.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def result_of(workspace: Path, node: str) -> object:
    """Return the result the ledger of `workspace` records for `node`."""
    ledger = Ledger(workspace / ".plait" / "ledger.db", readonly=True)
    try:
        return ledger.results([node])[node]
    finally:
        ledger.close()


def cases() -> list[tuple[str, str | None]]:
    found = []
    for expected in sorted(p for p in ORIGINAL.glob("*/expected.json") if p.parent.name != "package"):
        data = json.loads(expected.read_text())
        found += [(expected.parent.name, flow) for flow in data["flows"]] if "flows" in data else \
            [(expected.parent.name, None)]
    return found


def recorded(name: str, flow: str | None) -> dict:
    data = json.loads((ORIGINAL / name / "expected.json").read_text())
    return data["flows"][flow] if flow else data


def plait_args(record: dict) -> list[str]:
    """Turn the original's `NAME=VALUE` arguments (and `--flow F`) into plait's `-p NAME=VALUE`."""
    words = shlex.split(record["command"].split("&&", 1)[1])
    args = []
    for word, before in zip(words, ["", *words]):
        if "=" in word and not word.startswith("-"):
            args += ["-p", word]
        elif before == "--flow":
            args += ["--flow", word]
    return args


def outputs(workspace: Path) -> dict[str, object]:
    """Return the files under output/, JSON files as their values."""
    found: dict[str, object] = {}
    for path in sorted((workspace / "output").rglob("*")):
        if path.is_file():
            name = str(path.relative_to(workspace))
            found[name] = json.loads(path.read_text()) if name.endswith(".json") else path.read_text()
    return found


def as_values(files: dict[str, str]) -> dict[str, object]:
    return {name: json.loads(text) if name.endswith(".json") else text for name, text in files.items()}


def comparable(plan_json: dict) -> dict:
    """A plan without what may differ between two files of one workflow: paths, positions, notes, the flow param."""
    return {
        "workflow": plan_json["workflow"],
        "params": {k: v for k, v in plan_json["params"].items() if k != "flow"},
        "steps": [{k: v for k, v in step.items() if k != "loc"} for step in plan_json["steps"]],
        "nodes": plan_json["nodes"],
        "edges": plan_json["edges"],
    }


def test_there_are_three_recorded_workflows_and_four_runs() -> None:
    assert cases() == [("batch", None), ("etl", "etl"), ("etl", "report"), ("greeting", None)]


@pytest.mark.parametrize(("name", "flow"), cases())
def test_an_original_workflow_runs_migrates_and_runs_again_with_the_original_engines_results(
        name: str, flow: str | None, tmp_path: Path) -> None:
    record = recorded(name, flow)
    args = [a.replace("$E", str(ORIGINAL)) for a in plait_args(record)]
    workflow = ORIGINAL / name / "workflow.yaml"

    first = plait("run", str(workflow), "--workspace", "ws", *args, cwd=tmp_path)
    assert first.returncode == record["exit_code"], first.stderr
    assert "Traceback" not in first.stderr
    assert outputs(tmp_path / "ws") == as_values(record["files"])

    migrated = tmp_path / "migrated.yaml"
    done = plait("migrate", str(workflow), "-o", str(migrated), *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not is_original(load_yaml(migrated.read_text(), "migrated.yaml"))
    native_args = [a for a in args if not a.startswith("--flow") and a != flow]
    again = plait("run", str(migrated), "--workspace", "ws2", *native_args, cwd=tmp_path)
    assert again.returncode == record["exit_code"], again.stderr
    assert outputs(tmp_path / "ws2") == as_values(record["files"])

    params = dict(a.split("=", 1) for a in native_args if a != "-p")
    original_plan = compile_workflow(workflow, {**params, **({"flow": flow} if flow else {})})
    assert comparable(compile_workflow(migrated, params).to_json()) == comparable(original_plan.to_json())


def test_compile_prints_a_note_for_each_behaviour_that_differs(tmp_path: Path) -> None:
    done = plait("compile", str(ORIGINAL / "etl" / "workflow.yaml"), "-p", "input_csv=/data/orders.csv",
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (ORIGINAL / "etl" / "workflow.yaml").read_text().splitlines()

    def line_of(text: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if text in line)

    notes = [line.split(": note: ", 1) for line in done.stderr.splitlines()]
    assert [(where.rsplit("/", 1)[-1], what.split(":")[0][:44]) for where, what in notes] == [
        (f"workflow.yaml:{line_of('- name: extract')}:5", "a failing step runs once"),
        (f"workflow.yaml:{line_of('cp {{ args.input_csv }}')}:16", "a value that is one {{ expression }} keeps i"),
        (f"workflow.yaml:{line_of('condition:')}:16", "a condition runs its step when it renders to"),
    ]


def test_migrate_keeps_the_comments_and_writes_list_order_as_after(tmp_path: Path) -> None:
    done = plait("migrate", str(ORIGINAL / "etl" / "workflow.yaml"), "-p", "input_csv=/data/orders.csv",
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    source = (ORIGINAL / "etl" / "workflow.yaml").read_text()
    comments = [line.strip() for line in source.splitlines() if line.strip().startswith("#")]
    kept = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert [c for c in comments if c not in kept] == []
    assert text.startswith("# Migrated by `plait migrate` from workflow.yaml, flow 'etl'.\n")
    assert "  - name: keep_raw\n    task: file\n    after: [extract]\n" in text


def test_on_error_next_runs_the_target_skips_the_steps_between_and_the_run_succeeds(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: jump
        steps:
          - name: risky
            task: shell
            inputs: {command: "echo disk full >&2; exit 3"}
            on_error: {action: next, next: recover}
          - {name: between, task: echo, inputs: {message: never}}
          - {name: recover, task: echo, inputs: {message: "recovering from {{ error.step }}: {{ error.message }}"}}
          - {name: finish, task: echo, inputs: {message: done}}
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    assert {node: v["status"] for node, v in state["nodes"].items()} == {
        "risky": "failed", "between": "skipped", "recover": "succeeded", "finish": "succeeded"}
    assert result_of(tmp_path / "ws", "recover") == "recovering from risky: command exited with code 3: disk full"


def test_on_error_message_is_the_failures_message_in_the_record_beside_the_exceptions_own_text(
        tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: messages
        steps:
          - name: shell_fails
            task: shell
            inputs: {command: "exit 4"}
            on_error: {action: continue, message: "{{ workflow_name }}: {{ error.step }} said {{ error.message }}"}
          - name: code_fails
            task: python_code
            inputs: {code: "raise KeyError('sku-7')"}
            on_error: {action: continue, message: "as the original showed it: {{ error }}"}
          - name: message_fails
            task: fail
            inputs: {message: "the real cause"}
            on_error: {action: continue, message: "{{ error.nothing.here }}"}
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    errors = {node: (v["error"]["error_type"], v["error"]["error"], v["error"]["message"])
              for node, v in state["nodes"].items()}
    assert errors == {
        "shell_fails": ("CommandFailed", "command exited with code 4",
                        "messages: shell_fails said command exited with code 4"),
        "code_fails": ("KeyError", "'sku-7'",
                       "as the original showed it: {'step': 'code_fails', 'message': \"'sku-7'\"}"),
        "message_fails": ("RuntimeError", "the real cause",
                          "the real cause (failed to format custom message: UndefinedError: 'dict object' has no "
                          "attribute 'nothing')"),
    }
    shown = plait("status", "--workspace", "ws", cwd=tmp_path).stdout
    assert "  shell_fails: messages: shell_fails said command exited with code 4 [CommandFailed: command exited " \
           "with code 4]" in shown


def test_a_condition_reading_a_name_nothing_defines_skips_its_step_every_run_with_a_note(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: typo
        params:
          flag: {type: boolean, default: true}
        steps:
          - name: guarded
            task: shell
            inputs: {command: "touch guarded_ran"}
            condition: "{{ flga and undefined_var.foo == 'bar' }}"
          - name: checked
            task: shell
            inputs: {command: "touch checked_ran"}
            condition: "{{ flag }}"
          - name: undeclared
            task: shell
            inputs: {command: "touch undeclared_ran"}
            condition: "{{ args.flga }}"
          - name: defaulted
            task: shell
            inputs: {command: "touch defaulted_ran"}
            condition: "{{ args.flga | default(true) }}"
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    noted = plait("compile", "wf.yaml", cwd=tmp_path).stderr
    assert "wf.yaml:8:16: note: this condition reads 'flga', 'undefined_var', which nothing defines (a typo?)" in noted
    assert "wf.yaml:16:16: note: this condition reads 'args.flga', which nothing defines (a typo?)" in noted
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    assert {node: v["status"] for node, v in state["nodes"].items()} == {
        "guarded": "skipped", "checked": "succeeded", "undeclared": "skipped", "defaulted": "succeeded"}
    assert sorted(p.name for p in (tmp_path / "ws").glob("*_ran")) == ["checked_ran", "defaulted_ran"]


def test_on_error_asking_for_retries_without_a_count_retries_three_times_as_the_original(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: retries
        steps:
          - name: action_retry
            task: shell
            inputs: {command: "echo x >> a; test $(wc -l < a) -ge 4"}
            on_error: {action: retry}
          - name: delay_only
            task: shell
            inputs: {command: "echo x >> b; exit 1"}
            on_error: {action: continue, delay: 0}
          - name: nothing_asked
            task: shell
            inputs: {command: "echo x >> c; exit 1"}
            on_error: continue
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    assert {node: (v["status"], v["attempts"]) for node, v in state["nodes"].items()} == {
        "action_retry": ("succeeded", 4), "delay_only": ("failed", 4), "nothing_asked": ("failed", 1)}
    assert [len((tmp_path / "ws" / f).read_text().splitlines()) for f in "abc"] == [4, 4, 1]


def test_run_number_counts_the_runs_of_the_workspace(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        steps:
          - {name: gate, task: shell, inputs: {command: test -f go}}
          - name: stamp
            task: template
            inputs: {template: "run #{{ run_number }} of {{ workflow.run_number }}", output_file: stamp.txt}
        """)
    first = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert first.returncode == 1 and not (tmp_path / "ws" / "stamp.txt").exists()
    (tmp_path / "ws" / "go").touch()
    assert plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path).returncode == 0
    assert (tmp_path / "ws" / "stamp.txt").read_text() == "run #2 of 2"
    assert plait("run", "wf.yaml", "--workspace", "ws", "-q", "--fresh", cwd=tmp_path).returncode == 0
    assert (tmp_path / "ws" / "stamp.txt").read_text() == "run #1 of 1"


def test_an_error_flow_target_sees_no_error_when_nothing_failed(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: no-jump
        steps:
          - name: fine
            task: python_code
            inputs: {code: "result = None"}
            on_error: {next: report}
          - name: report
            task: python_code
            inputs: {code: "result = context['error']"}
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert result_of(tmp_path / "ws", "report") is None  # `fine` succeeded with null: no error


def test_a_value_the_original_put_inside_quotes_stays_one_literal_word(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: quoted
        params:
          who: {type: string, default: x}
        steps:
          - name: greet
            task: shell
            inputs: {command: 'printf "%s|" "hi {{ args.who }}" > out.txt'}
            on_error: {action: fail}
        """)
    hostile = 'a" $(touch pwned) `touch pwned2` \\" b'
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", "-p", f"who={hostile}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ws" / "out.txt").read_text() == f"hi {hostile}|"
    assert sorted(p.name for p in (tmp_path / "ws").iterdir() if not p.name.startswith(".")) == ["out.txt"]


def test_env_is_read_where_the_node_runs_in_templates_and_code(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: environment
        steps:
          - name: shell_sees
            task: shell
            inputs: {command: "echo {{ env.PLAIT_GREETING }} > from_shell.txt"}
          - name: code_sees
            task: python_code
            inputs: {code: "result = env['PLAIT_GREETING'].upper()"}
        """)
    done = plait_process("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path,
                         env={"PLAIT_GREETING": "hi there"})  # the environment its workers start with
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ws" / "from_shell.txt").read_text() == "hi there\n"
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    assert state["nodes"]["code_sees"]["status"] == "succeeded"
    assert result_of(tmp_path / "ws", "code_sees") == "HI THERE"


@pytest.mark.parametrize("name", ["greeting", "batch", "etl"])
def test_the_examples_in_docs_migrating_are_what_migrate_writes_today(name: str, tmp_path: Path) -> None:
    docs = (ORIGINAL.parent.parent / "docs" / "migrating.md").read_text()
    shown = docs.split(f"<!-- migrated: {name} -->\n```yaml\n", 1)[1].split("\n```\n", 1)[0] + "\n"
    params = ["-p", "input_csv=/data/orders.csv"] if name == "etl" else []
    done = plait("migrate", str(ORIGINAL / name / "workflow.yaml"), *params, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert shown == done.stdout


def test_python_code_reading_the_originals_context_gets_it(tmp_path: Path) -> None:
    write_workflow(tmp_path, """\
        name: context
        params:
          who: {type: string, default: Ada}
        steps:
          - {name: first, task: echo, inputs: {message: hello}}
          - name: second
            task: python_code
            inputs:
              code: |
                args = context.get("args", {})
                result = [args["who"], context["workflow_name"], context["steps"]["first"]["result"],
                          context["workspace"] == str(workspace), type(workspace).__name__]
            on_error: {action: fail}
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert result_of(tmp_path / "ws", "second") == ["Ada", "context", "hello", True, "PosixPath"]


def test_the_rest_of_the_originals_task_kinds_run_as_plaits_own(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("def double(n):\n    return n * 2\n", encoding="utf-8")
    write_workflow(tmp_path, """\
        name: kinds
        steps:                                   # steps as a mapping, as the original allowed
          seed:
            task: write_yaml
            inputs: {file: data/seed.yaml, data: {n: 21, tags: [a, b]}}
          load:
            task: read_yaml
            inputs: {file: data/seed.yaml}
          doubled:
            task: python_function
            inputs: {module: helpers, function: double, kwargs: {n: "{{ steps.load.result.data.n }}"}}
          as_json:
            task: write_json
            inputs: {file: data/out.json, data: {doubled: "{{ steps.doubled.result }}"}}
          back:
            task: read_json
            inputs: {file: data/out.json}
          script:
            task: write_file
            inputs: {file: show.py, content: "import sys; print('script', *sys.argv[1:])"}
          run_script:
            task: python_script
            inputs: {script_path: show.py, args: ["{{ steps.back.result.data.doubled }}"]}
          run_module:
            task: python_module
            inputs: {module: json.tool, args: [data/out.json]}
          log:
            task: append_file
            inputs: {file: data/log.txt, content: "{{ steps.run_script.result.stdout }}"}
          move:
            task: move_file
            inputs: {source: data/log.txt, destination: data/moved.txt}
          tidy:
            task: delete_file
            inputs: {file: show.py}
          gather:
            task: noop
            inputs: {code: "{{ steps.run_module.result.returncode }}"}
          say:
            task: print_message
            inputs: {message: "exit {{ steps.gather.result.processed_inputs.code }}"}
        """)
    done = plait("run", "wf.yaml", "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ws = tmp_path / "ws"
    assert json.loads((ws / "data" / "out.json").read_text()) == {"doubled": 42}
    assert (ws / "data" / "moved.txt").read_text() == "script 42\n"
    assert sorted(p.name for p in (ws / "data").iterdir()) == ["moved.txt", "out.json", "seed.yaml"]
    assert not (ws / "show.py").exists()
    assert result_of(ws, "run_module")["stdout"] == '{\n    "doubled": 42\n}\n'
    assert result_of(ws, "say") == {"success": True, "printed_length": 6}
    assert "exit 0\n" in done.stdout  # print_message prints on stdout, as the original did


_REGISTERING = """\
import os, sys
from plait.tasks.original import register_task

@register_task("shout")
def shout(text: str) -> dict:
    return {"text": text.upper(), "pid": os.getpid()}

@register_task("echo")  # the user's own echo replaces the original's, as it did there
def echo(message: str) -> str:
    return f"mine: {message}"
"""
_RUN = """\
import json, os, sys
sys.path.insert(0, os.getcwd())
import kinds
from plait.tasks.original import register_task
from plait import run_workflow

def in_a_function():
    @register_task("whisper")
    def whisper(text: str) -> str:
        return text.lower()

in_a_function()
result = run_workflow(sys.argv[1], workspace=sys.argv[2], backend=sys.argv[3], jobs=2, fresh=True)
print(json.dumps({"ok": result.ok, "pid": os.getpid(), "failed": [f["error"] for f in result.report.failed]}))
"""


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_a_kind_registered_with_register_task_runs_on_every_backend(backend: str, tmp_path: Path) -> None:
    (tmp_path / "kinds.py").write_text(_REGISTERING, encoding="utf-8")
    (tmp_path / "run.py").write_text(_RUN, encoding="utf-8")
    write_workflow(tmp_path, """\
        name: registered
        steps:
          - {name: loud, task: shout, inputs: {text: hello}}
          - {name: said, task: echo, depends_on: [loud], inputs: {message: "{{ steps.loud.result.text }}"}}
        """)
    (tmp_path / "inner.yaml").write_text("name: inner\nsteps:\n  - {name: soft, task: whisper, inputs: {text: Hi}}\n",
                                         encoding="utf-8")
    runs = {}
    for wf in ("wf.yaml", "inner.yaml"):
        done = subprocess.run([sys.executable, "run.py", wf, f"ws-{wf}", backend], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs[wf] = json.loads(done.stdout.splitlines()[-1])
    loud = result_of(tmp_path / "ws-wf.yaml", "loud")
    assert (runs["wf.yaml"]["ok"], loud["text"], result_of(tmp_path / "ws-wf.yaml", "said")) == (
        True, "HELLO", "mine: HELLO")
    assert (loud["pid"] != runs["wf.yaml"]["pid"]) == (backend == "loky")  # loky's worker imported kinds.py
    if backend == "loky":  # registered inside a function: no other process can have it, and the error says what to do
        assert runs["inner.yaml"]["ok"] is False
        assert runs["inner.yaml"]["failed"] == [
            "Unknown task type: 'whisper' (registered by __main__ in another process: run the workflow with "
            "--backend threading, or register it at the top level of an importable module)"]
    else:
        assert (runs["inner.yaml"]["ok"], result_of(tmp_path / "ws-inner.yaml", "soft")) == (True, "hi")


# --- the original's own workflows (examples/original/package, recorded by record_package.py) ----

PACKAGE = ORIGINAL / "package"
# Where plait's files differ from the original's on purpose (docs/migrating.md, "What changed"):
# run name -> {file the original wrote: the file plait writes instead, and its text, or None to drop it}.
BETTER = {
    # The original wrote `output_file: profile.{{ args.template_format }}` as that literal name; plait renders it.
    "template_tasks": {"output/profile.{{ args.template_format }}": "output/profile.text"},
}
def package_runs() -> list[str]:
    return sorted(json.loads((PACKAGE / "expected.json").read_text()))


def plait_files(workspace: Path) -> dict[str, str]:
    """The files a plait run wrote, normalised as record_package.py normalises the original's."""
    return record_package.files_of(workspace)


_AS_THE_ORIGINAL = {"succeeded": "completed", "failed": "failed", "skipped": "skipped"}


@pytest.mark.parametrize("name", package_runs())
def test_the_originals_own_workflows_write_the_same_files_on_plait(name: str, tmp_path: Path) -> None:
    record = json.loads((PACKAGE / "expected.json").read_text())[name]
    args = [word for pair in record["args"] for word in ("-p", pair)]
    done = plait("run", str(PACKAGE / record["workflow"]), "--workspace", "ws", "-q", *args, cwd=tmp_path)
    assert done.returncode == record["exit_code"], done.stderr
    assert "Traceback" not in done.stderr
    expected = {BETTER.get(name, {}).get(path, path): text for path, text in record["files"].items()}
    nodes = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)["nodes"]
    steps = {node: _AS_THE_ORIGINAL[state["status"]] for node, state in nodes.items()}
    assert {step: steps.get(step) for step in record["steps"]} == record["steps"]
    assert {s for s in steps if s not in record["steps"]} <= {s for s in steps if steps[s] == "skipped"}
    got = plait_files(tmp_path / "ws")
    assert as_values(got) == as_values(expected) if name != "advanced_hello_world" else \
        {k: v for k, v in got.items() if k != "output/greeting.json"} == \
        {k: v for k, v in expected.items() if k != "output/greeting.json"}
    if name == "advanced_hello_world":  # the original kept the shell's final line break in the timestamp
        assert json.loads(got["output/greeting.json"]) == {**json.loads(expected["output/greeting.json"]),
                                                           "timestamp": "<TIME>"}
