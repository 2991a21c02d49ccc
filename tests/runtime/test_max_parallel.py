"""`max_parallel: N` through the command line, with real processes: N of a step's nodes at once, never more.

Each node of the limited step `api` appends `start <node>` to <workspace>/events.log, waits at the
gate `api-go`, then appends `end <node>`; each node of the unlimited step `other` does the same at
the gate `other-go`. Both gates stay shut until every one of the run's W workers holds a node (W
nodes started and not ended): from then on nothing can start, so what the log says is final,
whatever the machine's load. It must be N nodes of `api` and W - N of `other`: more of `api` and
the limit leaked, fewer and the limited step got fewer workers than it may use. Then `other`'s gate
opens, and all of its nodes finish while `api` is still held at N (a limited step does not keep
the other workers idle); then `api`'s, and the run ends with every node succeeded and, replayed from
the log, at most N `api` nodes ever at once.

The limited nodes come four ways: a step's own items; retried nodes (each one's first attempt
fails, so they run again in a later wave); the items of a deferred step (expanded from an upstream
result); and the children of a per-parent fan-out. Each runs on loky and threading; the plain one
also on a Dask cluster of two workers (skipped, saying so, without the `dask` extra).

After a worker died, what is left of a lane must run again as one chunk: that is checked on the
dispatcher itself, with a `Parallel` stand-in whose pool breaks on cue and a crash trail given as data.
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joblib.externals.loky.process_executor import TerminatedWorkerError
from reliability.harness import Runs, gate, open_gate, read_ledger, wait_for

from plait.compiler import RetryPolicy
from plait.runtime import backends
from plait.runtime.execute import Chunk, Results, RunInfo, StepCall
from plait.runtime.trail import prepare
from runtime.support import Flow
from runtime.test_dask import NO_EXTRA, local_cluster

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 5  # nodes of `api` (the per-parent shape makes 6: two parents of three children)
OTHERS = 4  # nodes of `other`


NOTE = 'with open(ctx.workspace / "events.log", "a", encoding="utf-8") as log:\n    log.write(f"{} {{ctx.node_id}}\\n")'


def held(gate_name: str, first_attempt_fails: bool = False) -> str:
    """Return a node's code: note its start, wait at the gate, note its end (a first attempt may fail at once)."""
    fail = 'if ctx.attempt == 1:\n    raise OSError("rate limited")\n' if first_attempt_fails else ""
    body = f"{fail}{NOTE.format('start')}\n{gate('True', gate_name)}\n{NOTE.format('end')}\nresult = item\n"
    return textwrap.indent(body, " " * 8)


# `first` ends once the ledger has every failed first attempt of `api`: the failures are settled (their retries
# due) before `other` is ready, so the retries and `other` are ready together, as in one wave, however the
# outcomes of the calls in flight arrive (plait.runtime.calls).
AFTER_FAILURES = textwrap.indent(textwrap.dedent(f"""\
    import sqlite3, time
    ledger = ctx.workspace / ".plait" / "ledger.db"
    deadline = time.monotonic() + 60  # a bound on a hang, not a timing
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{{ledger}}?mode=ro", uri=True) as db:
                if db.execute("SELECT count(*) FROM attempts WHERE node_id LIKE 'api[%'").fetchone()[0] == {ITEMS}:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.01)
    result = 0
    """), " " * 4)


def first_step(lines: str) -> str:
    """Return a quick step `first` (its keys below `task`): `other` runs after it, `api` may read it."""
    return f"  - name: first\n    task: python\n{textwrap.indent(lines, ' ' * 4)}\n"


def workflow(shape: str, limit: int) -> str:
    """Return the workflow: `api` (max_parallel: `limit`, its nodes made the `shape` way) and `other`, unlimited.

    Where `api` comes after a step, so does `other`, so both are held in the same wave.
    """
    first = {
        "items": "",
        "retried": first_step(f"inputs:\n  code: |\n{AFTER_FAILURES}"),
        "deferred": first_step(f'inputs: {{code: "result = list(range({ITEMS}))"}}'),
        "per-parent": first_step('items: [x, y]\ninputs: {code: "result = [0, 1, 2]"}'),
    }[shape]
    items = {
        "items": f"items: {{range: {ITEMS}}}",
        "retried": f"items: {{range: {ITEMS}}}\n    retry: {{max_attempts: 2, delay: 0, retry_on: [OSError]}}",
        "deferred": 'items: "{{ steps.first.result }}"',
        "per-parent": 'for_each: first\n    items: "{{ parent.result }}"',
    }[shape]
    after = "    after: [first]\n" if first else ""
    return (f"name: limited\nsteps:\n{first}"
            f"  - name: api\n    task: python\n    {items}\n    max_parallel: {limit}\n"
            f"    inputs:\n      code: |\n{held('api-go', shape == 'retried')}"
            f"  - name: other\n    task: python\n{after}    items: {{range: {OTHERS}}}\n"
            f"    inputs:\n      code: |\n{held('other-go')}")


def events(workspace: Path) -> list[tuple[str, str]]:
    """Return the log's (start|end, node) lines, in the order written."""
    log = workspace / "events.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [tuple(line.split(" ", 1)) for line in lines]  # type: ignore[misc]


def holding(workspace: Path) -> Counter:
    """Return, by step, how many nodes have started and not ended."""
    now: Counter = Counter()
    for what, node in events(workspace):
        now[node.partition("[")[0]] += 1 if what == "start" else -1
    return +now


def most_at_once(workspace: Path, step: str) -> int:
    """Return the most nodes of `step` that were ever started and not ended at once, replaying the log."""
    now = most = 0
    for what, node in events(workspace):
        if node.startswith(f"{step}["):
            now += 1 if what == "start" else -1
            most = max(most, now)
    return most


