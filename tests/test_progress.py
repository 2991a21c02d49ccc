"""The progress display: what a person sees on the terminal, and the plain lines of a pipe.

`plait run` runs under a pseudo-terminal and its raw output is fed to a terminal emulator (pyte):
the tests assert the screen, as a person would read it: every log line once and in order, the
final block once at the bottom with its real counts, no stale copy of the block, nothing wider
than the terminal. The counting rules (rate and ETA only once known, skipped apart from done, a
deferred step's total once it expands) are tested on `Progress` itself with a fake clock.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import textwrap
from collections import Counter
from pathlib import Path

import pyte
import pytest
from runtime.support import PLAIT

from plait.compiler import compile_workflow
from plait.runtime.progress import Progress
from plait.screen import Screen, interactive, use_colour

LOGGING = """\
name: chatty
steps:
  - name: first
    task: echo
    inputs: {message: "line first"}
  - name: talk
    task: echo
    depends_on: [first]
    items: {range: [0, 40]}
    inputs: {message: "line {{ item }}"}
  - name: gate
    task: python
    items: {range: [0, 6]}
    on_error: continue
    condition: "{{ item != 5 }}"
    inputs: {code: "assert item != 4, 'four is bad'; result = item"}
  - name: grown
    task: python
    depends_on: [talk]
    items: "{{ steps.talk.results }}"
    inputs: {code: "result = item"}
"""


def run_on_terminal(argv: list[str], cwd: Path, columns: int = 100, rows: int = 120,
                    env: dict[str, str] | None = None) -> tuple[int, bytes, list[str]]:
    """Run a command on a new pseudo-terminal of the given size; return (exit code, raw output, screen lines)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {name: value for name, value in os.environ.items() if name != "NO_COLOR"}
    environment.update({"TERM": "xterm", **(env or {})})
    process = subprocess.Popen(argv, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=environment,
                               start_new_session=True)
    os.close(follower)
    raw = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every process holding the terminal has closed it
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    code = process.wait(timeout=60)
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(bytes(raw))
    return code, bytes(raw), [line.rstrip() for line in screen.display]


