"""Helpers for the reliability tests: plait as a real process, whole process groups, ledgers and effect files.

Every run here is a real `plait` process started in a session of its own, so that the process and
its loky workers form one process group that a test can signal or SIGKILL as a whole, the way a
terminal, a service manager or the OOM killer would. `Runs` remembers every group it started and
kills what is left of them when the test ends, whatever happened, so no test leaves workers behind.

Tasks in these workflows leave *effects*: each execution of a node appends one line, its node ID,
to `<workspace>/effects/<key>.log` (one file per node). Counting lines counts executions, which
is how the tests check "nothing run twice" without trusting the ledger's own account.

The ledger is read with plain `sqlite3`, read-only, so the tests see what is really on disk.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runtime.support import PLAIT, remove_shared_memory_of, unrecorded_rows, untraced

from plait.runtime.ledger import LedgerError

__all__ = [
    "EFFECT",
    "ENV",
    "PLAIT",
    "Runs",
    "effect_bytes",
    "effect_counts",
    "effect_workflow",
    "gate",
    "group_members",
    "held_workflow",
    "integrity",
    "last_run_status",
    "ledger_path",
    "no_core_files",
    "open_gate",
    "read_ledger",
    "rows",
    "run",
    "runs_fixture",
    "statuses",
    "stop_flag_raised",
    "succeeded",
    "wait_for",
]

ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

# An effect: one line, the node ID, appended to effects/<key>.log on every execution.
EFFECT = '''
with open(ctx.workspace / "effects" / f"{key}.log", "a", encoding="utf-8") as log:
    log.write(ctx.node_id + "\\n")
'''


# A gate: a node that meets the condition waits until the test creates <workspace>/<gate> (60 s at most,
# a bound on a hang), so that a test decides when it goes on, rather than racing it with a sleep.
GATE = """
import time as _time
_deadline = _time.monotonic() + 60
while {condition} and not (ctx.workspace / "{gate}").exists() and _time.monotonic() < _deadline:
    _time.sleep(0.005)
"""


def gate(condition: str, name: str = "go") -> str:
    """Return code lines that hold a node while `condition` is true, until the test creates <workspace>/`name`."""
    return GATE.format(condition=condition, gate=name).strip()


def open_gate(workspace: Path, name: str = "go") -> None:
    """Let the nodes held at gate `name` go on."""
    (workspace / name).touch()


def effect_workflow(name: str, items: int, held: str | None = None) -> str:
    """Return a workflow of one batch step `work` over `range(items)` whose items record each execution (EFFECT).

    `held`: a condition on `item`; the items that meet it wait at the gate `go` after recording
    their execution (`open_gate`).
    """
    body = EFFECT.strip() + ("\n" + gate(held) if held else "")
    return (f"name: {name}\nsteps:\n  - name: work\n    task: python\n    items: {{range: {items}}}\n"
            f"    inputs:\n      code: |\n{textwrap.indent(body, ' ' * 8)}\n        result = item\n")


def held_workflow(name: str, items: int, free: int = 2) -> str:
    """Return a workflow of a step `done` over `free` items (`f0`, `f1`, ...) that finish, then a step `work`
    over `range(items)` whose nodes wait at the gate `go`: when the test sees `done` recorded and both
    workers held, the run's state is known, however the machine's load cut the waves into chunks.
    """
    held = EFFECT.strip() + "\n" + gate("True")
    return (f"name: {name}\nsteps:\n  - name: done\n    task: python\n    items: {[f'f{i}' for i in range(free)]}\n"
            f"    inputs:\n      code: |\n{textwrap.indent(EFFECT.strip(), ' ' * 8)}\n        result = item\n"
            f"  - name: work\n    task: python\n    after: [done]\n    items: {{range: {items}}}\n"
            f"    inputs:\n      code: |\n{textwrap.indent(held, ' ' * 8)}\n        result = item\n")


def stop_flag_raised(workspace: Path) -> bool:
    """Say whether the run has told its workers to stop (its stop file exists): it took the signal."""
    return any((workspace / ".plait").glob("stop-*"))


def group_members(pgid: int) -> list[int]:
    """Return the live processes (zombies excluded) of process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    """Poll `condition` until it is true and return its value; raise AssertionError after `seconds` (a bound on a
    hang, not a timing)."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds:g} s waiting for {what}")
        time.sleep(0.01)
    return value


def no_core_files() -> None:
    """preexec_fn: a task that segfaults must not leave a core dump behind."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass
