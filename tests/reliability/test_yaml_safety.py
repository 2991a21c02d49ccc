"""Hostile YAML: alias bombs are refused before they expand, and tags never construct Python objects.

`--param` values (issue 13, class 4) are read by the same loader with the same bounds: recursive
aliases, 50,000 nested lists, alias bombs, `!!binary`, `!!set` and over-long integers are clear
errors naming the parameter, never a RecursionError, gigabytes, or a value the ledger cannot store.

The alias bombs run in a `plait compile` process capped at 1 GiB of address space and 10 s, so a
regression shows as a failure, not as a machine out of memory. The tags are compiled in-process
with the current folder set to the test's: a tag that ran `touch pwned` would leave the file.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest
from runtime.support import plait

from plait.cli import main
from plait.compiler import WorkflowError, compile_workflow
from reliability.harness import rows, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

LAUGHS = "\n".join(
    ["name: lol", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    + ["steps:", "  - name: fetch", "    task: shell", "    items: *i", '    inputs: {command: "echo {{ item }}"}', ""])

MAPPING_LAUGHS = "\n".join(
    ["name: lol", "a: &a {" + ", ".join(f"k{n}: lol" for n in range(9)) + "}"]
    + [f"{b}: &{b} {{" + ", ".join(f"k{n}: *{a}" for n in range(9)) + "}" for a, b in zip("abcdefgh", "bcdefghi")]
    + ["steps:", "  - name: fetch", "    task: shell", "    inputs: {command: echo, env: *i}", ""])

ALIAS_BOMBS = {
    # (text, expected first two lines of stderr)
    "billion laughs (9 levels of 9 aliases)": (LAUGHS, [
        "workflow.yaml:8:4: error: this YAML expands to more than 2,000,000 values through aliases",
        "  hint: nested aliases (*name) multiply; write the data out or load it with `items: {lines: FILE}`"]),
    "laughs in mappings": (MAPPING_LAUGHS, [
        "workflow.yaml:8:4: error: this YAML expands to more than 2,000,000 values through aliases",
        "  hint: nested aliases (*name) multiply; write the data out or load it with `items: {lines: FILE}`"]),
    "an alias inside its own anchor": ("name: loop\na: &a [1, *a]\nsteps: []\n", [
        "workflow.yaml:2:4: error: a YAML alias refers to the value that contains it",
        "  hint: an anchor (&name) cannot be used inside its own value"]),
}


def one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("bomb", list(ALIAS_BOMBS))
def test_an_alias_bomb_is_refused_quickly_within_a_memory_cap(tmp_path: Path, bomb: str) -> None:
    text, expected = ALIAS_BOMBS[bomb]
    (tmp_path / "workflow.yaml").write_text(text, encoding="utf-8")
    done = run("compile", "workflow.yaml", cwd=tmp_path, timeout=10, preexec_fn=one_gib)
    assert (done.returncode, done.stderr.splitlines()[:2], done.stdout) == (2, expected, ""), done.stderr


TAGS = {
    "object/apply": ('!!python/object/apply:os.system ["touch pwned"]', "!!python/object/apply:os.system", 16),
    "name": ("!!python/name:os.system", "!!python/name:os.system", 16),
    "object/new": ("!!python/object/new:os.system [touch pwned]", "!!python/object/new:os.system", 16),
    "module": ("!!python/module:os", "!!python/module:os", 16),
    "tuple": ("!!python/tuple [touch, pwned]", "!!python/tuple", 16),
    "local tag": ("!sh touch pwned", "!sh", 16),
    "binary": ("!!binary dG91Y2ggcHduZWQ=", "!!binary", 16),
}


@pytest.mark.parametrize("tag", list(TAGS))
def test_a_python_tag_is_refused_with_its_position_and_nothing_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tag: str) -> None:
    value, shown, column = TAGS[tag]
    monkeypatch.chdir(tmp_path)
    Path("workflow.yaml").write_text(f"name: unsafe\nsteps:\n  - name: a\n    task: shell\n    inputs:\n"
                                     f"      command: {value}\n", encoding="utf-8")
    code = main(["compile", "workflow.yaml"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"workflow.yaml:6:{column}: error: YAML tag '{shown}' is not allowed\n"
                                       "  hint: plait loads YAML safely and constructs no objects from tags; remove "
                                       "the tag\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.yaml"]  # no pwned, nothing written


def test_tags_anywhere_are_refused_by_plait_run_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(
        "name: unsafe\n"
        "params:\n  who: !!python/object/apply:os.system [touch pwned-param]\n"
        "steps:\n"
        "  - name: a\n    task: shell\n    items: !!python/object/apply:os.system [touch pwned-items]\n"
        "    inputs: {command: touch ran}\n"
        "  - !!python/object/apply:os.system [touch pwned-step]\n", encoding="utf-8")
    done = plait("run", "workflow.yaml", "--workspace", "ws", cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert (done.returncode, lines) == (2, [
        "workflow.yaml:3:8: error: YAML tag '!!python/object/apply:os.system' is not allowed",
        "workflow.yaml:7:12: error: YAML tag '!!python/object/apply:os.system' is not allowed",
        "workflow.yaml:9:5: error: YAML tag '!!python/object/apply:os.system' is not allowed"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.yaml"]  # no workspace, no pwned, no ran


# Issue 13, class 4: `--param` values get the workflow file's loader and bounds.

PARAMS = ("name: params\nparams:\n  v: {type: array, default: []}\n  o: {type: object, default: {}}\n"
          "  n: {type: integer, default: 1}\n"
          "steps:\n  - name: show\n    task: noop\n    inputs: {v: \"{{ params.v }}\", o: \"{{ params.o }}\"}\n")
NESTED = "[" * 50_000 + "]" * 50_000
PARAM_BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                       + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")])
ALIAS_HINT = "an anchor (&name) cannot be used inside its own value"
TAG_HINT = "plait loads YAML safely and constructs no objects from tags; remove the tag"

# --param NAME=VALUE -> (line of the declaration, message after "parameter 'NAME': ")
BAD_PARAMS = {
    "v=&a [*a]": (3, f"the value does not read as YAML: line 1, column 1: a YAML alias refers to the value that "
                     f"contains it ({ALIAS_HINT})"),
    "o=&a {k: *a}": (4, f"the value does not read as YAML: line 1, column 1: a YAML alias refers to the value that "
                        f"contains it ({ALIAS_HINT})"),
    f"v={NESTED}": (3, "the value does not read as YAML: line 1, column 101: the YAML nests deeper than 100 levels "
                       "here (a workflow needs a few levels of nesting; flatten the data)"),
    f"o={PARAM_BOMB}": (4, "the value does not read as YAML: line 7, column 4: this YAML expands to more than "
                           "2,000,000 values through aliases (nested aliases (*name) multiply; write the data out or "
                           "load it with `items: {lines: FILE}`)"),
    "v=!!binary aGVsbG8=": (3, f"the value does not read as YAML: line 1, column 1: YAML tag '!!binary' is not "
                               f"allowed ({TAG_HINT})"),
    "o=!!set {a, b}": (4, f"the value does not read as YAML: line 1, column 1: YAML tag '!!set' is not allowed "
                          f"({TAG_HINT})"),
    "v=[1, !!binary aGk=]": (3, f"the value does not read as YAML: line 1, column 5: YAML tag '!!binary' is not "
                                f"allowed ({TAG_HINT})"),
    "v=!!python/object/apply:os.system [touch pwned]": (
        3, f"the value does not read as YAML: line 1, column 1: YAML tag '!!python/object/apply:os.system' is not "
           f"allowed ({TAG_HINT})"),
    "o=!!omap [a: 1]": (4, f"the value does not read as YAML: line 1, column 1: YAML tag '!!omap' is not allowed "
                           f"({TAG_HINT})"),
    f"n={'9' * 5000}": (5, "an integer of 5,000 digits is longer than plait handles (4,300)"),
    f"v=[{'9' * 5000}]": (3, "the value does not read as YAML: line 1, column 2: an integer of 5,000 digits is longer "
                            "than plait handles (4,300 digits) (quote it to keep it as text: \"123...\")"),
    "v=[1]\n---\n[2]": (3, "the value does not read as YAML: line 2, column 1: the file holds several YAML documents; "
                           "a second one starts here (a workflow is one document: remove this `---` and what "
                           "follows, or put it in a file of its own)"),
    "v=": (3, "'' is not a list"),
}


@pytest.mark.parametrize("param", list(BAD_PARAMS), ids=lambda p: p[:30])
def test_a_hostile_param_value_is_a_clear_error_within_a_memory_cap(tmp_path: Path, param: str) -> None:
    (tmp_path / "workflow.yaml").write_text(PARAMS, encoding="utf-8")
    line, message = BAD_PARAMS[param]
    done = run("compile", "workflow.yaml", "--param", param, cwd=tmp_path, timeout=10, preexec_fn=one_gib)
    name = param.partition("=")[0]
    kind = {"v": "array", "o": "object", "n": "integer"}[name]
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", f"workflow.yaml:{line}:3: error: parameter '{name}': {message}\n"
               f"  hint: '{name}' is declared as {kind} here\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.yaml"]  # nothing ran, nothing written


def test_a_param_value_that_reads_runs_and_the_ledger_stores_it(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(PARAMS, encoding="utf-8")
    value = "[2001-01-01, {a: &x [1, 2]}, *x, 1e3, ~, 'quoted', 0x1F, [[[[deep]]]]]"
    done = plait("run", "workflow.yaml", "--workspace", "ws", "--param", f"v={value}", "--param", "o={k: v}",
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = ["2001-01-01", {"a": [1, 2]}, [1, 2], "1e3", None, "quoted", 31, [[[["deep"]]]]]  # YAML 1.1: 1e3 is text
    status = plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path)
    assert (status.returncode, json.loads(status.stdout)["nodes"]["show"]["status"]) == (0, "succeeded")
    assert rows(tmp_path / "ws") == {"show": ("succeeded", 1, {"v": expected, "o": {"k": "v"}}, None)}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_typed_overrides_from_the_python_api_must_be_plain_data(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(PARAMS, encoding="utf-8")
    loop: list[Any] = [1]
    loop.append(loop)
    cases = {
        "a set": ({"o": {"s": {1, 2}}}, "the value holds set, which plait cannot store: use text, numbers, lists and "
                                        "mappings"),
        "bytes": ({"v": [b"raw"]}, "the value holds bytes, which plait cannot store: use text, numbers, lists and "
                                   "mappings"),
        "a cycle": ({"v": loop}, "the value contains itself, or shares a part (plait keeps plain data)"),
        "too deep": ({"v": nested(50_000)}, "the value nests deeper than 100 levels"),
        "a key that is not text": ({"o": {1: "x"}}, "a mapping in the value has a key that is not text"),
        "a huge integer": ({"n": 10 ** 5000}, "an integer in the value is longer than plait handles (4,300 digits)"),
    }
    got = {}
    for name, (override, _) in cases.items():
        with pytest.raises(WorkflowError) as caught:
            compile_workflow(tmp_path / "workflow.yaml", override)
        got[name] = caught.value.errors[0].message.split(": ", 1)[1]
    assert got == {name: message for name, (_, message) in cases.items()}
