"""The runtime: run a plan on joblib, retry per policy, record every node in the SQLite ledger, resume.

Names are imported on first use (PEP 562): reading a ledger (`plait status`) imports neither
joblib nor the compiler.
"""

from __future__ import annotations

import importlib
from typing import Any

from plait.runtime.backend_table import BACKENDS as _TABLE

# The backends' names, from a table that imports nothing heavy: the command line lists them without joblib.
BACKENDS = tuple(_TABLE)

_WHERE = {
    "BackendUnavailable": "backend_table", "WorkerCrashed": "backends",
    "Ledger": "ledger", "LedgerError": "ledger",
    "RunResult": "run", "WorkspaceBusy": "run", "default_workspace": "run", "run_workflow": "run",
    "format_status": "status", "workflow_status": "status",
    "DryRun": "preview", "dry_run": "preview", "format_dry_run": "preview",
    "format_logs": "logs", "format_runs": "logs", "node_logs": "logs", "workspace_runs": "logs",
}

__all__ = sorted(["BACKENDS", *_WHERE])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"plait.runtime.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'plait.runtime' has no attribute '{name}'")
