"""Run the original engine's own test suite with every workflow run handed to plait (issue 17's adapter).

The sdist of yaml-workflow 0.9.6 on PyPI carries no tests/ (nor docs/): take them from a checkout
of its repository at the 0.9.6 release. Then, in a virtualenv with the original, pytest and plait:

    python -m venv /tmp/ywf && /tmp/ywf/bin/pip install yaml-workflow==0.9.6 pytest -e .
    /tmp/ywf/bin/python tools/original_suite.py PATH/TO/yaml-workflow/tests [pytest args...]

Every `WorkflowEngine.run` the tests make is replaced: the engine's workflow (its file, or its
dict written to a file) is compiled by plait with the run's params (and flow) and run in the
engine's workspace on the `threading` backend, in this process, so task kinds that a test
registers with `register_task` are seen. The result is given back in the original's shape
(`status`, `outputs`, `steps_state`); a failed run raises the original's `WorkflowError` with its
wording ("Workflow halted at step 'X' due to unhandled error: ..."), and a workflow plait refuses
raises it with plait's message. The original's assertions then judge. Without a tests folder
the script says so and exits 2.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _run_on_plait(engine: Any, params: dict | None = None, flow: str | None = None, **_: Any) -> dict:
    from yaml_workflow.exceptions import WorkflowError as OriginalError

    from plait.compiler import WorkflowError, compile_workflow
    from plait.runtime import run_workflow
    from plait.runtime.ledger import Ledger

    source = engine.workflow_file
    if source is None:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=engine.workspace) as handle:
            yaml.safe_dump(engine.workflow, handle)
        source = Path(handle.name)
    overrides = {**(params or {}), **({"flow": flow} if flow else {})}
    try:
        plan = compile_workflow(Path(source), overrides)
    except WorkflowError as err:
        raise OriginalError(str(err)) from err
    result = run_workflow(plan, workspace=engine.workspace, jobs=1, backend="threading", fresh=True)
    ledger = Ledger(Path(engine.workspace) / ".plait" / "ledger.db", readonly=True)
    try:
        nodes = ledger.nodes()
        results = ledger.results([n[0] for n in nodes])
    finally:
        ledger.close()
    steps = {n[0]: {"status": {"succeeded": "completed"}.get(n[3], n[3]), "result": results.get(n[0])}
             for n in nodes}
    if not result.ok:
        failed = next((e for e in result.report.failed), {})
        raise OriginalError(f"Workflow halted at step '{failed.get('node')}' due to unhandled error: "
                            f"{failed.get('error')}")
    outputs = {name: {"result": s["result"]} for name, s in steps.items() if s["status"] == "completed"}
    return {"status": "completed", "outputs": outputs, "steps_state": steps,
            "execution_state": {"status": "completed"}, "context": {"steps": json.loads(json.dumps(outputs))}}


def main(argv: list[str]) -> int:
    if not argv or not (Path(argv[0]) / "conftest.py").exists():
        print("tools/original_suite.py: give the tests/ folder of a yaml-workflow 0.9.6 checkout (the PyPI sdist "
              "has none)", file=sys.stderr)
        return 2
    import pytest
    from yaml_workflow import engine

    engine.WorkflowEngine.run = _run_on_plait
    return pytest.main([argv[0], "-q", "-p", "no:cacheprovider", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
