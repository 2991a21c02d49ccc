"""The runtime: run a plan on joblib, retry per policy, record every node in the SQLite ledger, resume."""

from plait.runtime.backends import BACKENDS, WorkerCrashed
from plait.runtime.ledger import Ledger, LedgerError
from plait.runtime.run import RunResult, WorkspaceBusy, default_workspace, run_workflow
from plait.runtime.status import format_status, workflow_status

__all__ = [
    "BACKENDS",
    "Ledger",
    "LedgerError",
    "RunResult",
    "WorkerCrashed",
    "WorkspaceBusy",
    "default_workspace",
    "format_status",
    "run_workflow",
    "workflow_status",
]