def check_the_limit(flow: Flow, runs: Runs, shape: str, *, backend: str, workers: int, limit: int,
                    extra: tuple[str, ...] = ()) -> None:
    """Run the workflow and check the limit as the module docstring says."""
    flow.path.write_text(workflow(shape, limit), encoding="utf-8")
    proc = runs.start("run", str(flow.path), "--workspace", str(flow.ws), "--backend", backend,
                      "--jobs", str(workers), "-q", *extra, cwd=flow.dir)
    wait_for(lambda: sum(holding(flow.ws).values()) == workers or proc.poll() is not None,
             f"all {workers} workers to hold a node")
    assert (proc.poll(), holding(flow.ws)) == (None, {"api": limit, "other": workers - limit}), runs.stderr(proc)

    open_gate(flow.ws, "other-go")
    wait_for(lambda: sum(what == "end" for what, node in events(flow.ws) if node.startswith("other[")) == OTHERS
             or proc.poll() is not None, "every node of other to end")
    assert (proc.poll(), holding(flow.ws)) == (None, {"api": limit}), runs.stderr(proc)

    open_gate(flow.ws, "api-go")
    assert runs.finish(proc) == 0, runs.stderr(proc)
    api = dict(read_ledger(flow.ws, "SELECT node_id, status || ' ' || attempts FROM nodes "
                                    "WHERE step = 'api' AND kind = 'task'"))
    assert set(api.values()) == {f"succeeded {2 if shape == 'retried' else 1}"}
    assert len(api) == (6 if shape == "per-parent" else ITEMS)
    assert sum(what == "start" for what, _ in events(flow.ws)) == len(api) + OTHERS  # each ran once, held once
    assert most_at_once(flow.ws, "api") == limit


SHAPES = ("items", "retried", "deferred", "per-parent")


@pytest.mark.slow  # loky's processes start for each run: a few seconds each
@pytest.mark.parametrize("shape", SHAPES)
def test_max_parallel_holds_on_loky(flow: Flow, runs: Runs, shape: str) -> None:
    check_the_limit(flow, runs, shape, backend="loky", workers=3, limit=2)


@pytest.mark.parametrize("shape", SHAPES)
def test_max_parallel_holds_on_threading(flow: Flow, runs: Runs, shape: str) -> None:
    check_the_limit(flow, runs, shape, backend="threading", workers=3, limit=2)


@pytest.mark.slow  # a Dask cluster starts: a few seconds
def test_max_parallel_holds_on_a_dask_cluster(flow: Flow, runs: Runs) -> None:
    pytest.importorskip("distributed", reason=NO_EXTRA)
    with local_cluster() as address:  # two one-thread workers
        check_the_limit(flow, runs, "items", backend="dask", workers=2, limit=1,
                        extra=("--scheduler-address", address))


# --- worker loss -----------------------------------------------------------------------------------


class BreakingParallel:
    """A `Parallel` stand-in: its first call takes every chunk and breaks as loky's pool does when a worker dies;
    later calls run nothing and say every job succeeded. It keeps each call's chunks as lists of node IDs."""

    def __init__(self) -> None:
        self.calls: list[list[list[str]]] = []

    def __enter__(self) -> BreakingParallel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, tasks: Iterator[Any]) -> list[tuple[int, int, Results]]:
        taken = [args for _, args, _ in tasks]  # delayed(_run_tagged)(call, index, info, chunk)
        self.calls.append([chunk.nodes for *_, chunk in taken])
        if len(self.calls) == 1:
            raise TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated. "
                                        "The exit codes of the workers are {EXIT(3)}")
        return [(call, index, Results(["succeeded"] * len(chunk.nodes), ["null"] * len(chunk.nodes),
                                      [0.0] * len(chunk.nodes), [0.0] * len(chunk.nodes), {}, {}, {}, "1"))
                for call, index, _, chunk in taken]


def test_what_is_left_of_a_lane_after_a_worker_died_runs_again_as_one_chunk(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # The crash trail says the lane (chunk 0) was on its job 1, and the unit of `other` (chunk 1) on its job 0.
    monkeypatch.setattr(backends, "last_jobs", lambda folder, call: {0: 1, 1: 0})
    limited = StepCall("api", print, {}, {}, False, True, None, None, False, RetryPolicy(), 4, max_parallel=1)
    plain = limited._replace(step="other", max_parallel=None)
    nodes = ["other[0]", "other[1]", "api[0]", "api[1]", "api[2]", "api[3]"]
    count = len(nodes)
    wave = Chunk(nodes, [plain, plain, limited, limited, limited, limited], [None] * count, [None] * count,
                 [None] * count, [1] * count, [{}] * count, [0] * count, [{}] * count, [""] * count)
    prepare(tmp_path / "trail")  # the trail folder, with its fence
    info = RunInfo("run", tmp_path, tmp_path, {}, str(tmp_path / "stop"), os.getpid(), trail=str(tmp_path / "trail"))
    parallel = BreakingParallel()
    done = backends._Dispatcher(lambda backend: parallel, lambda: "loky", None, workers=2).dispatch(
        info, wave, [0, 1, 2], 1)
    assert sorted(n for chunk, _ in done for n in chunk.nodes) == sorted(nodes)
    assert parallel.calls == [
        [["api[0]", "api[1]", "api[2]", "api[3]"], ["other[0]"], ["other[1]"]],  # the lane first, whole; then broke
        [["api[1]"]],  # what each worker was running, alone
        [["other[0]"]],
        [["api[0]", "api[2]", "api[3]"], ["other[1]"]],  # the rest of the lane stays one chunk: never beside itself
    ]
