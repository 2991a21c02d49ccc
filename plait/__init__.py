"""plait: compile YAML workflows into a DAG and run them as fast, parallel, resumable local batches.

The public API: `compile_workflow` (file -> Plan), `run_workflow` (Plan or file -> RunResult),
`workflow_status` (a workspace's ledger -> state), `task` (register a task kind) and `say` (a task's
line for the run's terminal).
plait logs through loguru and, as loguru advises for libraries, is silent until enabled:
the command line enables it; from Python, call `loguru.logger.enable("plait")`.

Names are imported on first use (PEP 562), so `plait status` starts without the compiler or joblib.
`plait.__version__` is the installed distribution's version (one source: pyproject.toml).
"""

from __future__ import annotations

import importlib
from typing import Any

from loguru import logger

logger.disable("plait")

_WHERE = {
    "NodeSpec": "plait.compiler", "Plan": "plait.compiler", "RetryPolicy": "plait.compiler",
    "StepSpec": "plait.compiler", "WorkflowError": "plait.compiler", "compile_workflow": "plait.compiler",
    "run_workflow": "plait.runtime", "workflow_status": "plait.runtime",
    "TaskContext": "plait.tasks.base", "say": "plait.tasks.base", "task": "plait.tasks.base",
}

__all__ = sorted(_WHERE)


def _version() -> str:
    """Return plait's version as installed (pyproject.toml's, through the package metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("plait")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'plait' has no attribute '{name}'")
