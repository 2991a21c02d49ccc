"""What the runtime hands the ledger and reads back from it, a node at a time: records, attempts, priors, keys.

Plain named tuples, not objects with behaviour: a chunk of a million outcomes is zipped from
columns straight into the records the writer takes (`NodeRecord.columns`), and the resume reads
a `Prior` for each node it decides. A key goes into a row as JSON, so a numeric key comes back a
number (`key_json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple

__all__ = ["NEVER_RAN", "SQL_QUOTED", "Attempt", "NodeRecord", "Prior", "key_json"]


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


NEVER_RAN = Prior("pending", None, True)  # a node of the kept plan that has no row
SQL_QUOTED = (int, str, type(None))  # keys whose JSON SQLite's json_quote writes as `key_json` does


def key_json(key: Any) -> str:
    """Return a key as JSON; an integer or a string skips the encoder (100,000 keys a run)."""
    if type(key) is int:
        return str(key)
    if type(key) is str:
        return encode_basestring(key)
    return json.dumps(key)
