"""plait: compile YAML workflows into a DAG and run them as fast, parallel, resumable local batches.

The public API: `compile_workflow` (file -> Plan), `run_workflow` (Plan or file -> RunResult),
`workflow_status` (a workspace's ledger -> state), and `task` (register a task kind).
plait logs through loguru and, as loguru advises for libraries, is silent until enabled:
the command line enables it; from Python, call `loguru.logger.enable("plait")`.
"""

from typing import Any

from loguru import logger

from plait.compiler import NodeSpec, Plan, RetryPolicy, StepSpec, WorkflowError, compile_workflow
from plait.tasks.base import TaskContext, task

logger.disable("plait")

__all__ = [
    "NodeSpec",
    "Plan",
    "RetryPolicy",
    "StepSpec",
    "TaskContext",
    "WorkflowError",
    "compile_workflow",
    "run_workflow",
    "task",
    "workflow_status",
]

_RUNTIME = {"run_workflow", "workflow_status"}


def __getattr__(name: str) -> Any:
    """Import the runtime (and joblib with it) only when it is used: `plait compile` never needs it."""
    if name in _RUNTIME:
        from plait import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'plait' has no attribute '{name}'")
