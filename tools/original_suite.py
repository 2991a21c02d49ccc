"""Run the original engine's own test suite twice, by the original and by plait, and count (issue 17).

The suite is yaml-workflow 0.9.6's `tests/` folder. The sdist on PyPI has no tests: check out the
original's public repository at its 0.9.6 release, outside this repository (it is reference
material, never committed here); its tests read `src/yaml_workflow/examples/` beside them:

    git clone https://github.com/orieg/yaml-workflow /tmp/ywf && git -C /tmp/ywf checkout v0.9.6
    python -m venv /work/venv-original
    /work/venv-original/bin/pip install yaml-workflow==0.9.6 pytest "pytest-benchmark<6" -e .
    /work/venv-original/bin/python tools/original_suite.py /tmp/ywf/tests [-k EXPR ...]

It runs pytest on the folder twice, each in its own process: with the original running every
workflow, then with plait running every workflow (`original_adapter.py`: every
`WorkflowEngine.run` goes to plait, and so do runs of the original's command line in a child
process, through a `sitecustomize` on PYTHONPATH). A test "runs a workflow" when it called
`WorkflowEngine.run` at least once. It prints, of the tests that run a workflow and pass with the
original, how many pass with plait, how many of those pass only because an error was expected
(plait refused the file, or a run failed, and the test expected the error), and the tests that
fail with plait and why. `--engine native|plait --out FILE` runs one pass and writes its JSON.
Without a tests folder it says so and exits 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from original_adapter import ENGINE_VAR, RECORD_VAR, install  # noqa: E402

_SITECUSTOMIZE = f"""
import os, sys
if os.environ.get({ENGINE_VAR!r}):
    sys.path.insert(0, {str(HERE)!r})
    try:
        import original_adapter
        original_adapter.install(os.environ[{ENGINE_VAR!r}])
    except ImportError:  # a Python without the original (a task's own python3)
        pass
"""


class _Recorder:
    """A pytest plugin: each test's outcome and the workflow runs it made (read from its record file)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.tests: dict[str, dict[str, Any]] = {}

    def _file(self, nodeid: str) -> Path:
        return self.folder / f"{abs(hash(nodeid))}.jsonl"

    def pytest_runtest_setup(self, item: Any) -> None:
        os.environ[RECORD_VAR] = str(self._file(item.nodeid))

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
        if report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["message"] = _reason(str(report.longrepr))
        elif report.skipped and report.when != "teardown":
            entry["outcome"] = "skipped"
        if report.when == "teardown":
            file = self._file(report.nodeid)
            entry["runs"] = ([json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
                             if file.exists() else [])


def _reason(longrepr: str) -> str:
    """Return the first `E   ...` line of a failure's report (the assertion or exception), else its last line."""
    lines = longrepr.strip().splitlines() or [""]
    return next((line[1:].strip() for line in lines if line.startswith("E ")), lines[-1])[:300]


def one_pass(engine: str, tests: Path, out: Path, pytest_args: list[str]) -> int:
    """Run the suite with `engine` running every workflow; write {test: {outcome, message, runs}} to `out`."""
    import pytest

    with tempfile.TemporaryDirectory(prefix="plait-suite-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
        os.environ[ENGINE_VAR] = engine
        install(engine)
        recorder = _Recorder(Path(tmp))
        code = pytest.main([str(tests), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *pytest_args],
                           plugins=[recorder])
        out.write_text(json.dumps(recorder.tests, indent=1), encoding="utf-8")
    return int(code)


def compare(native: dict[str, Any], plait: dict[str, Any]) -> str:
    """Return the counts: of the tests that run a workflow and pass natively, how many pass on plait, and how."""
    running = [t for t, e in native.items() if e.get("runs")]
    passing = [t for t in running if native[t]["outcome"] == "passed"]
    passed = [t for t in passing if plait.get(t, {}).get("outcome") == "passed"]
    refused = [t for t in passed if any(r["outcome"] == "refused" for r in plait[t].get("runs", []))]
    failed_run = [t for t in passed if t not in refused
                  and any(r["outcome"] == "failed" for r in plait[t].get("runs", []))]
    lines = [f"{len(native)} tests; {len(running)} run a workflow, of which {len(passing)} pass with the original",
             f"with plait running every workflow: {len(passed)} of those {len(passing)} pass"
             f" ({100 * len(passed) / max(len(passing), 1):.1f}%)",
             f"  {len(passed) - len(refused) - len(failed_run)} with every run done by plait,"
             f" {len(failed_run)} expecting an error that a run of plait gave,"
             f" {len(refused)} expecting an error where plait refused the file"]
    failing = [t for t in passing if t not in passed]
    if failing:
        lines.append(f"failing with plait ({len(failing)}):")
        lines += [f"  {t}: {plait.get(t, {}).get('message', 'not run')}" for t in failing]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or not (Path(argv[0]) / "conftest.py").exists():
        print("tools/original_suite.py: give the tests/ folder of yaml-workflow 0.9.6 (from its repository at the "
              "0.9.6 release; the PyPI sdist has none), next to the sdist's src/", file=sys.stderr)
        return 2
    tests, rest = Path(argv[0]).resolve(), argv[1:]
    if rest[:1] == ["--engine"]:
        return one_pass(rest[1], tests, Path(rest[3]), rest[4:])
    with tempfile.TemporaryDirectory(prefix="plait-suite-") as tmp:
        outs = {}
        for engine in ("native", "plait"):
            outs[engine] = Path(tmp) / f"{engine}.json"
            subprocess.run([sys.executable, __file__, str(tests), "--engine", engine, "--out", str(outs[engine]),
                            *rest], cwd=tests.parent, check=False, stdout=subprocess.DEVNULL)
        print(compare(*(json.loads(outs[e].read_text(encoding="utf-8")) for e in ("native", "plait"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
