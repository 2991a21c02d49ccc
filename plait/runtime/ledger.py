"""The state ledger: one SQLite database per workspace, one row per node that settled, written only by the parent.

Decisions:
- A node's row is written once, when it settles (`record`: inserted, or updated when an earlier
  run left one), never as a pending row when the run begins: the plan says which nodes there are.
  The ledger keeps the last run's plan compactly (the `plan` table, plait.runtime.planned), and a
  node of it without a row reads as pending, never run, wherever nodes are read (`previous`,
  `nodes`, `node_rows`, `unrecorded`). One write per node instead of two halves the ledger's
  share of a large run (docs/performance.md).
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
- A row is kept compactly (plait.runtime.ledger_schema): in the `settled` table, its step, run
  and worker as numbers standing for names, its status as a number, its fingerprint packed; the
  `nodes` view reads it back as written. The queries that read every row (status, the resume
  decision) read `settled`; the rest read `nodes`. Rows go in with their names as numbers
  already (`_labels`), so SQLite looks nothing up per row.
- Keys are stored as JSON, so a numeric key comes back a number.
- `seq` orders outcomes by completion across runs: `processed` lists keys in that order.
- Rows of nodes that left the plan (an item removed from a glob) are kept, marked `in_plan = 0`:
  nothing recorded is deleted, and status shows only the current plan.
- The `basis` row of `meta` says the ledger holds one plan whole and up to date: every node of
  the plan with that basis has a row, and every such row that succeeded holds the fingerprint
  that plan gives it. A run that finds every succeeded row's fingerprint still current keeps its
  plan's basis as it starts when every node has a row already, else as it ends if by then they
  all have one (`_keep_basis`); any other run removes it. A resume of that very plan then reads
  only the rows that did not succeed (see `previous`).
- The `files` table is a cache of tracked files' content hashes by size and modification time
  (plait.runtime.tracked_files): a run writes what it learned as it ends. Paths are kept as
  bytes, so a file name that is not UTF-8 is kept as it is.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from plait.masking import mask, mask_records
from plait.runtime.ledger_schema import ENDED, STATUS, emulate, label, status_code, stored_ended, stored_key, upgrade
from plait.runtime.planned import pack, unpack
from plait.workspace import state_dir

__all__ = ["LEDGER_NAME", "Attempt", "Ledger", "LedgerError", "NodeRecord", "Prior", "unfinished", "workspace_ledger"]

LEDGER_NAME = "ledger.db"

class NodeRecord(NamedTuple):
    """One node's outcome as the ledger records it: its last attempt.

    Built by name where nodes settle one by one; where a whole chunk settles at once its rows are
    zipped from columns in this field order (`NodeRecord.columns`), which the ledger takes as the same.
    """

    node_id: str
    status: str
    attempts: int
    fingerprint: bytes | str | None  # packed (plait.runtime.fingerprint)
    result: str | None  # JSON text
    error: str | None  # JSON text of the error record
    note: str | None
    started: float | None
    ended: float | None
    worker: str | None = None  # who ran the attempt: a process (or thread) label
    reason: str | None = None  # why the node ran: a decision's reason, "reason: detail"
    output: str | None = None  # JSON {"stdout": tail, "stderr": tail, ...} of the attempt, None when silent
    step: str | None = None  # the node's step, key and kind: its row is written when it settles, not before
    key: Any = None  # (None is refused for a node without a row: the step names it)
    kind: str = "task"

    @staticmethod
    def columns(node_id: Iterable[str], status: Iterable[str], attempts: Iterable[int], fingerprint: Iterable[Any],
                result: Iterable[Any], error: Iterable[Any], note: Iterable[Any], started: Iterable[Any],
                ended: Iterable[Any], worker: Iterable[Any], reason: Iterable[Any],
                output: Iterable[Any], step: Iterable[str], key: Iterable[Any],
                kind: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """Return records zipped from columns (plain tuples in NodeRecord's field order: no object per row)."""
        return zip(node_id, status, attempts, fingerprint, result, error, note, started, ended, worker, reason, output,
                   step, key, kind)


class Attempt(NamedTuple):
    """An attempt that is not a node's last: a failure that was retried (the `attempts` table)."""

    node_id: str
    run_id: str
    attempt: int
    status: str
    started: float | None
    ended: float | None
    worker: str | None
    reason: str | None
    error: str | None  # JSON text
    output: str | None  # JSON text


class Prior(NamedTuple):
    """What the ledger holds of a node from earlier runs: what the resume decision reads."""

    status: str
    fingerprint: bytes | str | None  # packed, as the run holds it (plait.runtime.fingerprint)
    in_plan: bool  # False: the node had left the plan (its row is kept)
    note: str | None = None  # why a node is pending ("interrupted"), or skipped
    error: str | None = None  # a failed node's error record, as JSON text

_NEVER_RAN = Prior("pending", None, True)  # a node of the kept plan that has no row
# How many rows the plan's nodes have: all rows, less those of nodes that left the plan (the `gone` index, partial:
# counting either reads an index, not the table).
_IN_PLAN = "((SELECT count(*) FROM settled) - (SELECT count(*) FROM settled WHERE in_plan = 0))"
_TEXT_COLUMNS = (4, 5, 6, 11)  # a NodeRecord's result, error, note and output
_WORKER, _STEP, _KEY = 9, 12, 13  # a NodeRecord's worker, step and key
ROWS_PER_STATEMENT = 60  # 962 parameters a statement, under SQLite's oldest limit of 999
_UPSERT = sqlite3.sqlite_version_info >= (3, 24, 0)
_OUTCOME = ("status", "attempts", "fingerprint", "result", "error", "note", "started", "ended", "worker", "reason",
            "output", "kind", "run", "seq", "in_plan")
_ORDER = "ORDER BY seq IS NULL, seq, node_id"  # completion order (rows of schema 2's pending nodes have no seq)


@functools.cache
def _record_sql(rows: int, quote: bool) -> str:
    """Return the statement writing `rows` NodeRecords: each node's row inserted, or updated when it has one.

    Parameters: the run's label, the first record's seq, then the records, their worker and step
    as labels (`Ledger._labels`). `quote`: the records hold keys as they are, and SQLite writes
    their JSON (`json_quote`, which gives what `_key_json` does for a text or a number); else they
    hold it already. The row is kept as plait.runtime.ledger_schema says.
    """
    values = ",".join(f"(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,{position})" for position in range(rows))
    key = stored_key("r.column1", "json_quote(r.column14)" if quote else "r.column14")
    insert = ("INSERT INTO settled (node_id, status, attempts, fingerprint, result, error, note, started, ended, "
              "worker, reason, output, step, key, kind, run, seq, in_plan) "
              f"SELECT r.column1, {status_code('r.column2')}, r.column3, r.column4, r.column5, r.column6, r.column7, "
              f"r.column8, {stored_ended('r.column8', 'r.column9')}, r.column10, r.column11, r.column12, r.column13, "
              f"{key}, nullif(r.column15, 'task'), ?1, ?2 + r.column16, 1 FROM (VALUES {values}) AS r WHERE 1")
    if not _UPSERT:
        return insert.replace("INSERT", "INSERT OR REPLACE", 1)
    return insert + " ON CONFLICT (node_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _OUTCOME)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a ledger for reading only; as an immutable file on a read-only disk.

    SQLite reads a WAL database through a shared-memory file beside it, which it cannot create on a
    read-only disk; nothing can be writing a ledger there, so reading it as immutable is sound.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK) and not _read_only_mount(path):
            raise
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=30)
    return db


