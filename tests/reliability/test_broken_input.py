"""Issue 13, class 12: smaller kinds of broken input get clear errors, and nothing blocks or explodes.

Several YAML documents in one file are named as such; nesting too deep is reported where it goes
too deep; `-o` into a missing folder is a usage error; a workflow path that is a FIFO, a device or a
folder is refused at once; a range too big for a plan is refused at its position in a process
capped at 1 GiB. What could hang or take the memory of the process that runs it (deep nesting, a FIFO, a huge
range) runs in a `plait` process of its own, capped at 1 GiB; the rest runs the command line in-process.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
from runtime.support import plait

from reliability.harness import run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

GIB = 1 << 30
ORIGINAL = ("name: old\nparams: {x: 1}\nsteps:\n  - name: a\n    task: shell\n"
            "    inputs: {command: 'echo \"{{ args.x }}\"'}\n")


def one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (GIB, GIB))


def compile_text(tmp_path: Path, text: str, *args: str, timeout: float = 20) -> tuple[int, str, str]:
    """`plait compile` of `text` in a process capped at 1 GiB, given `timeout` seconds."""
    (tmp_path / "workflow.yaml").write_text(text, encoding="utf-8")
    done = run("compile", "workflow.yaml", *args, cwd=tmp_path, timeout=timeout, preexec_fn=one_gib)
    return done.returncode, done.stdout, done.stderr


def compile_here(tmp_path: Path, text: str) -> tuple[int, str, str]:
    """`plait compile` of `text`, in-process."""
    (tmp_path / "workflow.yaml").write_text(text, encoding="utf-8")
    done = plait("compile", "workflow.yaml", cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("second", ["---\nname: other\n", "--- []\n", "---\n...\n---\nx: 1\n"],
                         ids=["mapping", "list", "empty"])
def test_several_documents_are_named_as_such_where_the_second_starts(tmp_path: Path, second: str) -> None:
    text = "name: one\nsteps:\n  - name: a\n    task: noop\n" + second
    assert compile_here(tmp_path, text) == (2, "", (
        "workflow.yaml:5:1: error: the file holds several YAML documents; a second one starts here\n"
        "  hint: a workflow is one document: remove this `---` and what follows, or put it in a file of its own\n"))


def test_one_document_with_a_leading_separator_and_an_end_marker_is_fine(tmp_path: Path) -> None:
    text = "---\nname: one\nsteps:\n  - name: a\n    task: noop\n...\n"
    assert compile_here(tmp_path, text)[0] == 0


def block_nesting(depth: int) -> str:
    lines = ["name: deep", "params:", "  p:", "    default:"]
    lines += [f"{'  ' * (3 + level)}k{level}:" for level in range(depth)] + [f"{'  ' * (3 + depth)}leaf: 1"]
    return "\n".join([*lines, "steps: []", ""])


# The document's mapping is the first level, and a key or a scalar is a level too: the error points at the
# value (or key) that would be the 101st.
@pytest.mark.parametrize(("text", "where"), [
    ("name: deep\nsteps: []\nx: " + "[" * 50_000 + "]" * 50_000 + "\n", "3:103"),
    ("name: deep\nsteps: []\nx: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "3:397"),
    ("name: deep\nsteps: []\nx:\n" + "".join(f"{' ' * (2 * i)}- \n" for i in range(1, 200)), "103:201"),
    (block_nesting(150), "101:199"),
], ids=["flow lists", "flow mappings", "block lists", "block mappings"])
def test_nesting_too_deep_is_reported_where_it_goes_too_deep(tmp_path: Path, text: str, where: str) -> None:
    code, out, err = compile_text(tmp_path, text)
    assert (code, out, err) == (2, "", f"workflow.yaml:{where}: error: the YAML nests deeper than 100 levels here\n"
                                       "  hint: a workflow needs a few levels of nesting; flatten the data\n")


def test_nesting_of_100_levels_is_fine(tmp_path: Path) -> None:
    text = "name: deep\nsteps:\n  - name: a\n    task: noop\n    inputs: {v: " + "[" * 95 + "]" * 95 + "}\n"
    assert compile_here(tmp_path, text)[0] == 0


@pytest.mark.parametrize("command", ["migrate", "graph"])
@pytest.mark.parametrize(("output", "reason"), [
    ("/missing/dir/x.yaml", "No such file or directory"),
    (".", "Is a directory"),
    ("workflow.yaml/x", "Not a directory"),
])
def test_an_output_path_that_cannot_be_written_is_a_usage_error(tmp_path: Path, command: str, output: str,
                                                                reason: str) -> None:
    (tmp_path / "workflow.yaml").write_text(ORIGINAL, encoding="utf-8")
    done = plait(command, "workflow.yaml", "-o", output, cwd=tmp_path)
    assert (done.returncode, "Traceback" in done.stderr, done.stderr.splitlines()[-1]) == (
        2, False, f"plait: error: cannot write '{output}': {reason}; choose a writable path for -o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflow.yaml"]


def special_files(tmp_path: Path) -> dict[str, str]:
    """Workflow paths that are not regular files -> what plait says they are."""
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "folder.yaml").mkdir()
    return {"fifo.yaml": "a FIFO", "zero.yaml": "a device or socket", "folder.yaml": "a folder"}


@pytest.mark.parametrize("verb", ["compile", "run", "migrate", "graph"])
def test_a_workflow_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, verb: str) -> None:
    for name, kind in special_files(tmp_path).items():
        done = run(verb, name, cwd=tmp_path, timeout=20, preexec_fn=one_gib)  # a FIFO nobody writes to
        assert (done.returncode, done.stderr) == (2, f"error: cannot read workflow file '{name}': it is {kind}, not "
                                                     "a regular file\n  hint: check the path; it is relative to the "
                                                     "current folder\n")


@pytest.mark.parametrize(("text", "error"), [
    ("name: lines\nsteps:\n  - name: a\n    task: noop\n    items: {{lines: {name}}}\n",
     "workflow.yaml:5:12: error: step 'a': bad items: cannot read lines file '{name}': it is {kind}, not a regular "
     "file"),
    ("imports: [{name}]\nsteps:\n  - name: a\n    task: echo\n    inputs: {{message: hi}}\n",
     "workflow.yaml:1:11: error: Failed to import '{name}': it is {kind}, not a regular file: {path}"),
], ids=["lines file", "original's import"])
def test_a_file_the_compile_reads_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, text: str,
                                                                                 error: str) -> None:
    for name, kind in special_files(tmp_path).items():
        # compile_text's timeout: reading a FIFO nobody writes to would block
        code, out, err = compile_text(tmp_path, text.format(name=name))
        assert (code, out, err.splitlines()[0]) == (
            2, "", error.format(name=name, kind=kind, path=(tmp_path / name).resolve()))


@pytest.mark.parametrize(("items", "size"), [
    ("{range: 10000000}", "10,000,000"),
    ("{range: [0, 100000000000]}", "100,000,000,000"),
    ("{range: [0, 2000001]}", "2,000,001"),
    ("{range: [-4000000, 4000000, 2]}", "4,000,000"),
])
def test_a_range_too_big_for_a_plan_is_refused_quickly_at_its_position(tmp_path: Path, items: str,
                                                                      size: str) -> None:
    text = f"name: big\nsteps:\n  - name: a\n    task: noop\n    items: {items}\n"
    code, out, err = compile_text(tmp_path, text)
    assert (code, out, err.splitlines()[0]) == (
        2, "", f"workflow.yaml:5:12: error: step 'a': bad items: a range of {size} items is more than plait compiles "
               "(2,000,000)")
