"""How the ledger keeps a node's row: compactly, in `settled`, read through the `nodes` view; older ledgers upgraded.

A million nodes are a million rows, so each byte of a row is a megabyte of ledger. A row of the
`settled` table (schema 4) keeps nothing that repeats from row to row as text:
- the step, the run and the worker are numbers that stand for their names in `labels` (a run ID
  alone was 22 bytes a row);
- the status is a small number (`STATUSES`: succeeded is 1, which SQLite keeps in no bytes at
  all), the kind is NULL for `task`;
- the fingerprint is packed (plait.runtime.fingerprint), 25 bytes where its text took 49;
- the key is left out when the node ID says it: the number 0 when the key's JSON is the text
  between the ID's brackets (`work[7]`, key 7), an empty blob when it is that text quoted
  (`resize[a.jpg]`, key "a.jpg"), either kept in no bytes; SQLite checks each as the row is
  written, against the very expression that reads it back (`KEY`), so a key always reads as
  it was written;
- `ended` is the nanoseconds after `started` (an integer of a few bytes, not a second real of 8),
  or the moment itself when there is no start: fine enough that the moment reads back the very
  number it was (a double of today's seconds holds them to a quarter of a microsecond);
- the table is keyed by node ID (`WITHOUT ROWID`), so the ID is kept once, not once in the table
  and again in an index of it. Its two indexes are partial: of the rows that left the plan
  (`settled_gone`) and of those that did not succeed (`settled_unfinished`), what a resume reads
  (`Ledger.previous`) and a run's first guess looks for (`unfinished`); each is empty when a
  run of the whole plan succeeded, so a resume of it reads no row at all.

Each step's counts are kept beside the rows, in the `tally` table, by triggers on `settled`: a
row inserted, updated or deleted changes its step's counts (nodes, succeeded, failed, retried,
skipped, of the plan's task nodes) in the very statement that writes it, so the counts commit or
roll back with the rows, whoever writes them (a run, the recovery of a dead run's journals, an
older plait on a ledger this one upgraded): `plait status` reads a row a step, not a million
(plait.runtime.ledger). A step's `first` is the least `seq` of its counted rows, the order the
steps are listed in; when the row that held it goes, or is written again with a new seq (or
leaves the step's counts), it is left NULL, unknown, and the reader finds it among the rows. A
ledger upgraded to schema 5 gets its tally counted from its rows in the upgrade's transaction.

The `nodes` view reads every row back as it was written, column for column (status and kind as
text, the fingerprint as hex digits, `ended` as a moment, names for the numbers), so what reads
nodes by name (reports, `plait logs`, a user's own SQL) reads a schema 4 ledger as an older one.
Queries that read a million rows (status, the resume decision) read `settled` itself.

A ledger of schema 1 to 3 kept a row as text in a `nodes` table. A run that opens one for writing
upgrades it in one transaction (`upgrade`): the rows are copied into `settled` as above, the table
dropped and the view made, so nothing recorded changes meaning; its fingerprints are packed, so the
next resume finds them current. A reader of one that no run has upgraded yet (`plait status` on an
old workspace, which only reads) copies its rows into temporary tables of the same shape
(`emulate`), so every query is written once, for schema 4.
"""

from __future__ import annotations

import sqlite3

from plait.runtime.planned import PLAN_TABLE

__all__ = ["COUNTED", "ENDED", "FINGERPRINT", "KEY", "SCHEMA_VERSION", "STATUS", "STATUSES", "TABLES", "emulate",
           "has_tally", "label", "status_code", "stored_ended", "stored_key", "upgrade"]

SCHEMA_VERSION = 5  # 3: a node has its row once it settles; 4: the row kept compactly (`settled`, `labels`); 5: `tally`

TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, digest TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, ended REAL, status TEXT NOT NULL, source TEXT, params TEXT,
    counts TEXT, step_graph TEXT
);
CREATE TABLE IF NOT EXISTS steps (name TEXT PRIMARY KEY, parts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    node_id TEXT NOT NULL, run_id TEXT, attempt INTEGER NOT NULL, status TEXT NOT NULL,
    started REAL, ended REAL, worker TEXT, reason TEXT, error TEXT, output TEXT
);
""" + PLAN_TABLE

# The node rows, in the `main` schema or (`emulate`) the `temp` one. `{db}` names which.
_SETTLED = """
CREATE TABLE IF NOT EXISTS {db}.labels (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS {db}.settled (
    node_id TEXT PRIMARY KEY, step INTEGER NOT NULL, key, kind TEXT, status NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, fingerprint, result TEXT, error TEXT, note TEXT, started REAL, ended,
    run INTEGER, seq INTEGER, in_plan INTEGER NOT NULL DEFAULT 1, worker INTEGER, reason TEXT, output TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {db}.settled_gone ON settled (in_plan) WHERE in_plan = 0;
CREATE INDEX IF NOT EXISTS {db}.settled_unfinished ON settled (in_plan) WHERE status != 1;
"""
# Each step's counts of the plan's task nodes (`COUNTED` rows), kept by triggers in the transaction writing the rows.
# A row's part of its step's counts is taken back as it leaves (`_uncount`) and added as it comes (`_count`); the least
# seq stays known while rows come (a row without a seq leaves it as it is) and while a row that did not hold it leaves.
COUNTED = "in_plan = 1 AND kind IS NOT 'join'"
_TALLY_COLUMNS = "nodes, succeeded, failed, retried, skipped"
_TALLY = "CREATE TABLE IF NOT EXISTS tally (step INTEGER PRIMARY KEY, {columns}, first INTEGER)".format(
    columns=", ".join(f"{column} INTEGER NOT NULL" for column in _TALLY_COLUMNS.split(", ")))
_PARTS = ("1", "{row}.status = 1", "{row}.status = 2", "{row}.attempts > 1", "{row}.status = 3")


def _count(row: str) -> str:
    """Return SQL adding row `row` (NEW or OLD) to its step's counts, if it is counted."""
    values = ", ".join(part.format(row=row) for part in _PARTS)
    counted = COUNTED.replace("in_plan", f"{row}.in_plan").replace("kind", f"{row}.kind")
    sums = ", ".join(f"{c} = {c} + excluded.{c}" for c in _TALLY_COLUMNS.split(", "))
    return (f"INSERT INTO tally (step, {_TALLY_COLUMNS}, first) SELECT {row}.step, {values}, {row}.seq "
            f"WHERE {counted} ON CONFLICT (step) DO UPDATE SET {sums}, "
            "first = CASE WHEN nodes = 0 THEN excluded.first ELSE min(first, coalesce(excluded.first, first)) END;")


def _uncount(row: str, stays: str = "0") -> str:
    """Return SQL taking row `row` (OLD) out of its step's counts, if it was counted; the least seq stays known when
    the row did not hold it, or when `stays` (SQL: the row is rewritten, counted still, in its step, with its seq)."""
    parts = ", ".join(f"{c} = {c} - ({part.format(row=row)})" for c, part in zip(_TALLY_COLUMNS.split(", "), _PARTS))
    counted = COUNTED.replace("in_plan", f"{row}.in_plan").replace("kind", f"{row}.kind")
    return (f"UPDATE tally SET {parts}, first = CASE WHEN {row}.seq IS NULL OR first < {row}.seq OR {stays} "
            f"THEN first END WHERE step = {row}.step AND {counted};")


# An update that leaves a row counted in its step with its seq (its kind or in_plan written again as they were, a
# retried attempt's status) leaves the step's least seq as it was.
_STAYS = "(NEW.step = OLD.step AND NEW.seq = OLD.seq AND NEW.in_plan = 1 AND NEW.kind IS NOT 'join')"


_TRIGGERS = (
    f"CREATE TRIGGER tally_insert AFTER INSERT ON settled BEGIN {_count('NEW')} END",
    f"CREATE TRIGGER tally_delete AFTER DELETE ON settled BEGIN {_uncount('OLD')} END",
    "CREATE TRIGGER tally_update AFTER UPDATE OF step, status, attempts, seq, in_plan, kind ON settled "
    f"BEGIN {_uncount('OLD', _STAYS)} {_count('NEW')} END",
)

# Columns a ledger of an earlier schema lacks, added before it is upgraded: {table: [(column, type)]}.
_ADDED = {"runs": [("counts", "TEXT"), ("step_graph", "TEXT")],
          "nodes": [("worker", "TEXT"), ("reason", "TEXT"), ("output", "TEXT")]}

STATUSES = ("pending", "succeeded", "failed", "skipped")  # a status is kept as its place here


def status_code(text: str) -> str:
    """Return SQL turning the status text `text` (an SQL expression) into its number; another text stays text."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(STATUSES))
    return f"CASE {text} {cases} ELSE {text} END"


def label(number: str) -> str:
    """Return SQL reading the name a label's number (an SQL expression) stands for."""
    return f"(SELECT label FROM labels WHERE id = {number})"


def stored_key(node_id: str, key: str) -> str:
    """Return SQL turning a key's JSON `key` into what `settled` keeps: nothing when the node ID says it.

    `CASE {key} WHEN`: SQLite works out the key (a `json_quote` as rows are recorded) once, not
    once for each comparison.
    """
    inside = _inside(node_id)
    return (f"CASE WHEN substr({node_id}, -1) != ']' THEN {key} "
            f"ELSE CASE {key} WHEN {inside} THEN 0 WHEN json_quote({inside}) THEN x'' ELSE {key} END END")


def _inside(node_id: str) -> str:
    """Return SQL reading the text between a node ID's first `[` and its last character (a `]`)."""
    return f"substr({node_id}, instr({node_id}, '[') + 1, length({node_id}) - instr({node_id}, '[') - 1)"


def stored_ended(started: str, ended: str) -> str:
    """Return SQL turning a moment `ended` into what `settled` keeps: nanoseconds after `started`, if one."""
    return (f"CASE WHEN {started} IS NULL OR {ended} IS NULL THEN {ended} "
            f"ELSE CAST(round(({ended} - {started}) * 1000000000) AS INTEGER) END")


# A row's columns read back as they were written (the `nodes` view uses these; so do the queries of `Ledger`).
STATUS = "CASE status " + " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(STATUSES)) + \
         " ELSE status END"
FINGERPRINT = ("CASE typeof(fingerprint) WHEN 'blob' THEN substr(lower(hex(fingerprint)), 1, "
               "CASE length(fingerprint) WHEN 25 THEN 49 ELSE 2 * length(fingerprint) END) ELSE fingerprint END")
KEY = (f"CASE typeof(key) WHEN 'integer' THEN {_inside('node_id')} WHEN 'blob' THEN json_quote({_inside('node_id')}) "
       "ELSE key END")
ENDED = "CASE WHEN typeof(ended) = 'integer' AND started IS NOT NULL THEN started + ended / 1e9 ELSE ended END"

_VIEW = f"""
CREATE VIEW IF NOT EXISTS nodes AS SELECT
    node_id, {label('step')} AS step, {KEY} AS key, coalesce(kind, 'task') AS kind, {STATUS} AS status, attempts,
    {FINGERPRINT} AS fingerprint, result, error, note, started, {ENDED} AS ended, {label('run')} AS run_id, seq,
    in_plan, {label('worker')} AS worker, reason, output
FROM settled
"""


def upgrade(db: sqlite3.Connection) -> None:
    """Give a ledger opened for writing the tables of this schema, upgrading one of an earlier schema.

    One transaction: a ledger is upgraded whole or not at all.
    """
    db.executescript(TABLES)  # each CREATE ... IF NOT EXISTS: a ledger that has them keeps them
    db.execute("BEGIN IMMEDIATE")
    try:
        old = _nodes_table(db)
        for table, added in _ADDED.items():
            if table == "runs" or old:
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column, kind in added:
                    if column not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        _create(db, "main")
        if old:
            _copy(db, "main")
            db.execute("DROP TABLE nodes")
        if not has_tally(db):
            _count_all(db)
        db.execute(_VIEW)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.commit()
    except BaseException:
        db.rollback()
        raise


def has_tally(db: sqlite3.Connection) -> bool:
    """Say whether the ledger keeps its steps' counts (schema 5); one that does not is counted from its rows."""
    return db.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'tally'").fetchone() is not None


def _count_all(db: sqlite3.Connection) -> None:
    """Count each step's rows into a new `tally`, then keep it counted (the triggers): inside the upgrade's
    transaction."""
    db.execute(_TALLY)
    db.execute(f"INSERT INTO tally (step, {_TALLY_COLUMNS}, first) SELECT step, count(*), sum(status = 1), "
               f"sum(status = 2), sum(attempts > 1), sum(status = 3), min(seq) FROM settled WHERE {COUNTED} "
               "GROUP BY step")
    for trigger in _TRIGGERS:
        db.execute(trigger)


def emulate(db: sqlite3.Connection) -> None:
    """Let a read-only connection to a ledger of an earlier schema read it as schema 4: its rows copied into `temp`."""
    if not _nodes_table(db):
        return
    _create(db, "temp")
    _copy(db, "temp")
    db.commit()


def _create(db: sqlite3.Connection, into: str) -> None:
    for statement in _SETTLED.format(db=into).split(";"):
        if statement.strip():
            db.execute(statement)


def _nodes_table(db: sqlite3.Connection) -> bool:
    """Say whether the ledger keeps its rows in a `nodes` table (schemas 1 to 3), not in `settled`."""
    return db.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'nodes' AND type = 'table'").fetchone() is not None


def _copy(db: sqlite3.Connection, into: str) -> None:
    """Copy the `nodes` table's rows into `{into}.settled`, kept as schema 4 keeps them (fingerprints packed, so a
    resume, or a dry run, finds them current)."""
    from plait.runtime.fingerprint import packed  # here: a reader of a schema 4 ledger need not load the compiler

    db.create_function("plait_packed", 1, packed, deterministic=True)
    have = {row[1] for row in db.execute("PRAGMA main.table_info(nodes)")}
    column = {name: name if name in have else "NULL" for name in ("worker", "reason", "output")}
    db.execute(f"INSERT OR IGNORE INTO {into}.labels (label) SELECT step FROM main.nodes UNION "
               f"SELECT run_id FROM main.nodes WHERE run_id IS NOT NULL UNION "
               f"SELECT {column['worker']} FROM main.nodes WHERE {column['worker']} IS NOT NULL")

    def number(name: str) -> str:
        return f"(SELECT id FROM {into}.labels WHERE label = {name})"

    db.execute(f"""
        INSERT INTO {into}.settled (node_id, step, key, kind, status, attempts, fingerprint, result, error, note,
            started, ended, run, seq, in_plan, worker, reason, output)
        SELECT node_id, {number('step')}, {stored_key('node_id', 'key')}, nullif(kind, 'task'),
            {status_code('status')}, attempts, plait_packed(fingerprint),
            result, error, note, started, {stored_ended('started', 'ended')}, {number('run_id')}, seq, in_plan,
            {number(column['worker'])}, {column['reason']}, {column['output']}
        FROM main.nodes""")
