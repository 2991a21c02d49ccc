"""The state ledger: one SQLite database per workspace, one row per node that settled, written only by the parent.

The ledger is read and written in parts, each a module that says what it decides:
- plait.runtime.ledger_access: opening the file (WAL, read-only readers), and what SQLite's
  failures become (`LedgerError`, naming a full disk, a damaged file, a ledger deleted under a run);
- plait.runtime.ledger_schema: how a row is kept (compactly, in `settled`), older ledgers upgraded;
- plait.runtime.ledger_writes: a run's start and end, its plan, each node's row once, when it
  settles, and what a dead run's journals hold;
- plait.runtime.ledger_reports: the columns a report or `plait logs` names, and attempts;
- plait.runtime.ledger_rows: the records handed over (`NodeRecord`, `Attempt`, `Prior`);
- plait.runtime.planned: the last run's plan, kept compactly; a node of it without a row reads as
  pending, never run, wherever nodes are read (`previous`, `nodes`, `node_rows`, `unrecorded`).
This module is the `Ledger` made of them, and what the resume and `plait status` read.

Decisions:
- The queries that read every row (status, the resume decision) read `settled`; the rest read
  the `nodes` view, which gives a row back as it was written. Keys are stored as JSON, so a
  numeric key comes back a number; `processed` lists keys in the order of `seq` (completion).
- The `basis` row of `meta` says the ledger holds one plan whole and up to date: every node of
  the plan with that basis has a row, and every such row that succeeded holds the fingerprint
  that plan gives it (plait.runtime.ledger_writes keeps it). A resume of that very plan then reads
  only the rows that did not succeed (see `previous`).
- The `files` table is a cache of tracked files' content hashes by size and modification time
  (plait.runtime.tracked_files): a run writes what it learned as it ends. Paths are kept as
  bytes, so a file name that is not UTF-8 is kept as it is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from plait.runtime.ledger_access import LedgerError, readable
from plait.runtime.ledger_reports import ORDER, ReportReads
from plait.runtime.ledger_rows import NEVER_RAN, Attempt, NodeRecord, Prior
from plait.runtime.ledger_schema import COUNTED, STATUS, has_tally, label
from plait.runtime.ledger_writes import LAST_MOMENT, LedgerWrites
from plait.runtime.planned import IN_PLAN
from plait.runtime.planned import unrecorded as kept_unrecorded
from plait.workspace import state_dir

__all__ = ["LEDGER_NAME", "Attempt", "Ledger", "LedgerError", "NodeRecord", "Prior", "unfinished", "workspace_ledger"]

LEDGER_NAME = "ledger.db"


def unfinished(path: Path) -> bool:
    """Guess, before reading the ledger, whether a run will have work: no ledger yet, or unfinished nodes.

    A node of the last plan that did not succeed (failed, skipped, never run) runs again. A guess
    only: new and changed nodes are not seen here, and a ledger that cannot be read says yes (the
    run then reports what is wrong with it). It scans the statuses, an index-free pass over the rows.
    """
    if not path.exists():
        return True
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            try:
                row = db.execute("SELECT EXISTS (SELECT 1 FROM settled WHERE in_plan = 1 AND status != 1)")
            except sqlite3.OperationalError:  # a ledger of an earlier schema, which the run upgrades: say yes
                return True
            if row.fetchone()[0]:
                return True
            row = db.execute(f"SELECT {IN_PLAN} < (SELECT coalesce(sum(size), 0) FROM plan)")
            return bool(row.fetchone()[0])  # a node of the plan without a row never ran
        finally:
            db.close()
    except sqlite3.Error:
        return True


def workspace_ledger(workspace: str | Path) -> Ledger:
    """Open a workspace's ledger read-only, for what reads its runs (status, logs, runs, the report).

    Raises LedgerError when the workspace has none, naming the way out.
    """
    path = state_dir(Path(workspace)) / LEDGER_NAME
    if not path.exists():
        raise LedgerError(f"no plait run found in workspace '{workspace}' (no {path}); "
                          "run `plait run WF.yaml --workspace DIR` first, or pass the right --workspace")
    return Ledger(path, readonly=True)


class Ledger(LedgerWrites, ReportReads):
    """The SQLite state of one workspace."""

    @readable
    def workflow(self) -> str | None:
        """Return the name of the workflow this ledger belongs to, or None when new."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'workflow'").fetchone()
        return row[0] if row else None

    def claim(self, workflow: str) -> None:
        """Tie a new ledger to `workflow`; raise LedgerError when it belongs to another one."""
        owner = self.workflow()
        if owner is None:
            self._claim(workflow)
        elif owner != workflow:
            raise LedgerError(f"the workspace's ledger {self.path} belongs to workflow '{owner}', not '{workflow}'; "
                              "use another --workspace, or --fresh to start this one over")

    @readable
    def previous(self, unfinished_only: bool = False) -> dict[str, Prior]:
        """Return {node_id: Prior} for every recorded node, and for the kept plan's nodes without a row (pending).

        `unfinished_only`: only the plan's rows that did not succeed, for a resume of the plan
        whose basis the ledger holds (the rest succeeded, and their fingerprints are current), and
        the kept plan's nodes without a row (none when it has a basis: see `begin_run`).
        """
        where = " WHERE in_plan = 1 AND status != 1" if unfinished_only else ""
        rows = self.db.execute(f"SELECT node_id, {STATUS}, fingerprint, in_plan = 1, note, "
                               "CASE WHEN status = 2 THEN error END FROM settled" + where)
        found = {r[0]: Prior(*r[1:]) for r in rows}
        found.update(dict.fromkeys(kept_unrecorded(self.db), NEVER_RAN))
        return found

    @readable
    def unrecorded(self) -> dict[str, tuple[str, Any, str]]:
        """Return the nodes of the kept plan that have no row yet, in plan order: {node_id: (step, key, kind)}."""
        return kept_unrecorded(self.db)

    @readable
    def step_parts(self) -> dict[str, Any]:
        """Return {step: the parts of its signature} as the last run that recorded them saw them."""
        return {name: json.loads(parts) for name, parts in self.db.execute("SELECT name, parts FROM steps")}

    @readable
    def file_hashes(self) -> dict[str, tuple[int, int, str]]:
        """Return the cache of tracked files: {path: (size, mtime_ns, hash)} (empty in a ledger from before it)."""
        try:
            rows = self.db.execute("SELECT path, size, mtime_ns, hash FROM files")
            return {path.decode("utf-8", "surrogatepass"): tuple(rest) for path, *rest in rows}
        except sqlite3.OperationalError:  # a read-only ledger of an earlier schema: no such table
            return {}

    @readable
    def basis(self) -> str | None:
        """Return the basis of the plan this ledger holds whole and up to date, or None (see the module docstring)."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'basis'").fetchone()
        return row[0] if row else None

    @readable
    def fingerprints(self, node_ids: Iterable[str]) -> dict[str, bytes | str | None]:
        """Return the recorded fingerprints of the given nodes, packed (plait.runtime.fingerprint)."""
        return dict(self._column_of("fingerprint", node_ids))

    @readable
    def results(self, node_ids: Iterable[str]) -> dict[str, Any]:
        """Return the stored results of the given nodes."""
        return {nid: json.loads(result) if result is not None else None
                for nid, result in self._column_of("result", node_ids)}

    def _column_of(self, column: str, node_ids: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """Yield (node_id, column) for the given nodes that have a row, 500 a query (under SQLite's parameter limit)."""
        ids = list(node_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"SELECT node_id, {column} FROM settled WHERE node_id IN ({marks})", chunk)

    @readable
    def dead_runs(self) -> list[tuple[str, float]]:
        """Return (run id, its last recorded moment) of the runs recorded as running: called by a run holding the
        workspace, they are runs that died without ending."""
        return self.db.execute(f"SELECT run_id, {LAST_MOMENT} FROM runs WHERE status = 'running'").fetchall()

    @readable
    def last_moment(self, run_id: str) -> float | None:
        """Return the last moment a run recorded: its last node's end, or its start."""
        row = self.db.execute(f"SELECT {LAST_MOMENT} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @readable
    def runs_started(self) -> int:
        """Return how many runs this ledger has recorded (a run is recorded once it has begun)."""
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    @readable
    def last_run(self) -> Mapping[str, Any] | None:
        """Return the newest run's row as a dict (its counts decoded, its step graph left out), or None."""
        cur = self.db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        run = dict(zip([c[0] for c in cur.description], row))
        run.pop("step_graph", None)
        if run.get("counts"):
            run["counts"] = json.loads(run["counts"])
        return run

    @readable
    def nodes(self) -> list[tuple[str, str, Any, str, str, int, Any, str | None]]:
        """Return (node_id, step, key, kind, status, attempts, error JSON, reason) for the plan's nodes, in
        completion order (nodes never run last, in plan order)."""
        return self.node_rows(("node_id", "step", "key", "kind", "status", "attempts", "error", "reason"))

    @readable
    def counted_steps(self) -> list[int]:
        """Return the numbers of the steps with task nodes that have a row, as the ledger counts them (its `tally`);
        [] for a ledger of an earlier schema, which keeps no counts."""
        if not has_tally(self.db):
            return []
        return [step for (step,) in self.db.execute("SELECT step FROM tally WHERE nodes > 0")]

    @readable
    def step_counts(self) -> list[tuple[str, int, int, int, int, int]]:
        """Return (step, nodes, succeeded, failed, retried, skipped) of each step's task nodes that have a row, steps in
        the order `nodes` first lists one of theirs: what a summary counts.

        The counts are the `tally`'s, a row a step (plait.runtime.ledger_schema); only a step whose
        least seq is not known there is looked for among the rows, and a ledger no run of this
        plait upgraded yet is counted by SQLite from its rows. The steps are put in order here, not
        by SQLite: ordering by the aggregates made SQLite read every row's node ID.
        """
        if has_tally(self.db):
            rows = self.db.execute(f"SELECT {label('step')}, nodes, succeeded, failed, retried, skipped, first, step "
                                   "FROM tally WHERE nodes > 0").fetchall()
            unknown = [row[7] for row in rows if row[6] is None]
            if unknown:
                firsts = dict(self.db.execute(f"SELECT step, min(seq) FROM settled WHERE {COUNTED} AND step IN "
                                              f"({','.join(map(str, unknown))}) GROUP BY step"))
                rows = [row if row[6] is not None else (*row[:6], firsts.get(row[7]), row[7]) for row in rows]
        else:
            rows = self.db.execute(
                f"SELECT {label('step')}, count(*), sum(status = 1), sum(status = 2), sum(attempts > 1), "
                f"sum(status = 3), min(seq), step FROM settled WHERE {COUNTED} GROUP BY step").fetchall()
        unordered = [row[7] for row in rows if row[6] is None]  # no row of theirs has a seq: by their first node ID
        firsts = dict(self.db.execute(f"SELECT step, min(node_id) FROM settled WHERE step IN "
                                      f"({','.join(map(str, unordered))}) GROUP BY step")) if unordered else {}
        rows.sort(key=lambda row: (row[6] is None, row[6] or 0, firsts.get(row[7], "")))
        return [row[:6] for row in rows]

    @readable
    def failed_nodes(self) -> list[tuple[str, str | None]]:
        """Return (node_id, error JSON) of the plan's failed nodes, in completion order."""
        return self.db.execute(f"SELECT node_id, error FROM settled WHERE in_plan = 1 AND status = 2 {ORDER}"
                               ).fetchall()
