"""The runtime: run a plan on joblib, retry per policy, record every node in the SQLite ledger, resume.

Names are imported on first use (PEP 562): reading a ledger (`plait status`) imports neither
joblib nor the compiler.
"""

from __future__ import annotations

import importlib
from typing import Any

# Defined here, not in `backends`, so the command line can list them without importing joblib.
BACKENDS = ("loky", "threading", "sequential", "dask")

_WHERE = {
    "BackendUnavailable": "backend_check", "WorkerCrashed": "backends",
    "Ledger": "ledger", "LedgerError": "ledger",
    "RunResult": "run", "WorkspaceBusy": "run", "default_workspace": "run", "run_workflow": "run",
    "format_status": "status", "workflow_status": "status",
}

__all__ = sorted(["BACKENDS", *_WHERE])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"plait.runtime.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'plait.runtime' has no attribute '{name}'")
