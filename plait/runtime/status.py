"""Read a workspace's state from its ledger: what `plait status` prints and the API returns.

Reading needs no workflow file: the ledger knows the workflow, its runs and every node's step
and key. For each step it also derives the state shape of the engine plait grew from:
`{processed: [keys in completion order], failed: {key: error record}, stats: {total, processed,
failed, retried}}` (plus the counts skipped and pending). Join nodes (which run no task) count in `nodes`
but not in a step's stats.

`write_status_json` writes the same state as JSON, the very text `json.dumps(workflow_status(…))`
gives, but streamed: the nodes are encoded and written `CHUNK` at a time as the rows are read
(the steps, which need every row, follow them), so a million nodes never become one dict and one
string of 80 MB, and the first bytes are out while the rest are read.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from plait.runtime.ledger import Ledger, workspace_ledger
from plait.workspace import in_use

__all__ = ["CHUNK", "format_status", "lived", "moment_text", "status_summary", "workflow_status",
           "write_status_json"]

CHUNK = 20_000  # nodes encoded and written at a time by `write_status_json`


def workflow_status(workspace: str | Path) -> dict[str, Any]:
    """Return {workflow, run, nodes: {id: {status, attempts, error, reason}}, steps: {step: {processed, failed,
    stats}}}.

    A node's `reason` is why its last record's run ran it ("new", "changed: code", ...; None when
    it never ran).

    Raises LedgerError when the workspace has no ledger or it cannot be read.
    """
    with contextlib.closing(workspace_ledger(workspace)) as ledger:
        steps: dict[str, Any] = {}
        nodes: dict[str, Any] = {}
        for chunk in _node_chunks(ledger, steps):
            nodes.update(chunk)
        return {"workflow": ledger.workflow(), "run": _lived(ledger, Path(workspace)), "nodes": nodes, "steps": steps}


def write_status_json(workspace: str | Path, out: TextIO) -> None:
    """Write `workflow_status(workspace)` to `out` as JSON (the text `json.dumps` gives it), streamed. Raises
    LedgerError."""
    with contextlib.closing(workspace_ledger(workspace)) as ledger:
        out.write(f'{{"workflow": {json.dumps(ledger.workflow())}, '
                  f'"run": {json.dumps(_lived(ledger, Path(workspace)), default=str)}, "nodes": {{')
        steps: dict[str, Any] = {}
        first = True
        for chunk in _node_chunks(ledger, steps):
            if chunk:
                text = json.dumps(chunk, default=str)[1:-1]
                out.write(text if first else ", " + text)
                first = False
        out.write(f'}}, "steps": {json.dumps(steps, default=str)}}}\n')


def status_summary(workspace: str | Path) -> dict[str, Any]:
    """Return what `format_status` reads of `workflow_status(workspace)`, counted by SQLite: the workflow, the run,
    each step's `stats` (its `processed` and `failed` left empty) and, in `nodes`, the failed nodes alone.

    A million nodes are summed without a Python object each. Raises LedgerError.
    """
    with contextlib.closing(workspace_ledger(workspace)) as ledger:
        steps: dict[str, Any] = {}
        for step, total, processed, failed, retried, skipped in ledger.step_counts():
            steps[step] = {"processed": [], "failed": {}, "stats": {
                "total": total, "processed": processed, "failed": failed, "retried": retried, "skipped": skipped,
                "pending": total - processed - failed - skipped}}
        for step, _, kind in ledger.unrecorded().values():  # never ran: pending, after every node with a row
            if kind != "join":
                stats = steps.setdefault(step, {"processed": [], "failed": {}, "stats": dict.fromkeys(_STATS, 0)})
                stats["stats"]["total"] += 1
                stats["stats"]["pending"] += 1
        nodes = {nid: {"status": "failed", "error": json.loads(error) if error else None}
                 for nid, error in ledger.failed_nodes()}
        return {"workflow": ledger.workflow(), "run": _lived(ledger, Path(workspace)), "nodes": nodes, "steps": steps}


def _node_chunks(ledger: Ledger, steps: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the plan's nodes, {id: {status, attempts, error, reason}}, `CHUNK` at a time; fill `steps`. Mutates."""
    rows = ledger.nodes()
    for start in range(0, len(rows), CHUNK):
        nodes: dict[str, Any] = {}
        # 100,000 rows must read in well under a second: the loop does only what each row needs.
        for node_id, step, key_text, kind, status, attempts, error_text, reason in rows[start:start + CHUNK]:
            error = json.loads(error_text) if error_text else None
            nodes[node_id] = {"status": status, "attempts": attempts, "error": error, "reason": reason}
            if kind == "join":
                continue
            state = steps.get(step)
            if state is None:
                state = steps[step] = {"processed": [], "failed": {}, "stats": dict.fromkeys(_STATS, 0)}
            stats = state["stats"]
            stats["total"] += 1
            if attempts > 1:
                stats["retried"] += 1
            if status == "succeeded":
                state["processed"].append(_key(key_text, node_id))
                stats["processed"] += 1
            elif status == "failed":
                state["failed"][str(_key(key_text, node_id))] = error
                stats["failed"] += 1
            else:
                stats[status if status == "skipped" else "pending"] += 1
        yield nodes


