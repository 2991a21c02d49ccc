"""The compiler: a workflow file in, an immutable `Plan` out. Pure: it reads, never writes or runs.

Names are imported on first use (PEP 562), so commands that only read a ledger (`plait status`)
do not pay for networkx and Jinja2.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "compile_text": "compile", "compile_workflow": "compile", "read_workflow": "compile",
    "Diagnostic": "diagnostics", "SourceLoc": "diagnostics", "WorkflowError": "diagnostics",
    "expand_deferred": "expand", "expand_parent": "grow", "expand_parents": "grow", "Grown": "grow",
    "grow_parents": "grow", "grow_step": "grow",
    "group_view": "scopes", "node_scope": "scopes", "parent_of": "scopes", "parent_view": "scopes",
    "resolve_on_error": "on_error",
    "parse_param_overrides": "params",
    "FrozenDict": "plan", "NodeSpec": "plan", "Plan": "plan", "RetryPolicy": "plan", "StepSpec": "plan",
    "freeze": "plan", "thaw": "plan",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"plait.compiler.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'plait.compiler' has no attribute '{name}'")
