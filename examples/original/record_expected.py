"""Run the original engine (yaml-workflow 0.9.6) on these workflows and write each `expected.json`.

Needs the original engine in its own virtualenv, which is not one of plait's dependencies:

    python3 -m venv /tmp/ywf-venv && /tmp/ywf-venv/bin/pip install yaml-workflow==0.9.6
    python examples/original/record_expected.py [/tmp/ywf-venv/bin/yaml-workflow]

Each run gets a fresh workspace; every file the run wrote under the workspace's `output/` is
recorded with its exact text, with the command and its exit code.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def record(engine: str, workflow: str, *args: str) -> dict:
    """Run the original engine on `workflow` in a fresh workspace; return the command, exit code and files."""
    runs = Path(tempfile.mkdtemp(prefix="ywf-runs-"))  # the engine creates ./runs in its cwd
    workspace = runs / "ws"
    command = [engine, "run", str(HERE / workflow), "--workspace", str(workspace), *args]
    done = subprocess.run(command, cwd=runs, capture_output=True, text=True, check=False)
    files = {str(p.relative_to(workspace)): p.read_text() for p in sorted((workspace / "output").rglob("*"))
             if p.is_file()}
    shutil.rmtree(runs)
    shown = " ".join(shlex.quote(str(a)).replace(str(workspace), "WS").replace(str(HERE), "$E")
                     for a in [Path(engine).name, *command[1:]])
    return {"command": f"E=examples/original && {shown}", "exit_code": done.returncode, "files": files}


def main(engine: str) -> None:
    csv = f"input_csv={HERE / 'etl' / 'orders.csv'}"
    results = {
        "greeting": record(engine, "greeting/workflow.yaml", "name=Ada", "language=fr"),
        "batch": record(engine, "batch/workflow.yaml"),
        "etl": {"flows": {
            "etl": record(engine, "etl/workflow.yaml", "--flow", "etl", csv),
            "report": record(engine, "etl/workflow.yaml", "--flow", "report", csv, "flag_large=false"),
        }},
    }
    for name, result in results.items():
        (HERE / name / "expected.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ywf-venv/bin/yaml-workflow")