_STATS = ("total", "processed", "failed", "retried", "skipped", "pending")


def _lived(ledger: Ledger, workspace: Path) -> dict[str, Any] | None:
    """Return the last run's row, as it lived (`lived`)."""
    run = ledger.last_run()
    return None if run is None else lived(ledger, run, in_use(workspace))


def lived(ledger: Ledger, run: dict[str, Any], held: bool) -> dict[str, Any]:
    """Return a run's row as it lived: a run still recorded as running while no process holds its workspace
    (`held`) died, and is "interrupted", ended at the last moment it recorded."""
    if run["status"] != "running" or held:
        return run
    return {**run, "status": "interrupted", "ended": ledger.last_moment(run["run_id"]), "died": True}


def _key(text: str | None, node_id: str) -> Any:
    """Decode a stored key (JSON); a plain step's "key" is its node ID."""
    if not text or text == "null":
        return node_id
    return int(text) if text.isdigit() else json.loads(text)


def moment_text(when: float | None) -> str:
    """Return a moment as a person reads it, in local time ("?" when unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else "?"


def format_status(state: dict[str, Any], failures: int = 10) -> str:
    """Return a short text view of a status: the run, a table of steps, the first failures."""
    run = state["run"] or {}
    lines = [f"workflow {state['workflow']}: run {run.get('run_id', '-')} {run.get('status', 'never run')}"
             + (f" (its process died without ending it; last recorded at {moment_text(run['ended'])})"
                if run.get("died") else "")]
    columns = ("total", "processed", "failed", "skipped", "pending", "retried")
    width = max([len(s) for s in state["steps"]] + [4])
    lines.append(f"  {'step':<{width}}  " + "  ".join(f"{c:>9}" for c in columns))
    for step, step_state in state["steps"].items():
        stats = step_state["stats"]
        lines.append(f"  {step:<{width}}  " + "  ".join(f"{stats[c]:>9,}" for c in columns))
    failed = [(n, v["error"]) for n, v in state["nodes"].items() if v["status"] == "failed"]
    if failed:
        lines.append(f"failed nodes ({len(failed):,}):")
        for node_id, error in failed[:failures]:
            what = f"{error.get('error_type')}: {error.get('error')}" if error else "failed"
            if error and error.get("message"):  # the step's error_message: the failure in the user's words
                what = f"{error['message']} [{what}]"
            lines.append(f"  {node_id}: {what}")
        if len(failed) > failures:
            lines.append(f"  … and {len(failed) - failures:,} more (plait status --format json lists all)")
    return "\n".join(lines)
