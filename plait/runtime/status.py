"""Read a workspace's state from its ledger: what `plait status` prints and the API returns.

Reading needs no workflow file: the ledger knows the workflow, its runs and every node's step
and key. For each step it also derives the state shape of the engine plait grew from:
`{processed: [keys in completion order], failed: {key: error record}, stats: {total, processed,
failed, retried}}` (plus the counts skipped and pending). Join nodes (which run no task) count in `nodes`
but not in a step's stats.

`write_status_json` writes the same state as JSON, the very text
`json.dumps(workflow_status(…))` gives, but streamed, from one sorted pass over the ledger's
rows (`settled`) that gives the nodes and each step's `processed` and `failed`; the steps'
`stats`, and their order, are the counts the ledger keeps beside the rows
(`Ledger.step_counts`), as `plait status` prints them, read in the same transaction. A million
nodes must not cost a dict and an encoding each: a node's member of `nodes` is its ID's JSON and
a tail (`: {"status": …}`) made once for each (status, attempts, reason) and reused, so a batch
of nodes without an error record is put together a column at a time (`_Steps.add`; a batch of
one tail is its IDs joined by it), and a step's keys, whole numbers or texts (`photo1.jpg`), are
cut from the node IDs. Every column the sorted pass reads is carried through SQLite's sort for
every row, so it reads no more than these. Building the members in SQLite was measured and was
slower (docs/performance.md). When most rows are of their step's common kind (its items that
succeeded at their first attempt for one reason, as a run of a million items leaves them:
`_by_kind`), the sorted pass reads the IDs alone, as one text SQLite joins, and the few rows of
other kinds are read whole, unsorted, and put in their places; with one step and no other, a
batch of plain IDs becomes its members and its keys by replacing the separators in its text. A
million nodes never become one dict and one string of 80 MB, and the first bytes are out while
the rest are read.
`workflow_status` builds the dict from the `nodes` view, row by row: the plain reference the
streamed text is tested against (tests/test_state.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import compress, groupby, repeat
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from operator import getitem, itemgetter
from pathlib import Path
from typing import Any, TextIO

from plait.runtime.ledger import Ledger, workspace_ledger
from plait.runtime.ledger_schema import STATUSES
from plait.runtime.planned import IN_PLAN
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
    with contextlib.closing(workspace_ledger(workspace)) as ledger, ledger.snapshot():
        out.write(f'{{"workflow": {json.dumps(ledger.workflow())}, '
                  f'"run": {json.dumps(_lived(ledger, Path(workspace)), default=str)}, "nodes": {{')
        steps = _Steps(ledger.labels())
        separator = ""
        members = _by_kind(ledger, steps)
        for text in members if members is not None else map(steps.add, ledger.batches(_NODES, CHUNK)):
            out.write(separator)  # apart: the batch's text is megabytes, not copied again
            out.write(text)
            separator = ", "
        unrecorded = ledger.unrecorded()
        names = list(unrecorded)
        for start in range(0, len(names), CHUNK):
            out.write(separator + ", ".join([encode_basestring_ascii(nid) + _NEVER_RAN
                                             for nid in names[start:start + CHUNK]]))
            separator = ", "
        out.write(f'}}, "steps": {steps.json(_step_stats(ledger, unrecorded))}}}\n')


def _by_kind(ledger: Ledger, steps: _Steps) -> Iterator[str] | None:
    """Return the members of `nodes` in completion order, a batch at a time, when most rows are of their step's common
    kind (items that succeeded at the first attempt for one reason, keyed as their IDs say); else None.

    The sorted pass then reads one text: the IDs in completion order joined by SQLite, and the
    rows of other kinds are read whole, unsorted, and put in their places (`_Steps.in_order`). A
    million rows of a run's items came back as a million tuples of seven columns, carried through
    SQLite's sort; their IDs as one text take a fraction of that (docs/performance.md). A ledger
    of many kinds (reasons that name a node, retries, failures) is read as before, by `_NODES`.
    """
    kinds: dict[int, tuple[str | None, Any]] = {}  # step -> the (reason, stored key) most of its first rows give
    for step in ledger.counted_steps():
        name = steps.labels[step]
        found = next(ledger.batches(_FIRST, _SAMPLE, (name + "[", name + _PAST_BRACKET, step, _SAMPLE)), None)
        if found:
            kinds[step] = Counter(found).most_common(1)[0][0]
    if not kinds:
        return None
    steps.quoted = {step for step, (_, key) in kinds.items() if key == b""}
    ((total,),) = next(ledger.batches(_TOTAL, 1))
    most = total // _MOST_OTHERS
    cases = " ".join(["WHEN ? THEN reason IS ? AND key IS ? AND node_id > ? AND node_id < ?"] * len(kinds))
    values = [value for step, (reason, key) in kinds.items()
              for value in (step, reason, key, steps.labels[step] + "[", steps.labels[step] + _PAST_BRACKET)]
    others = [row for batch in ledger.batches(_OTHERS.format(cases=cases), CHUNK, (*values, most + 1))
              for row in batch]
    if len(others) > most:
        return None
    ((text,),) = next(ledger.batches(_IDS if others else _IDS_BY_SEQ, 1))  # no other: no row without a seq
    if text.count(_APART) != total - 1:  # an ID holds the separator: read as before
        return None
    return steps.in_order(text, {row[0]: row for row in others}, kinds)


class _Steps:
    """The `processed` and `failed` of each step, gathered from the rows as `_NODES` gives them, a batch at a time;
    and the nodes' members of `nodes`, as `json.dumps` writes them."""

    def __init__(self, labels: dict[int, str]) -> None:
        self.labels = labels
        self.numbers = {name: number for number, name in labels.items()}
        self.processed: dict[int | str, list[str]] = defaultdict(list)  # step -> its processed keys' JSON
        self.failed: dict[int | str, dict[str, Any]] = defaultdict(dict)  # step -> {key: error}
        self.tails: dict[tuple[Any, ...], str] = {}  # (status, attempts, reason) -> a member's text after the ID
        self.quoted: set[int] = set()  # the steps whose common kind's keys are texts, the IDs' as written (`_by_kind`)

    def add(self, batch: list[tuple[Any, ...]]) -> str:
        """Note a batch of rows (node ID, status, attempts, error, reason, the step of a task node that succeeded or
        failed, stored key), and return their members of `nodes` joined.

        A member is the node ID's JSON and a tail made once for each (status, attempts, reason)
        (`tails`); so the usual batch, of nodes without an error record, is put together a column
        at a time, with no Python per row.
        """
        tails = self.tails
        if len(tails) > _TAILS:  # reasons that name a node ("changed: upstream: a[1]") are many
            tails.clear()
        if any(map(_ERROR, batch)) or _FAILED in map(_STATUS_NUMBER, batch):
            text = ", ".join([self._member(row) for row in batch])
            succeeded = [row for row in batch if row[1] == 1]
        else:  # the rows that name a step succeeded
            text = self._members(batch)
            succeeded = batch
        for step, group in groupby(succeeded, _STEP):
            if step is not None:
                rows = list(group)
                self.processed[step] += self._numbers(step, rows) or map(_processed, rows)
        return text

    def in_order(self, text: str, others: dict[str, tuple[Any, ...]],
                 kinds: dict[int, tuple[str | None, Any]]) -> Iterator[str]:
        """Yield the members of `nodes`, `CHUNK` at a time, of the rows whose IDs `text` lists in completion order
        (joined by `_APART`): of their step's common kind (`kinds`: step -> (reason, stored key); an ID
        `step[key]`), or of another with its row in `others`.

        With one step and no other, a batch of IDs that JSON writes as they are (printable ASCII, no
        quote or backslash) is written by replacing the separators in its text, and its keys, when
        they are whole numbers or texts as the IDs write them, are cut out of it the same way: no
        string is made per node.
        """
        tails = {step: _tail(1, 1, reason, None) for step, (reason, _) in kinds.items()}
        if others or len(kinds) > 1:
            ids = text.split(_APART)
            at = list(compress(range(len(ids)), map(others.__contains__, ids)))  # where the rows of others are
            step_of = {self.labels[step] + "[": step for step in kinds}  # an ID's `step[` -> its step
            tail_of = {prefix: tails[step] for prefix, step in step_of.items()}
            for start in range(0, len(ids), CHUNK):
                end = min(start + CHUNK, len(ids))
                texts = []  # runs of rows of the common kinds, and of rows of others, in turn
                for first, last in _runs(at[bisect_left(at, start):bisect_left(at, end)]):
                    if first > start:
                        texts.append(self._kinds(ids[start:first], step_of, tail_of))
                    texts.append(self.add([others[nid] for nid in ids[first:last]]))
                    start = last
                if start < end:
                    texts.append(self._kinds(ids[start:end], step_of, tail_of))
                yield ", ".join(texts)
            return
        ((step, tail),) = tails.items()
        prefix = self.labels[step] + "["
        start = 0
        while start < len(text):
            end = text.find(_APART, start + CHUNK * 16)  # about `CHUNK` IDs of a dozen characters
            end = len(text) if end < 0 else end
            part = text[start:end]
            start = end + 1
            if not _PLAIN.fullmatch(part):
                yield self._common(part.split(_APART), step, tail)
                continue
            quoted = step in self.quoted  # every ID is `step[key]` (no row of another kind): the texts between are keys
            keys = part.replace("]" + _APART + prefix, '", "' if quoted else ", ")
            if quoted:
                self.processed[step].append('"' + keys[len(prefix):-1] + '"')
            elif (keys.startswith(prefix) and keys.endswith("]")
                  and _NUMBERS.fullmatch(keys, len(prefix), len(keys) - 1)):
                self.processed[step].append(keys[len(prefix):-1])
            else:
                self.processed[step] += self._keys(part.split(_APART), step)
            yield '"' + part.replace(_APART, f'"{tail}, "') + '"' + tail

    def _kinds(self, ids: list[str], step_of: dict[str, int], tail_of: dict[str, str]) -> str:
        """Return the members of `nodes` of rows of their steps' common kinds given by ID (`step_of` and `tail_of`:
        an ID's `step[` -> its step, its tail); note their keys, each step's in order."""
        if len(step_of) == 1:
            ((step, tail),) = zip(step_of.values(), tail_of.values())
            return self._common(ids, step, tail)
        prefixes = [nid[:nid.index("[") + 1] for nid in ids]
        for prefix in dict.fromkeys(prefixes):
            self.processed[step_of[prefix]] += self._keys([nid for nid, of in zip(ids, prefixes) if of == prefix],
                                                          step_of[prefix])
        return ", ".join(map(str.__add__, map(encode_basestring_ascii, ids), map(tail_of.__getitem__, prefixes)))

    def _common(self, ids: list[str], step: int, tail: str) -> str:
        """Return the members of `nodes` of rows of the common kind (`in_order`) given by ID; note their keys."""
        self.processed[step] += self._keys(ids, step)
        return (tail + ", ").join(map(encode_basestring_ascii, ids)) + tail

    def _keys(self, ids: list[str], step: int) -> list[str]:
        """Return the JSON of the keys of nodes of `step` that succeeded, from their IDs (a stored key of 0, or of
        an empty blob for the steps in `quoted`)."""
        if step in self.quoted:
            return list(map(encode_basestring_ascii, self._between(step, ids)))
        return self._numbers_of(step, ids) or [json.dumps(_stored_key(nid, 0)) for nid in ids]

    def _members(self, batch: list[tuple[Any, ...]]) -> str:
        """Return the members of `nodes` of rows without an error record, joined: when they all have one tail (a run's
        items, as a rule), the IDs joined by it, with no string made per row."""
        tails = self.tails
        ids = map(encode_basestring_ascii, map(_ID, batch))
        columns = [list(map(get, batch)) for get in (_STATUS_NUMBER, _ATTEMPTS, _REASON)]
        kind = batch[0][1], batch[0][2], batch[0][4]
        if all(column.count(value) == len(batch) for column, value in zip(columns, kind)):
            tail = tails.get(kind) or tails.setdefault(kind, _tail(*kind, None))
            return (tail + ", ").join(ids) + tail
        kinds = list(zip(*columns))
        for kind in set(kinds).difference(tails):
            tails[kind] = _tail(*kind, None)
        return ", ".join(map(str.__add__, ids, map(tails.__getitem__, kinds)))

    def _member(self, row: tuple[Any, ...]) -> str:
        """Return a node's member of `nodes`; note a failed task node's error."""
        node_id, status, attempts, error_text, reason, step, key = row
        error = json.loads(error_text) if error_text else None
        if step is not None and status == _FAILED:
            self.failed[step][str(_stored_key(node_id, key))] = error
        return encode_basestring_ascii(node_id) + _tail(status, attempts, reason, error)

    def _numbers(self, step: int, rows: list[tuple[Any, ...]]) -> list[str]:
        """Return the JSON of succeeded nodes' keys that are whole numbers their IDs say, taken from the IDs a
        column at a time; [] unless every one of `rows` has such a key."""
        if set(map(type, map(_STORED_KEY, rows))) != {int}:
            return []
        return self._numbers_of(step, list(map(_ID, rows)))

    def _numbers_of(self, step: int, ids: list[str]) -> list[str]:
        """Return the JSON of the keys of nodes of `step` whose IDs say them (a stored key of 0), when every one is a
        whole number; else []."""
        texts = self._between(step, ids)
        return texts if all(map(str.isdigit, texts)) else []  # JSON has no leading zeros: the digits are the JSON

    def _between(self, step: int, ids: list[str]) -> list[str]:
        """Return the texts between the brackets of the IDs `ids` of items of `step` (an item's ID is `step[key]`)."""
        return list(map(getitem, ids, repeat(slice(len(self.labels[step]) + 1, -1))))

    def json(self, stats: dict[str, dict[str, int]]) -> str:
        """Return the steps as `json.dumps` writes them, with their `stats` (`_step_stats`), in its order."""
        parts = []
        for name, counts in stats.items():
            step = self.numbers.get(name, name)
            parts.append(f'{encode_basestring_ascii(name)}: {{"processed": [{", ".join(self.processed[step])}], '
                         f'"failed": {json.dumps(self.failed[step], default=str)}, "stats": {json.dumps(counts)}}}')
        return "{" + ", ".join(parts) + "}"


