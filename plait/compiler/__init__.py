"""The compiler: a workflow file in, an immutable `Plan` out. Pure: it reads, never writes or runs."""

from plait.compiler.compile import compile_text, compile_workflow, read_workflow
from plait.compiler.diagnostics import Diagnostic, SourceLoc, WorkflowError
from plait.compiler.expand import expand_deferred
from plait.compiler.params import parse_param_overrides
from plait.compiler.plan import FrozenDict, NodeSpec, Plan, RetryPolicy, StepSpec, freeze, thaw

__all__ = [
    "Diagnostic",
    "FrozenDict",
    "NodeSpec",
    "Plan",
    "RetryPolicy",
    "SourceLoc",
    "StepSpec",
    "WorkflowError",
    "compile_text",
    "compile_workflow",
    "expand_deferred",
    "freeze",
    "parse_param_overrides",
    "read_workflow",
    "thaw",
]
