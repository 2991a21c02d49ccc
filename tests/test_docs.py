"""The docs tell the truth: every `plait` command they show runs, and prints what they say it prints.

Read from README.md, docs/*.md and examples/*/README.md:
- a `console` block is commands (`$ plait ...`) each followed by its expected output (stderr, then
  stdout, as a terminal shows a compile's notes before its plan). The output must be equal, line
  for line; a line ending in `…` matches any line that starts with the text before it, and a last
  line `...` stands for the rest of the output;
- a `sh` block's `plait` lines must run and exit 0;
- a line with a placeholder (`WF.yaml`, `old.yaml`, `DIR`, `[--option]`, `...`) or a cluster address is a
  synopsis: each option it shows must be one its command's `--help` lists;
- README's Python snippet runs; the Python blocks of docs/tasks.md run (they define handlers).
A doc's commands run in its order, in a sandbox folder of its own holding `examples/` (linked),
the bad-workflow fixtures and tests/fixtures/docs/ (files that docs name but do not show whole,
such as `flows/bad.yaml`); a workspace under /tmp/ is moved into the sandbox. Other lines of `sh` blocks (pip, pytest,
benchmarks, a Dask cluster's own commands) are not plait's and are not run here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest
from runtime.support import plait

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]
FIXTURES = ROOT / "tests" / "fixtures"
PLACEHOLDER = re.compile(r"\b(WF|OLD|NEW|old|new|big)\.yaml|\bDIR\b|\bFILE\b|\[--?[a-z]|\[[A-Z]+\]|\.\.\.|tcp://|\bN\b")


class Block(NamedTuple):
    doc: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(lang: str) -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
            found.append(Block(doc, text[:match.start()].count("\n") + 1, lang, match.group(1)))
    return found


class Command(NamedTuple):
    where: str
    argv: list[str]
    expected: list[str] | None  # None: exit 0 is all that is checked


def commands() -> list[Command]:
    """Every plait command the docs show, with its expected output where a console block gives one."""
    found = []
    for block in blocks("console"):
        current: list[str] | None = None
        for i, line in enumerate(block.text.splitlines()):
            if line.startswith("$ "):
                current = []
                found.append(Command(f"{block.where}+{i + 1}", shlex.split(line[2:], comments=True), current))
            elif current is not None:
                current.append(line)
    for block in blocks("sh"):
        text = re.sub(r"\\?\n(?=\s)", " ", block.text)  # a line continued (a synopsis wrapped, or a `\\`)
        for i, line in enumerate(text.splitlines()):
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["plait"]:
                    found.append(Command(f"{block.where}+{i + 1}", words, None))
    return found


def synopsis(command: Command) -> bool:
    return bool(PLACEHOLDER.search(" ".join(command.argv))) or "..." in command.argv


RUNNABLE = [c for c in commands() if not synopsis(c)]
SYNOPSES = [c for c in commands() if synopsis(c)]


def make_sandbox(folder: Path) -> Path:
    (folder / "examples").symlink_to(ROOT / "examples")
    for path in (FIXTURES / "bad").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    shutil.copytree(FIXTURES / "docs", folder, dirs_exist_ok=True)
    return folder


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    return make_sandbox(tmp_path)


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [re.sub(r"^/tmp/", f"{cwd}/tmp/", word) for word in argv]  # a workspace in /tmp goes in the sandbox
    return plait(*argv[1:], cwd=cwd, unset=("NO_COLOR", "COLUMNS"))


def matches(expected: list[str], actual: list[str]) -> bool:
    if expected and expected[-1] == "...":
        expected, actual = expected[:-1], actual[:len(expected) - 1]
    return len(expected) == len(actual) and all(
        a.startswith(e[:-1]) if e.endswith("…") else a == e for e, a in zip(expected, actual))


DOCS_RUN = sorted({c.where.split(":")[0] for c in RUNNABLE})


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS_RUN)
def test_every_command_runs_as_the_docs_say(doc: str, sandbox: Path) -> None:
    """A doc's commands run in its order, in a sandbox of its own: a later command may read what an earlier made."""
    for command in (c for c in RUNNABLE if c.where.split(":")[0] == doc):
        check(command, sandbox)


def check(command: Command, sandbox: Path) -> None:
    done = run(command.argv, sandbox)
    shown = " ".join(command.argv)
    if command.expected is None:
        assert done.returncode == 0, f"{command.where}: `{shown}` exited {done.returncode}:\n{done.stderr}"
        return
    actual = (done.stderr + done.stdout).splitlines()
    assert matches(command.expected, actual), (
        f"{command.where}: `{shown}` printed\n" + "\n".join(actual) + "\nwhere the doc shows\n"
        + "\n".join(command.expected))


@cache
def help_text(command: str) -> str:
    done = plait(*([command] if command else []), "--help", cwd=ROOT, unset=("COLUMNS",))
    assert done.returncode == 0, f"`plait {command} --help` failed: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("command", SYNOPSES, ids=[c.where for c in SYNOPSES])
def test_every_option_a_synopsis_shows_exists(command: Command) -> None:
    verb = command.argv[1] if len(command.argv) > 1 and not command.argv[1].startswith("-") else ""
    assert verb == "" or f"    {verb} " in help_text("") or f"{{{verb}" in help_text(""), \
        f"{command.where}: `plait {verb}` is not a command"
    options = {w.strip("[]|").split("=")[0] for w in command.argv if w.lstrip("[").startswith("-")}
    for option in sorted(o for o in options if o.startswith("-") and o not in ("-", "--")):
        assert re.search(rf"(^|[ ,]){re.escape(option)}\b", help_text(verb), re.MULTILINE), \
            f"{command.where}: `plait {verb}` has no option {option}"


def test_the_docs_show_commands_of_both_kinds() -> None:
    assert len(RUNNABLE) >= 20 and len(SYNOPSES) >= 10  # the extraction itself works


@pytest.mark.slow
def test_the_readme_python_snippet_runs(sandbox: Path) -> None:
    readme = [b for b in blocks("python") if b.doc.name == "README.md"]
    assert len(readme) == 1
    done = subprocess.run([sys.executable, "-c", readme[0].text], cwd=sandbox, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True {")


def test_the_python_blocks_of_the_task_docs_run(tmp_path: Path) -> None:
    code = [b for b in blocks("python") if b.doc.name == "tasks.md" and "import plait" in b.text]
    assert code
    for block in code:
        done = subprocess.run([sys.executable, "-c", block.text], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, f"{block.where}: {done.stderr}"