def _runs(positions: list[int]) -> Iterator[tuple[int, int]]:
    """Yield the runs of consecutive numbers in sorted `positions`, each as (first, one past its last)."""
    for _, run in groupby(enumerate(positions), lambda pair: pair[1] - pair[0]):
        numbers = [number for _, number in run]
        yield numbers[0], numbers[-1] + 1


def _tail(status: Any, attempts: int, reason: str | None, error: Any) -> str:
    """Return what follows a node's ID in its member of `nodes`, as `json.dumps` writes it."""
    value = {"status": _STATUS.get(status, status), "attempts": attempts, "error": error, "reason": reason}
    return ": " + json.dumps(value, default=str)


def _processed(row: tuple[Any, ...]) -> str:
    """Return a succeeded node's key as `processed` lists it, in JSON, from its row's node ID and stored key."""
    return json.dumps(_stored_key(row[0], row[6]))


def _stored_key(node_id: str, key: Any) -> Any:
    """Return a node's key from its stored form (plait.runtime.ledger_schema), as `_key` reads a key's JSON."""
    if type(key) is int:  # the text between the ID's brackets is the key's JSON
        return _key(node_id[node_id.index("[") + 1:-1], node_id)
    if type(key) is bytes:  # that text is the key
        return node_id[node_id.index("[") + 1:-1]
    return _key(key, node_id)