def _read_only_mount(path: Path) -> bool:
    """Say whether the filesystem holding `path` is mounted read-only (root may write anywhere else)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _disk_trouble(err: sqlite3.Error) -> bool:
    """Say whether SQLite's error is the disk's (full, read-only, I/O), not the ledger's content."""
    text = str(err)
    return any(word in text for word in ("full", "readonly", "read-only", "I/O"))


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
            row = db.execute(f"SELECT {_IN_PLAN} < (SELECT coalesce(sum(size), 0) FROM plan)")
            return bool(row.fetchone()[0])  # a node of the plan without a row never ran
        finally:
            db.close()
    except sqlite3.Error:
        return True


class LedgerError(Exception):
    """The ledger cannot be used: corrupt, from another workflow, or not writable."""


def workspace_ledger(workspace: str | Path) -> Ledger:
    """Open a workspace's ledger read-only, for what reads its runs (status, logs, runs, the report).

    Raises LedgerError when the workspace has none, naming the way out.
    """
    path = state_dir(Path(workspace)) / LEDGER_NAME
    if not path.exists():
        raise LedgerError(f"no plait run found in workspace '{workspace}' (no {path}); "
                          "run `plait run WF.yaml --workspace DIR` first, or pass the right --workspace")
    return Ledger(path, readonly=True)


