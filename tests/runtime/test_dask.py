"""The `dask` backend: the backend contract on a real Dask cluster, the command line, and worker loss.

The contract tests are test_backends.py's own (`TestBackendContract`: the same workflows, the same
expected ledgers), run here on a `LocalCluster` of 2 worker processes that this module starts on
127.0.0.1 and hands to plait by address, as a user hands it a remote scheduler. Worker loss is
tested both ways it happens: a worker killed from outside while it runs a node (Dask runs the node
again), and a node that kills every worker it lands on (it alone ends as `WorkerCrashed`, after its
retry policy had another go). Everything here that needs `distributed` skips, saying so, when the
`dask` extra is not installed; CI installs it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from plait.runtime import BackendUnavailable, RunResult, run_workflow
from runtime import test_backends as contract
from runtime.support import RECORDER, Flow, error, make_flow, process_is_gone, untraced

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

NO_EXTRA = "the 'dask' extra (distributed) is not installed: pip install -e '.[dask]'"


@contextmanager
def local_cluster() -> Iterator[str]:
    """Start a LocalCluster of 2 one-thread worker processes on 127.0.0.1; yield its scheduler address."""
    distributed = pytest.importorskip("distributed", reason=NO_EXTRA)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None,
                                       scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A cluster shared by this module's tests that do not kill its workers."""
    with local_cluster() as address:
        yield address


@dataclass
class DaskFlow(Flow):
    """A Flow whose `dask` runs go to the test's cluster, by address."""

    address: str = ""

    def run(self, **options: Any) -> RunResult:
        if options.get("backend") == "dask":
            options.setdefault("scheduler_address", self.address)
        return super().run(**options)


@pytest.fixture
def dask_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str) -> Iterator[DaskFlow]:
    made = make_flow(tmp_path, monkeypatch)
    flow = next(made)
    yield DaskFlow(flow.root, flow.tag, flow.modules, address=cluster)
    next(made, None)


# --- the backend contract ------------------------------------------------------------------------

# Every test of the contract class, picked up by name: one added there runs here too.
CONTRACT = sorted(name for name in vars(contract.TestBackendContract) if name.startswith("test_"))


