"""Reading a ledger for reports and logs: the columns a reader names, of every node or of one, and attempts.

A reader (plait.report, `plait logs`, `plait status --format json`) asks `columns` what this
ledger has and names the columns it wants, so it uses what newer runtimes record and still reads
an older ledger. Rows are read through the `nodes` view (plait.runtime.ledger_schema), as they
were written; a node of the kept plan without a row reads as its row would be had it one:
pending, no attempt (`_PENDING_COLUMNS`). `snapshot` reads in one transaction, so every query
sees the same moment of a run that is writing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from plait.runtime.ledger_access import LedgerFile, readable
from plait.runtime.ledger_rows import key_json
from plait.runtime.planned import unrecorded as kept_unrecorded

__all__ = ["ORDER", "ReportReads"]

ORDER = "ORDER BY seq IS NULL, seq, node_id"  # completion order (rows of schema 2's pending nodes have no seq)


class ReportReads(LedgerFile):
    """What reports, logs and the JSON status read of a ledger."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read in one transaction: every query inside sees the same moment of a run that is writing.

        Raises LedgerError; when a read inside failed, ends the transaction quietly and lets that error through.
        """
        try:
            self.db.execute("BEGIN")
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.rollback()  # it read only: nothing to keep
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    def batches(self, sql: str, size: int, parameters: Sequence[Any] = ()) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the rows of a query of the ledger's tables (plait.runtime.ledger_schema), `size` at a time.

        For readers of many rows that build their text in SQL (plait.runtime.status). Raises LedgerError.
        """
        try:
            cursor = self.db.execute(sql, parameters)
            while batch := cursor.fetchmany(size):
                yield batch
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    @readable
    def labels(self) -> dict[int, str]:
        """Return {number: name} of the labels (the names a row's step, run and worker stand for)."""
        return dict(self.db.execute("SELECT id, label FROM labels"))

    @readable
    def columns(self, table: str) -> tuple[str, ...]:
        """Return the column names of `table`, or () when this ledger has no such table."""
        return tuple(row[0] for row in self.db.execute("SELECT name FROM pragma_table_info(?)", (table,)))

    @readable
    def runs(self) -> list[dict[str, Any]]:
        """Return every run's row as a dict, oldest first."""
        cur = self.db.execute("SELECT * FROM runs ORDER BY started, rowid")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur]

    @readable
    def node_rows(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Return `columns` of the plan's nodes, in completion order (nodes never run last, in plan order).

        A node without a row reads as its row would be had it one: pending, no attempt. Raises ValueError.
        """
        select = self._known("nodes", columns)
        rows = self.db.execute(f"SELECT {select} FROM nodes WHERE in_plan = 1 {ORDER}").fetchall()
        unrecorded = kept_unrecorded(self.db)
        if unrecorded:
            picks = [_PENDING_COLUMNS.get(c, _NO_VALUE) for c in columns]
            rows += [tuple(pick(nid, node) for pick in picks) for nid, node in unrecorded.items()]
        return rows

    @readable
    def node_row(self, node_id: str, columns: Sequence[str]) -> tuple[Any, ...] | None:
        """Return `columns` of one node of the plan (pending if it has no row), or None if the plan has no such node.

        One lookup by the row's key: `plait logs NODE` on a ledger of a million rows reads one.
        """
        select = self._known("nodes", columns)
        row = self.db.execute(f"SELECT {select} FROM nodes WHERE node_id = ? AND in_plan = 1", (node_id,)).fetchone()
        if row is not None:
            return tuple(row)
        node = kept_unrecorded(self.db).get(node_id)
        if node is None:
            return None
        return tuple(_PENDING_COLUMNS.get(c, _NO_VALUE)(node_id, node) for c in columns)

    @readable
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

    @readable
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


# What a node of the kept plan without a row reads as, column by column: (node_id, (step, key, kind)) -> value.
_PENDING_COLUMNS: dict[str, Callable[[str, tuple[str, Any, str]], Any]] = {
    "node_id": lambda nid, node: nid, "step": lambda nid, node: node[0],
    "key": lambda nid, node: key_json(node[1]), "kind": lambda nid, node: node[2],
    "status": lambda nid, node: "pending", "attempts": lambda nid, node: 0, "in_plan": lambda nid, node: 1}


def _NO_VALUE(nid: str, node: tuple[str, Any, str]) -> None:
    return None
