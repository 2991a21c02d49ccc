"""Run the original engine on the workflows it ships and those of its docs; write `package/expected.json`.

`package/` holds the example workflows of yaml-workflow 0.9.6 (its `init` copies them; MIT, see
`package/LICENSE`) that the original runs to success without a network or an API key, and the
workflows of its docs' markdown that it runs so: its README's quick start and three of
`docs/examples/cookbook.md` (`cookbook_*.yaml`, with `shared/logging.yaml`, which one imports).
Each is run once by the original in a fresh workspace (twice for `complex_flow_error_handling`:
as it is, and with `flaky_mode=fail`, its error flow). Recorded per run: the arguments, the exit
code, what became of each step (completed, skipped or failed, from the original's
`.workflow_metadata.json`), and every file the run wrote in its workspace (not the original's own
`logs/`, `temp/` and `.workflow_metadata.json`), with the workspace's path, dates and times
replaced by placeholders (`normalise`), since they differ from run to run.

    python3 -m venv /tmp/ywf-venv && /tmp/ywf-venv/bin/pip install yaml-workflow==0.9.6
    python examples/original/record_package.py /tmp/ywf-venv/bin/yaml-workflow

`tests/test_original_dialect.py` runs each through plait and compares; it does not need the original.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "package"
RUNS = {  # run name -> (workflow file, name=value arguments)
    "hello_world": ("hello_world.yaml", []),
    "advanced_hello_world": ("advanced_hello_world.yaml", []),
    "advanced_hello_world_invalid": ("advanced_hello_world.yaml", ["name=A"]),
    "complex_flow_error_handling": ("complex_flow_error_handling.yaml", []),
    "complex_flow_error_handling_fail": ("complex_flow_error_handling.yaml", ["flaky_mode=fail"]),
    "data_pipeline": ("data_pipeline.yaml", []),
    "python_tasks": ("python_tasks.yaml", []),
    "template_tasks": ("template_tasks.yaml", []),
    "readme_quick_start": ("readme_quick_start.yaml", ["name=Alice"]),
    "cookbook_deploy": ("cookbook_deploy.yaml", ["version=v1.2.3"]),
    "cookbook_conditional": ("cookbook_conditional.yaml", []),
    "cookbook_conditional_csv": ("cookbook_conditional.yaml", ["format=csv"]),
    "cookbook_imports": ("cookbook_imports.yaml", []),
}
_ENGINE_FILES = ("logs", "temp", ".workflow_metadata.json", ".plait")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?|\b\d{8}T\d{6}-[0-9a-f]{6}\b|\b20\d{6}\b")


def normalise(text: str, workspace: Path) -> str:
    """Return `text` with the workspace's path and every date-time replaced by placeholders."""
    return _STAMP.sub("<TIME>", text.replace(str(workspace.resolve()), "<WS>").replace(str(workspace), "<WS>"))


def files_of(workspace: Path) -> dict[str, str]:
    """Return {relative path: normalised text} of the files a run wrote in `workspace`."""
    return {str(p.relative_to(workspace)): normalise(p.read_text(encoding="utf-8"), workspace)
            for p in sorted(workspace.rglob("*"))
            if p.is_file() and p.relative_to(workspace).parts[0] not in _ENGINE_FILES}


def record(engine: str, workflow: str, args: list[str]) -> dict:
    runs = Path(tempfile.mkdtemp(prefix="ywf-runs-"))
    workspace = runs / "ws"
    done = subprocess.run([engine, "run", str(HERE / workflow), "--workspace", str(workspace), *args], cwd=runs,
                          capture_output=True, text=True, check=False)
    metadata = json.loads((workspace / ".workflow_metadata.json").read_text(encoding="utf-8"))
    steps = {name: state["status"] for name, state in metadata["execution_state"]["step_outputs"].items()}
    out = {"workflow": workflow, "args": args, "exit_code": done.returncode, "steps": steps,
           "files": files_of(workspace)}
    shutil.rmtree(runs)
    return out


def main(engine: str) -> None:
    recorded = {name: record(engine, workflow, args) for name, (workflow, args) in RUNS.items()}
    (HERE / "expected.json").write_text(json.dumps(recorded, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ywf-venv/bin/yaml-workflow")
