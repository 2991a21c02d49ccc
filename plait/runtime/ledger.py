"""The state ledger: one SQLite database per workspace, one row per node, written only by the parent.

Decisions:
- WAL mode, so `plait status` reads while a run writes, and `synchronous=NORMAL`: a committed
  transaction survives the process being killed at any instant (it is in the WAL); only a power
  loss may take the last transactions back, never corrupt the file.
- Outcomes are written in batches, one transaction per flush (the scheduler flushes every few
  hundred outcomes or fraction of a second), so trivial nodes cost microseconds of ledger time;
  what a flush committed is never lost, and what a kill prevented from being flushed runs again.
- Many rows go in as statements of `ROWS_PER_STATEMENT` rows each (`VALUES (…), (…), …`), not
  `executemany`: Python's sqlite3 releases the GIL around each step of a statement, so one row
  per step hands the GIL back and forth once per row, and the writer thread then crawls while
  the scheduler's thread is busy; a statement of a hundred rows is one step, run without the GIL.
  It also halves SQLite's own work per row (docs/performance.md).
- Keys are stored as JSON, so a numeric key comes back a number.
- `seq` orders outcomes by completion across runs: `processed` lists keys in that order.
- Rows of nodes that left the plan (an item removed from a glob) are kept, marked `in_plan = 0`:
  nothing recorded is deleted, and status shows only the current plan.
- The `basis` row of `meta` says the ledger holds one plan whole and up to date: every node of
  the plan with that basis has a row, and every such row that succeeded holds the fingerprint
  that plan gives it. A run that finds every succeeded row's fingerprint still current writes its
  plan's basis as it starts (in the transaction that adds the new rows); any other run removes it.
  A resume of that very plan then reads only the rows that did not succeed (see `previous`).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LEDGER_NAME", "STATE_DIR", "Ledger", "LedgerError", "NodeRecord", "Prior", "state_dir", "unfinished"]

LEDGER_NAME = "ledger.db"
STATE_DIR = ".plait"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, digest TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, ended REAL, status TEXT NOT NULL, source TEXT, params TEXT
);
CREATE TABLE IF NOT EXISTS steps (name TEXT PRIMARY KEY, parts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, step TEXT NOT NULL, key TEXT, kind TEXT NOT NULL DEFAULT 'task',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, fingerprint TEXT, result TEXT, error TEXT, note TEXT,
    started REAL, ended REAL, run_id TEXT, seq INTEGER, in_plan INTEGER NOT NULL DEFAULT 1
);
"""



