"""A dry run: what a run would do and why, decided exactly as the run decides it, with nothing executed or written.

`dry_run` compiles the workflow, reads the workspace's ledger read-only (no lock taken, not a
byte written) with what the journals of a run that died add to it (as the run will record them),
and asks the scheduler to decide every node (`Scheduler.prepare`, the one resume
decision the real run makes), with the same `--rerun` and `--until` selection. What it returns is
what `plait run --dry-run` prints: per node that would run, its reason and detail. A deferred
step's items are listed and decided where its upstream is done (`Scheduler.look_ahead`, as the run
does before it starts); elsewhere its placeholder stands for them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.compiler import Plan, compile_workflow
from plait.runtime.decide import ledger_holds
from plait.runtime.execute import RunInfo
from plait.runtime.fingerprint import Fingerprinter
from plait.runtime.journal import recover
from plait.runtime.ledger import LEDGER_NAME, Ledger, LedgerError, Prior
from plait.runtime.outcome import SUCCEEDED
from plait.runtime.scheduler import Scheduler
from plait.runtime.selection import select
from plait.runtime.state import RunState
from plait.workspace import state_dir

__all__ = ["DryRun", "dry_run", "format_dry_run"]

SHOWN = 3  # nodes named per step and reason in the text


@dataclass
class DryRun:
    """What a run would do: how many nodes, how many done, and every node it would run with why."""

    workflow: str
    nodes: int
    done: int
    would_run: list[dict[str, Any]] = field(default_factory=list)  # {id, step, reason, detail}
    left_out: int = 0  # nodes of steps an --until run leaves alone

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "nodes": self.nodes, "done": self.done, "would_run": self.would_run,
                "left_out": self.left_out}

    @property
    def summary(self) -> dict[str, int]:
        """Return the nodes by reason, as the line printed before a run gives them."""
        counts = Counter(n["reason"] for n in self.would_run)
        return {"done": self.done, **counts, **({"left out": self.left_out} if self.left_out else {})}


def dry_run(workflow: str | Path | Plan, *, workspace: str | Path | None = None,
            params: Mapping[str, Any] | None = None, rerun: Iterable[str] = (),
            until: Iterable[str] = (), skip: Iterable[str] = ()) -> DryRun:
    """Return what `run_workflow` would run in `workspace`, and why. Raises WorkflowError, LedgerError, ValueError."""
    from plait.runtime.run import default_workspace

    plan = workflow if isinstance(workflow, Plan) else compile_workflow(workflow, params)
    ws = Path(workspace) if workspace is not None else default_workspace(plan.workflow)
    selection = select(plan, rerun, until, skip)
    path = state_dir(ws) / LEDGER_NAME
    ledger = Ledger(path, readonly=True) if path.exists() else None
    try:
        if ledger is not None and ledger.workflow() not in (None, plan.workflow):
            raise LedgerError(f"the workspace's ledger {path} belongs to workflow '{ledger.workflow()}', not "
                              f"'{plan.workflow}'; use another --workspace")
        workflow_dir = plan.workflow_dir
        fingerprints = Fingerprinter(plan.steps, workflow_dir, plan.params, workspace=ws.resolve(),
                                     recorded_files=ledger.file_hashes if ledger else dict)
        held = ledger is not None and selection.everything and ledger_holds(ledger, plan, fingerprints)
        info = RunInfo(run_id="dry-run", workspace=ws.resolve(), workflow_dir=workflow_dir, params=plan.params,
                       stop_file=os.devnull, parent_pid=os.getpid())
        state = RunState(plan, info, load_results=ledger.results if ledger else lambda ids: {})
        previous = _journaled(ledger.previous(unfinished_only=held), ledger, path.parent) if ledger else {}
        scheduler = Scheduler(state, dispatch=_nothing, submit=_unwritten, selection=selection, held=held,
                              previous=previous,
                              fingerprints=fingerprints, recorded_parts=ledger.step_parts() if ledger else {},
                              fingerprints_of=ledger.fingerprints if ledger else lambda ids: {})
        scheduler.prepare()
        summary = scheduler.look_ahead()
    finally:
        if ledger is not None:
            ledger.close()
    nodes = state.plan.nodes
    # A deferred step's placeholder has a decision even when done (it lists its items again, from the ledger); one
    # that expanded (`look_ahead`) is a join now, listed when it runs, as the run's header counts it.
    would_run = [{"id": nid, "step": nodes[nid].step, "reason": d.reason, "detail": d.detail}
                 for nid, d in state.decisions.items() if d.run]
    return DryRun(plan.workflow, len(nodes), summary.get("done", 0), would_run, len(state.left_out))


def _journaled(previous: dict[str, Prior], ledger: Ledger, state: Path) -> dict[str, Prior]:
    """Return `previous` as the run will find it once it has recorded what runs that died left in their journals
    (`Ledger.recover`, before it decides anything), without writing it: succeeded, with the journal's fingerprint,
    for a node that has a row or is a node of the kept plan."""
    found = [entry for folder in sorted(state.glob("trail-*")) for entry in recover(folder)]
    if not found:
        return previous
    unrecorded = ledger.unrecorded()
    previous = dict(previous)
    for node, fingerprint, *_ in found:
        prior = previous.get(node)
        if prior is not None or node in unrecorded:
            previous[node] = Prior(SUCCEEDED, fingerprint, prior.in_plan if prior is not None else True)
    return previous


def _nothing(*args: Any) -> Any:
    raise AssertionError("a dry run dispatches nothing")


def _unwritten(*args: Any) -> None:
    """What a run would hand its ledger writer (the nodes a growth adds): a dry run writes nothing."""


def format_dry_run(result: DryRun) -> str:
    """Return a dry run as text: the counts by reason, then per step its nodes by reason (the first few named)."""
    from plait.runtime.run import describe

    lines = [f"dry run of {result.workflow}: {describe(result.nodes, result.summary)}; nothing was run or written"]
    by_step: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for node in result.would_run:
        by_step.setdefault(node["step"], {}).setdefault(node["reason"], []).append(node)
    for step, reasons in by_step.items():
        lines.append(f"  {step}:")
        for reason, nodes in reasons.items():
            named = ", ".join(n["id"] + (f" ({n['detail']})" if n["detail"] else "") for n in nodes[:SHOWN])
            more = f", and {len(nodes) - SHOWN:,} more" if len(nodes) > SHOWN else ""
            lines.append(f"    {reason} ({len(nodes):,}): {named}{more}")
    return "\n".join(lines)
