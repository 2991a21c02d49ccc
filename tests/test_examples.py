"""The shipped examples compile and run end to end through the command line, as README says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plait.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in EXAMPLES.glob("*/workflow.yaml")))
def test_every_example_runs_to_success_and_resumes_with_nothing_to_do(name: str, tmp_path: Path) -> None:
    workflow = EXAMPLES / name / "workflow.yaml"
    first = plait("run", str(workflow), "--workspace", "ws", "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = plait("run", str(workflow), "--workspace", "ws", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)
    assert {n: v["status"] for n, v in state["nodes"].items() if v["status"] != "succeeded"} == {}


def test_the_readme_example_writes_its_report(tmp_path: Path) -> None:
    done = plait("run", str(EXAMPLES / "thumbnails" / "workflow.yaml"), "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ws" / "thumbs" / "index.json").read_text())
    photos = sorted(p.name for p in (EXAMPLES / "thumbnails" / "photos").glob("*.txt"))
    assert [(r["photo"], r["thumbnail"]) for r in report] == [(p, f"thumbs/{p}") for p in photos]
    assert all((tmp_path / "ws" / "thumbs" / p).is_file() for p in photos)