_STATUS = dict(enumerate(STATUSES))  # status number -> text (a status that is no number is kept as text)
_FAILED = STATUSES.index("failed")
_TAILS = 10_000  # the most tails kept at once
_ID, _STATUS_NUMBER, _ATTEMPTS, _ERROR, _REASON, _STEP, _STORED_KEY = (itemgetter(i) for i in range(7))


# The plan's rows in completion order: (node ID, status number, attempts, error, reason, the step of a task node that
# succeeded or failed, its stored key (plait.runtime.ledger_schema)).
_NODES = ("SELECT node_id, status, attempts, error, reason, iif(status IN (1, 2) AND kind IS NOT 'join', step, NULL), "
          "key FROM settled WHERE in_plan = 1 ORDER BY seq IS NULL, seq, node_id")
_NEVER_RAN = ': {"status": "pending", "attempts": 0, "error": null, "reason": null}'

# A step's common kind of row (`_by_kind`): a task node of the step that succeeded at its first attempt, for the
# reason most of the first such rows of the step give (a resume's reruns say why each ran), keyed as its ID says (a
# stored key of 0 or an empty blob, as most of those rows have it, plait.runtime.ledger_schema: the ID is `step[key]`,
# which `_FIRST` seeks by the range of IDs `step[…`), with a seq. `_OTHERS` reads at most ? (its last parameter) rows
# of no step's common kind; `{cases}`: a `WHEN step THEN` of each kind, its reason, stored key and IDs.
_COMMON = ("status = 1 AND attempts = 1 AND error IS NULL AND kind IS NULL AND (key IS 0 OR key IS x'') "
           "AND seq IS NOT NULL")
