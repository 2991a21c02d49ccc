"""Fuzz `plait compile` with mutated workflows: it ends with exit 0, or exit 2 and a positioned error; never a crash.

A valid workflow that uses most of the format (params, defaults, retry, every task kind, items from
a list, a range, a glob and a lines file, for_each, depends_on, condition, key, a failure budget)
is mutated by hypothesis, either as loaded data re-dumped to YAML (a key deleted, renamed or added,
a value replaced by a random one of any type, unicode, a huge list, a value shared between two
places so that the dump writes an anchor and an alias) or as text (a tab, a line deleted or
duplicated, so keys repeat, random text inserted, the file cut short, brackets nested thousands
deep, an anchor and alias spliced in).

A second base is written in the original engine's dialect (settings, flows, on_error mappings,
`task: batch` with `arg_name`, the original's task kinds), and every mutation also goes through
`plait migrate`. Whatever comes out, `plait compile` and `plait migrate` must return 0, or 2 with
a first line of the form `FILE:LINE:COL: error: ...` whose line lies within the file; they must
never raise, print a traceback, emit a warning (warnings are errors here) or write a file.

`PLAIT_FUZZ_EXAMPLES` sets the number of examples (200 unless told; CI runs that many, run more
on demand), `PLAIT_FUZZ_SUBPROCESS_EXAMPLES` those also run through a real `plait compile`
process (5 unless told).

Crashes this fuzzer and its neighbours found have tests of their own below (a parameter whose
`type` is a list or a mapping, characters YAML forbids, bytes that are not UTF-8, ranges too big
to hold in memory); the fuzz keeps to text YAML accepts, so those stay separate cases.
"""

from __future__ import annotations

import copy
import os
import re
import resource
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.cli import main
from reliability.harness import run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

EXAMPLES = int(os.environ.get("PLAIT_FUZZ_EXAMPLES", "200"))
SUBPROCESS_EXAMPLES = int(os.environ.get("PLAIT_FUZZ_SUBPROCESS_EXAMPLES", "5"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])

BASE = """
name: fuzzed
description: every part of the format, to be broken
params:
  size: {type: integer, default: 3}
  label: {type: string, default: "run", choices: [run, walk]}
  ratio: {type: number, default: 0.5}
  loud: {type: boolean, default: false}
  extra: {type: array, default: [x, y]}
defaults:
  retry: {max_attempts: 2, delay: 0.1, backoff: 2.0, max_delay: 5, jitter: 0.1, retry_on: [OSError, TimeoutError]}
  timeout: 30
  on_error: fail
steps:
  - name: listed
    task: python
    items: [1, 2, 3]
    key: "k{{ item }}"
    inputs: {code: "result = item * params['size']"}
  - name: ranged
    task: shell
    items: {range: [0, 4]}
    on_error: continue
    max_failures: 25%
    retry: {max_attempts: 3, retry_on_exit_codes: [75]}
    inputs: {command: "echo {{ item }} {{ params.label }}", env: {LABEL: "{{ params.label }}"}}
  - name: globbed
    task: file
    items: {glob: "in/*.txt"}
    inputs: {action: read, path: "{{ item | basename }}"}
  - name: lined
    iterate_over: {lines: list.txt}
    task: template
    inputs: {template: "{{ item }} of {{ batch.total }}"}
  - name: each
    task: python
    for_each: listed
    condition: "{{ params.size > 1 }}"
    inputs: {code: "result = steps['listed']['result']"}
  - name: total
    task: file
    depends_on: [each, ranged]
    timeout: 10
    inputs: {action: write, path: out/total.json, content: "{{ steps.each.results | tojson }}"}
  - name: later
    task: python
    items: "{{ steps.total.result.bytes | list }}"
    inputs: {code: "result = item"}
  - name: nested
    task: batch
    inputs:
      items: [a, b]
      task: {task: shell, inputs: {command: "echo {{ item }}"}}
"""

# The original engine's dialect, translated before plait's own checks: its own constructs to break.
ORIGINAL_BASE = """
name: fuzzed original
settings:
  error_handling: {undefined_variables: strict}
params:
  who: {type: string, default: Ada, allowedValues: [Ada, Bob], minLength: 2}
  count: 3
steps:
  - name: greet
    task: template
    inputs: {template: "Hello {{ args.who }}", output_file: out/greeting.txt}
  - name: shout
    task: shell
    condition: "{{ args.count > 1 }}"
    inputs: {command: 'echo "{{ args.who }}" > out/shout.txt'}
    on_error: {action: continue, retry: 2, delay: 0, message: "no {{ error }}"}
  - name: squares
    task: batch
    inputs:
      items: [1, 2, 3]
      arg_name: n
      chunk_size: 2
      task: {task: python_code, inputs: {code: "result = n * n", factor: 2}}
  - name: read
    task: read_file
    depends_on: [greet]
    inputs: {file: out/greeting.txt}
    on_error: {action: next, next: last}
  - name: between
    task: echo
    inputs: {message: "{{ steps.read.result.content }} {{ steps.squares.result.results }}"}
  - name: last
    task: noop
flows:
  default: main
  definitions:
    - main: [greet, shout, squares, read, between, last]
    - short: [greet, last]
"""
BASES = (BASE, ORIGINAL_BASE)

