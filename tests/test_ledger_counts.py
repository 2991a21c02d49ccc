"""Each step's counts, kept beside the rows (the `tally` of plait.runtime.ledger_schema), are what the rows count.

`plait status` reads them instead of counting a million rows, so they must stay exact whatever
writes the rows: outcomes recorded and recorded again, nodes leaving the plan and coming back,
placeholders turned joins, a dead run's journals recovered, a row deleted by hand, a writer
killed in the middle of a transaction, and a ledger of schema 4 (no tally) upgraded. Each test
compares `Ledger.step_counts` with the counts and order worked out here from the rows themselves.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from plait.runtime.ledger import Ledger, NodeRecord
from plait.runtime.ledger_schema import SCHEMA_VERSION

PLANNED = [("a[0]", "a", 0, "task"), ("a[1]", "a", 1, "task"), ("a[2]", "a", 2, "task"), ("a", "a", None, "join"),
           ("b[0]", "b", 0, "task"), ("b[1]", "b", 1, "task"), ("c", "c", None, "task")]
NODES = [p[0] for p in PLANNED]


def counted_from_rows(path: Path) -> list[tuple[str, int, int, int, int, int]]:
    """Return (step, nodes, succeeded, failed, retried, skipped) per step, from the rows, in the order the plan's task
    rows first name the step by completion (`seq`, then node ID)."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT node_id, step, kind, status, attempts, seq FROM nodes WHERE in_plan = 1 "
                          "ORDER BY seq IS NULL, seq, node_id").fetchall()
    counts: dict[str, list[int]] = {}
    for _, step, kind, status, attempts, _ in rows:
        if kind == "join":
            continue
        c = counts.setdefault(step, [0, 0, 0, 0, 0])
        c[0] += 1
        c[1] += status == "succeeded"
        c[2] += status == "failed"
        c[3] += attempts > 1
        c[4] += status == "skipped"
    return [(step, *c) for step, c in counts.items()]


def record(ledger: Ledger, run: str, node: str, status: str, attempts: int, kind: str = "task") -> None:
    step, key = next(p[1:3] for p in PLANNED if p[0] == node)
    ledger.record(run, [NodeRecord(node, status, attempts, b"fp", None, None, None, 1.0, 2.0, step=step, key=key,
                                   kind=kind)])


OPERATIONS = st.one_of(
    st.tuples(st.just("record"), st.sampled_from(NODES), st.sampled_from(["succeeded", "failed", "skipped"]),
              st.integers(1, 3)),
    st.tuples(st.just("leave"), st.sampled_from(NODES)),  # a run whose plan lacks the node
    st.tuples(st.just("back")),  # a run of the whole plan
    st.tuples(st.just("join"), st.sampled_from(NODES)),  # a placeholder that became a join
    st.tuples(st.just("recover"), st.sampled_from(NODES)),  # a dead run's journal says it succeeded
    st.tuples(st.just("delete"), st.sampled_from(NODES)),  # a row deleted by hand
)