_FIRST = ("SELECT reason, key FROM settled WHERE node_id > ? AND node_id < ? AND step = ? AND in_plan = 1 AND "
          f"{_COMMON} LIMIT ?")
_SAMPLE = 256  # a step's first rows of its common kind whose most frequent reason is the kind's
_PAST_BRACKET = "\\"  # the character after `[`: the IDs `step[…` sort between `step[` and `step\`
_TOTAL = f"SELECT {IN_PLAN}"
_OTHERS = _NODES.replace(" ORDER BY seq IS NULL, seq, node_id",
                         f" AND NOT ({_COMMON} AND CASE step {{cases}} ELSE 0 END) LIMIT ?")
_APART = "\x01"  # between the IDs of `_IDS`
# `_by_kind` reads at most one row in this many of other kinds before it gives up: a ledger of many kinds pays that
# scan and no more.
_MOST_OTHERS = 16
_IDS = ("SELECT group_concat(node_id, char(1)) FROM (SELECT node_id FROM settled WHERE in_plan = 1 "
        "ORDER BY seq IS NULL, seq, node_id)")
_IDS_BY_SEQ = _IDS.replace("seq IS NULL, ", "")  # the same order when every row has a seq: a fifth less to sort
_PLAIN = re.compile(r"[ !#-\[\]-~\x01]*")  # IDs that JSON writes as they are, quoted, and the separator
_NUMBERS = re.compile(r"[0-9]+(, [0-9]+)*")  # whole numbers' JSON, joined