# Text YAML accepts (no C0/C1 controls but tab and newline, no surrogates, no BOM inside): see the tests below.
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff\ufffe\uffff"),
                    max_size=12) | st.sampled_from(
    ["", " ", "{{ item }}", "{{ params.size }}", "{{ steps.listed.results }}", "{{ nope", "{% for %}", "-", "a b",
     "ŝtép-ñame", "\u202egnp.exe", "名前", "💥", "1e309", "0x1F", "~", "null", "yes", "!!str", "*alias", "&anchor",
     "[]", "{}", "%", "@", "`", "listed", "each", "../../etc/passwd", "in/*.txt"])
SCALARS = (st.none() | st.booleans() | st.integers(-10_000, 10_000) | st.floats(allow_nan=True) | SAFE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner,
                                                                                           max_size=4), max_leaves=10)
HUGE = st.sampled_from([list(range(2000)), [f"file-{i}.txt" for i in range(2000)],
                        {f"k{i}": i for i in range(1000)}, "x" * 100_000]).map(copy.deepcopy)  # mutated later

TRIED: Counter[str] = Counter()  # cases tried and their answers, by way (in-process or subprocess), in this process


def places(data: Any, path: tuple = ()) -> list[tuple]:
    """Return the path of every value inside `data` (dict keys and list indexes), the root excluded."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append((*path, key))
            found += places(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.append((*path, index))
            found += places(value, (*path, index))
    return found


def container(data: Any, path: tuple) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def structure_mutations(draw: st.DrawFn) -> str:
    """Load a base workflow, change it in one to four places, and dump it back to YAML text."""
    data = yaml.safe_load(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        spots = places(data)
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        parent, last = container(data, path), path[-1]
        action = draw(st.sampled_from(["delete", "replace", "rename", "add", "huge", "share", "wrap"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(SAFE_TEXT)] = parent.pop(last)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(SAFE_TEXT)] = draw(VALUES)
        elif action == "huge":
            parent[last] = draw(HUGE)
        elif action == "share":  # the same object in two places: the dump writes &id001 ... *id001
            other = draw(st.sampled_from(spots))
            if other[:len(path)] != path and path[:len(other)] != other:
                parent[last] = container(data, other)[other[-1]]
        elif action == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([None, False, True])))


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    """Take a base workflow (or a structure mutation of one) and damage its text in one to three places."""
    text = draw(st.sampled_from(BASES) | structure_mutations())
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(st.sampled_from(["tab", "delete line", "duplicate line", "insert", "cut", "nest", "alias",
                                       "indent"]))
        if action == "tab":
            position = draw(st.integers(0, len(text)))
            text = text[:position] + "\t" + text[position:]
        elif action == "delete line":
            text = "\n".join(lines[:at] + lines[at + 1:])
        elif action == "duplicate line":  # a repeated key in the same mapping, most of the time
            text = "\n".join(lines[:at + 1] + lines[at:])
        elif action == "insert":
            position = draw(st.integers(0, len(text)))
            text = text[:position] + draw(SAFE_TEXT) + text[position:]
        elif action == "cut":
            text = text[:draw(st.integers(0, len(text)))]
        elif action == "nest":
            depth = draw(st.sampled_from([10, 100, 1000, 5000]))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            text = "\n".join([*lines[:at], f"deep: {opener * depth}1{closer * depth}", *lines[at:]])
        elif action == "alias":
            text = text.replace(": ", ": &spot ", 1) + f"\nstolen: *spot\n{draw(st.sampled_from(['', '<<: *spot']))}\n"
        elif action == "indent":
            lines[at] = " " * draw(st.integers(1, 5)) + lines[at]
            text = "\n".join(lines)
    return text


WORKFLOWS = structure_mutations() | text_mutations()
POSITIONED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): error: ")


def check_answer(path: Path, text: str, code: int, out: str, err: str, way: str) -> None:
    """Exit 0, or exit 2 with a first line `FILE:LINE:COL: error:` inside the file; no traceback anywhere."""
    assert "Traceback" not in out + err, err
    assert code in (0, 2), (code, err)
    TRIED[f"{way} exit {code}"] += 1
    if code == 0:
        assert out.startswith(("workflow ", "# Migrated by `plait migrate`")), out
        return
    first = err.splitlines()[0] if err else ""
    found = POSITIONED.match(first)
    assert found, f"no position in the first line of: {err!r}"
    assert found["file"] == str(path)
    assert 1 <= int(found["line"]) <= text.count("\n") + 2 and int(found["col"]) >= 1, first


def report(figures: dict, way: str) -> None:
    """Record this worker's count of the fuzz cases tried `way`, under a figure of its own: the two fuzz tests may run
    in different processes (xdist's workers, or the suite and its soak run), and each counts only its own cases."""
    if way == "in-process":
        answers = 2 * TRIED["in-process"]  # `plait compile` and `plait migrate` on each
        figures["fuzz, in-process"] = (f"{TRIED['in-process']} mutated workflows through `plait compile` and `plait "
                                       f"migrate` in-process: of their {answers} answers, {TRIED['in-process exit 0']}"
                                       f" exit 0 and {TRIED['in-process exit 2']} exit 2 with a position; no crash")
    else:
        figures["fuzz, processes"] = (f"{TRIED['subprocess']} mutated workflows through `plait compile` processes: "
                                      f"{TRIED['subprocess exit 0']} exit 0 and {TRIED['subprocess exit 2']} exit 2 "
                                      "with a position; no crash")


def prepare(folder: Path) -> Path:
    """Give the workflow the files it reads (a glob's folder and a lines file); return the workflow's path."""
    (folder / "in").mkdir(exist_ok=True)
    for name in ("a.txt", "b.txt"):
        (folder / "in" / name).write_text(name)
    (folder / "list.txt").write_text("one\ntwo\n# a comment\n\nthree\n")
    return folder / "workflow.yaml"


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("base", BASES, ids=["native", "original dialect"])
def test_the_base_workflow_compiles_and_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str) -> None:
    path = prepare(tmp_path)
    path.write_text(base, encoding="utf-8")
    assert main(["compile", str(path)]) == 0, capsys.readouterr().err
    assert main(["migrate", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.soak  # PLAIT_FUZZ_EXAMPLES compiles, 200 unless told
@FUZZ
@given(text=WORKFLOWS)
def test_compile_of_a_mutated_workflow_exits_0_or_2_with_a_position(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], figures: dict, text: str) -> None:
    path = prepare(tmp_path)
    path.write_text(text, encoding="utf-8")
    before = listing(tmp_path)
    capsys.readouterr()
    for command in ("compile", "migrate"):
        code = main([command, str(path)])
        out, err = capsys.readouterr()
        check_answer(path, text, code, out, err, "in-process")
    assert listing(tmp_path) == before  # compiling and migrating to stdout write nothing
    TRIED["in-process"] += 1
    report(figures, "in-process")


@settings(max_examples=SUBPROCESS_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=WORKFLOWS)
def test_plait_compile_process_on_a_mutated_workflow_exits_0_or_2_with_a_position(
        tmp_path: Path, figures: dict, text: str) -> None:
    path = prepare(tmp_path)
    path.write_text(text, encoding="utf-8")
    done = run("compile", str(path), cwd=tmp_path, timeout=60)
    check_answer(path, text, done.returncode, done.stdout, done.stderr, "subprocess")
    TRIED["subprocess"] += 1
    report(figures, "subprocess")


# -- what the fuzzer found, and crashes kept out of it ---------------------------------------------


@pytest.mark.parametrize("declared", ["[string, 'null']", "{of: string}"])
def test_a_parameter_type_that_is_not_text_is_an_error_with_its_position(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], declared: str) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(f"name: typed\nparams:\n  label: {{type: {declared}, default: run}}\nsteps:\n"
                    "  - name: a\n    task: shell\n    inputs: {command: echo}\n", encoding="utf-8")
    code = main(["compile", str(path)])
    err = capsys.readouterr().err
    assert positioned_error(code, err) == (2, "3", False), err


