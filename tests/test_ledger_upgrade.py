"""A workspace whose ledger an earlier plait wrote resumes on this one (issue 18: schema 4 keeps rows compactly).

The ledgers in tests/fixtures/ledgers were written by plait itself at two earlier commits
(`make.sh` says how): schema 3 (rows as text, never-run nodes in the kept plan) and schema 2
(a pending row for every node at the start). Each holds a run stopped by a failure: 12 nodes
succeeded, one failed, one was interrupted, three never ran. Read as they are, they must say
what the earlier plait said; resumed, they must run those five nodes and no other.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from runtime.support import PLAIT

FIXTURES = Path(__file__).parent / "fixtures" / "ledgers"
SUCCEEDED = ["each[café]", "after[café]", 'each[a"b]', 'after[a"b]', "each[0]", "after[0]", "each[10]", "after[10]",
             "each[-3]", "after[-3]", "each[2.5]", "after[2.5]"]
TO_RUN = [("each[plain]", "failed"), ("after[plain]", "interrupted"), ("total", "pending"), ("gate", "pending"),
          ("later", "pending")]


def plait(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PLAIT, *argv], cwd=folder, capture_output=True, text=True, encoding="utf-8", timeout=120)


def workspace_of(tmp_path: Path, schema: str) -> Path:
    """Return a workflow folder holding the workflow and, in `ws`, the ledger an earlier plait wrote."""
    shutil.copy(FIXTURES / "workflow.yaml", tmp_path)
    (tmp_path / "ws" / ".plait").mkdir(parents=True)
    shutil.copy(FIXTURES / f"{schema}.db", tmp_path / "ws" / ".plait" / "ledger.db")
    return tmp_path


def rows(ledger: Path) -> dict[str, tuple[str, int, float, float, str]]:
    """Return {node: (status, attempts, started, ended, fingerprint)}, read through the `nodes` view or table."""
    with closing(sqlite3.connect(ledger)) as db:
        found = db.execute("SELECT node_id, status, attempts, started, ended, fingerprint FROM nodes")
        return {node: tuple(rest) for node, *rest in found}


@pytest.mark.parametrize("schema", ["schema2", "schema3"])
def test_a_ledger_of_an_earlier_schema_reads_as_that_plait_printed_it_and_is_not_written(tmp_path: Path,
                                                                                       schema: str) -> None:
    folder = workspace_of(tmp_path, schema)
    ledger = folder / "ws" / ".plait" / "ledger.db"
    before = ledger.read_bytes()
    status = plait(folder, "status", "--workspace", "ws", "--format", "json")
    dry = plait(folder, "run", "workflow.yaml", "--workspace", "ws", "--dry-run", "--format", "json")
    printed = (FIXTURES / f"{schema}.status.json").read_text(encoding="utf-8")
    assert (status.returncode, dry.returncode) == (0, 0), status.stderr + dry.stderr
    assert json.loads(status.stdout) == json.loads(printed)
    if schema == "schema3":  # schema 2's pending rows had no completion order: they come by node ID now
        assert status.stdout == printed
    decided = json.loads(dry.stdout)
    assert ([(n["id"], n["reason"]) for n in decided["would_run"]], decided["done"]) == (TO_RUN, len(SUCCEEDED))
    assert ledger.read_bytes() == before  # read-only: the earlier schema is read through temporary tables


@pytest.mark.parametrize("schema", ["schema2", "schema3"])
def test_a_ledger_of_an_earlier_schema_is_upgraded_and_its_resume_runs_only_what_did_not_succeed(
        tmp_path: Path, schema: str) -> None:
    folder = workspace_of(tmp_path, schema)
    ledger = folder / "ws" / ".plait" / "ledger.db"
    earlier = rows(ledger)
    done = plait(folder, "run", "workflow.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "17 succeeded (12 already done)" in done.stderr
    now = rows(ledger)
    assert {n: now[n] for n in SUCCEEDED} == {n: earlier[n] for n in SUCCEEDED}  # not run again, read back as written
    assert {n: now[n][:2] for n, _ in TO_RUN} == {n: ("succeeded", 1) for n, _ in TO_RUN}
    with closing(sqlite3.connect(ledger)) as db:
        kinds = dict(db.execute("SELECT name, type FROM sqlite_master WHERE name IN ('nodes', 'settled')"))
        version = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        tally = db.execute("SELECT step, nodes, succeeded, failed, retried, skipped FROM tally ORDER BY step")
        counted = db.execute("SELECT step, count(*), sum(status = 1), sum(status = 2), sum(attempts > 1), "
                             "sum(status = 3) FROM settled WHERE in_plan = 1 AND kind IS NOT 'join' "
                             "GROUP BY step ORDER BY step")
        assert tally.fetchall() == counted.fetchall()  # counted as it was upgraded, kept counted by the run after
    assert (kinds, version) == ({"nodes": "view", "settled": "table"}, ("5",))
    again = plait(folder, "run", "workflow.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet")
    assert (again.returncode, "17 succeeded (17 already done)" in again.stderr) == (0, True), again.stderr
