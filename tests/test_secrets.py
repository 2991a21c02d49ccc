"""Parameters declared `secret: true`: the tasks get the value; every output plait writes shows `***`.

The secret holds quotes, so that its JSON-escaped, `repr` and shell-quoted forms differ from it,
and a distinctive part (`SEEN`) that must appear in no output at all: compile's text and JSON,
the run's terminal output, the log file, every byte under `.plait/` (ledger, WAL, logs), `plait
status` in both formats, the report in both formats. Only the file a task wrote with it holds it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runtime.support import plait as command_line

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

SECRET = "tok-5ecr3t\"q'x"
SEEN = "5ecr3t"

WORKFLOW = """\
name: secretive
params:
  token: {type: string, secret: true, description: the API token}
  size: {type: integer, default: 3}
steps:
  - name: call
    task: shell
    inputs: {command: "echo calling with {{ params.token }}"}
  - name: say
    task: echo
    inputs: {message: "the token is {{ params.token }}"}
  - name: keep
    task: python
    inputs:
      code: |
        (ctx.workspace / "token.txt").write_text(params["token"])
        print("using", params["token"])
        result = {"token": params["token"]}
  - name: boom
    task: python
    on_error: continue
    inputs:
      code: |
        raise ValueError(f"the server refused {params['token']!r}")
"""


def plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return command_line(*args, cwd=cwd, unset=("NO_COLOR",))


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("secret")
    (folder / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--param", f"token={SECRET}", "-v", "--report", cwd=folder)
    return folder, done


def test_the_task_gets_the_real_value(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, done = ran
    assert done.returncode == 1, done.stderr  # boom fails (on_error: continue): the run fails, the rest ran
    assert (folder / "ws" / "token.txt").read_text() == SECRET


def test_the_run_prints_it_masked(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, done = ran
    assert SEEN not in done.stdout + done.stderr
    assert "say: the token is ***" in done.stderr
    assert "boom: ValueError: the server refused '***'" in done.stderr


def test_nothing_under_the_state_folder_holds_it(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = ran
    files = [p for p in (folder / "ws" / ".plait").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"ledger.db", "report.html"}
    assert [p.name for p in files if SEEN.encode() in p.read_bytes()] == []


def test_status_and_report_show_it_masked(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = ran
    state = plait("status", "--workspace", "ws", "--format", "json", cwd=folder)
    nodes = json.loads(state.stdout)["nodes"]
    assert nodes["boom"]["error"]["error"] == "the server refused '***'"
    text = plait("status", "--workspace", "ws", cwd=folder)
    report = plait("report", "--workspace", "ws", "--format", "json", cwd=folder)
    assert SEEN not in state.stdout + text.stdout + report.stdout
    assert [f["error"] for f in json.loads(report.stdout)["failures"]] == ["the server refused '***'"]


def test_logs_show_its_output_and_traceback_masked(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = ran
    keep = plait("logs", "keep", "--workspace", "ws", cwd=folder)
    boom = plait("logs", "boom", "--workspace", "ws", cwd=folder)
    assert (keep.returncode, boom.returncode) == (0, 0), keep.stderr + boom.stderr
    assert SEEN not in keep.stdout + boom.stdout + keep.stderr + boom.stderr
    assert "using ***" in keep.stdout
    assert "ValueError: the server refused '***'" in boom.stdout


def test_compile_shows_it_masked(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = ran
    text = plait("compile", "wf.yaml", "--param", f"token={SECRET}", cwd=folder)
    assert text.stdout.splitlines()[1] == "params: token='***', size=3"
    data = plait("compile", "wf.yaml", "--param", f"token={SECRET}", "--format", "json", cwd=folder)
    assert json.loads(data.stdout)["params"] == {"token": "***", "size": 3}
    bad = plait("compile", "wf.yaml", "--param", f"token={SECRET}", "--param", f"size={SECRET}", cwd=folder)
    assert bad.returncode == 2
    assert SEEN not in bad.stderr and "parameter 'size': '***' is not an integer" in bad.stderr


def test_resume_asks_for_the_secret_again(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = ran
    done = plait("resume", "--workspace", "ws", cwd=folder)
    assert done.returncode == 2
    assert done.stderr.endswith("error: parameter 'token' has no value\n"
                                "  hint: pass --param token=VALUE, or give it a default\n")
    (folder / "token.yaml").write_text(json.dumps({"token": SECRET}), encoding="utf-8")
    (folder / "ws" / "token.txt").unlink()
    done = plait("resume", "--workspace", "ws", "--params-file", "token.yaml", cwd=folder)
    assert done.returncode == 1 and SEEN not in done.stderr
    assert "4 nodes: 3 done, 1 to retry (failed)" in done.stderr  # the same secret: the same fingerprints
    assert not (folder / "ws" / "token.txt").exists()