def status_summary(workspace: str | Path) -> dict[str, Any]:
    """Return what `format_status` reads of `workflow_status(workspace)`, counted by SQLite: the workflow, the run,
    each step's `stats` (its `processed` and `failed` left empty) and, in `nodes`, the failed nodes alone.

    A million nodes are summed without a Python object each. Raises LedgerError.
    """
    with contextlib.closing(workspace_ledger(workspace)) as ledger, ledger.snapshot():
        stats = _step_stats(ledger, ledger.unrecorded())
        steps = {step: {"processed": [], "failed": {}, "stats": counts} for step, counts in stats.items()}
        failed = any(counts["failed"] for counts in stats.values())  # else no need to look for them
        nodes = {nid: {"status": "failed", "error": json.loads(error) if error else None}
                 for nid, error in (ledger.failed_nodes() if failed else ())}
        return {"workflow": ledger.workflow(), "run": _lived(ledger, Path(workspace)), "nodes": nodes, "steps": steps}


def _step_stats(ledger: Ledger, unrecorded: dict[str, tuple[str, Any, str]]) -> dict[str, dict[str, int]]:
    """Return {step: its `stats`} in the order `workflow_status` lists the steps: those with rows as the ledger counts
    them (`Ledger.step_counts`), then those of the kept plan's task nodes without a row (pending)."""
    stats: dict[str, dict[str, int]] = {}
    for step, total, processed, failed, retried, skipped in ledger.step_counts():
        stats[step] = {"total": total, "processed": processed, "failed": failed, "retried": retried,
                       "skipped": skipped, "pending": total - processed - failed - skipped}
    for step, _, kind in unrecorded.values():  # never ran: pending, after every node with a row
        if kind != "join":
            counts = stats.setdefault(step, dict.fromkeys(_STATS, 0))
            counts["total"] += 1
            counts["pending"] += 1
    return stats


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
