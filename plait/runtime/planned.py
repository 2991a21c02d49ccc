"""The plan a ledger keeps: every node of the last run's plan, packed a run of nodes at a time.

A node gets its row in the ledger's `nodes` table once, when it settles (plait.runtime.ledger).
Until then the ledger knows it only from here: the `plan` table holds the plan's nodes (id, step,
key, kind) as parts, one part for each run of consecutive nodes of one step and kind, its ids and
keys packed as one zlib-compressed JSON text. A plan of a million items is one part written in
one statement, where a row per node cost a million inserts (and then a million updates).

A part says no more than it must: its ids are left out when each is `step[key]` (an item's, as
the compiler names it), and keys that count up by one (`items: {range: N}`) are kept as their
first and the one past their last. A million items of a range are a few bytes, not megabytes.

What a node of the kept plan without a row is, every reader says the same way: pending, never
run; `plait status`, the resume decision, `plait logs` and reports read the
rows and then these nodes (`unrecorded`, which `Ledger.nodes`, `Ledger.previous` and
`Ledger.node_rows` read).

A run replaces the kept plan as it begins; an expansion during the run appends the nodes it adds
(and the placeholders it turns into joins: a later part overrides an earlier one for the same id).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import count, groupby, repeat
from operator import attrgetter, eq, itemgetter, ne
from typing import Any

__all__ = ["IN_PLAN", "PLANNED", "PLAN_TABLE", "pack", "unpack", "unrecorded"]

PLAN_TABLE = ("CREATE TABLE IF NOT EXISTS plan (part INTEGER PRIMARY KEY, step TEXT NOT NULL, kind TEXT NOT NULL, "
              "size INTEGER NOT NULL, nodes BLOB NOT NULL);")

# How many rows the plan's nodes have: all rows, less those of nodes that left the plan (the `gone` index, partial:
# counting either reads an index, not the table).
IN_PLAN = "((SELECT count(*) FROM settled) - (SELECT count(*) FROM settled WHERE in_plan = 0))"
_STEP_KIND = itemgetter(1, 3)
PLANNED = attrgetter("id", "step", "key", "kind")  # a NodeSpec as the kept plan lists it: (node_id, step, key, kind)
_ID, _KEY = itemgetter(0), itemgetter(2)


def pack(planned: Iterable[tuple[str, str, Any, str]]) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield the parts of `planned` nodes, (node_id, step, key, kind) each: (step, kind, size, packed ids and keys).

    A part of a million items is compared with what it would say, not built twice: the IDs its
    keys give and the range its keys count are made one at a time, not as tuples beside it
    (docs/performance.md).
    """
    for (step, kind), run in groupby(planned, _STEP_KIND):
        rows = list(run)
        ids, keys = list(map(_ID, rows)), list(map(_KEY, rows))
        del rows
        part: dict[str, Any] = {}
        if any(map(ne, ids, map(_item_id(step), keys))):
            part["ids"] = ids
        first = keys[0]
        if type(first) is int and set(map(type, keys)) == {int} and all(map(eq, keys, count(first))):
            part["range"] = [first, first + len(keys)]
        else:
            part["keys"] = keys
        text = json.dumps(part, separators=(",", ":"))  # ASCII: a surrogate-escaped name survives
        yield step, kind, len(ids), zlib.compress(text.encode("ascii"), 1)


def unpack(parts: Iterable[tuple[str, str, bytes]]) -> dict[str, tuple[str, Any, str]]:
    """Return {node_id: (step, key, kind)} from parts (step, kind, packed) in order: a later part overrides."""
    nodes: dict[str, tuple[str, Any, str]] = {}
    for step, kind, packed in parts:
        part = json.loads(zlib.decompress(packed))
        if isinstance(part, list):  # as a ledger of schema 3 packed it: [ids, keys]
            part = {"ids": part[0], "keys": part[1]}
        keys = part["keys"] if "keys" in part else range(*part["range"])
        ids = part["ids"] if "ids" in part else map(_item_id(step), keys)
        nodes.update(zip(ids, zip(repeat(step), keys, repeat(kind))))
    return nodes


def _item_id(step: str) -> Callable[[Any], str]:
    """Return what names an item of `step` by its key: `step[key]`."""
    return f"{step.replace('{', '{{').replace('}', '}}')}[{{}}]".format


def unrecorded(db: sqlite3.Connection) -> dict[str, tuple[str, Any, str]]:
    """Return the nodes of the ledger's kept plan that have no row yet, in plan order: {node_id: (step, key, kind)}.

    The rows of the plan are some of its nodes, so when there are as many rows as the plan
    has parts' nodes, every node has one: the plan is not even read then.
    """
    try:
        rows, size = db.execute(f"SELECT {IN_PLAN}, (SELECT coalesce(sum(size), 0) FROM plan)").fetchone()
    except sqlite3.OperationalError:  # a read-only ledger of an earlier schema: no plan table
        return {}
    if rows >= size:
        return {}
    planned = unpack(db.execute("SELECT step, kind, nodes FROM plan ORDER BY part"))
    recorded = {nid for (nid,) in db.execute("SELECT node_id FROM settled WHERE in_plan = 1")}
    return {nid: node for nid, node in planned.items() if nid not in recorded}
