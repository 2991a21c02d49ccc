"""Disk and database trouble: a damaged, foreign or unwritable ledger, and a disk that fills up mid-run.

Each case must end with exit 2 and one clear `plait: error: ...` message (naming the file, saying
what to do), never a traceback; and what was recorded must survive for the next run.
"""

from __future__ import annotations

import os
import resource
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from runtime.support import Flow, plait

from reliability.harness import (
    Runs,
    effect_counts,
    effect_workflow,
    integrity,
    ledger_path,
    open_gate,
    rows,
    run,
    statuses,
    succeeded,
    wait_for,
)

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

SMALL = """
name: small
steps:
  - name: work
    task: python
    items: {range: 5}
    inputs: {code: "result = item"}
"""


def cli(flow: Flow, *args: str, workspace: Path | None = None) -> tuple[int, str]:
    done = run(*args, "--workspace", str(workspace or flow.ws), cwd=flow.dir)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr


def run_small(flow: Flow, *extra: str, workspace: Path | None = None) -> tuple[int, str]:
    return cli(flow, "run", "workflow.yaml", "--backend", "sequential", "-q", *extra, workspace=workspace)


def damaged(path: Path) -> str:
    return (f"plait: error: the ledger {path} cannot be used: {{}}. If it is damaged, move it away (or run with "
            "--fresh) to start over\n")


def test_a_ledger_of_garbage_bytes_is_refused_with_a_hint_and_fresh_sets_it_aside(flow: Flow) -> None:
    flow.path.write_text(SMALL, encoding="utf-8")
    garbage = bytes(range(256)) * 20
    ledger = ledger_path(flow.ws)
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(garbage)
    assert run_small(flow) == (2, damaged(ledger).format("file is not a database"))
    assert cli(flow, "status") == (2, damaged(ledger).format("file is not a database"))

    code, err = run_small(flow, "--fresh")
    assert (code, err.startswith("run ")) == (0, True), err
    kept = [p for p in ledger.parent.iterdir() if p.name.startswith("ledger.db.") and p.name.endswith(".old")]
    assert [p.read_bytes() for p in kept] == [garbage]  # moved aside, not destroyed
    assert statuses(flow.ws) == {f"work[{i}]": "succeeded" for i in range(5)}


def test_a_ledger_with_damaged_pages_is_refused_with_a_hint(flow: Flow) -> None:
    flow.path.write_text(SMALL.replace("range: 5", "range: 2000"), encoding="utf-8")
    assert run_small(flow)[0] == 0
    ledger = ledger_path(flow.ws)
    with closing(sqlite3.connect(ledger)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'settled'").fetchone()[0]
    data = bytearray(ledger.read_bytes())
    data[(root - 1) * page_size:root * page_size] = b"\xff" * page_size  # the nodes table's root page
    ledger.write_bytes(bytes(data))
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "-q", cwd=flow.dir)
    status = plait("status", "--workspace", str(flow.ws), cwd=flow.dir)
    expected = damaged(ledger).format("database disk image is malformed")
    assert [(done.returncode, done.stderr), (status.returncode, status.stderr)] == [(2, expected), (2, expected)]


def test_a_ledger_of_another_workflow_is_refused_naming_both(flow: Flow) -> None:
    flow.path.write_text(SMALL, encoding="utf-8")
    (flow.dir / "other.yaml").write_text(SMALL.replace("name: small", "name: other"), encoding="utf-8")
    assert run_small(flow)[0] == 0
    done = cli(flow, "run", "other.yaml", "-q")
    assert done == (2, f"plait: error: the workspace's ledger {ledger_path(flow.ws)} belongs to workflow 'small', "
                       "not 'other'; use another --workspace, or --fresh to start this one over\n")
    assert statuses(flow.ws) == {f"work[{i}]": "succeeded" for i in range(5)}  # untouched


def test_a_workspace_that_cannot_be_created_is_refused(flow: Flow) -> None:
    """No user can create a folder under a regular file, root included."""
    flow.path.write_text(SMALL, encoding="utf-8")
    (flow.root / "a-file").write_text("not a folder")
    workspace = flow.root / "a-file" / "ws"
    assert run_small(flow, workspace=workspace) == (
        2, f"plait: error: cannot use workspace '{workspace}': Not a directory; choose a writable --workspace\n")


def test_a_read_only_workspace_is_refused(flow: Flow) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which ignores file permissions: "
                    "test_a_workspace_that_cannot_be_created_is_refused covers the unwritable case")
    flow.path.write_text(SMALL, encoding="utf-8")
    flow.ws.mkdir()
    flow.ws.chmod(0o500)
    try:
        code, err = run_small(flow)
    finally:
        flow.ws.chmod(0o700)
    assert (code, err) == (
        2, f"plait: error: cannot use workspace '{flow.ws}': Permission denied; choose a writable --workspace\n")


def test_a_ledger_path_taken_by_a_folder_is_refused(flow: Flow) -> None:
    flow.path.write_text(SMALL, encoding="utf-8")
    ledger_path(flow.ws).mkdir(parents=True)
    assert run_small(flow) == (2, damaged(ledger_path(flow.ws)).format("unable to open database file"))


ITEMS = 3000


PART_WAY_KIB = 320  # room for the run's start and some of its 3,000 rows (a ledger of 3,000 nodes is about 340 KB)
FIRST = 100  # items that run before the others may, so that their rows are committed while the disk has room


@pytest.mark.parametrize("limit_kib", [64, PART_WAY_KIB])  # full before the run's nodes are recorded; full part-way
def test_a_disk_that_fills_up_stops_the_run_cleanly_and_the_next_run_resumes(flow: Flow, runs: Runs, limit_kib: int,
                                                                            figures: dict) -> None:
    """RLIMIT_FSIZE makes writes past `limit_kib` fail as a full disk would (EFBIG; Python ignores SIGXFSZ).

    Part-way, the items past the first FIRST wait at a gate until the first rows are committed: one
    transaction of all 3,000 would not fit, and the run would record none, however the writer's
    timer cut its transactions."""
    flow.path.write_text(effect_workflow("filling", ITEMS, held=f"item >= {FIRST}"), encoding="utf-8")
    (flow.ws / "effects").mkdir(parents=True)

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kib * 1024, limit_kib * 1024))

    command = ("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    full = runs.start(*command, cwd=flow.dir, preexec_fn=small_disk)
    if limit_kib == PART_WAY_KIB:
        wait_for(lambda: succeeded(flow.ws), "the first items' rows committed")
    open_gate(flow.ws)
    code, stderr = runs.finish(full), runs.stderr(full)
    assert (code, "Traceback" in stderr) == (2, False), stderr
    assert stderr.splitlines()[-1].startswith("plait: error: writing the ledger failed: "), stderr
    recorded, ran = succeeded(flow.ws), effect_counts(flow.ws)
    assert recorded <= set(ran)
    if limit_kib == PART_WAY_KIB:
        assert len(recorded) < ITEMS, "the disk held the whole run: choose a smaller PART_WAY_KIB"

    again = run(*command, cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert rows(flow.ws) == {f"work[{i}]": ("succeeded", 1, i, None) for i in range(ITEMS)}
    final = effect_counts(flow.ws)
    assert {n: final[n] for n in recorded} == {n: ran[n] for n in recorded}
    assert integrity(flow.ws) == [("ok",)]
    figures[f"disk full at {limit_kib} KiB"] = f"{len(recorded):,} of {ITEMS:,} nodes recorded before the disk filled"
