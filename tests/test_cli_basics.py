"""The command line's basics: --version, shell completion, --params-file, task kinds from plugins, `plait schema`.

Each runs `plait` as a user would, with real files: in this process where a command's output is what is checked
(runtime.support.plait), in a process of its own where what a fresh process loads is (plugins, which must reach
the workers of every backend; entry points; shell completion).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from runtime.support import plait, plait_process

import plait.cli as cli_module

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_installed_one_from_pyproject(tmp_path: Path) -> None:
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"$', project, re.MULTILINE).group(1)
    done = plait("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"plait {declared}\n", "")
    assert version("plait") == declared
    import plait as package

    assert package.__version__ == declared


# -- shell completion -------------------------------------------------------------------------------

PARAMS_WORKFLOW = """\
name: sized
params:
  size: {type: integer, default: 1}
  names: {type: array, default: []}
  mode: {type: string, choices: [fast, slow], default: fast}
steps:
  - name: show
    task: echo
    inputs: {message: "{{ params.size }} {{ params.names | join(',') }} {{ params.mode }}"}
"""


def complete(line: str, cwd: Path) -> list[str]:
    """Return what the shell would be offered for `line` (argcomplete's protocol, as its bash hook runs it)."""
    out = cwd / "completions.txt"
    env = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "COMP_TYPE": "9", "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    done = plait_process(cwd=cwd, env=env)  # argcomplete ends the process it completes in
    assert done.returncode == 0, done.stderr
    return sorted(out.read_text(encoding="utf-8").split("\n"))


def test_completion_offers_commands_options_and_the_workflows_params(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(PARAMS_WORKFLOW, encoding="utf-8")
    assert complete("plait re", tmp_path) == ["report", "resume"]
    assert "--params-file" in complete("plait run wf.yaml --pa", tmp_path)
    assert complete("plait run wf.yaml --param m", tmp_path) == ["mode="]


def test_argcomplete_is_imported_only_while_completing(tmp_path: Path) -> None:
    check = ("import sys, contextlib, io\nfrom plait.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    main(['schema'])\n"
             "print('argcomplete' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr


# -- --params-file ------------------------------------------------------------------------------------


@pytest.fixture
def sized(tmp_path: Path) -> Path:
    (tmp_path / "wf.yaml").write_text(PARAMS_WORKFLOW, encoding="utf-8")
    return tmp_path


def test_a_params_file_in_yaml_or_json_sets_typed_params_and_param_overrides_it(sized: Path) -> None:
    (sized / "p.yaml").write_text("size: 3\nnames: [a, b]\n", encoding="utf-8")
    (sized / "p.json").write_text('{"size": 4, "mode": "slow"}', encoding="utf-8")
    done = plait("compile", "wf.yaml", "--params-file", "p.yaml", cwd=sized)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "params: size=3, names=['a', 'b'], mode='fast'"
    done = plait("compile", "wf.yaml", "--params-file", "p.json", "--param", "size=9", cwd=sized)
    assert done.stdout.splitlines()[1] == "params: size=9, names=[], mode='slow'"


def test_a_params_file_reports_its_errors_where_they_are_written(sized: Path) -> None:
    (sized / "p.yaml").write_text('size: "3"\nmdoe: fast\nmode: quick\nnames: {a: 1}\n', encoding="utf-8")
    done = plait("run", "wf.yaml", "--params-file", "p.yaml", cwd=sized)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == textwrap.dedent("""\
        p.yaml:1:7: error: parameter 'size' must be an integer, not '3'
          hint: 'size' is declared as integer at wf.yaml:3:3
        p.yaml:2:1: error: unknown parameter 'mdoe' in the params file
          hint: did you mean 'mode'?
        p.yaml:3:7: error: parameter 'mode' must be one of ['fast', 'slow'], not 'quick'
          hint: 'mode' is declared as string at wf.yaml:5:3
        p.yaml:4:8: error: parameter 'names' must be a list, not a mapping
          hint: 'names' is declared as array at wf.yaml:4:3
        """)
    (sized / "list.json").write_text('["size", 3]', encoding="utf-8")
    done = plait("compile", "wf.yaml", "--params-file", "list.json", cwd=sized)
    assert (done.returncode, done.stderr) == (2, "list.json:1:1: error: a params file is a mapping of parameter "
                                                 "names to values\n  hint: write one `name: value` a line, e.g. "
                                                 "`size: 256`\n")
    done = plait("compile", "wf.yaml", "--params-file", "missing.yaml", cwd=sized)
    assert (done.returncode, done.stderr) == (2, "error: cannot read params file 'missing.yaml': No such file or "
                                                 "directory\n  hint: check the path; it is relative to the current "
                                                 "folder\n")


# -- task kinds from plugins --------------------------------------------------------------------------

PLUGIN = '''
import plait
from plait.tasks import Field


@plait.task("{name}", fields={{"text": Field((str,), required=True, doc="what to say")}})
def say(config, item, ctx):
    return {{"text": config["text"].upper()}}
'''

PLUGGED = """\
name: plugged
steps:
  - name: loud
    task: {name}
    items: [a, b, c]
    inputs: {{text: "hi {{{{ item }}}}"}}
"""


def results(workspace: Path) -> dict[str, object]:
    import sqlite3

    with sqlite3.connect(f"file:{workspace / '.plait' / 'ledger.db'}?mode=ro", uri=True) as db:
        return {node: json.loads(result) for node, result in db.execute("SELECT node_id, result FROM nodes")}


BACKENDS = ["sequential", "threading", "loky",
            pytest.param("dask", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plugin_module_given_on_the_command_line_runs_on_every_backend(tmp_path: Path, backend: str) -> None:
    if backend == "dask":
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    (tmp_path / "shout_kinds.py").write_text(PLUGIN.format(name="shout"), encoding="utf-8")
    (tmp_path / "wf.yaml").write_text(PLUGGED.format(name="shout"), encoding="utf-8")
    done = plait_process("run", "wf.yaml", "-w", "ws", "-q", "--backend", backend, "--plugin", "shout_kinds",
                         cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = results(tmp_path / "ws")
    assert {node: value["text"] for node, value in got.items()} == {
        "loud[a]": "HI A", "loud[b]": "HI B", "loud[c]": "HI C"}


def test_a_kind_comes_from_an_installed_entry_point_without_being_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "whisper_dist-1.0.dist-info").mkdir(parents=True)
    (site / "whisper_dist-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: whisper-dist\n"
                                                                  "Version: 1.0\n", encoding="utf-8")
    (site / "whisper_dist-1.0.dist-info" / "entry_points.txt").write_text("[plait.tasks]\nwhisper = whisper_kinds\n",
                                                                          encoding="utf-8")
    (site / "whisper_kinds.py").write_text(PLUGIN.format(name="whisper"), encoding="utf-8")
    (tmp_path / "wf.yaml").write_text(PLUGGED.format(name="whisper"), encoding="utf-8")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = plait_process("run", "wf.yaml", "-w", "ws", "-q", "--backend", "loky", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert results(tmp_path / "ws")["loud[b]"]["text"] == "HI B"
    schema = json.loads(plait_process("schema", cwd=tmp_path, env=env).stdout)
    assert "whisper" in schema["properties"]["steps"]["items"]["properties"]["task"]["anyOf"][0]["enum"]


def test_a_plugin_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(PLUGGED.format(name="shout"), encoding="utf-8")
    done = plait_process("compile", "wf.yaml", "--plugin", "no_such_kinds", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, (
        "plait: error: --plugin no_such_kinds: cannot import it: ModuleNotFoundError: No module named "
        "'no_such_kinds'\n  hint: give a module's name (mypkg.kinds for mypkg/kinds.py, not a path), importable "
        f"from the current folder ({tmp_path}) or installed\n"))
    (tmp_path / "broken_kinds.py").write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    done = plait_process("compile", "wf.yaml", "--plugin", "broken_kinds", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, (
        "plait: error: --plugin broken_kinds: cannot import it: RuntimeError: half written\n  hint: the module "
        "failed while it was imported; see it with `python -c 'import broken_kinds'`\n"))
    done = plait_process("compile", "wf.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith("a kind of your own is registered by a module given as --plugin MODULE "
                                "(docs/tasks.md)\n")


# -- plait schema ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    done = plait("schema", cwd=tmp_path_factory.mktemp("schema"))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    jsonschema.Draft7Validator.check_schema(data)
    return data


def native_examples() -> list[Path]:
    from plait.compiler.dialect import is_original
    from plait.compiler.loader import load_yaml

    found = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        if not is_original(load_yaml(path.read_text(encoding="utf-8"), str(path))):
            found.append(path)
    return found


def test_every_example_validates_against_the_schema(schema: dict[str, object]) -> None:
    examples = native_examples()
    assert len(examples) >= 5
    validator = jsonschema.Draft7Validator(schema)
    for path in examples:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], path


BAD = {
    "a misspelt step key": ("steps: [{name: a, task: shell, depnds_on: [b], inputs: {command: ls}}]",
                            "Additional properties are not allowed ('depnds_on' was unexpected)", ["steps", 0]),
    "an input the kind has not": ("steps: [{name: a, task: python, inputs: {code: 'x = 1', cmd: ls}}]",
                                  "Additional properties are not allowed ('cmd' was unexpected)",
                                  ["steps", 0, "inputs"]),
    "a timeout that is text": ("steps: [{name: a, task: noop, timeout: soon}]", "'soon' is not of type 'number', "
                               "'null'", ["steps", 0, "timeout"]),
    "a retry key that is not one": ("steps: [{name: a, task: noop, retry: {attempts: 3}}]",
                                    "Additional properties are not allowed ('attempts' was unexpected)",
                                    ["steps", 0, "retry"]),
    "a parameter type that is not one": ("params: {n: {type: int32}}\nsteps: [{name: a, task: noop}]",
                                         "'int32' is not one of", ["params", "n", "type"]),
    "a step without a task": ("steps: [{name: a}]", "'task' is a required property", ["steps", 0]),
    "a shell step without its command": ("steps: [{name: a, task: shell, inputs: {}}]",
                                         "'command' is a required property", ["steps", 0, "inputs"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_schema_rejects_what_the_compiler_rejects(schema: dict[str, object], case: str, tmp_path: Path) -> None:
    body, message, where = BAD[case]
    text = f"name: bad\n{body}\n"
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(text)))
    assert [(list(e.absolute_path), e.message[:len(message)]) for e in errors] == [(where, message)]
    (tmp_path / "wf.yaml").write_text(text, encoding="utf-8")
    assert plait("compile", "wf.yaml", cwd=tmp_path).returncode == 2  # the compiler agrees


def test_schema_writes_a_file_and_says_how_to_use_it(tmp_path: Path) -> None:
    done = plait("schema", "-o", "plait.schema.json", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == ("wrote plait.schema.json: point your editor at it with the first line "
                           "`# yaml-language-server: $schema=plait.schema.json`\n")
    assert json.loads((tmp_path / "plait.schema.json").read_text())["title"] == "plait workflow"


# -- which workspace a command reads --------------------------------------------------------------------


def test_status_without_a_workspace_reads_the_one_that_ran_last_and_says_so(tmp_path: Path) -> None:
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nsteps: [{{name: s, task: noop}}]\n", encoding="utf-8")
    for name in ("alpha", "beta", "alpha"):
        assert plait("run", f"{name}.yaml", "-q", "--backend", "sequential", cwd=tmp_path).returncode == 0
        done = plait("status", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"workflow {name}: run ")
    assert done.stderr == ("plait: runs/alpha ran last of the 2 workspaces under runs/ (runs/alpha, runs/beta); "
                           "pass --workspace DIR for another\n")
    usage = " ".join(plait("resume", "--help", cwd=tmp_path).stdout.split())
    assert "(default: the one under runs/ that ran last)" in usage


def test_a_bug_in_plait_is_one_line_with_a_hint_and_its_traceback_kept_in_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    def broken(args: Any) -> int:
        return {}["missing"]  # what a bug looks like: an exception plait does not expect

    monkeypatch.setattr(cli_module, "cmd_compile", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the file goes in the test's folder
    done = cli("compile", "wf.yaml")
    first, hint = done.err.splitlines()
    assert (done.code, done.out, first) == (70, "", "plait: internal error: KeyError: 'missing'")
    kept = re.search(r"The traceback is in (\S+): please report it$", hint)
    assert hint.startswith("  hint: this is a bug in plait, not in your workflow;") and kept, hint
    assert Path(kept.group(1)).parent == tmp_path
    traceback_text = Path(kept.group(1)).read_text(encoding="utf-8")
    assert traceback_text.startswith("Traceback (most recent call last):") and "in broken" in traceback_text
