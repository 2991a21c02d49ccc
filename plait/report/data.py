"""Read a workspace's ledger into the report's data: the run, its history, steps, failures and the trace.

The report says what the ledger holds, nothing more, and reads it as `plait status` does: read-only,
in one transaction, so it works while a run is writing and never disturbs it.

What it reads. Columns are asked for by name, so a ledger without the newer ones still reads.
- Always: each node's last record (`nodes`: step, kind, status, attempts, error JSON, note,
  started, ended, run_id) and every run (`runs`).
- When present (what the runtime is to record; the names and shapes this module expects):
  - `nodes.worker` TEXT: who ran the node's last attempt, an opaque label, one per worker process
    (or thread, for the threading backend): the timeline draws a row per distinct value.
  - `nodes.reason` TEXT: why the node ran in its run ("new", "failed before", "changed: code", ...).
  - `nodes.output` TEXT: JSON `{"stdout": tail, "stderr": tail}` of its last attempt; NULL when empty.
  - `"traceback"` (text) in the node's error JSON.
  - table `attempts`, one row per attempt that is not its node's last record (a failed attempt
    that was retried, or an earlier run's outcome of a node that ran again): node_id, run_id,
    attempt (1, 2, ...), status, started, ended (Unix times) are needed; worker, reason, error
    (JSON), output (JSON, as above) are read when there. A node's last attempt is its `nodes` row.
  - `runs.counts` TEXT: JSON `{status: n}` of what that run did (any keys, e.g. "restored").
  - `runs.step_graph` TEXT: JSON, the plan's steps as `Plan.step_graph` gives them, so the step graph needs
    no workflow file.
- Without them: the trace has one row per node (its last attempt) with worker "?", the timeline
  packs attempts into slots by time, an earlier run's counts are those of the nodes whose last
  record it wrote (what it did that still stands), and the step graph's edges come from compiling
  the workflow file the last run recorded.

Durations are a node's last attempt, `ended - started`, for nodes that ran (succeeded or failed);
percentiles are nearest-rank. Join nodes (which run no task) are left out, as `plait status` does.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from plait.runtime.ledger import workspace_ledger
from plait.workspace import in_use

if TYPE_CHECKING:
    from plait.compiler import Plan

__all__ = ["STATUSES", "NodeState", "Report", "TraceRow", "collect", "node_statuses"]

STATUSES = ("succeeded", "failed", "skipped", "running", "pending")
SLOWEST = 5  # the slowest nodes listed per step
UNKNOWN_WORKER = "?"
RAN = frozenset({"succeeded", "failed"})
# Where an error record may carry a node's output (today a shell task's `stderr_tail`).
_OUTPUT_KEYS = ("stdout", "stderr", "output", "stdout_tail", "stderr_tail")


class TraceRow(NamedTuple):
    """One attempt at a node (or, from an older ledger, a node's last attempt)."""

    id: str
    step: str
    status: str
    attempt: int
    start: float | None
    end: float | None
    worker: str
    reason: str | None
    run: str | None


@dataclass
class Report:
    """Everything the report shows, JSON-ready but for `trace` (rows; see `to_json`)."""

    workflow: str | None
    workspace: str
    generated: float
    run: dict[str, Any] | None  # the last run: its row, duration, and whether it is still going
    counts: dict[str, int]  # the plan's task nodes by status, now
    history: list[dict[str, Any]]  # every run, oldest first, with its counts
    steps: list[dict[str, Any]]  # per step: counts, durations, slowest nodes
    edges: list[tuple[str, str, str]]  # (from step, to step, "depends" | "for_each" | "after")
    failures: list[dict[str, Any]]  # failed nodes in completion order
    trace: list[TraceRow]
    ledger: dict[str, bool]  # which optional records the ledger holds
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data, the trace as one object per attempt."""
        data = {name: getattr(self, name) for name in ("workflow", "workspace", "generated", "run", "counts",
                                                        "history", "steps", "failures", "ledger", "notes")}
        data["edges"] = [list(edge) for edge in self.edges]
        data["trace"] = [row._asdict() for row in self.trace]
        return {"format": 1, **data}


class NodeState(NamedTuple):
    """A node as the ledger has it now: enough to colour a drawing."""

    step: str
    kind: str
    status: str


def node_statuses(workspace: str | Path) -> dict[str, NodeState]:
    """Return {node_id: NodeState} for the nodes of the ledger's last plan. Raises LedgerError."""
    ledger = workspace_ledger(workspace)
    try:
        return {row[0]: NodeState(*row[1:]) for row in ledger.node_rows(("node_id", "step", "kind", "status"))}
    finally:
        ledger.close()


# Columns read from the nodes table: the first ones every ledger has, the rest when present.
_NODE_COLUMNS = ("node_id", "step", "kind", "status", "attempts", "error", "note", "started", "ended", "run_id")
_NODE_EXTRA = ("worker", "reason", "output")
_ATTEMPT_COLUMNS = ("node_id", "run_id", "attempt", "status", "started", "ended", "worker", "reason", "error",
                    "output")


def collect(workspace: str | Path, plan: Plan | None = None) -> Report:
    """Read the workspace's ledger into a Report. Raises LedgerError.

    The step graph's edges come from `plan` when given (the run's own, at the end of `plait run`),
    else as `_step_graph` finds them.
    """
    ledger = workspace_ledger(workspace)
    try:
        with ledger.snapshot():
            have = set(ledger.columns("nodes"))
            extra = [c for c in _NODE_EXTRA if c in have]
            rows = ledger.node_rows(_NODE_COLUMNS + tuple(extra))
            attempt_names = [c for c in _ATTEMPT_COLUMNS if c in set(ledger.columns("attempts"))]
            attempts = ledger.attempt_rows(attempt_names) if attempt_names else []
            runs = ledger.runs()
            workflow = ledger.workflow()
    finally:
        ledger.close()
    nodes = _Nodes(rows, extra)
    steps, edges, notes = _step_graph(plan, runs, nodes)
    failures = _failures(nodes, attempts, attempt_names)
    recorded = set(extra) | set(attempt_names)
    holds = {"attempts": bool(attempt_names), "worker": "worker" in recorded, "reason": "reason" in recorded,
             "output": "output" in recorded, "traceback": any(f["traceback"] for f in failures),
             "run_counts": any(r.get("counts") is not None for r in runs)}
    return Report(
        workflow=workflow, workspace=str(workspace), generated=time.time(), run=_last_run(runs, nodes, workspace),
        counts=_ordered(Counter(nodes.status[i] for i in nodes.tasks)),
        history=_history(runs, nodes, attempts, attempt_names), steps=_step_stats(steps, nodes), edges=edges,
        failures=failures,
        trace=_trace(nodes, attempts, attempt_names),
        ledger=holds, notes=notes)


class _Nodes:
    """The plan's nodes as columns, in completion order; `tasks` indexes those that run a task."""

    def __init__(self, rows: list[tuple[Any, ...]], extra: list[str]):
        columns = list(zip(*rows)) if rows else [()] * (len(_NODE_COLUMNS) + len(extra))
        (self.id, self.step, self.kind, self.status, self.attempts, self.error, self.note, self.started,
         self.ended, self.run_id) = columns[:len(_NODE_COLUMNS)]
        more = dict(zip(extra, columns[len(_NODE_COLUMNS):]))
        count = len(rows)
        self.worker = more.get("worker", (None,) * count)
        self.reason = more.get("reason", (None,) * count)
        self.output = more.get("output", (None,) * count)
        self.tasks = [i for i, kind in enumerate(self.kind) if kind == "task"]
        self.step_of = {self.id[i]: self.step[i] for i in self.tasks}

    def trace(self, only: str | None = None) -> list[TraceRow]:
        """Return a row per task node that has a record (its last attempt), in completion order; `only`: one status."""
        ids, steps, statuses, attempts = self.id, self.step, self.status, self.attempts
        starts, ends, workers, reasons, notes, runs = (self.started, self.ended, self.worker, self.reason, self.note,
                                                       self.run_id)
        return [TraceRow(ids[i], steps[i], statuses[i], attempts[i], starts[i], ends[i], workers[i] or UNKNOWN_WORKER,
                         notes[i] if statuses[i] == "skipped" else reasons[i] or notes[i], runs[i])
                for i in self.tasks if statuses[i] != "pending" and (only is None or statuses[i] == only)]

    def duration(self, i: int) -> float | None:
        start, end = self.started[i], self.ended[i]
        return end - start if start is not None and end is not None and self.status[i] in RAN else None


def _trace(nodes: _Nodes, attempts: list[tuple[Any, ...]], names: list[str]) -> list[TraceRow]:
    """Return the trace: every attempt (the earlier ones, then each node's last) and every skipped node, by start."""
    if not attempts:
        return nodes.trace()
    rows = _trace_from_attempts(attempts, names, nodes.step_of) + nodes.trace()
    return sorted(rows, key=lambda r: (r.start is None, r.start or 0.0))


def _trace_from_attempts(rows: list[tuple[Any, ...]], names: list[str], step_of: Mapping[str, str]) -> list[TraceRow]:
    """Return one TraceRow per row of the attempts table (those of nodes still in the plan)."""
    at = {name: i for i, name in enumerate(names)}

    def get(row: tuple[Any, ...], name: str, default: Any = None) -> Any:
        return row[at[name]] if name in at else default

    return [TraceRow(row[at["node_id"]], step_of[row[at["node_id"]]], get(row, "status", "?"), get(row, "attempt", 1),
                     get(row, "started"), get(row, "ended"), get(row, "worker") or UNKNOWN_WORKER, get(row, "reason"),
                     get(row, "run_id"))
            for row in rows if row[at["node_id"]] in step_of]


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """Return counts with every status, in the report's order (any unknown status last)."""
    return {**{s: counts.get(s, 0) for s in STATUSES}, **{s: n for s, n in counts.items() if s not in STATUSES}}


def _last_run(runs: list[dict[str, Any]], nodes: _Nodes, workspace: str | Path) -> dict[str, Any] | None:
    """Return the last run's row with its duration, and whether it is still going (and whether its process is gone:
    no process holds the workspace's lock, the rule of `plait status`, which a process id reused cannot fool)."""
    if not runs:
        return None
    run = {name: value for name, value in runs[-1].items() if name not in ("counts", "step_graph")}  # in history, edges
    live = run["status"] == "running"
    end = run.get("ended") or (time.time() if live else None)
    run["duration"] = end - run["started"] if end else None
    run["live"] = live
    if live:
        run["process_gone"] = not in_use(Path(workspace))
    run["recorded"] = sum(1 for i in nodes.tasks if nodes.run_id[i] == run["run_id"])
    return run


def _history(runs: list[dict[str, Any]], nodes: _Nodes, attempts: list[tuple[Any, ...]],
             names: list[str]) -> list[dict[str, Any]]:
    """Return every run, oldest first, with its counts: recorded by the run, or derived (see the module docstring)."""
    derived: dict[str, Counter] = defaultdict(Counter)
    source = "still current"
    last: dict[tuple[str, str], str] = {}
    if attempts and "status" in names and "run_id" in names:
        source = "attempts"
        at_node, at_run, at_status = names.index("node_id"), names.index("run_id"), names.index("status")
        for row in attempts:  # oldest first: a node's last attempt in a run is its outcome there
            last[(row[at_run], row[at_node])] = row[at_status]
    for i in nodes.tasks:  # each node's last record is its outcome in the run that wrote it
        if nodes.status[i] != "pending":
            last[(nodes.run_id[i], nodes.id[i])] = nodes.status[i]
    for (run_id, _), status in last.items():
        derived[run_id][status] += 1
    history = []
    for run in runs:
        recorded = run.get("counts")
        counts = json.loads(recorded) if recorded else {s: n for s, n in _ordered(derived[run["run_id"]]).items() if n}
        end = run.get("ended")
        history.append({"run_id": run["run_id"], "started": run["started"], "ended": end, "status": run["status"],
                        "duration": end - run["started"] if end else None, "counts": counts,
                        "counts_from": "run" if recorded else source})
    return history


def _step_graph(plan: Plan | None, runs: list[dict[str, Any]],
                nodes: _Nodes) -> tuple[list[tuple[str, str | None, str]], list[tuple[str, str, str]], list[str]]:
    """Return the steps as (name, task, kind), the edges between them, and notes on where they came from.

    The steps' shape comes from `plan`, else from the last run's `runs.step_graph`, else from compiling the
    workflow file it recorded; steps the ledger has and that shape lacks are added without edges.
    """
    notes = []
    last = runs[-1] if runs else {}
    recorded = json.loads(last["step_graph"]) if last.get("step_graph") else None
    shape = plan.step_graph() if plan is not None else recorded
    if shape is None and last.get("source"):
        compiled, note = _compile_recorded(last)
        if compiled is None:
            notes.append(note)
        else:
            shape = compiled.step_graph()
            if compiled.digest != last.get("digest"):
                notes.append(f"the workflow file {last['source']} changed since the run: the steps' dependencies "
                             "are drawn as the file has them now")
    elif shape is None and last:
        notes.append("the ledger names no workflow file, so the steps are shown without their dependencies")
    seen = dict.fromkeys(nodes.step[i] for i in nodes.tasks)
    if shape is None:
        sizes = Counter(nodes.step[i] for i in nodes.tasks)
        return [(s, None, "batch" if sizes[s] > 1 else "single") for s in seen], [], notes
    steps = [(s["name"], s.get("task"), s.get("kind", "batch")) for s in shape]
    named = {s[0] for s in steps}
    steps += [(s, None, "batch") for s in seen if s not in named]
    edges = []
    for s in shape:
        depends = s.get("depends_on") or []
        edges += [(d, s["name"], "for_each" if d == s.get("for_each") else "depends") for d in depends]
        edges += [(d, s["name"], "after") for d in s.get("after") or [] if d not in depends]
    return steps, edges, notes


def _compile_recorded(run: Mapping[str, Any]) -> tuple[Plan | None, str | None]:
    """Compile the workflow file a run recorded, with its params; on failure return None and why."""
    from plait.compiler import WorkflowError, compile_workflow

    try:
        return compile_workflow(run["source"], json.loads(run.get("params") or "{}")), None
    except (WorkflowError, OSError, ValueError) as err:
        first = str(err).splitlines()[0].removeprefix("error: ") if str(err) else type(err).__name__
        return None, (f"the steps are shown without their dependencies: the workflow file {run['source']} does not "
                      f"compile now ({first})")


def _step_stats(steps: Iterable[tuple[str, str | None, str]], nodes: _Nodes) -> list[dict[str, Any]]:
    """Return per step: counts by status, retried, durations (total, mean, p50, p95, max, span), slowest nodes."""
    by_step: dict[str, list[int]] = defaultdict(list)
    for i in nodes.tasks:
        by_step[nodes.step[i]].append(i)
    table = []
    for name, task, kind in steps:
        members = by_step.get(name, [])
        counts = _ordered(Counter(nodes.status[i] for i in members))
        timed = [(d, nodes.id[i]) for i in members if (d := nodes.duration(i)) is not None]
        durations = sorted(d for d, _ in timed)
        starts = [nodes.started[i] for i in members if nodes.status[i] in RAN and nodes.started[i] is not None]
        ends = [nodes.ended[i] for i in members if nodes.status[i] in RAN and nodes.ended[i] is not None]
        table.append({
            "name": name, "task": task, "kind": kind, "nodes": len(members), **counts,
            "retried": sum(1 for i in members if (nodes.attempts[i] or 0) > 1),
            "duration": _summary(durations, (max(ends) - min(starts)) if starts and ends else None),
            "slowest": [{"id": node_id, "seconds": d} for d, node_id in heapq.nlargest(SLOWEST, timed)],
        })
    return table


def _summary(durations: list[float], span: float | None) -> dict[str, float] | None:
    """Return total, mean, p50, p95, max of sorted durations, and the step's wall span; None when none ran."""
    if not durations:
        return None
    total = math.fsum(durations)
    return {"total": total, "mean": total / len(durations), "p50": _rank(durations, 0.50),
            "p95": _rank(durations, 0.95), "max": durations[-1], "span": span}


def _rank(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of a sorted list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _failures(nodes: _Nodes, attempts: list[tuple[Any, ...]], names: list[str]) -> list[dict[str, Any]]:
    """Return the failed task nodes in completion order: error record, traceback, output, and (from an attempts
    table) every attempt."""
    failed = [i for i in nodes.tasks if nodes.status[i] == "failed"]
    tries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if attempts:
        wanted = {nodes.id[i] for i in failed}
        at_node = names.index("node_id")
        for row in attempts:
            if row[at_node] in wanted:
                entry = dict(zip(names, row))
                entry["error"] = _json(entry.get("error"))
                entry["output"] = _json(entry.get("output"))
                tries[row[at_node]].append(entry)
    found = []
    for i in failed:
        node_id = nodes.id[i]
        error = _json(nodes.error[i]) or {}
        output = _json(nodes.output[i]) or {k: error[k] for k in _OUTPUT_KEYS if error.get(k)}
        if node_id in tries:  # the earlier attempts, then the last (the node's own record)
            tries[node_id].append({"node_id": node_id, "run_id": nodes.run_id[i], "attempt": nodes.attempts[i],
                                   "status": "failed", "started": nodes.started[i], "ended": nodes.ended[i],
                                   "worker": nodes.worker[i], "reason": nodes.reason[i], "error": error,
                                   "output": _json(nodes.output[i])})
        found.append({
            "id": node_id, "step": nodes.step[i], "error_type": error.get("error_type"), "error": error.get("error"),
            "traceback": error.get("traceback"), "output": output or None, "attempts": nodes.attempts[i],
            "started": nodes.started[i], "ended": nodes.ended[i], "run": nodes.run_id[i],
            "worker": nodes.worker[i] or UNKNOWN_WORKER, "reason": nodes.reason[i], "record": error,
            "tries": tries.get(node_id, []),
        })
    return found


def _json(text: str | None) -> Any:
    """Decode a JSON column; text that is not JSON comes back as it is."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
