"""Writing the ledger: a run's start and end, its plan, and each node's row once, when it settles.

Decisions:
- A node's row is written once, when it settles (`record`: inserted, or updated when an earlier
  run left one), never as a pending row when the run begins: the plan says which nodes there are
  (plait.runtime.planned). One write per node instead of two halves the ledger's share of a
  large run (docs/performance.md).
- Outcomes are written in batches, one transaction per flush (the scheduler flushes every few
  hundred outcomes or fraction of a second), so trivial nodes cost microseconds of ledger time;
  what a flush committed is never lost, and what a kill prevented from being flushed runs again.
- Many rows go in as statements of `ROWS_PER_STATEMENT` rows each (`VALUES (…), (…), …`), not
  `executemany`: Python's sqlite3 releases the GIL around each step of a statement, so one row
  per step hands the GIL back and forth once per row, and the writer thread then crawls while
  the scheduler's thread is busy; a statement of a hundred rows is one step, run without the GIL.
  It also halves SQLite's own work per row (docs/performance.md).
- Rows go in with their step, run and worker as the numbers of their labels already (`_labels`),
  so SQLite looks nothing up per row; the row is kept as plait.runtime.ledger_schema says.
- `seq` orders outcomes by completion across runs: each outcome takes the next.
- Rows of nodes that left the plan (an item removed from a glob) are kept, marked `in_plan = 0`:
  nothing recorded is deleted, and status shows only the current plan.
- The `basis` row of `meta` says the ledger holds one plan whole and up to date (see
  plait.runtime.ledger): a run keeps its plan's basis as it starts when every node has a row
  already, else as it ends if by then they all have one (`_keep_basis`); any other run removes it.
- What a dead run's journals hold is recorded by the next run (`recover`), as succeeded, unless
  the ledger has it so already.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from plait.masking import mask, mask_records
from plait.runtime.ledger_access import LedgerFile, writing
from plait.runtime.ledger_rows import SQL_QUOTED, Attempt, NodeRecord, Prior, key_json
from plait.runtime.ledger_schema import ENDED, status_code, stored_ended, stored_key
from plait.runtime.planned import IN_PLAN, pack
from plait.runtime.planned import unrecorded as kept_unrecorded

__all__ = ["LAST_MOMENT", "ROWS_PER_STATEMENT", "LedgerWrites"]

_TEXT_COLUMNS = (4, 5, 6, 11)  # a NodeRecord's result, error, note and output
_WORKER, _STEP, _KEY = 9, 12, 13  # a NodeRecord's worker, step and key
ROWS_PER_STATEMENT = 60  # 962 parameters a statement, under SQLite's oldest limit of 999
_UPSERT = sqlite3.sqlite_version_info >= (3, 24, 0)
_OUTCOME = ("status", "attempts", "fingerprint", "result", "error", "note", "started", "ended", "worker", "reason",
            "output", "kind", "run", "seq", "in_plan")


@functools.cache
def _record_sql(rows: int, quote: bool) -> str:
    """Return the statement writing `rows` NodeRecords: each node's row inserted, or updated when it has one.

    Parameters: the run's label, the first record's seq, then the records, their worker and step
    as labels (`LedgerWrites._labels`). `quote`: the records hold keys as they are, and SQLite writes
    their JSON (`json_quote`, which gives what `key_json` does for a text or a number); else they
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


# A run's last recorded moment, and the statement that ends the runs that died (run by a run that holds the workspace).
LAST_MOMENT = (f"coalesce((SELECT max({ENDED}) FROM settled WHERE run = (SELECT id FROM labels "
               "WHERE label = runs.run_id)), runs.started)")
_DEAD_RUNS_END = f"UPDATE runs SET status = 'interrupted', ended = {LAST_MOMENT} WHERE status = 'running'"