@pytest.fixture
def chatty(tmp_path: Path) -> Path:
    (tmp_path / "wf.yaml").write_text(LOGGING, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("backend", ["sequential", "threading"])
def test_log_lines_print_above_the_block_and_none_is_lost(chatty: Path, backend: str) -> None:
    code, raw, screen = run_on_terminal([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", backend],
                                        chatty)
    assert code == 1, "\n".join(screen)  # gate[4] fails (on_error: continue, no budget): the run fails
    assert b"\x1b[" in raw and b"\x1b[J" in raw, "the block was never redrawn in place"
    text = [line for line in screen if line]
    logged = [line.split("INFO    ", 1)[1] for line in text if line.startswith("INFO    ") and "line " in line]
    assert logged[0] == "first: line first"  # talk's items may log in any order on threads, each once
    assert sorted(logged[1:]) == sorted(f"talk[{i}]: line {i}" for i in range(40))
    block = text[text.index(next(line for line in text if line.lstrip().startswith("first "))):]
    assert block[:5] == ["  first   1/1 done",
                         "  talk   40/40 done",
                         "  gate    4/6 done, 1 failed, 1 skipped",
                         "  grown  40/40 done",
                         block[4]]
    assert block[4].startswith("  finished in ") and block[4].endswith(", 86 nodes run"), block[4]
    assert next(line for line in block[5:] if line.startswith("run ")).split(" ")[2:4] == ["failed", "in"]
    assert sum("done" in line for line in text) == 4, "a stale copy of the block is left on the screen"
    assert " 0 nodes/s" not in "\n".join(text)


def test_a_narrow_terminal_gets_lines_cut_not_wrapped(chatty: Path) -> None:
    workflow = LOGGING.replace("name: grown", "name: " + "g" * 60).replace("name: chatty", "name: narrow")
    (chatty / "wf.yaml").write_text(workflow, encoding="utf-8")
    code, _, screen = run_on_terminal([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", "sequential"],
                                      chatty, columns=40)
    assert code == 1
    text = [line for line in screen if line]
    assert [line for line in text if "line " in line][-1].endswith("talk[39]: line 39")
    assert sum("done" in line for line in text) == 4
    assert f"  {'g' * 23}…  40/40 done" in text  # a long name is cut to leave room for the counts
    block = text[text.index(next(line for line in text if line.startswith("  first "))):]
    assert len(block) > 5 and all(len(line) <= 39 for line in block[:5])


def test_a_pipe_gets_plain_lines(chatty: Path) -> None:
    done = subprocess.run([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", "sequential"], cwd=chatty,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "\x1b" not in done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress:")]
    assert progress[-1] == ("progress: first 1/1 done; talk 40/40 done; gate 4/6 done, 1 failed, 1 skipped; "
                            f"grown 40/40 done ({progress[-1].split('(', 1)[1]}")
    assert ", 86 nodes run)" in progress[-1]


def test_no_color_and_a_pipe_get_no_colour(chatty: Path) -> None:
    _, raw, _ = run_on_terminal([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", "sequential"], chatty)
    assert b"\x1b[1mINFO" in raw  # colour on a terminal
    _, raw, _ = run_on_terminal([*PLAIT, "run", "wf.yaml", "--workspace", "ws2", "--backend", "sequential"], chatty,
                                env={"NO_COLOR": "1"})
    assert b"\x1b[1m" not in raw and b"\x1b[J" in raw  # no colour, and still a live block


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A stream that keeps what the display wrote."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def display(workflow: str, tmp_path: Path, done: Counter | None = None) -> tuple[Progress, FakeClock]:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(workflow), encoding="utf-8")
    clock = FakeClock()
    return Progress(compile_workflow(str(tmp_path / "wf.yaml")), done or Counter(), Recorder(), clock=clock), clock


BATCH = """\
    name: batch
    steps:
      - name: work
        task: noop
        items: {range: [0, 1000]}
"""


def test_no_rate_or_eta_before_the_rate_is_known(tmp_path: Path) -> None:
    progress, clock = display(BATCH, tmp_path)
    clock.now += 1.2  # the workers start
    progress.update("work", "succeeded", 3)
    assert progress.lines(clock.now) == ["  work      3/1,000 done", "  1.2 s elapsed"]  # aligned, as it grows
    clock.now += 0.5
    progress.update("work", "succeeded", 100)
    assert progress.lines(clock.now)[-1] == "  1.7 s elapsed"  # half a second of settling: not a rate yet
    clock.now += 0.5
    progress.update("work", "succeeded", 97)  # 197 in the 1 s since the first 3: 197 nodes/s, 800 left
    assert progress.lines(clock.now) == ["  work    200/1,000 done", "  2.2 s elapsed, 197 nodes/s, ETA 4.1 s"]
    clock.now += 2.0  # nothing settles: the ETA counts down
    assert progress.lines(clock.now)[-1] == "  4.2 s elapsed, 197 nodes/s, ETA 2.1 s"


def test_a_finished_run_says_what_it_ran_never_zero_nodes_a_second(tmp_path: Path) -> None:
    progress, clock = display(BATCH, tmp_path, Counter(work=1000))
    clock.now += 0.3
    progress.close()
    assert progress.lines(clock.now) == ["  work  1,000/1,000 done", "  finished in 0.3 s, no node run"]
    assert progress.screen.stream.text.endswith("(finished in 0.3 s, no node run)\n")


def test_skipped_and_failed_are_not_done(tmp_path: Path) -> None:
    progress, clock = display(BATCH, tmp_path, Counter(work=10))
    progress.update("work", "skipped", 5)
    progress.update("work", "failed", 2)
    progress.update("work", "succeeded", 3)
    assert progress.lines(clock.now)[0] == "  work     13/1,000 done, 2 failed, 5 skipped"


DEFERRED = """\
    name: grows
    steps:
      - name: list
        task: noop
        inputs: {items: [1, 2, 3]}
      - name: each
        task: noop
        items: "{{ steps.list.result['items'] }}"
      - name: gather
        task: noop
        depends_on: [each]
"""


def test_a_deferred_step_shows_its_real_total_once_it_expands(tmp_path: Path) -> None:
    from plait.compiler import expand_deferred

    progress, clock = display(DEFERRED, tmp_path)
    assert progress.lines(clock.now)[:3] == ["  list    0/1 done", "  each    0/? done", "  gather  0/1 done"]
    plan = compile_workflow(str(tmp_path / "wf.yaml"))
    grown = expand_deferred(plan, "each", [1, 2, 3])
    new = [n for n in grown.nodes.values() if n.id not in plan.nodes]
    progress.grow(["each"], new, {"each[1]": "succeeded"})  # a resume: the ledger has each[1] done
    progress.update("each", "succeeded", 1)
    assert progress.lines(clock.now)[:3] == ["  list    0/1 done", "  each    2/3 done", "  gather  0/1 done"]


def test_a_screen_prints_text_above_its_block(tmp_path: Path) -> None:
    emulator = pyte.Screen(30, 8)
    stream = pyte.Stream(emulator)

    class Feed(Recorder):
        def write(self, text: str) -> int:
            stream.feed(text.replace("\n", "\r\n"))
            return len(text)

    class TtyFeed(Feed):
        def isatty(self) -> bool:
            return True

    screen = Screen(Feed(), live=True)
    stdout = screen.above(TtyFeed())  # another stream to the same screen
    screen.show(["  block 1", "  block 2"])
    screen.write("a log ")
    stdout.write("printed ")
    screen.write("line\nand another\n")
    stdout.write("out\n")
    screen.show(["  block 3", "  block 4"])
    screen.write("last\nnot ended")
    screen.close()
    assert [line.rstrip() for line in emulator.display] == ["a log line", "and another", "printed out", "last",
                                                          "not ended", "  block 3", "  block 4", ""]
    assert screen.above(Feed()).__class__ is Feed  # stdout to a file or a pipe is left alone


def test_colour_and_the_live_block_follow_the_stream_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(Recorder):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert (use_colour(Tty()), interactive(Tty()), use_colour(Recorder()), interactive(Recorder())) == (
        True, True, False, False)
    monkeypatch.setenv("NO_COLOR", "")  # empty: not set (no-color.org)
    assert use_colour(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    assert (use_colour(Tty()), interactive(Tty())) == (False, False)


SAYER = """\
name: sayer
steps:
  - name: first
    task: noop
  - name: talk
    task: python
    depends_on: [first]
    items: {range: [0, 12]}
    inputs:
      code: |
        from plait import say
        say(f"said {item}")
        result = item
"""


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_what_a_task_says_prints_above_the_block(tmp_path: Path, backend: str) -> None:
    (tmp_path / "wf.yaml").write_text(SAYER, encoding="utf-8")
    code, _, screen = run_on_terminal([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", backend],
                                      tmp_path)
    assert code == 0, "\n".join(screen)
    text = [line for line in screen if line]
    assert sorted(line for line in text if line.startswith("said ")) == sorted(f"said {i}" for i in range(12))
    assert sum("done" in line for line in text) == 2, "a stale copy of the block is left on the screen"
