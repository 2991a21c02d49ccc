"""A node's story, and a workspace's runs: what `plait logs` and `plait runs` print and the API returns.

`node_logs` reads, for one node (or every failed node of a step), why it ran, each attempt with
its times, its worker, what it printed and how it failed (the error record and its traceback):
the earlier attempts from the ledger's attempts table, the last from the node's own row.
`workspace_runs` lists every run of a workspace with its outcome and counts; a run still recorded
as running while no process holds the workspace died, and is shown as interrupted.
Both read the ledger read-only, as `plait status` does, so they work while a run is going.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plait.compiler.diagnostics import did_you_mean
from plait.runtime.ledger import workspace_ledger
from plait.runtime.selection import node_pattern
from plait.runtime.status import lived, moment_text
from plait.workspace import in_use

__all__ = ["format_logs", "format_runs", "node_logs", "workspace_runs"]

_ATTEMPT = ("attempt", "status", "started", "ended", "worker", "reason", "error", "output", "run_id")
_NODE = ("node_id", "step", "kind", "status", "note", "attempts", "started", "ended", "worker", "reason", "error",
         "output", "run_id")


def node_logs(workspace: str | Path, target: str, *, attempt: int | None = None,
              failed: bool = False) -> list[dict[str, Any]]:
    """Return the story of node `target`, or of every node of step `target` (with `failed`, only the failed ones).

    Each entry: {id, step, status, note, attempts: [{attempt, status, started, ended, worker, reason,
    error, output, run_id}]} with the JSON decoded; `attempt` keeps only that attempt. Raises
    LedgerError, and KeyError naming the closest node or step when `target` is neither.
    """
    ledger = workspace_ledger(workspace)
    try:
        one = ledger.node_row(target, _NODE)
        if one is not None and one[_NODE.index("kind")] == "task":  # a node named: its row alone is read
            by_id = {target: dict(zip(_NODE, one))}
            chosen = [target]
        else:
            rows = [dict(zip(_NODE, row)) for row in ledger.node_rows(_NODE)]
            by_id = {row["node_id"]: row for row in rows if row["kind"] == "task"}
            pattern = node_pattern(target)  # as --rerun reads it: brackets are the node id's own
            chosen = [n for n, row in by_id.items() if row["step"] == target or pattern.fullmatch(n)]
            if not chosen:
                raise KeyError(_unknown(target, by_id))
            if failed:
                chosen = [n for n in chosen if by_id[n]["status"] == "failed"]
        earlier = ledger.node_attempts(chosen, _ATTEMPT)
    finally:
        ledger.close()
    entries = []
    for node in chosen:
        row = by_id[node]
        tries = [dict(zip(_ATTEMPT, t)) for t in earlier.get(node, [])]
        if row["status"] in ("succeeded", "failed"):  # its last attempt is its own row
            tries.append({**{k: row[k] for k in _ATTEMPT if k != "attempt"}, "attempt": row["attempts"]})
        for entry in tries:
            entry["error"] = _json(entry["error"])
            entry["output"] = _json(entry["output"])
        if attempt is not None:
            tries = [t for t in tries if t["attempt"] == attempt and t["run_id"] == row["run_id"]]
        entries.append({"id": node, "step": row["step"], "status": row["status"], "note": row["note"],
                        "reason": row["reason"], "attempts": tries})
    return entries


def _unknown(target: str, nodes: dict[str, Any]) -> str:
    names = {*nodes, *(row["step"] for row in nodes.values())}
    hint = did_you_mean(target, names) or "give a node id (step[key]), a step, or a pattern (step[*.png])"
    return f"no node or step '{target}' in this workspace's ledger; {hint}"


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def format_logs(entries: list[dict[str, Any]]) -> str:
    """Return node stories as text: a heading per node, then each attempt with its output, error and traceback."""
    lines: list[str] = []
    for entry in entries:
        lines.append(f"{entry['id']}: {entry['status']}" + (f" ({entry['note']})" if entry["note"] else "")
                     + (f"; ran because: {entry['reason']}" if entry["reason"] else ""))
        if not entry["attempts"]:
            lines.append("  no attempt recorded")
        for t in entry["attempts"]:
            took = f"{t['ended'] - t['started']:.3f} s" if t["started"] and t["ended"] else "?"
            lines.append(f"  attempt {t['attempt']} (run {t['run_id']}): {t['status']}, {moment_text(t['started'])}, "
                         f"took {took}, worker {t['worker'] or '?'}")
            for stream in ("stdout", "stderr"):
                text = (t["output"] or {}).get(stream)
                if text:
                    total = t["output"].get(f"{stream}_chars", len(text))
                    cut = f" (its last {len(text):,} of {total:,} characters)" if total > len(text) else ""
                    lines.append(f"    {stream}{cut}:")
                    lines += [f"      {line}" for line in text.rstrip("\n").split("\n")]
            error = t["error"]
            if error:
                lines.append(f"    error: {error.get('error_type')}: {error.get('error')}")
                if error.get("message"):  # the step's error_message
                    lines.append(f"    message: {error['message']}")
                if error.get("traceback"):
                    lines += [f"      {line}" for line in error["traceback"].rstrip("\n").split("\n")]
                elif error.get("stderr_tail"):
                    lines += ["    stderr (tail):", *(f"      {line}" for line in error["stderr_tail"].split("\n"))]
    return "\n".join(lines)


def workspace_runs(workspace: str | Path) -> list[dict[str, Any]]:
    """Return every run of the workspace, oldest first: {run_id, started, ended, duration, status, counts}."""
    ledger = workspace_ledger(workspace)
    try:
        held = in_use(Path(workspace))
        found = []
        for run in (lived(ledger, row, held) for row in ledger.runs()):
            ended = run["ended"]
            found.append({"run_id": run["run_id"], "started": run["started"], "ended": ended,
                          "duration": (ended - run["started"]) if ended else None, "status": run["status"],
                          "counts": _json(run.get("counts"))})
        return found
    finally:
        ledger.close()


def format_runs(runs: list[dict[str, Any]]) -> str:
    """Return runs as a table: id, start, duration, outcome, counts."""
    lines = [f"  {'run':<24} {'started':<19}  {'took':>9}  {'outcome':<11}  counts"]
    for run in runs:
        took = f"{run['duration']:.1f} s" if run["duration"] is not None else "-"
        counts = ", ".join(f"{n:,} {k}" for k, n in (run["counts"] or {}).items()) or "-"
        started = moment_text(run["started"])
        lines.append(f"  {run['run_id']:<24} {started:<19}  {took:>9}  {run['status']:<11}  {counts}")
    return "\n".join(lines)