def positioned_error(code: int, err: str) -> tuple[int, str | None, bool]:
    """Return (exit code, the line number of the first error, whether a traceback was printed)."""
    found = POSITIONED.match(err)
    return code, found["line"] if found else None, "Traceback" in err


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f"])
def test_a_forbidden_character_is_an_error_with_its_position(tmp_path: Path, character: str) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(f"name: odd\nsteps:\n  - name: a{character}\n    task: shell\n", encoding="utf-8")
    done = run("compile", str(path), cwd=tmp_path)
    assert positioned_error(done.returncode, done.stderr) == (2, "3", False), done.stderr


def test_a_file_that_is_not_utf8_is_an_error_with_its_position(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_bytes(b"name: odd\nsteps:\n  - name: a\xff\n    task: shell\n")
    code = main(["compile", str(path)])
    err = capsys.readouterr().err
    assert (*positioned_error(code, err), "check the path" in err) == (2, "3", False, False), err


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_range_too_big_to_run_is_refused_with_a_position(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text("name: huge\nsteps:\n  - name: a\n    task: python\n    items: {range: 100000000000}\n"
                    "    inputs: {code: 'result = item'}\n", encoding="utf-8")
    done = run("compile", str(path), cwd=tmp_path, timeout=10, preexec_fn=cap_memory)
    assert positioned_error(done.returncode, done.stderr) == (2, "5", False), done.stderr
