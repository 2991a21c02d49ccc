"""Helpers for tests that run real workflows: write them into a temporary folder, run them, read the ledger.

A `Flow` is a workflow folder (the YAML and its Python helper modules) and a workspace, both under a
test's `tmp_path`. Helper modules get a name unique to the test (`name_<tag>`): the test process and
loky's reusable worker processes outlive a test and cache imported modules by name, so two tests
writing `helpers.py` would otherwise run each other's code.

The ledger is read with plain `sqlite3` (read-only), not through plait, so the tests see what is
really on disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plait.cli import main
from plait.runtime import RunResult, run_workflow
from plait.runtime.ledger import Ledger

BACKENDS = ("sequential", "threading", "loky")

# The name of the user property under which a test's measured figures travel (tests/conftest.py prints them).
FIGURE = "plait-figure"


def _plait_command() -> list[str]:
    script = Path(sys.executable).with_name("plait")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plait.cli"]


PLAIT = _plait_command()

# A helper module: `record` is a task (`function: recorder_<tag>:record`), `note` is for other helpers;
# both append the node's ID to executions.log on every execution.
RECORDER = '''
    def note(ctx):
        """Append this node's ID to <workspace>/executions.log, in one write."""
        with open(ctx.workspace / "executions.log", "a", encoding="utf-8") as log:
            log.write(ctx.node_id + "\\n")


    def record(item=None, *, ctx, value=None):
        """A task: note the execution and return `value` (a batch node also gets its item)."""
        note(ctx)
        return value