@pytest.mark.parametrize("test", CONTRACT)
def test_the_backend_contract_holds_on_a_dask_cluster(test: str, dask_flow: DaskFlow) -> None:
    getattr(contract.TestBackendContract(), test)(flow=dask_flow, backend="dask")


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(cli: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The in-process command line; afterwards, drop the terminal sink it left on a closed capture stream."""
    yield cli
    logger.remove()
    logger.disable("plait")


PIDS = """
    name: pids
    steps:
      - name: where
        task: python
        items: [a, b, c]
        inputs: {code: "import os; result = os.getpid()"}
      - name: helper
        task: python
        inputs: {function: "<mod>:record", kwargs: {value: 7}}
"""


def test_run_with_a_scheduler_address_runs_every_node_on_that_cluster(flow: Flow, cli: Callable[..., Any],
                                                                      cluster: str) -> None:
    flow.write(PIDS, mod=flow.module("recorder", RECORDER))
    done = cli("run", str(flow.path), "--workspace", str(flow.ws), "--scheduler-address", cluster, "-q")
    assert (done.code, done.err.count("do not see")) == (0, 0), done.err
    pids = {pid for nid, pid in flow.view("result").items() if nid.startswith("where[")}
    assert os.getpid() not in pids and len(pids) >= 1
    assert (flow.view("status"), flow.executions()) == (
        {"where[a]": "succeeded", "where[b]": "succeeded", "where[c]": "succeeded", "helper": "succeeded"}, ["helper"])
    assert worker_plugins(cluster) == []  # the cluster is someone else's: plait leaves nothing registered there


# split[slow] runs until process[fast/0] has run (a file it writes says so), or 120 s (a hang bound): its children
# can run only while split[slow]'s call still runs if calls overlap on the cluster.
OVERLAPPING = """
    name: overlapping
    steps:
      - name: split
        task: python
        items: [fast, slow]
        inputs:
          code: |
            import time
            ran = ctx.workspace / "process-fast-0.ran"
            deadline = time.monotonic() + 120
            while item == "slow" and not ran.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            result = {"children": [0, 1], "saw a child run": ran.exists()}
      - name: process
        task: python
        for_each: split
        items: "{{ parent.result.children }}"
        inputs:
          code: |
            if ctx.node_id == "process[fast/0]":
                (ctx.workspace / "process-fast-0.ran").touch()
            result = item
"""


def test_a_parents_children_run_on_the_cluster_while_its_siblings_call_still_runs(dask_flow: DaskFlow) -> None:
    dask_flow.write(OVERLAPPING)
    assert dask_flow.run(backend="dask", jobs=2).report.status == "succeeded"
    assert dask_flow.view("result") == {
        "split[fast]": {"children": [0, 1], "saw a child run": False},
        "split[slow]": {"children": [0, 1], "saw a child run": True},
        "process[fast/0]": 0, "process[fast/1]": 1, "process[fast]": [0, 1],
        "process[slow/0]": 0, "process[slow/1]": 1, "process[slow]": [0, 1]}


def worker_plugins(address: str) -> list[str]:
    """Return the names of the worker plugins plait registered on the cluster at `address`."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        names = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    return [name for name in names if name.startswith("plait-")]


@pytest.mark.slow
def test_run_backend_dask_without_an_address_starts_a_local_cluster_and_closes_it(flow: Flow,
                                                                                  cli: Callable[..., Any]) -> None:
    pytest.importorskip("distributed", reason=NO_EXTRA)
    flow.write(PIDS, mod=flow.module("recorder", RECORDER))
    done = cli("run", str(flow.path), "--workspace", str(flow.ws), "--backend", "dask", "--jobs", "2", "-q")
    assert done.code == 0, done.err
    pids = {pid for nid, pid in flow.view("result").items() if nid.startswith("where[")}
    assert os.getpid() not in pids
    deadline = time.monotonic() + 60  # a bound on a hang: a loaded machine may take seconds to end them
    while not all(map(process_is_gone, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(process_is_gone, pids)), "the run's LocalCluster workers outlived it"


@pytest.mark.slow
def test_plaits_local_cluster_starts_a_worker_again_however_long_it_stays_dead() -> None:
    dask = pytest.importorskip("dask", reason=NO_EXTRA)
    pytest.importorskip("distributed", reason=NO_EXTRA)
    from plait.runtime.dask_backend import _client

    # Dask's own setting would close the nanny of a worker missing for 0.1 s: its restart takes longer
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0.1s"}), _client(2, None) as client:
        client.wait_for_workers(2, timeout=60)
        [first, *_] = client.scheduler_info()["workers"]
        with suppress(Exception):  # the worker dies before it answers
            client.run(os._exit, 3, workers=[first])
        deadline = time.monotonic() + 60  # a hang bound, not a timing: the scheduler sees the death soon
        while first in client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first not in client.scheduler_info()["workers"]
        client.wait_for_workers(2, timeout=60)  # its nanny started it again


def test_without_the_dask_extra_backend_dask_exits_2_naming_the_extra(flow: Flow, cli: Callable[..., Any],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write(PIDS, mod=flow.module("recorder", RECORDER))
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails, as when it is missing
    done = cli("run", str(flow.path), "--workspace", str(flow.ws), "--backend", "dask")
    assert done.code == 2
    assert done.err.startswith("plait: error: backend 'dask' needs plait's 'dask' extra, which is not installed")
    assert "pip install 'plait[dask]'" in done.err and "Traceback" not in done.err
    assert not flow.ledger_path.exists()  # refused before the run began
    with pytest.raises(BackendUnavailable, match=re.escape("pip install 'plait[dask]'")):
        run_workflow(flow.path, workspace=flow.ws, backend="dask")


def test_a_scheduler_address_is_only_for_the_dask_backend(flow: Flow, cli: Callable[..., Any]) -> None:
    flow.write(PIDS, mod=flow.module("recorder", RECORDER))
    done = cli("run", str(flow.path), "--workspace", str(flow.ws), "--backend", "loky",
               "--scheduler-address", "tcp://127.0.0.1:8786")
    assert (done.code, done.err) == (
        2, "plait: error: --scheduler-address is for --backend dask, not --backend loky; drop one of them\n")
    with pytest.raises(ValueError, match="only for backend 'dask', not 'loky'"):
        run_workflow(flow.path, workspace=flow.ws, backend="loky", scheduler_address="tcp://127.0.0.1:8786")


def test_a_scheduler_that_cannot_be_reached_exits_2(flow: Flow, cli: Callable[..., Any]) -> None:
    dask = pytest.importorskip("dask", reason=NO_EXTRA)
    pytest.importorskip("distributed", reason=NO_EXTRA)
    flow.write(PIDS, mod=flow.module("recorder", RECORDER))
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        done = cli("run", str(flow.path), "--workspace", str(flow.ws), "--scheduler-address", "tcp://127.0.0.1:9")
    assert done.code == 2
    assert done.err.splitlines()[-1].startswith(
        "plait: error: cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9': ")
    assert "check the address (tcp://HOST:8786)" in done.err


# --- worker loss ---------------------------------------------------------------------------------

SLOW = '''
import os
import time


def slow(item, ctx):
    """Note the node and its process at the start, then wait until the test has killed a worker (60 s at most)."""
    with open(ctx.workspace / "starts.log", "a", encoding="utf-8") as log:
        log.write(f"{ctx.node_id} {os.getpid()}\\n")
    deadline = time.monotonic() + 60
    while not (ctx.workspace / "killed").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return item
'''


@pytest.mark.slow
def test_a_worker_killed_while_it_runs_a_node_costs_a_rerun_and_the_run_completes(flow: Flow) -> None:
    flow.write("""
        name: killed
        steps:
          - name: s
            task: python
            items: [0, 1, 2, 3]
            inputs: {function: "<mod>:slow"}
    """, mod=flow.module("slow", SLOW))
    starts = flow.ws / "starts.log"
    killed: list[tuple[str, int]] = []

    def kill_the_first_worker_that_starts_a_node() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if starts.exists() and (lines := starts.read_text().split("\n")[:-1]):
                node, pid = lines[0].split()
                os.kill(int(pid), signal.SIGKILL)
                killed.append((node, int(pid)))
                (flow.ws / "killed").touch()  # the other nodes, and the killed one when it runs again, go on
                return
            time.sleep(0.02)

    with local_cluster() as address:
        killer = threading.Thread(target=kill_the_first_worker_that_starts_a_node)
        killer.start()
        result = flow.run(backend="dask", scheduler_address=address)
        killer.join()
    [(node, pid)] = killed
    runs = [line.split() for line in starts.read_text().splitlines()]
    assert (result.ok, result.report.counts) == (True, {"succeeded": 4})
    assert flow.view("status", "attempts", "result") == {f"s[{i}]": ("succeeded", 1, i) for i in range(4)}
    assert [n for n, _ in runs].count(node) == 2  # killed mid-way, run again (at-least-once), not a failed attempt
    assert [int(p) for n, p in runs if n == node][1] != pid


CRASHER = '''
import os


def crash(item, ctx):
    """Item 1 kills its worker process the first time only; item 2 kills every worker it lands on."""
    note(ctx)
    marker = ctx.workspace / f"crashed-{item}"
    if item == 2 or (item == 1 and not marker.exists()):
        marker.touch()
        os._exit(3)
    return item * 10
'''


@pytest.mark.soak  # a crash storm: Dask restarts a worker for each of the 6 or more deaths, a second or more each
@pytest.mark.slow
def test_a_node_that_kills_its_workers_fails_alone_after_its_retries_and_the_rest_complete(flow: Flow) -> None:
    pytest.importorskip("distributed", reason=NO_EXTRA)
    recorder = flow.module("recorder", RECORDER)
    flow.write("""
        name: crashes
        steps:
          - name: c
            task: python
            items: [0, 1, 2, 3, 4, 5]
            on_error: continue
            retry: {max_attempts: 2, delay: 0}
            inputs: {function: "<mod>:crash"}
    """, mod=flow.module("crasher", f"from {recorder} import note\n" + CRASHER))
    result = flow.run(backend="dask", jobs=2)  # on plait's own LocalCluster
    [crashed] = untraced(result.report.failed)
    assert crashed == error("c[2]", "WorkerCrashed", crashed["error"], item=2, attempt=2, retryable=True)
    assert re.fullmatch(r"the worker process died while running c\[2\]: \d+ Dask worker\(s\) died running it, "
                        r"the last tcp://127\.0\.0\.1:\d+", crashed["error"])
    assert flow.view("status", "attempts", "result") == {
        "c[0]": ("succeeded", 1, 0), "c[1]": ("succeeded", 1, 10), "c[2]": ("failed", 2, None),
        "c[3]": ("succeeded", 1, 30), "c[4]": ("succeeded", 1, 40), "c[5]": ("succeeded", 1, 50)}
    assert flow.executions().count("c[1]") >= 2  # killed its worker once, then ran again and succeeded


class EveryWorkerRestarting:
    """A stand-in for a client whose workers are all restarting: a task sent now could die with them."""

    def __init__(self, joins: bool) -> None:
        self.joins = joins
        self.cores: dict[str, int] = {}
        self.waited: list[tuple[int, float]] = []

    def ncores(self) -> dict[str, int]:
        return dict(self.cores)

    def wait_for_workers(self, n: int, timeout: float) -> None:
        self.waited.append((n, timeout))
        if not self.joins:
            raise TimeoutError
        self.cores = {"tcp://127.0.0.1:40001": 1}

    def submit(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a task was sent to a cluster with no worker: {args}")


@pytest.mark.parametrize("joins", [True, False], ids=["a worker joins", "none joins"])
def test_a_call_made_while_every_worker_restarts_waits_for_one_without_sending_a_task(joins: bool) -> None:
    pytest.importorskip("distributed", reason=NO_EXTRA)
    from plait.runtime.dask_backend import _Backend

    backend = object.__new__(_Backend)  # its client is the stand-in; nothing else of it is used
    backend.client = client = EveryWorkerRestarting(joins)  # type: ignore[assignment]
    backend.wait_for_workers_timeout = 60.0
    if joins:
        assert (backend.effective_n_jobs(2), client.waited) == (2, [(1, 60.0)])
    else:
        with pytest.raises(BackendUnavailable, match=r"^the Dask cluster had no worker for 60 s: its workers died"):
            backend.effective_n_jobs(2)


# --- checks before dispatch, on a cluster plait did not start --------------------------------------


class ClusterSeenFromAfar:
    """A stand-in for a client of a remote cluster: two workers, answers given per function."""

    def __init__(self, answers: dict[str, Any], nthreads: int = 1) -> None:
        self.answers = answers
        self.threads = nthreads

    def wait_for_workers(self, n: int, timeout: float) -> None:
        pass

    def run(self, func: Callable[..., Any], *args: Any) -> dict[str, Any]:
        answer = self.answers[func.__name__]
        if isinstance(answer, BaseException):
            raise answer
        return {"tcp://10.0.0.7:40001": func(*args), "tcp://10.0.0.8:40001": answer}

    def nthreads(self) -> dict[str, int]:
        return {"tcp://10.0.0.7:40001": 1, "tcp://10.0.0.8:40001": self.threads}


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    lines: list[str] = []
    logger.enable("plait")
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)
    logger.disable("plait")


def test_a_remote_cluster_is_checked_before_dispatch(tmp_path: Path, warnings_logged: list[str]) -> None:
    pytest.importorskip("distributed", reason=NO_EXTRA)
    from plait.runtime.dask_backend import _check_cluster, _check_workspace, _worker_facts
    from plait.runtime.execute import RunInfo

    here = _worker_facts()
    info = RunInfo(run_id="r1", workspace=tmp_path / "ws", workflow_dir=tmp_path, params={},
                   stop_file=str(tmp_path / "stop-r1"), parent_pid=os.getpid())
    _check_cluster(ClusterSeenFromAfar({"_worker_facts": here}), "tcp://10.0.0.5:8786")  # type: ignore[arg-type]
    _check_workspace(ClusterSeenFromAfar({"_sees": (True, True)}), info)  # type: ignore[arg-type]
    assert warnings_logged == []

    _check_cluster(ClusterSeenFromAfar({"_worker_facts": {**here, "plait": "0.0.1"}}, nthreads=4),  # type: ignore[arg-type]
                   "tcp://10.0.0.5:8786")
    _check_workspace(ClusterSeenFromAfar({"_sees": (False, False)}), info)  # type: ignore[arg-type]
    assert warnings_logged == [
        f"Dask workers of tcp://10.0.0.5:8786 have plait 0.0.1, this machine {here['plait']}: install the same "
        "versions everywhere (see docs/scaling.md)",
        "1 Dask worker(s) of tcp://10.0.0.5:8786 run several threads: node timeouts cannot interrupt a node there "
        "and node logs may mix; start workers with `--nthreads 1` (see docs/scaling.md)",
        f"1 of 2 Dask worker(s) do not see this run's workspace {info.workspace} (e.g. tcp://10.0.0.8:40001): shell "
        "and file tasks write there, `ctx.workspace` points there, and a gentle stop (Ctrl-C) is signalled through a "
        "file there; put the workspace on a filesystem shared with the workers, at the same path (see "
        "docs/scaling.md)",
        f"1 of 2 Dask worker(s) do not see the workflow folder {tmp_path} (e.g. tcp://10.0.0.8:40001): `function: "
        "module:func` tasks import their module from there, so it must be shared at the same path or installed on "
        "the workers (see docs/scaling.md)",
    ]
    assert not list(tmp_path.glob("probe-*"))  # the probe file the workers looked for is gone

    missing = ModuleNotFoundError("No module named 'plait'")
    with pytest.raises(BackendUnavailable, match=r"^the Dask workers of 'tcp://10\.0\.0\.5:8786' cannot run plait "
                       r"\(ModuleNotFoundError: No module named 'plait'\); install plait, the same version as here"):
        _check_cluster(ClusterSeenFromAfar({"_worker_facts": missing}), "tcp://10.0.0.5:8786")  # type: ignore[arg-type]
