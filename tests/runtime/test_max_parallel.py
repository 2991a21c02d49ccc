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
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.harness import Runs, gate, open_gate, read_ledger, runs_fixture, wait_for

from runtime.support import Flow
from runtime.test_dask import NO_EXTRA, local_cluster

ITEMS = 5  # nodes of `api` (the per-parent shape makes 6: two parents of three children)
OTHERS = 4  # nodes of `other`


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    yield from runs_fixture(tmp_path)


NOTE = 'with open(ctx.workspace / "events.log", "a", encoding="utf-8") as log:\n    log.write(f"{} {{ctx.node_id}}\\n")'


def held(gate_name: str, first_attempt_fails: bool = False) -> str:
    """Return a node's code: note its start, wait at the gate, note its end (a first attempt may fail at once)."""
    fail = 'if ctx.attempt == 1:\n    raise OSError("rate limited")\n' if first_attempt_fails else ""
    body = f"{fail}{NOTE.format('start')}\n{gate('True', gate_name)}\n{NOTE.format('end')}\nresult = item\n"
    return textwrap.indent(body, " " * 8)


def first_step(lines: str) -> str:
    """Return a quick step `first` (its keys below `task`): `other` runs after it, `api` may read it."""
    return f"  - name: first\n    task: python\n{textwrap.indent(lines, ' ' * 4)}\n"


def workflow(shape: str, limit: int) -> str:
    """Return the workflow: `api` (max_parallel: `limit`, its nodes made the `shape` way) and `other`, unlimited.

    Where `api` comes after a step, so does `other`, so both are held in the same wave.
    """
    first = {
        "items": "",
        "retried": first_step('inputs: {code: "result = 0"}'),
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