class Runs:
    """Start `plait` processes in their own sessions; kill what is left of every group at teardown."""

    root: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, *args: str, cwd: Path, preexec_fn: Callable[[], None] | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `plait ARGS...` as the leader of a new process group; stderr goes to a file (see `stderr`)."""
        log = open(self.root / f"stderr-{len(self.started)}.txt", "w+b")  # noqa: SIM115  (closed at teardown)
        self._logs.append(log)
        proc = subprocess.Popen([*PLAIT, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**ENV, **(env or {})},
                                preexec_fn=preexec_fn)
        self.started.append(proc)
        return proc

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        """Return everything the process printed so far (stdout and stderr)."""
        log = self._logs[self.started.index(proc)]
        log.flush()
        return Path(log.name).read_text(encoding="utf-8", errors="replace")

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 120) -> int:
        """Wait (bounded) for a process to exit; return its exit code."""
        return proc.wait(timeout=timeout)

    def kill_group(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the process's whole group; for SIGKILL, wait until every member is gone."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            proc.wait(timeout=30)
            wait_for(lambda: not group_members(proc.pid), f"process group {proc.pid} to die", 30)
            remove_shared_memory_of(proc.pid)

    def cleanup(self) -> None:
        """Kill every group this test started that still has members; close the output files."""
        for proc in self.started:
            if group_members(proc.pid):
                self.kill_group(proc)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in self._logs:
            log.close()


def run(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `plait ARGS...` to its end (bounded by `timeout`); never raises for an exit code."""
    return subprocess.run([*PLAIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})}, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)


def effect_counts(workspace: Path) -> dict[str, int]:
    """Return {node ID: executions} from <workspace>/effects; every line must name its own node."""
    counts = {}
    folder = workspace / "effects"
    if not folder.exists():
        return counts
    for path in folder.glob("*.log"):
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines:
            assert len(set(lines)) == 1, f"{path} holds lines of several nodes: {sorted(set(lines))}"
            counts[lines[0]] = len(lines)
    return counts


def effect_bytes(workspace: Path) -> int:
    """Return the total size of the effect files: it grows whenever a node executes."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(workspace / "effects"))
    except FileNotFoundError:
        return 0


def ledger_path(workspace: Path) -> Path:
    return workspace / ".plait" / "ledger.db"


def read_ledger(workspace: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query; a ledger that does not exist yet (or has no tables yet) reads as empty."""
    path = ledger_path(workspace)
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return []
        raise


def statuses(workspace: Path) -> dict[str, str]:
    """Return {node ID: status} of the task nodes in the ledger (joins, which run nothing, left out); a node of the
    plan without a row is pending."""
    found = dict(read_ledger(workspace, "SELECT node_id, status FROM nodes WHERE kind != 'join'"))
    return {**found, **{n: row["status"] for n, row in never_ran(workspace).items() if row["kind"] != "join"}}


def never_ran(workspace: Path) -> dict[str, dict[str, Any]]:
    """Return the plan's nodes that have no row in the ledger (never ran), as pending rows."""
    if not ledger_path(workspace).exists():
        return {}
    try:
        return unrecorded_rows(ledger_path(workspace))
    except LedgerError as err:  # a ledger being created: no tables yet
        if "no such table" in str(err):
            return {}
        raise


def succeeded(workspace: Path) -> set[str]:
    """Return the task nodes the ledger has recorded as succeeded (joins, which run nothing, left out)."""
    query = "SELECT node_id FROM nodes WHERE status = 'succeeded' AND kind != 'join'"
    return {row[0] for row in read_ledger(workspace, query)}


def rows(workspace: Path) -> dict[str, tuple[str, int, Any, Any]]:
    """Return {node ID: (status, attempts, result, error record)} with the JSON decoded."""
    found = read_ledger(workspace, "SELECT node_id, status, attempts, result, error FROM nodes")
    return {**{nid: (status, attempts, json.loads(result) if result else None,
                     untraced(json.loads(error)) if error else None)
               for nid, status, attempts, result, error in found},
            **{nid: (row["status"], row["attempts"], None, None) for nid, row in never_ran(workspace).items()}}


def last_run_status(workspace: Path) -> str | None:
    """Return the status of the newest run in the ledger."""
    found = read_ledger(workspace, "SELECT status FROM runs ORDER BY started DESC LIMIT 1")
    return found[0][0] if found else None


def integrity(workspace: Path) -> list[tuple[Any, ...]]:
    """Return SQLite's `PRAGMA integrity_check` of the ledger ([('ok',)] when sound)."""
    return read_ledger(workspace, "PRAGMA integrity_check")


def runs_fixture(tmp_path: Path) -> Iterator[Runs]:
    """Yield a Runs; kill whatever it started at the end."""
    runs = Runs(tmp_path)
    try:
        yield runs
    finally:
        runs.cleanup()
