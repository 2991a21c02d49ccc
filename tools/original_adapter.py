"""Hand every run of the original engine (yaml-workflow 0.9.6's `WorkflowEngine.run`) to plait.

`install("plait")` replaces `WorkflowEngine.run` in this process: the engine's workflow is compiled
by plait with the run's params (and flow) and run by plait in the engine's own workspace, on the
`threading` backend (so a task kind that a test registers in this process is seen). What plait
recorded is then given back through the original's own API, and nothing more:
- plait's ledger is written into the engine's `WorkflowState` with the state's own methods
  (`mark_step_success`, `mark_step_failed`, `mark_step_skipped`, with the original's words for
  why a step was skipped: its condition, or the path a jump took; for a failed step's error, the
  record's `message` when it has one: its on_error.message, rendered), so `engine.state` and the
  returned `status`, `outputs` (`{step: {"result": ...}}`), `context` and `steps_state` hold plait's
  results (with the original's names beside plait's, `return_code` of a shell step: the dialect's
  `results.as_original`) and errors;
- a failed run raises the original's `WorkflowError`, whose message plait's error record gives
  ("Workflow halted at step 'X' due to unhandled error: ..."), with `original_error` rebuilt from the
  record's error type; a workflow plait refuses raises `WorkflowError` with plait's message, and
  the state records the run as failed at `parameter_validation` (a parameter's error) or
  `validation`, as the original recorded a run it refused.
- `skip_steps` is plait's `skip` (`--skip`), and `start_from` is `skip` of every step the flow
  lists before it (`StepNotInFlowError` for a step the flow leaves out), as docs/migrating.md
  says. `resume_from` runs plait again in the same workspace (plait's resume: what succeeded stays
  done), starting from that step as `start_from` does; a step the flow leaves out cannot be resumed
  from (the original's words: "Cannot resume: step 'X' not found in workflow"). plait's resume
  has no other condition: it does not refuse a workspace whose last run succeeded, or another flow.
- a refusal of plait that names the flow asked for (`Flow 'X' not found`) raises the original's
  `FlowNotFoundError`, as the original raised it for the same flow.
`install("native")` keeps the original's own run and only records that a run happened.

Either way each run is recorded (one JSON line, to the file `PLAIT_SUITE_RECORD` names) as
{engine, outcome: ok | failed | refused, error}: `original_suite.py` counts them per test. A child
Python process started by a test (the original's CLI) installs the same through `sitecustomize`
when `PLAIT_SUITE_ENGINE` is set (see `original_suite.py`).
"""

from __future__ import annotations

import builtins
import copy
import json
import os
from pathlib import Path
from typing import Any

import yaml

ENGINE_VAR = "PLAIT_SUITE_ENGINE"
RECORD_VAR = "PLAIT_SUITE_RECORD"
_STATUS = {"succeeded": "completed", "failed": "failed", "skipped": "skipped"}
_REFUSED_AT = ("parameter_validation", "validation")  # the failed "step" a refused run records (the original's)


def install(engine: str) -> None:
    """Patch the original's WorkflowEngine so that `engine` ("plait" or "native") runs every workflow."""
    from yaml_workflow import engine as original

    cls = original.WorkflowEngine
    if getattr(cls, "_plait_suite", None) == engine:
        return
    native_init, native_run = cls.__init__, cls.run

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        native_init(self, *args, **kwargs)
        self._plait_loaded = copy.deepcopy(self.workflow)  # to tell a workflow changed after loading

    def run_native(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = native_run(self, *args, **kwargs)
        except Exception as err:
            _record("native", "failed", str(err))
            raise
        _record("native", "ok")
        return result

    cls.__init__ = init
    cls.run = run_on_plait if engine == "plait" else run_native
    cls._plait_suite = engine


def _record(engine: str, outcome: str, error: str | None = None) -> None:
    path = os.environ.get(RECORD_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"engine": engine, "outcome": outcome, "error": (error or "")[:300]}) + "\n")