def _readable(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SQLite's errors while reading ("database disk image is malformed", ...) into a LedgerError."""

    @functools.wraps(method)
    def read(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    return read


def _writing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Check the ledger is still the file it opened, then write; turn SQLite's errors into a LedgerError that says why.

    A task may delete or replace `.plait/ledger.db` under a run (a shell command can do anything):
    SQLite would go on writing into the deleted file and the run would end "succeeded" with
    nothing kept. So every write first checks that the path still names the file this connection
    opened (one `stat` a commit), and stops the run loudly when it does not.
    """

    @functools.wraps(method)
    def write(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        self._check_identity()
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise self.cannot_write(err) from err

    return write


class Ledger:
    """The SQLite state of one workspace."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None
        self._seq: int | None = None  # the last seq written: read when a first outcome is (a scan of every row)
        self._label_ids: dict[str, int] = {}  # the labels known to be in the ledger: {name: number}
        try:
            if readonly:
                self.db = _connect_readonly(self.path)
                emulate(self.db)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                upgrade(self.db)
                stat = os.stat(self.path)
                self._identity = (stat.st_dev, stat.st_ino)
        except sqlite3.DatabaseError as err:
            raise (self.cannot_write(err) if not readonly and _disk_trouble(err) else self.damaged(err)) from err

    def _next_seqs(self, count: int) -> int:
        """Take `count` seqs for outcomes about to be written; return the first."""
        if self._seq is None:
            self._seq = self.db.execute("SELECT coalesce(max(seq), 0) FROM settled").fetchone()[0]
        first = self._seq + 1
        self._seq += count
        return first

    def _labels(self, names: Iterable[str]) -> dict[str, int]:
        """Return {name: its label's number} for `names`, adding the labels the ledger lacks (in the caller's
        transaction). The numbers are kept, so a run's steps, workers and run ID are looked up once."""
        known = self._label_ids
        missing = [(name,) for name in set(names) if name not in known]
        if missing:
            self.db.executemany("INSERT OR IGNORE INTO labels (label) VALUES (?)", missing)
            marks = ",".join("?" * len(missing))
            known.update(self.db.execute(f"SELECT label, id FROM labels WHERE label IN ({marks})",
                                         [name for (name,) in missing]))
        return known

    def damaged(self, err: sqlite3.DatabaseError) -> LedgerError:
        """Return the error for a ledger SQLite cannot read, with the way out."""
        if _disk_trouble(err):
            return LedgerError(f"the ledger {self.path} cannot be used: {err}: the disk is full, read-only or "
                               "failing (the ledger is not damaged); fix the disk and try again")
        return LedgerError(f"the ledger {self.path} cannot be used: {err}. If it is damaged, move it away "
                           "(or run with --fresh) to start over")

    def cannot_write(self, err: sqlite3.Error) -> LedgerError:
        """Return the error for a write SQLite refused, naming a full or read-only disk when that is the cause."""
        text = str(err)
        if "full" in text:
            why = f"the disk holding {self.path.parent} is full ({text}); free some space, then run again"
        elif "readonly" in text or "read-only" in text:
            why = f"{self.path} cannot be written ({text}: a read-only file or disk); make it writable, then run again"
        elif "I/O" in text:
            why = f"the disk holding {self.path.parent} failed a write ({text}: full, or failing?); then run again"
        elif isinstance(err, sqlite3.OperationalError) or "malformed" in text or "not a database" in text:
            why = f"{self.path}: {text}"
        else:
            why = text
        return LedgerError(f"writing the ledger failed: {why}: what the ledger recorded before is kept, and the "
                           "next run resumes from it")

    def _check_identity(self) -> None:
        """Raise LedgerError when the ledger's path no longer names the file this connection opened."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
            same = (stat.st_dev, stat.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            raise LedgerError(f"writing the ledger failed: {self.path} was deleted or replaced while the run was "
                              "going (by a task? tasks must leave .plait/ alone); nothing more this run does can be "
                              "recorded, so it stops")

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
            self._claim(workflow)
        elif owner != workflow:
            raise LedgerError(f"the workspace's ledger {self.path} belongs to workflow '{owner}', not '{workflow}'; "
                              "use another --workspace, or --fresh to start this one over")

    @_writing
    def _claim(self, workflow: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO meta VALUES ('workflow', ?)", (workflow,))

    @_readable
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
        found.update(dict.fromkeys(self.unrecorded(), _NEVER_RAN))
        return found

    def _planned(self) -> dict[str, tuple[str, Any, str]]:
        """Return the kept plan: {node_id: (step, key, kind)} (empty in a ledger from before it was kept)."""
        try:
            return unpack(self.db.execute("SELECT step, kind, nodes FROM plan ORDER BY part"))
        except sqlite3.OperationalError:  # a read-only ledger of an earlier schema: no such table
            return {}

    @_readable
    def unrecorded(self) -> dict[str, tuple[str, Any, str]]:
        """Return the nodes of the kept plan that have no row yet, in plan order: {node_id: (step, key, kind)}.

        The rows of the plan are some of its nodes, so when there are as many rows as the plan
        has parts' nodes, every node has one: the plan is not even read then.
        """
        try:
            rows, size = self.db.execute(f"SELECT {_IN_PLAN}, (SELECT coalesce(sum(size), 0) FROM plan)").fetchone()
        except sqlite3.OperationalError:  # a read-only ledger of an earlier schema: no plan table
            return {}
        if rows >= size:
            return {}
        planned = self._planned()
        recorded = {nid for (nid,) in self.db.execute("SELECT node_id FROM settled WHERE in_plan = 1")}
        return {nid: node for nid, node in planned.items() if nid not in recorded}

    @_readable
    def step_parts(self) -> dict[str, Any]:
        """Return {step: the parts of its signature} as the last run that recorded them saw them."""
        return {name: json.loads(parts) for name, parts in self.db.execute("SELECT name, parts FROM steps")}

    @_readable
    def file_hashes(self) -> dict[str, tuple[int, int, str]]:
        """Return the cache of tracked files: {path: (size, mtime_ns, hash)} (empty in a ledger from before it)."""
        try:
            rows = self.db.execute("SELECT path, size, mtime_ns, hash FROM files")
            return {path.decode("utf-8", "surrogatepass"): tuple(rest) for path, *rest in rows}
        except sqlite3.OperationalError:  # a read-only ledger of an earlier schema: no such table
            return {}

    @_writing
    def keep_file_hashes(self, rows: Sequence[tuple[str, int, int, str]]) -> None:
        """Record what a run learned of tracked files: (path, size, mtime_ns, hash) each."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                [(path.encode("utf-8", "surrogatepass"), *rest) for path, *rest in rows])

    @_readable
    def basis(self) -> str | None:
        """Return the basis of the plan this ledger holds whole and up to date, or None (see the module docstring)."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'basis'").fetchone()
        return row[0] if row else None

    @_readable
    def fingerprints(self, node_ids: Iterable[str]) -> dict[str, bytes | str | None]:
        """Return the recorded fingerprints of the given nodes, packed (plait.runtime.fingerprint)."""
        return dict(self._column_of("fingerprint", node_ids))

    @_writing
    def begin_run(self, run_id: str, workflow: str, digest: str, source: str | None, params: Mapping[str, Any],
                  pid: int, planned: Sequence[tuple[str, str, Any, str]], previous: Mapping[str, Prior],
                  basis: str | None = None, step_parts: Mapping[str, Any] | None = None,
                  rerun: Iterable[str] = (), step_graph: str | None = None) -> None:
        """Record a run's start and keep its plan (`planned`: node_id, step, key, kind); mark rows that left the plan.

        A node gets no row until it settles (`record`): until then the kept plan says it is pending.
        `planned` empty: the ledger holds this plan already. `basis` replaces the ledger's basis
        (None removes it) once every node of the plan has a row (else `end_run` keeps it, if they
        all have one by then), and `step_parts` the recorded parts of those steps' signatures, in
        the same transaction. The last record of each node in `rerun` (those that run again) moves
        to the attempts table, so its history stays readable.
        """
        planned_ids = {p[0] for p in planned}
        gone = [(n,) for n, prior in previous.items() if prior.in_plan and n not in planned_ids]
        back = [(n,) for n, prior in previous.items() if not prior.in_plan and n in planned_ids]
        with self.db:
            self.db.execute(_DEAD_RUNS_END)
            self.db.execute("INSERT INTO runs (run_id, workflow, digest, pid, started, status, source, params, "
                            "step_graph) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                            (run_id, workflow, digest, pid, time.time(), source, mask(json.dumps(params)), step_graph))
            self.db.executemany("INSERT INTO attempts SELECT node_id, run_id, attempts, status, started, ended, "
                                "worker, reason, error, output FROM nodes WHERE node_id = ? AND run_id IS NOT NULL "
                                "AND status IN ('succeeded', 'failed')", [(n,) for n in rerun])
            self.db.execute("DELETE FROM meta WHERE name = 'basis'")
            parts = [(name, json.dumps(value, sort_keys=True)) for name, value in (step_parts or {}).items()]
            self.db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?)", parts)
            if planned:
                self.db.execute("DELETE FROM plan")
                self.db.executemany("INSERT INTO plan (step, kind, size, nodes) VALUES (?, ?, ?, ?)", pack(planned))
            self.db.executemany("UPDATE settled SET in_plan = 0 WHERE node_id = ?", gone)
            self.db.executemany("UPDATE settled SET in_plan = 1 WHERE node_id = ?", back)
            if basis is not None:
                self._keep_basis(basis)

    def _keep_basis(self, basis: str) -> None:
        """Keep the plan's basis when every node of the kept plan has a row (inside the caller's transaction)."""
        self.db.execute(f"INSERT OR REPLACE INTO meta SELECT 'basis', ? WHERE {_IN_PLAN} >= "
                        "(SELECT coalesce(sum(size), 0) FROM plan)", (basis,))

    @_writing
    def add_nodes(self, planned: Sequence[tuple[str, str, Any, str]]) -> None:
        """Add to the kept plan the nodes created during the run (a deferred step's items), and kinds that changed
        (a placeholder that became a join).

        A plan that grows as it runs is not one the ledger holds whole: its basis goes.
        """
        with self.db:
            self.db.execute("DELETE FROM meta WHERE name = 'basis'")
            self.db.executemany("INSERT INTO plan (step, kind, size, nodes) VALUES (?, ?, ?, ?)", pack(planned))
            self.db.executemany("UPDATE settled SET kind = nullif(?, 'task'), in_plan = 1 WHERE node_id = ?",
                                [(p[3], p[0]) for p in planned])

    @_writing
    def record(self, run_id: str, records: Sequence[NodeRecord]) -> None:
        """Write node outcomes in one transaction; a node recorded twice keeps its last record."""
        records = mask_records(records, _TEXT_COLUMNS)  # secret values never reach the file (plait.masking)
        first = self._next_seqs(len(records))
        if all(type(key) in _SQL_QUOTED for key in map(itemgetter(13), records)):
            try:
                self._write_records(run_id, first, records, quote=True)
                return
            except OverflowError:  # an integer key past SQLite's 64 bits: its JSON is made here, as below
                pass
        # Keys whose JSON SQLite's json_quote would not write as `_key_json` does (a float's 17 digits, a mapping).
        self._write_records(run_id, first, [(*r[:13], _key_json(r[13]), *r[14:]) for r in records], quote=False)

    def _write_records(self, run_id: str, first: int, records: Sequence[tuple[Any, ...]], quote: bool) -> None:
        with self._transaction():  # the rows in order: a node recorded twice in one batch keeps its last record
            workers = set(map(itemgetter(_WORKER), records))
            workers.discard(None)
            labels = self._labels(chain((run_id,), workers, map(itemgetter(_STEP), records)))
            size = len(NodeRecord._fields)
            for start in range(0, len(records), ROWS_PER_STATEMENT):
                rows = records[start:start + ROWS_PER_STATEMENT]
                values = list(chain.from_iterable(rows))
                values[_WORKER::size] = map(labels.get, values[_WORKER::size])
                values[_STEP::size] = map(labels.__getitem__, values[_STEP::size])
                self.db.execute(_record_sql(len(rows), quote), [labels[run_id], first + start, *values])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Write in one transaction; on failure, forget the labels learned in it (they were rolled back too)."""
        try:
            with self.db:
                yield
        except BaseException:
            self._label_ids.clear()
            raise

    @_writing
    def recover(self, run_id: str, outcomes: Sequence[tuple[Any, ...]]) -> int:
        """Record as succeeded what a dead run's journals hold, unless the ledger has it so already; return how many.

        `outcomes`: (node, fingerprint, attempts, result JSON, started, ended, worker, output) each.
        Only nodes of the kept plan are recorded (a node the dead run did not plan runs again).
        """
        outcomes = mask_records(outcomes, (3, 7))  # the result and the output
        first = self._next_seqs(len(outcomes))
        note = f"recovered from the journal of run {run_id}, which died before recording it"
        unrecorded = self.unrecorded()
        with self._transaction():
            labels = self._labels(chain((run_id,), (o[6] for o in outcomes if o[6] is not None),
                                        (unrecorded[o[0]][0] for o in outcomes if o[0] in unrecorded)))
            rows = [(fp, attempts, result, started, ended, labels.get(worker), output, note, labels[run_id], first + i,
                     node) for i, (node, fp, attempts, result, started, ended, worker, output) in enumerate(outcomes)]
            before = self.db.total_changes
            self.db.executemany(
                "UPDATE settled SET status = 1, fingerprint = ?1, attempts = ?2, result = ?3, started = ?4, "
                f"ended = {stored_ended('?4', '?5')}, worker = ?6, output = ?7, error = NULL, note = ?8, run = ?9, "
                "seq = ?10 WHERE node_id = ?11 AND NOT (status = 1 AND fingerprint IS ?1)", rows)
            self.db.executemany(
                "INSERT OR IGNORE INTO settled (node_id, step, key, kind, status, fingerprint, attempts, result, "
                f"started, ended, worker, output, note, run, seq) VALUES (?11, ?12, {stored_key('?11', '?13')}, "
                "nullif(?14, 'task'), 1, ?1, "
                f"?2, ?3, ?4, {stored_ended('?4', '?5')}, ?6, ?7, ?8, ?9, ?10)",
                [(*row, labels[unrecorded[row[-1]][0]], _key_json(unrecorded[row[-1]][1]), unrecorded[row[-1]][2])
                 for row in rows if row[-1] in unrecorded])
            return self.db.total_changes - before

    @_writing
    def add_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Record attempts that are not their node's last (failures that were retried)."""
        with self.db:
            self.db.executemany("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?)",
                                mask_records(attempts, (8, 9)))  # the error and the output

    @_writing
    def end_run(self, run_id: str, status: str, counts: Mapping[str, int] | None = None,
                ended: float | None = None, basis: str | None = None) -> None:
        """Record how a run ended, and what it did (`counts`: nodes by final status, restored ones too).

        `basis`: the plan's, as `begin_run` was given it: kept now if every node of the plan has a row.
        """
        with self.db:
            self.db.execute("UPDATE runs SET ended = ?, status = ?, counts = coalesce(?, counts) WHERE run_id = ?",
                            (ended or time.time(), status, json.dumps(dict(counts)) if counts else None, run_id))
            if basis is not None:
                self._keep_basis(basis)

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
            yield from self.db.execute(f"SELECT node_id, {column} FROM settled WHERE node_id IN ({marks})", chunk)

    @_readable
    def dead_runs(self) -> list[tuple[str, float]]:
        """Return (run id, its last recorded moment) of the runs recorded as running: called by a run holding the
        workspace, they are runs that died without ending."""
        return self.db.execute(f"SELECT run_id, {_LAST_MOMENT} FROM runs WHERE status = 'running'").fetchall()

    @_readable
    def last_moment(self, run_id: str) -> float | None:
        """Return the last moment a run recorded: its last node's end, or its start."""
        row = self.db.execute(f"SELECT {_LAST_MOMENT} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @_readable
    def runs_started(self) -> int:
        """Return how many runs this ledger has recorded (a run is recorded once it has begun)."""
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    @_readable
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

    @_readable
    def nodes(self) -> list[tuple[str, str, Any, str, str, int, Any, str | None]]:
        """Return (node_id, step, key, kind, status, attempts, error JSON, reason) for the plan's nodes, in
        completion order (nodes never run last, in plan order)."""
        return self.node_rows(("node_id", "step", "key", "kind", "status", "attempts", "error", "reason"))

    @_readable
    def step_counts(self) -> list[tuple[str, int, int, int, int, int]]:
        """Return (step, nodes, succeeded, failed, retried, skipped) of each step's task nodes that have a row, steps in
        the order `nodes` first lists one of theirs: what a summary counts, counted by SQLite.

        The steps are put in order here, not by SQLite: ordering by the aggregates made SQLite read
        every row's node ID, half the time of the whole count at a million rows.
        """
        rows = self.db.execute(
            f"SELECT {label('step')}, count(*), sum(status = 1), sum(status = 2), sum(attempts > 1), sum(status = 3), "
            "min(seq), step FROM settled WHERE in_plan = 1 AND coalesce(kind, '') != 'join' GROUP BY step").fetchall()
        unordered = [row[7] for row in rows if row[6] is None]  # no row of theirs has a seq: by their first node ID
        firsts = dict(self.db.execute(f"SELECT step, min(node_id) FROM settled WHERE step IN "
                                      f"({','.join(map(str, unordered))}) GROUP BY step")) if unordered else {}
        rows.sort(key=lambda row: (row[6] is None, row[6] or 0, firsts.get(row[7], "")))
        return [row[:6] for row in rows]

    @_readable
    def failed_nodes(self) -> list[tuple[str, str | None]]:
        """Return (node_id, error JSON) of the plan's failed nodes, in completion order."""
        return self.db.execute(f"SELECT node_id, error FROM settled WHERE in_plan = 1 AND status = 2 {_ORDER}"
                               ).fetchall()

    # Reading for reports (plait.report). A reader asks `columns` what this ledger has and names the
    # columns it wants, so it uses what newer runtimes record and still reads an older ledger.

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read in one transaction: every query inside sees the same moment of a run that is writing."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def batches(self, sql: str, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the rows of a query of the ledger's tables (plait.runtime.ledger_schema), `size` at a time.

        For readers of many rows that build their text in SQL (plait.runtime.status). Raises LedgerError.
        """
        try:
            cursor = self.db.execute(sql)
            while batch := cursor.fetchmany(size):
                yield batch
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    @_readable
    def labels(self) -> dict[int, str]:
        """Return {number: name} of the labels (the names a row's step, run and worker stand for)."""
        return dict(self.db.execute("SELECT id, label FROM labels"))

    @_readable
    def columns(self, table: str) -> tuple[str, ...]:
        """Return the column names of `table`, or () when this ledger has no such table."""
        return tuple(row[0] for row in self.db.execute("SELECT name FROM pragma_table_info(?)", (table,)))

    @_readable
    def runs(self) -> list[dict[str, Any]]:
        """Return every run's row as a dict, oldest first."""
        cur = self.db.execute("SELECT * FROM runs ORDER BY started, rowid")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur]

    @_readable
    def node_rows(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Return `columns` of the plan's nodes, in completion order (nodes never run last, in plan order).

        A node without a row reads as its row would be had it one: pending, no attempt. Raises ValueError.
        """
        select = self._known("nodes", columns)
        rows = self.db.execute(f"SELECT {select} FROM nodes WHERE in_plan = 1 {_ORDER}").fetchall()
        unrecorded = self.unrecorded()
        if unrecorded:
            picks = [_PENDING_COLUMNS.get(c, _NO_VALUE) for c in columns]
            rows += [tuple(pick(nid, node) for pick in picks) for nid, node in unrecorded.items()]
        return rows

    @_readable
    def node_row(self, node_id: str, columns: Sequence[str]) -> tuple[Any, ...] | None:
        """Return `columns` of one node of the plan (pending if it has no row), or None if the plan has no such node.

        One lookup by the row's key: `plait logs NODE` on a ledger of a million rows reads one.
        """
        select = self._known("nodes", columns)
        row = self.db.execute(f"SELECT {select} FROM nodes WHERE node_id = ? AND in_plan = 1", (node_id,)).fetchone()
        if row is not None:
            return tuple(row)
        node = self.unrecorded().get(node_id)
        if node is None:
            return None
        return tuple(_PENDING_COLUMNS.get(c, _NO_VALUE)(node_id, node) for c in columns)

    @_readable
    def node_attempts(self, node_ids: Sequence[str], columns: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
        """Return {node: `columns` of each of its earlier attempts, oldest first} for the given nodes."""
        found: dict[str, list[tuple[Any, ...]]] = {}
        select = self._known("attempts", columns)
        for start in range(0, len(node_ids), 500):
            chunk = list(node_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT node_id, {select} FROM attempts WHERE node_id IN ({marks}) "
                                       "ORDER BY started IS NULL, started, rowid", chunk):
                found.setdefault(row[0], []).append(row[1:])
        return found

    @_readable
    def attempt_rows(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Return `columns` of every recorded attempt, oldest first; [] when the ledger keeps no attempts table."""
        if not self.columns("attempts"):
            return []
        return self.db.execute(f"SELECT {self._known('attempts', columns)} FROM attempts "
                               "ORDER BY started IS NULL, started, rowid").fetchall()

    def _known(self, table: str, columns: Sequence[str]) -> str:
        """Return `columns` as a select list; raise ValueError for a name `table` does not have."""
        have = self.columns(table)
        unknown = sorted(set(columns) - set(have))
        if unknown or not columns:
            raise ValueError(f"the ledger's {table} table has no column {', '.join(unknown) or '(none asked)'}; "
                             f"it has {', '.join(have)}")
        return ", ".join(columns)


# A run's last recorded moment, and the statement that ends the runs that died (run by a run that holds the workspace).
_LAST_MOMENT = (f"coalesce((SELECT max({ENDED}) FROM settled WHERE run = (SELECT id FROM labels "
                "WHERE label = runs.run_id)), runs.started)")
_DEAD_RUNS_END = f"UPDATE runs SET status = 'interrupted', ended = {_LAST_MOMENT} WHERE status = 'running'"


# What a node of the kept plan without a row reads as, column by column: (node_id, (step, key, kind)) -> value.
_PENDING_COLUMNS: dict[str, Callable[[str, tuple[str, Any, str]], Any]] = {
    "node_id": lambda nid, node: nid, "step": lambda nid, node: node[0],
    "key": lambda nid, node: _key_json(node[1]), "kind": lambda nid, node: node[2],
    "status": lambda nid, node: "pending", "attempts": lambda nid, node: 0, "in_plan": lambda nid, node: 1}


def _NO_VALUE(nid: str, node: tuple[str, Any, str]) -> None:
    return None


_SQL_QUOTED = (int, str, type(None))  # keys whose JSON SQLite's json_quote writes as `_key_json` does


def _key_json(key: Any) -> str:
    """Return a key as JSON; an integer or a string skips the encoder (100,000 keys a run)."""
    if type(key) is int:
        return str(key)
    if type(key) is str:
        return encode_basestring(key)
    return json.dumps(key)