class NodeRecord(NamedTuple):
    """One node's outcome as the ledger records it.

    Built by name where nodes settle one by one; where a whole chunk settles at once its rows are
    zipped from columns in this field order (`NodeRecord.columns`), which the ledger takes as the same.
    """

    node_id: str
    status: str
    attempts: int
    fingerprint: str | None
    result: str | None  # JSON text
    error: str | None  # JSON text of the error record
    note: str | None
    started: float | None
    ended: float | None

    @staticmethod
    def columns(node_id: Iterable[str], status: Iterable[str], attempts: Iterable[int], fingerprint: Iterable[Any],
                result: Iterable[Any], error: Iterable[Any], note: Iterable[Any], started: Iterable[Any],
                ended: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """Return records zipped from columns (plain tuples in NodeRecord's field order: no object per row)."""
        return zip(node_id, status, attempts, fingerprint, result, error, note, started, ended)


class Prior(NamedTuple):
    """What the ledger holds of a node from earlier runs: what the resume decision reads."""

    status: str
    fingerprint: str | None
    in_plan: bool  # False: the node had left the plan (its row is kept)
    note: str | None = None  # why a node is pending ("interrupted"), or skipped
    error: str | None = None  # a failed node's error record, as JSON text

ROWS_PER_STATEMENT = 100  # 902 parameters a statement, under SQLite's oldest limit of 999
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


@functools.cache
def _insert_nodes_sql(rows: int) -> str:
    """Return an INSERT of `rows` new node rows (node_id, step, key JSON, kind)."""
    return "INSERT INTO nodes (node_id, step, key, kind) VALUES " + ",".join(["(?,?,?,?)"] * rows)


@functools.cache
def _record_sql(rows: int) -> str:
    """Return an UPDATE writing `rows` NodeRecords; parameters: run_id, the first record's seq, the records."""
    values = ",".join(f"(?,?,?,?,?,?,?,?,?,{position})" for position in range(rows))
    return ("UPDATE nodes SET status = r.column2, attempts = r.column3, fingerprint = r.column4, result = r.column5, "
            "error = r.column6, note = r.column7, started = r.column8, ended = r.column9, run_id = ?1, "
            f"seq = ?2 + r.column10 FROM (VALUES {values}) AS r WHERE nodes.node_id = r.column1")


def state_dir(workspace: Path) -> Path:
    """Return the folder where plait keeps a workspace's ledger, lock and logs."""
    return workspace / STATE_DIR


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
            row = db.execute("SELECT EXISTS (SELECT 1 FROM nodes WHERE in_plan = 1 AND status != 'succeeded')")
            return bool(row.fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return True


class LedgerError(Exception):
    """The ledger cannot be used: corrupt, from another workflow, or not writable."""


def _readable(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SQLite's "database disk image is malformed" while reading into a LedgerError."""

    @functools.wraps(method)
    def read(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    return read


class Ledger:
    """The SQLite state of one workspace."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                self.db.commit()
            self._seq = self.db.execute("SELECT coalesce(max(seq), 0) FROM nodes").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    def damaged(self, err: sqlite3.DatabaseError) -> LedgerError:
        """Return the error for a ledger SQLite cannot read, with the way out."""
        return LedgerError(f"the ledger {self.path} cannot be used: {err}. If it is damaged, move it away "
                           "(or run with --fresh) to start over")

    def close(self) -> None:
        """Close the connection (everything written is already committed)."""
        self.db.close()

    @_readable
    def workflow(self) -> str | None:
        """Return the name of the workflow this ledger belongs to, or None when new."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'workflow'").fetchone()
        return row[0] if row else None

    def claim(self, workflow: str) -> None:
        """Tie a new ledger to `workflow`; raise LedgerError when it belongs to another one."""
        owner = self.workflow()
        if owner is None:
            try:
                with self.db:
                    self.db.execute("INSERT INTO meta VALUES ('workflow', ?)", (workflow,))
            except sqlite3.Error as err:
                raise LedgerError(f"writing the ledger failed: {err}") from err
        elif owner != workflow:
            raise LedgerError(f"the workspace's ledger {self.path} belongs to workflow '{owner}', not '{workflow}'; "
                              "use another --workspace, or --fresh to start this one over")

    @_readable
    def previous(self, unfinished_only: bool = False) -> dict[str, Prior]:
        """Return {node_id: Prior} for every recorded node.

        `unfinished_only`: only the plan's rows that did not succeed, for a resume of the plan
        whose basis the ledger holds (the rest succeeded, and their fingerprints are current).
        """
        where = " WHERE in_plan = 1 AND status != 'succeeded'" if unfinished_only else ""
        rows = self.db.execute("SELECT node_id, status, fingerprint, in_plan = 1, note, "
                               "CASE WHEN status = 'failed' THEN error END FROM nodes" + where)
        return {r[0]: Prior(*r[1:]) for r in rows}

    @_readable
    def step_parts(self) -> dict[str, Any]:
        """Return {step: the parts of its signature} as the last run that recorded them saw them."""
        return {name: json.loads(parts) for name, parts in self.db.execute("SELECT name, parts FROM steps")}

    @_readable
    def basis(self) -> str | None:
        """Return the basis of the plan this ledger holds whole and up to date, or None (see the module docstring)."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'basis'").fetchone()
        return row[0] if row else None

    @_readable
    def fingerprints(self, node_ids: Iterable[str]) -> dict[str, str | None]:
        """Return the recorded fingerprints of the given nodes."""
        return dict(self._column_of("fingerprint", node_ids))

    def begin_run(self, run_id: str, workflow: str, digest: str, source: str | None, params: Mapping[str, Any],
                  pid: int, planned: Sequence[tuple[str, str, Any, str]], previous: Mapping[str, Prior],
                  basis: str | None = None, step_parts: Mapping[str, Any] | None = None) -> None:
        """Record a run's start and give every planned node a row (new ones pending); mark rows that left the plan.

        `basis` replaces the ledger's basis (None removes it), and `step_parts` the recorded parts of
        those steps' signatures, in the same transaction.
        """
        planned_ids = {p[0] for p in planned}
        gone = [(n,) for n, prior in previous.items() if prior.in_plan and n not in planned_ids]
        back = [(n,) for n, prior in previous.items() if not prior.in_plan and n in planned_ids]
        new = [(nid, step, _key_json(key), kind) for nid, step, key, kind in planned if nid not in previous]
        with self.db:
            self.db.execute("INSERT INTO runs (run_id, workflow, digest, pid, started, status, source, params) "
                            "VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                            (run_id, workflow, digest, pid, time.time(), source, json.dumps(params)))
            self.db.execute("DELETE FROM meta WHERE name = 'basis'")
            if basis is not None:
                self.db.execute("INSERT INTO meta VALUES ('basis', ?)", (basis,))
            parts = [(name, json.dumps(value, sort_keys=True)) for name, value in (step_parts or {}).items()]
            self.db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?)", parts)
            for start in range(0, len(new), ROWS_PER_STATEMENT):
                rows = new[start:start + ROWS_PER_STATEMENT]
                self.db.execute(_insert_nodes_sql(len(rows)), list(chain.from_iterable(rows)))
            self.db.executemany("UPDATE nodes SET in_plan = 0 WHERE node_id = ?", gone)
            self.db.executemany("UPDATE nodes SET in_plan = 1 WHERE node_id = ?", back)

    def add_nodes(self, planned: Sequence[tuple[str, str, Any, str]]) -> None:
        """Add rows for nodes created during the run (a deferred step's items), keeping existing ones.

        A plan that grows as it runs is not one the ledger holds whole: its basis goes.
        """
        with self.db:
            self.db.execute("DELETE FROM meta WHERE name = 'basis'")
            self.db.executemany("INSERT OR IGNORE INTO nodes (node_id, step, key, kind) VALUES (?, ?, ?, ?)",
                                [(nid, step, _key_json(key), kind) for nid, step, key, kind in planned])
            self.db.executemany("UPDATE nodes SET kind = ? WHERE node_id = ?", [(p[3], p[0]) for p in planned])
            self.db.executemany("UPDATE nodes SET in_plan = 1 WHERE node_id = ?", [(p[0],) for p in planned])

    def record(self, run_id: str, records: Sequence[NodeRecord]) -> None:
        """Write node outcomes in one transaction; a node recorded twice keeps its last record."""
        first = self._seq + 1
        self._seq += len(records)
        if _UPDATE_FROM and len({rec[0] for rec in records}) == len(records):
            with self.db:
                for start in range(0, len(records), ROWS_PER_STATEMENT):
                    rows = records[start:start + ROWS_PER_STATEMENT]
                    self.db.execute(_record_sql(len(rows)), [run_id, first + start, *chain.from_iterable(rows)])
            return
        rows = [(*rec[1:], run_id, first + i, rec[0]) for i, rec in enumerate(records)]
        with self.db:  # the same node twice (rare), or an SQLite without UPDATE … FROM: a row per step, in order
            self.db.executemany(
                "UPDATE nodes SET status = ?, attempts = ?, fingerprint = ?, result = ?, error = ?, note = ?, "
                "started = ?, ended = ?, run_id = ?, seq = ? WHERE node_id = ?", rows)

    def end_run(self, run_id: str, status: str) -> None:
        """Record how a run ended."""
        with self.db:
            self.db.execute("UPDATE runs SET ended = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    @_readable
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
            yield from self.db.execute(f"SELECT node_id, {column} FROM nodes WHERE node_id IN ({marks})", chunk)

    @_readable
    def runs_started(self) -> int:
        """Return how many runs this ledger has recorded (a run is recorded once it has begun)."""
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    @_readable
    def last_run(self) -> Mapping[str, Any] | None:
        """Return the newest run's row as a dict, or None."""
        cur = self.db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1")
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    @_readable
    def nodes(self) -> list[tuple[str, str, Any, str, str, int, Any]]:
        """Return (node_id, step, key, kind, status, attempts, error JSON) for the plan's nodes, in completion order."""
        return self.db.execute("SELECT node_id, step, key, kind, status, attempts, error FROM nodes WHERE in_plan = 1 "
                               "ORDER BY seq IS NULL, seq, rowid").fetchall()


def _key_json(key: Any) -> str:
    """Return a key as JSON; an integer or a string skips the encoder (100,000 keys a run)."""
    if type(key) is int:
        return str(key)
    if type(key) is str:
        return encode_basestring(key)
    return json.dumps(key)
