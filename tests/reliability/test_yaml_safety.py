"""Hostile YAML: alias bombs are refused before they expand, and tags never construct Python objects.

The alias bombs run in a `plait compile` process capped at 1 GiB of address space and 10 s, so a
regression shows as a failure, not as a machine out of memory. The tags are compiled in-process
with the current folder set to the test's: a tag that ran `touch pwned` would leave the file.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from plait.cli import main
from reliability.harness import run

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
    done = run("run", "workflow.yaml", "--workspace", "ws", cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert (done.returncode, lines) == (2, [
        "workflow.yaml:3:8: error: YAML tag '!!python/object/apply:os.system' is not allowed",
        "workflow.yaml:7:12: error: YAML tag '!!python/object/apply:os.system' is not allowed",
        "workflow.yaml:9:5: error: YAML tag '!!python/object/apply:os.system' is not allowed"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.yaml"]  # no workspace, no pwned, no ran