def run_on_plait(engine: Any, params: dict | None = None, resume_from: str | None = None,
                 start_from: str | None = None, skip_steps: list | None = None, flow: str | None = None,
                 max_retries: int = 3) -> dict[str, Any]:
    """Run the engine's workflow on plait; return the original's result shape (see the module's docstring)."""
    from yaml_workflow.exceptions import FlowNotFoundError, StepNotInFlowError
    from yaml_workflow.exceptions import WorkflowError as OriginalError

    from plait.compiler import WorkflowError
    from plait.runtime import run_workflow

    overrides = {**(params or {}), **({"flow": flow} if flow else {})}
    if params:
        engine.context.update(params)
        engine.context["args"].update(params)
    try:
        plan = _compile(engine, overrides)
    except WorkflowError as err:
        _record("plait", "refused", str(err))
        first = err.errors[0].message if err.errors else str(err)
        engine.state.mark_step_failed(_REFUSED_AT[0] if "parameter" in first.lower() else _REFUSED_AT[1],
                                      first)  # the original recorded a refused run so, and `--resume` reads it
        if flow and first == f"Flow '{flow}' not found":
            raise FlowNotFoundError(flow) from err
        raise OriginalError(str(err)) from err
    if resume_from in _REFUSED_AT:  # the original's resume of a refused run started it afresh
        resume_from = None
    skip = list(skip_steps or [])
    start = start_from or resume_from
    if start:
        if start not in plan.steps:
            _record("plait", "refused", f"{'start_from' if start_from else 'resume_from'} {start}")
            if not start_from:
                raise OriginalError(f"Cannot resume: step '{start}' not found in workflow")
            raise StepNotInFlowError(start, flow or str(plan.params.get("flow", "default")))
        skip += list(plan.steps)[:list(plan.steps).index(start)]
    result = run_workflow(plan, workspace=engine.workspace, jobs=2, backend="threading",
                          fresh=resume_from is None, skip=skip)
    steps = _write_state(engine, plan, flow if flow else plan.params.get("flow"))
    if not result.ok:
        name, error = next(((n, s["error"]) for n, s in steps.items() if s["status"] == "failed" and s["error"]),
                           ("?", {}))
        message = error.get("error", "")
        _record("plait", "failed", message)
        cause = _exception(error.get("error_type"), message)
        raise OriginalError(f"Workflow halted at step '{name}' due to unhandled error: {message}",
                            original_error=cause) from cause
    _record("plait", "ok")
    engine.state.mark_workflow_completed()
    final = engine.state.get_state()
    return {"status": final["execution_state"]["status"],
            "outputs": {n: {"result": s.get("result")} for n, s in final["steps"].items()
                        if s.get("status") == "completed"},
            "context": engine.context.copy(), "execution_state": final["execution_state"],
            "steps_state": final["steps"]}


def _compile(engine: Any, overrides: dict[str, Any]) -> Any:
    """Compile the engine's workflow: its file as written, or the mapping it holds (given, or changed since)."""
    from plait.compiler import compile_text, compile_workflow

    file = engine.workflow_file
    if file is not None and engine.workflow == getattr(engine, "_plait_loaded", None):
        return compile_workflow(Path(file), overrides)
    text = yaml.safe_dump(engine.workflow, sort_keys=False)
    if file is not None:  # changed after loading: the mapping, read as if from the file (its name, its folder)
        return compile_text(text, str(file), Path(file).resolve().parent, overrides, str(Path(file).resolve()))
    return compile_text(text, "<string>", Path.cwd(), overrides)


def _write_state(engine: Any, plan: Any, flow: str | None) -> dict[str, dict[str, Any]]:
    """Write what plait's ledger holds into the engine's state, step by step in the plan's order. Mutates it."""
    from plait.runtime import workflow_status
    from plait.runtime.ledger import LEDGER_NAME, Ledger
    from plait.workspace import state_dir

    nodes = workflow_status(engine.workspace)["nodes"]
    ledger = Ledger(state_dir(Path(engine.workspace)) / LEDGER_NAME, readonly=True)
    try:
        results = ledger.results(nodes)
        notes = {node: prior.note for node, prior in ledger.previous().items()}
    finally:
        ledger.close()
    state = engine.state
    state.initialize_execution()
    if flow:
        state.set_flow(flow)
    steps: dict[str, dict[str, Any]] = {}
    engine.context["steps"] = {}
    listed = engine.workflow.get("steps") or []
    listed = [{"name": k, **v} for k, v in listed.items()] if isinstance(listed, dict) else listed
    conditions = {s.get("name"): s.get("condition") for s in listed if isinstance(s, dict)}
    kinds = {s.get("name"): s.get("task") for s in listed if isinstance(s, dict)}
    for name in plan.steps:
        node = nodes.get(name)
        if node is None:
            continue
        status = _STATUS.get(node["status"], node["status"])
        result = as_original(str(kinds.get(name)), results.get(name))
        steps[name] = {"status": status, "error": node["error"], "result": result}
        if status == "completed":
            engine.context["steps"][name] = {"result": result}
            state.mark_step_success(name, {"result": result})
        elif status == "failed":  # the step's own words when it has them (on_error.message), as the original kept
            error = node["error"] or {}
            state.mark_step_failed(name, error.get("message") or error.get("error", ""))
        elif status == "skipped":
            state.mark_step_skipped(name, reason=_reason(notes.get(name), conditions.get(name)))
    return steps


def as_original(kind: str, result: Any) -> Any:
    """Return `result` with the original's names added (the dialect's `results.as_original`; as it is before it)."""
    try:
        from plait.compiler.dialect.results import as_original as original_shape
    except ImportError:  # a plait from before it had one: the measurement of an older plait
        return result
    return original_shape(kind, result)


def _reason(note: str | None, condition: Any) -> str:
    """Return the original's words for why plait skipped a step: its own condition, or the path a jump took."""
    if note == "condition is false" and condition:
        return f"Condition '{condition}' not met"
    return "Workflow execution path skipped this step"  # a jump's guard, or a failure upstream


def _exception(type_name: str | None, message: str) -> BaseException:
    """Return the exception a record of plait names, rebuilt (a built-in type; RuntimeError otherwise)."""
    kind = getattr(builtins, type_name or "", None)
    if isinstance(kind, type) and issubclass(kind, BaseException):
        try:
            return kind(message)
        except TypeError:
            pass
    return RuntimeError(message)
