"""The shipped examples compile and run end to end through the command line, as README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime.support import plait

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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


def test_the_samples_example_merges_each_sample_from_its_own_replicates(tmp_path: Path) -> None:
    done = plait("run", str(EXAMPLES / "samples" / "workflow.yaml"), "--workspace", "ws", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ws" / "report.json").read_text())

    def reads(sample: str, reps: list[int]) -> int:
        return sum(len((EXAMPLES / "samples" / "reads" / f"{sample}-{r}.txt").read_text().split()) for r in reps)

    assert [(r["sample"], r["replicates"], r["reads"]) for r in report] == [
        ("A", [1, 2], reads("A", [1, 2])), ("B", [1, 2], reads("B", [1, 2])), ("C", [1], reads("C", [1])),
        ("control", [1], reads("control", [1]))]


def test_the_scatter_example_counts_each_files_words_from_its_own_chunks(tmp_path: Path) -> None:
    workflow = str(EXAMPLES / "scatter" / "workflow.yaml")
    done = plait("run", workflow, "--workspace", "ws", "-q", "--param", "lines=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ws" / "report.json").read_text())
    state = json.loads(plait("status", "--workspace", "ws", "--format", "json", cwd=tmp_path).stdout)

    files = sorted((EXAMPLES / "scatter" / "data").glob("*.txt"))
    lines = {f.name: len(f.read_text().splitlines()) for f in files}
    assert report == [{"file": f.name, "chunks": -(-lines[f.name] // 3), "lines": lines[f.name],
                       "words": len(f.read_text().split())} for f in files]
    assert sorted(n for n in state["nodes"] if n.startswith("count[") and "/" in n) == sorted(
        f"count[{name}/{c}]" for name, n in lines.items() for c in range(-(-n // 3)))
