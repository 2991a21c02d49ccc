"""Text that is not UTF-8 round-trips, and size is bounded per node (issue 13, classes 6 and 7).

Real `plait` processes: file names that are not UTF-8 (from a glob, and listed by a task for a
deferred step), an item holding a lone surrogate, and a command printing bytes that are not UTF-8
all run, are recorded, and are shown escaped; a command printing 100 MB fails its node alone
within the result bound, in bounded memory (measured in a process of the test's own); a template
that spins in a node's condition ends at the node's timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime.support import PLAIT, ledger_rows, plait

from plait.limits import MAX_RESULT_BYTES

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

NOT_UTF8 = [b"caf\xe9.txt", b"\xff\xfe.txt", b"ok.txt"]


def _files(folder: Path) -> list[str]:
    """Create files whose names are not all UTF-8; return the names as Python sees them (surrogateescape)."""
    folder.mkdir()
    names = []
    for raw in NOT_UTF8:
        name = os.fsdecode(raw)
        (folder / name).write_bytes(raw)  # each file holds its own name's bytes
        names.append(name)
    return names


def test_file_names_that_are_not_utf8_run_are_recorded_and_shown_escaped(tmp_path: Path) -> None:
    names = _files(tmp_path / "data")
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""
        name: bytes
        steps:
          - name: globbed
            task: python
            items: {glob: "data/*.txt"}
            inputs: {code: "result = open(item, 'rb').read().decode('latin-1')"}
          - name: listed
            task: python
            inputs: {code: "import os; result = sorted(os.listdir(workflow_dir + '/data'))"}
          - name: each
            task: shell
            items: "{{ steps.listed.result }}"
            inputs: {command: "cat data/{{ item }} > /dev/null && printf '%s' {{ item }}"}
          - name: lone
            task: python
            items: ["\\udc80 alone", plain]
            inputs: {code: "result = len(item)"}
    """), encoding="utf-8")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "data").symlink_to(tmp_path / "data")  # the shell runs in the workspace
    first = plait("run", "wf.yaml", "--workspace", "ws", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db")
    assert {k: r["status"] for k, r in rows.items() if r["step"] == "globbed"} == {
        "globbed[data/caf\\udce9.txt]": "succeeded", "globbed[data/\\udcff\\udcfe.txt]": "succeeded",
        "globbed[data/ok.txt]": "succeeded"}
    assert sorted(r["result"] for r in rows.values() if r["step"] == "globbed") == sorted(
        raw.decode("latin-1") for raw in NOT_UTF8)  # each node read its own file
    printed = sorted(r["result"]["stdout"] for r in rows.values() if r["step"] == "each" and r["kind"] == "task")
    assert printed == sorted(names)  # the bytes the command printed, kept as surrogateescape keeps them
    assert {r["status"] for r in rows.values() if r["step"] == "lone"} == {"succeeded"}
    again = plait("run", "wf.yaml", "--workspace", "ws", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "10 nodes: 10 done" in again.stderr  # every node, the deferred step's three items too (listed again)
    status = plait("status", "--workspace", "ws", cwd=tmp_path)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    logs = plait("logs", "--workspace", "ws", "each", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    shown = plait("logs", "--workspace", "ws", "globbed[data/caf\\udce9.txt]", cwd=tmp_path)
    assert shown.returncode == 0 and "succeeded" in shown.stdout, shown.stderr


def test_a_command_printing_100_mb_fails_alone_in_bounded_memory(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""
        name: loud
        steps:
          - name: print
            task: shell
            items: [latin, some, huge]
            inputs:
              command: |
                case {{ item }} in
                  huge) head -c 100000000 /dev/zero | tr '\\0' a ;;
                  some) head -c 2000 /dev/zero | tr '\\0' a ;;
                  *) printf 'caf\\351' ;;
                esac
    """), encoding="utf-8")
    # A process of its own whose only child is plait: its children's peak memory is plait's (and sh's).
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, *PLAIT, "run", "wf.yaml", "--workspace", "ws",
                           "--backend", "sequential", "-q"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    code, peak_kib = map(int, done.stdout.split())
    assert code == 1, done.stderr
    assert peak_kib * 1024 < 3 * MAX_RESULT_BYTES + 150 * 2**20  # never the 100 MB, let alone a copy of it
    rows = ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db")
    assert rows["print[huge]"]["error"]["error_type"] == "OutputTooLarge"
    assert "--max-result-size" in rows["print[huge]"]["error"]["error"]
    assert rows["print[latin]"]["result"]["stdout"] == "caf\udce9"  # not UTF-8: kept, not a failure
    assert rows["print[some]"]["status"] == "succeeded"
    tight = plait("run", "wf.yaml", "--workspace", "ws", "--max-result-size", "1KB", "--rerun", "print[some]",
                  cwd=tmp_path)
    assert tight.returncode == 1, tight.stderr
    assert ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db")["print[some]"]["error"]["error_type"] == (
        "OutputTooLarge")  # the bound is the run's to set


def test_a_template_spinning_in_a_condition_ends_at_the_nodes_timeout(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""
        name: spin
        steps:
          - name: spin
            task: shell
            timeout: 1
            on_error: continue
            condition: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}true"
            inputs: {command: "echo never"}
          - name: other
            task: shell
            inputs: {command: "echo fine"}
    """), encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # on_error: continue
    rows = ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db")
    assert rows["spin"]["error"]["error_type"] == "TemplateTimeout"
    assert "budget of 1 s" in rows["spin"]["error"]["error"]
    assert rows["other"]["status"] == "succeeded"