@settings(max_examples=60, deadline=None)
@given(st.lists(OPERATIONS, max_size=25))
def test_the_counts_kept_are_the_rows_counts_whatever_writes_the_rows(operations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger(Path(folder) / "ledger.db")
        try:
            ledger.claim("wf")
            ledger.begin_run("run-0", "wf", "d", None, {}, 1, PLANNED, ledger.previous())
            for number, (what, *args) in enumerate(operations, 1):
                run = f"run-{number}"
                if what == "record":
                    record(ledger, "run-0", *args)
                elif what == "leave":
                    ledger.begin_run(run, "wf", "d", None, {}, 1, [p for p in PLANNED if p[0] != args[0]],
                                     ledger.previous())
                elif what == "back":
                    ledger.begin_run(run, "wf", "d", None, {}, 1, PLANNED, ledger.previous())
                elif what == "join":
                    ledger.add_nodes([(p[0], p[1], p[2], "join") for p in PLANNED if p[0] == args[0]])
                elif what == "recover":
                    ledger.recover(run, [(args[0], b"fp2", 2, "1", 1.0, 2.0, "w", None)])
                else:
                    with ledger.db:
                        ledger.db.execute("DELETE FROM settled WHERE node_id = ?", (args[0],))
                assert ledger.step_counts() == counted_from_rows(ledger.path), (what, *args)
        finally:
            ledger.close()


def test_a_step_whose_first_row_is_recorded_again_is_listed_where_its_next_row_puts_it(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.begin_run("run-1", "wf", "d", None, {}, 1, PLANNED, {})
    for node in ("a[0]", "b[0]", "a[1]", "c", "b[1]"):
        record(ledger, "run-1", node, "succeeded", 1)
    assert [row[0] for row in ledger.step_counts()] == ["a", "b", "c"]
    record(ledger, "run-1", "a[0]", "failed", 2)  # a's first row now comes after b's: its least seq is a[1]'s
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("SELECT first FROM tally WHERE step = (SELECT id FROM labels WHERE label = 'a')"
                          ).fetchone() == (None,)  # not known beside the rows: looked for among them
    assert ledger.step_counts() == [("b", 2, 2, 0, 0, 0), ("a", 2, 1, 1, 1, 0), ("c", 1, 1, 0, 0, 0)]
    assert ledger.step_counts() == counted_from_rows(ledger.path)
    ledger.add_nodes([("b[0]", "b", 0, "task")])  # a row rewritten as it was (a growth adds nodes that have rows)
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("SELECT first FROM tally WHERE step = (SELECT id FROM labels WHERE label = 'b')"
                          ).fetchone() == (2,)  # still known: b[0] keeps its seq
    assert ledger.step_counts() == counted_from_rows(ledger.path)
    ledger.close()


WRITER = """
import sys
from plait.runtime.ledger import Ledger, NodeRecord
ledger = Ledger(sys.argv[1])
ledger.begin_run("run-1", "wf", "d", None, {}, 1, [(f"w{i % 3}[{i}]", f"w{i % 3}", i, "task") for i in range(6_000)],
                 {})
batch = 0
while True:  # each step's nodes again and again, failing every other time: rows inserted, then updated
    records = [NodeRecord(f"w{i % 3}[{i}]", ("succeeded", "failed")[batch % 2], 1 + batch % 3, b"fp", None, None,
                          None, 1.0, 2.0, step=f"w{i % 3}", key=i) for i in range(batch * 300 % 6_000, 6_000)]
    ledger.record("run-1", records)
    batch += 1
    print(batch, flush=True)
"""


def test_the_counts_stay_the_rows_counts_when_the_writer_is_killed_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}) as writer:
        try:
            for _ in range(6):  # it has committed six transactions, and is writing the seventh (or more)
                assert writer.stdout is not None and writer.stdout.readline(), "the writer ended before it was killed"
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
    reader = Ledger(path, readonly=True)
    try:
        counts = reader.step_counts()
    finally:
        reader.close()
    assert counts == counted_from_rows(path)
    assert sum(row[1] for row in counts) == 6_000


def as_schema_4(path: Path) -> None:
    """Make a ledger what plait wrote at schema 4: no tally, no triggers."""
    with closing(sqlite3.connect(path)) as db, db:
        for trigger in ("tally_insert", "tally_update", "tally_delete"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE tally")
        db.execute("UPDATE meta SET value = '4' WHERE name = 'schema'")


def test_a_ledger_of_schema_4_is_counted_from_its_rows_then_given_its_tally_by_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path)
    ledger.begin_run("run-1", "wf", "d", None, {}, 1, PLANNED, {})
    for node, status, attempts in [("b[0]", "failed", 2), ("a[0]", "succeeded", 1), ("c", "skipped", 1)]:
        record(ledger, "run-1", node, status, attempts)
    ledger.close()
    expected = [("b", 1, 0, 1, 1, 0), ("a", 1, 1, 0, 0, 0), ("c", 1, 0, 0, 0, 1)]
    as_schema_4(path)
    before = path.read_bytes()
    reader = Ledger(path, readonly=True)
    assert reader.step_counts() == expected  # read as it is, counted by SQLite
    reader.close()
    assert path.read_bytes() == before
    writer = Ledger(path)  # a run opens it: upgraded, its tally counted in the upgrade's transaction
    record(writer, "run-1", "a[1]", "failed", 3)
    writer.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone() == (str(SCHEMA_VERSION),)
        assert db.execute("SELECT count(*) FROM tally").fetchone() == (3,)
    reader = Ledger(path, readonly=True)
    assert reader.step_counts() == [("b", 1, 0, 1, 1, 0), ("a", 2, 1, 1, 1, 0), ("c", 1, 0, 0, 0, 1)]
    assert reader.step_counts() == counted_from_rows(path)
    reader.close()