'''


@dataclass
class Flow:
    """A workflow folder and a workspace under one test's tmp_path."""

    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    modules: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.root / "flow"

    @property
    def ws(self) -> Path:
        return self.root / "ws"

    @property
    def path(self) -> Path:
        return self.dir / "workflow.yaml"

    @property
    def ledger_path(self) -> Path:
        return self.ws / ".plait" / "ledger.db"

    def module(self, name: str, source: str) -> str:
        """Write a helper module beside the workflow; return its importable (unique) name."""
        module = f"{name}_{self.tag}"
        (self.dir / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.modules.append(module)
        return module

    def write(self, text: str, **names: str) -> Path:
        """Write the workflow YAML; each `<name>` in it is replaced by `names[name]` (module names)."""
        text = textwrap.dedent(text)
        for name, value in names.items():
            text = text.replace(f"<{name}>", value)
        self.path.write_text(text, encoding="utf-8")
        return self.path

    def run(self, **options: Any) -> RunResult:
        """Run the workflow through the API in this flow's workspace (sequential backend unless told)."""
        options.setdefault("backend", "sequential")
        options.setdefault("jobs", 2)
        return run_workflow(self.path, workspace=self.ws, **options)

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `plait ARGS...` in the workflow folder (in this process: see `plait`)."""
        return plait(*args, cwd=cwd or self.dir)

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Return every ledger row, decoded."""
        return ledger_rows(self.ledger_path)

    def view(self, *columns: str) -> dict[str, Any]:
        """Return {node: column} (one column) or {node: (columns...)} from the ledger."""
        return {nid: row[columns[0]] if len(columns) == 1 else tuple(row[c] for c in columns)
                for nid, row in self.nodes().items()}

    def executions(self) -> list[str]:
        """Return the node IDs in executions.log, one per execution, in the order written."""
        log = self.ws / "executions.log"
        return log.read_text(encoding="utf-8").split() if log.exists() else []


def make_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """Yield a Flow; afterwards forget its modules and the sys.path entry the python task added."""
    flow = Flow(tmp_path)
    flow.dir.mkdir()
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield flow
    for module in flow.modules:
        sys.modules.pop(module, None)


def plait(*args: str, cwd: Path, env: dict[str, str] | None = None,
          unset: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run the plait command line in this process, in `cwd`, with `env` added to the environment and the variables
    `unset` names taken out of it; return what it did as `plait_process` does (never raises for an exit code).

    It is the command line's own entry point (`plait.cli.main`) with its real backends (loky's workers are real
    processes, reused from one call to the next), minus the start of an interpreter and its imports: most tests
    check what a command decides and prints, and a fresh interpreter per command made the suite several times
    slower. Tests of what only a whole process shows (signals, exit on a crash, stdin, a fresh import) use
    `plait_process`. A command that hangs here is ended by the suite's timeout (pytest-timeout).
    """
    out, err = _Captured(), _Captured()
    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    os.environ.update(env or {})
    for name in unset:
        os.environ.pop(name, None)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as end:  # argparse's usage errors and --help
                code = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
    return subprocess.CompletedProcess(["plait", *args], code, out.text(), err.text())


class _Captured(io.TextIOWrapper):
    """A text stream as a pipe to a process is: UTF-8 and not a terminal, read back whole as `.text()`."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="surrogateescape", write_through=True)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]


def plait_process(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the plait command line as a subprocess; return what it did (never raises for an exit code)."""
    return subprocess.run([*PLAIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})


def ledger_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Return {node_id: row} for every row of a ledger, JSON columns decoded, in row order; then the plan's nodes
    that have no row, as pending (what every reader of the ledger makes of them)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        cursor = db.execute("SELECT node_id, step, key, kind, status, attempts, fingerprint, result, error, note, "
                            "started, ended, run_id, seq, in_plan FROM nodes ORDER BY rowid")
        names = [c[0] for c in cursor.description]
        rows = {}
        for values in cursor.fetchall():
            row = dict(zip(names, values))
            for column in ("key", "result", "error"):
                row[column] = json.loads(row[column]) if row[column] is not None else None
            row["error"] = untraced(row["error"])
            row["in_plan"] = bool(row["in_plan"])
            rows[row.pop("node_id")] = row
    for nid, row in unrecorded_rows(path).items():
        rows[nid] = {**row, "fingerprint": None, "result": None, "error": None, "note": None, "started": None,
                     "ended": None, "run_id": None, "seq": None, "in_plan": True}
    return rows


def unrecorded_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Return {node_id: {step, key, kind, status, attempts}} of the plan's nodes that have no row (never ran)."""
    ledger = Ledger(path, readonly=True)
    try:
        return {nid: {"step": step, "key": key, "kind": kind, "status": "pending", "attempts": 0}
                for nid, (step, key, kind) in ledger.unrecorded().items()}
    finally:
        ledger.close()


def ledger_query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run one read-only query on a ledger."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def untraced(record: Any) -> Any:
    """Return an error record (or a list of them) without its traceback and where it was raised.

    Tests compare records whole; the traceback, whose text follows the test's own code, has tests of
    its own (tests/test_diagnostics.py).
    """
    if isinstance(record, list):
        return [untraced(r) for r in record]
    if isinstance(record, dict):
        return {k: v for k, v in record.items() if k not in ("traceback", "where")}
    return record


def untraced_status(state: dict[str, Any]) -> dict[str, Any]:
    """Return `workflow_status` output with every error record untraced (see `untraced`)."""
    nodes = {n: {**v, "error": untraced(v["error"])} for n, v in state["nodes"].items()}
    steps = {s: {**v, "failed": {k: untraced(e) for k, e in v["failed"].items()}} for s, v in state["steps"].items()}
    return {**state, "nodes": nodes, "steps": steps}


def error(node: str, error_type: str, message: str, *, item: Any = None, attempt: int = 1,
          retryable: bool = False, **extra: Any) -> dict[str, Any]:
    """Return the one error record plait should store for a failure."""
    return {"success": False, "error": message, "error_type": error_type, "item": item, "node": node,
            "attempt": attempt, "retryable": retryable, **extra}


def process_is_gone(pid: int) -> bool:
    """Return True when `pid` has exited (gone, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def remove_shared_memory_of(pid: int) -> None:
    """Remove what loky and joblib kept in /dev/shm for a run killed with its whole group.

    loky's resource tracker removes a dead run's semaphores and joblib's memmapping folders, but
    it is in the killed group too: without this, every kill leaves about ten entries behind in
    /dev/shm (memory, on a CI machine that runs the suite again and again).
    """
    shm = Path("/dev/shm")
    for leftover in [*shm.glob(f"sem.loky-{pid}-*"), *shm.glob(f"joblib_memmapping_folder_{pid}_*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