class LedgerWrites(LedgerFile):
    """What a run writes into its workspace's ledger (the parent alone, on the writer's thread)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self._seq: int | None = None  # the last seq written: read when a first outcome is (a scan of every row)
        self._label_ids: dict[str, int] = {}  # the labels known to be in the ledger: {name: number}
        super().__init__(path, readonly)
        if not _UPSERT and not readonly:  # a REPLACE deletes the row it replaces: its step's counts must see it go
            self.db.execute("PRAGMA recursive_triggers = ON")

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

    @writing
    def _claim(self, workflow: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO meta VALUES ('workflow', ?)", (workflow,))

    @writing
    def keep_file_hashes(self, rows: Sequence[tuple[str, int, int, str]]) -> None:
        """Record what a run learned of tracked files: (path, size, mtime_ns, hash) each."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                [(path.encode("utf-8", "surrogatepass"), *rest) for path, *rest in rows])

    @writing
    def begin_run(self, run_id: str, workflow: str, digest: str, source: str | None, params: Mapping[str, Any],
                  pid: int, planned: Iterable[tuple[str, str, Any, str]], previous: Mapping[str, Prior],
                  basis: str | None = None, step_parts: Mapping[str, Any] | None = None,
                  rerun: Iterable[str] = (), step_graph: str | None = None) -> None:
        """Record a run's start and keep its plan (`planned`: node_id, step, key, kind); mark rows that left the plan.

        A node gets no row until it settles (`record`): until then the kept plan says it is pending.
        `planned` empty: the ledger holds this plan already. `basis` replaces the ledger's basis
        (None removes it) once every node of the plan has a row (else `end_run` keeps it, if they
        all have one by then), and `step_parts` the recorded parts of those steps' signatures, in
        the same transaction. The last record of each node in `rerun` (those that run again) moves
        to the attempts table, so its history stays readable. `planned` may be an iterator when
        `previous` is empty (a first run: no row to mark), so a million nodes are not listed twice.
        """
        gone: list[tuple[str]] = []
        back: list[tuple[str]] = []
        if previous:
            planned = list(planned)
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
        self.db.execute(f"INSERT OR REPLACE INTO meta SELECT 'basis', ? WHERE {IN_PLAN} >= "
                        "(SELECT coalesce(sum(size), 0) FROM plan)", (basis,))

    @writing
    def add_nodes(self, planned: Sequence[tuple[str, str, Any, str]]) -> None:
        """Add to the kept plan the nodes created during the run (a deferred step's items), and kinds that changed
        (a placeholder that became a join).

        A plan that grows as it runs is not one the ledger holds whole: its basis goes. A new node
        has a row to update only when an earlier run recorded it: the run began by marking such a
        row out of the plan (`begin_run`); a node whose kind changed may have one too. Where no row
        is out of the plan (a first run), the new items' rows are not looked for one by one.
        """
        with self.db:
            self.db.execute("DELETE FROM meta WHERE name = 'basis'")
            self.db.executemany("INSERT INTO plan (step, kind, size, nodes) VALUES (?, ?, ?, ?)", pack(planned))
            gone = self.db.execute("SELECT 1 FROM settled WHERE in_plan = 0 LIMIT 1").fetchone() is not None
            self.db.executemany("UPDATE settled SET kind = nullif(?, 'task'), in_plan = 1 WHERE node_id = ?",
                                [(p[3], p[0]) for p in planned if gone or p[3] != "task"])

    @writing
    def record(self, run_id: str, records: Sequence[NodeRecord]) -> None:
        """Write node outcomes in one transaction; a node recorded twice keeps its last record."""
        records = mask_records(records, _TEXT_COLUMNS)  # secret values never reach the file (plait.masking)
        first = self._next_seqs(len(records))
        if all(type(key) in SQL_QUOTED for key in map(itemgetter(13), records)):
            try:
                self._write_records(run_id, first, records, quote=True)
                return
            except OverflowError:  # an integer key past SQLite's 64 bits: its JSON is made here, as below
                pass
        # Keys whose JSON SQLite's json_quote would not write as `key_json` does (a float's 17 digits, a mapping).
        self._write_records(run_id, first, [(*r[:13], key_json(r[13]), *r[14:]) for r in records], quote=False)

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

    @writing
    def recover(self, run_id: str, outcomes: Sequence[tuple[Any, ...]]) -> int:
        """Record as succeeded what a dead run's journals hold, unless the ledger has it so already; return how many.

        `outcomes`: (node, fingerprint, attempts, result JSON, started, ended, worker, output) each.
        Only nodes of the kept plan are recorded (a node the dead run did not plan runs again).
        """
        outcomes = mask_records(outcomes, (3, 7))  # the result and the output
        first = self._next_seqs(len(outcomes))
        note = f"recovered from the journal of run {run_id}, which died before recording it"
        unrecorded = kept_unrecorded(self.db)
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
                [(*row, labels[unrecorded[row[-1]][0]], key_json(unrecorded[row[-1]][1]), unrecorded[row[-1]][2])
                 for row in rows if row[-1] in unrecorded])
            return self.db.total_changes - before

    @writing
    def add_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Record attempts that are not their node's last (failures that were retried)."""
        with self.db:
            self.db.executemany("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?)",
                                mask_records(attempts, (8, 9)))  # the error and the output

    @writing
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

