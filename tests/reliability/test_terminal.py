"""Issue 13, class 10: the terminal is not the items' to control.

Items, keys, errors and results holding control characters (a screen clear, a fake green "run OK",
an OSC window title, carriage return, backspace, a C1 CSI, bidi overrides, zero-width and
line-separator characters) reach the terminal escaped in everything plait prints: run summaries,
log lines, status, compile errors, argparse errors. `plait.terminal.escape` is applied at the
sinks (the command line's stdout and stderr, and the terminal's log sink), not message by message.
A run under a pseudo-terminal shows plait's own colours and none of the items'.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from runtime.support import Flow, plait

from plait.terminal import escape
from reliability.harness import ENV, PLAIT

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

FAKE_OK = "\x1b[2J\x1b[H\x1b[32mrun OK: everything succeeded\x1b[0m"
PAYLOADS = [FAKE_OK, "\x1b]0;owned title\x07", "abc\rXYZ", "ab\x08\x08\x08", "\u202edesrever\u202c", "\x9b2J",
            "zero\u200bwidth", "line\u2028separator", "bell\x07", "nel\x85", "\U000e0041tag"]


def raw_controls(text: str) -> set[str]:
    """Return the characters of `text` that a terminal would act on (newline and tab are fine)."""
    return {c for c in text if not c.isprintable() and c not in "\n\t"}


@given(st.text())
def test_escape_leaves_only_printable_text_newlines_and_tabs(text: str) -> None:
    shown = escape(text)
    assert raw_controls(shown) == set()
    assert shown.count("\n") == text.count("\n")
    if text.isprintable():
        assert shown == text


def test_escape_shows_each_control_as_its_python_escape() -> None:
    assert [escape(p) for p in PAYLOADS] == [
        "\\x1b[2J\\x1b[H\\x1b[32mrun OK: everything succeeded\\x1b[0m", "\\x1b]0;owned title\\x07", "abc\\rXYZ",
        "ab\\x08\\x08\\x08", "\\u202edesrever\\u202c", "\\x9b2J", "zero\\u200bwidth", "line\\u2028separator",
        "bell\\x07", "nel\\x85", "\\U000e0041tag"]
    assert escape("名前 💥\n\tok") == "名前 💥\n\tok"


def hostile_flow(flow: Flow) -> None:
    steps = [
        {"name": "python", "task": "python", "items": PAYLOADS, "on_error": "continue", "max_failures": "100%",
         "inputs": {"code": "raise ValueError(item)"}},
        {"name": "shell", "task": "shell", "items": PAYLOADS, "on_error": "continue", "max_failures": "100%",
         "inputs": {"command": "printf '%s' {{ item }} >&2; exit 3"}},
        {"name": "echo", "task": "echo", "items": PAYLOADS, "inputs": {"message": "{{ item }}"}},
    ]
    flow.path.write_text(yaml.safe_dump({"name": "terminal", "steps": steps}, allow_unicode=True), encoding="utf-8")


def test_everything_plait_prints_about_hostile_items_is_escaped(flow: Flow) -> None:
    hostile_flow(flow)
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-v", cwd=flow.dir)
    status = plait("status", "--workspace", str(flow.ws), cwd=flow.dir)
    status_json = plait("status", "--workspace", str(flow.ws), "--format", "json", cwd=flow.dir)
    printed = {"run": done.stdout + done.stderr, "status": status.stdout + status.stderr,
               "status json": status_json.stdout + status_json.stderr}
    assert {name: raw_controls(text) for name, text in printed.items()} == {name: set() for name in printed}
    assert done.returncode == 0, done.stderr
    # the values are there, shown escaped: in the failures (python, and shell's stderr tail) and the log lines
    assert "failure budget: \\x1b[2J\\x1b[H\\x1b[32mrun OK: everything succeeded\\x1b[0m\n" in done.stderr
    assert "failure budget: command exited with code 3: \\u202edesrever\\u202c\n" in done.stderr
    assert "INFO    echo[7ccc4619c45e]: \\x1b]0;owned title\\x07\n" in done.stderr  # echo's log line
    assert "ValueError: abc\\rXYZ" in status.stdout
    assert json.loads(status_json.stdout)["nodes"]  # JSON escapes them itself, and stays JSON


def test_compile_errors_and_argument_errors_are_escaped(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(
        'name: t\nsteps:\n  - name: a\n    task: noop\n    depends_on: ["\\e[2J\\e]0;title\\a"]\n'
        '  - name: b\n    task: "noo\\rp\\u202e"\n', encoding="utf-8")
    compiled = plait("compile", "workflow.yaml", cwd=tmp_path)
    bad_param = plait("compile", "workflow.yaml", "--param", "\x1b[2J=1", cwd=tmp_path)
    bad_option = plait("run", "workflow.yaml", "--backend", "\x1b[31mloky", cwd=tmp_path)
    outputs = [compiled, bad_param, bad_option]
    assert [(d.returncode, raw_controls(d.stdout + d.stderr)) for d in outputs] == [(2, set())] * 3
    assert "'noo\\rp\\u202e'" in compiled.stderr  # the unknown task, named in its error
    (tmp_path / "workflow.yaml").write_text(
        'name: t\nsteps:\n  - name: a\n    task: noop\n    depends_on: ["\\e[2J\\e]0;title\\a"]\n', encoding="utf-8")
    unknown = plait("compile", "workflow.yaml", cwd=tmp_path)
    assert (unknown.returncode, unknown.stderr.splitlines()[0]) == (
        2, "workflow.yaml:5:18: error: step 'a' depends on unknown step '\\x1b[2J\\x1b]0;title\\x07'")
    assert "\\x1b[31mloky" in bad_option.stderr


def read_terminal(args: list[str], cwd: Path) -> str:
    """Run plait with a pseudo-terminal as its stdout and stderr; return what the terminal received."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*PLAIT, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env={**ENV, "TERM": "xterm"}, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output from plait on the terminal for 60 s")
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals here")
def test_on_a_terminal_plait_keeps_its_own_colours_and_shows_the_items_escaped(flow: Flow) -> None:
    hostile_flow(flow)
    seen = read_terminal(["run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-v"],
                         flow.dir)
    assert "\x1b[33m\x1b[1mWARNING\x1b[0m python[" in seen  # loguru's colour for WARNING, kept
    data_sequences = [p for p in PAYLOADS if p in seen]
    assert data_sequences == []
    assert "\\x1b[32mrun OK: everything succeeded\\x1b[0m" in seen
    # Only plait's own escape sequences remain: SGR colours from loguru and the live block's redraw (clear below).
    own = seen
    for sequence in ("\x1b[0m", "\x1b[1m", "\x1b[J", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[36m"):
        own = own.replace(sequence, "")
    own = "".join(c for c in own if c != "\r")  # the terminal's own newline translation (ONLCR)
    assert raw_controls(own) <= {"\x1b"}, raw_controls(own)  # the cursor-up of the progress redraw: ESC [ nA
    assert all(part[:1] == "[" and part[1:].split("A")[0].isdigit() for part in own.split("\x1b")[1:]), own[:500]
