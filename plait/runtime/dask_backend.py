"""The Dask backend: plait's units run on a Dask cluster, through joblib's `dask` backend.

Only execution moves. The scheduler, retries, the ledger and resume stay in this process, exactly
as with loky: `backends.open_backend` builds the same `Parallel(return_as="generator_unordered")`
and the same `dispatch`, and this module only supplies what `Parallel` gets as its backend.

Where the cluster comes from
    With a scheduler address, plait connects a client to that cluster, and at the end closes only
    its client: the cluster is someone else's. Without one, it starts a `distributed.LocalCluster`
    for the run: loopback only (127.0.0.1), one process per worker (`--jobs` of them), one thread
    each, no dashboard; closed when the run ends. Its processes start with SIGINT ignored, so
    Ctrl-C reaches only plait, which stops gently (running nodes finish) as it does on loky.

joblib's dask backend, and one fix
    Each `Parallel` gets a `_Backend` of its own (`_Backend.sibling`): joblib's
    `DaskDistributedBackend` over plait's one client, passed as an instance rather than through
    ambient `parallel_config` state. So a run's calls overlap on Dask as on loky (a parent's
    children start in a call of their own while its siblings still run, `plait.runtime.calls`):
    each call's futures and completion callbacks are its backend's, and the cluster runs the
    tasks of every call at once. A task that Dask fails fails only the call it belongs to. In
    joblib 1.6, when Dask itself fails a task (rather than the function raising: `KilledWorker`,
    a task a worker cannot unpickle), the error lands on a future that joblib never reads, and
    the call waits forever.
    `_Backend` hands such errors to joblib's completion callback too, in plait's words:
    `KilledWorker` becomes `WorkerLost` (so `backends` charges it with the suspects/culprit logic
    it applies to loky's `TerminatedWorkerError`); any other, and a cancelled task (the scheduler
    lost), becomes `BackendUnavailable`. After an abort, `_Backend` also cancels the tasks still
    on the cluster, so a suspect run again is not also still running from the aborted call.

Worker loss
    When a worker dies mid-task, the scheduler runs that worker's tasks again elsewhere by itself
    (the `CommClosedError`s behind it never reach the client, nor a result lost with the worker,
    which is computed again); only a task that has been on `allowed-failures` + 1 workers that all
    died fails, with `KilledWorker`. plait's LocalCluster allows 1 (a task fails when the second
    worker running it dies), keeps every nanny for the whole run (it starts its worker again,
    however long that takes: `LOCAL_CONFIG`), and fails a task that waited `NO_WORKERS_SECONDS`
    with no worker alive (`NoWorkerError`, then BackendUnavailable: never a run waiting forever);
    a cluster of someone else's keeps its own settings (`distributed.scheduler.allowed-failures`,
    3 by default). So an external kill (OOM killer, preemption) costs a re-run and nothing else,
    and a node that kills every worker it lands on ends as a `WorkerCrashed` failure, which its
    retry policy may retry.

Preparing workers
    Nodes run on a worker's task threads, where `signal.signal` is refused, so execute's per-process
    set-up (`prepare_process`: node logs captured into outcomes, SIGINT ignored) cannot ignore
    SIGINT from there. A `WorkerPlugin` runs that set-up on each worker's main thread when the run starts and when a
    worker joins or is restarted, before it takes a task.

Checks before dispatch (a cluster plait did not start)
    plait must be importable on the workers (else `BackendUnavailable`); a different plait or
    Python version there, more than one thread per worker, or a worker that does not see this
    run's workspace and workflow folder at the same paths, is warned about.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import platform
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dask
from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin
from distributed.scheduler import NoWorkerError
from joblib._dask import DaskDistributedBackend
from loguru import logger

from plait.runtime.backend_table import BackendUnavailable
from plait.runtime.backends import WorkerLost
from plait.runtime.execute import RunInfo

__all__ = ["dask_backend"]

WAIT_FOR_WORKERS = 60.0  # seconds a cluster may take to have one worker
# The LocalCluster's scheduler: no dashboard, and its HTTP endpoints (health, metrics) on a free loopback
# port rather than 8787, which another cluster may hold; a task fails (KilledWorker) when the second
# worker running it dies (the first death Dask absorbs by running it elsewhere).
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0", "allowed_failures": 1}
# plait's LocalCluster fails a task that waited this long with no worker alive (its workers died and
# their nannies could not start them again): the run ends with BackendUnavailable instead of waiting forever.
NO_WORKERS_SECONDS = 60
# Dask settings while plait's LocalCluster runs. A LocalCluster closes the nanny of a worker missing from
# the scheduler `lost-worker-timeout` after it died (15 s by default), for good; a node that kills every
# worker it lands on makes that likely on a loaded machine, and the cluster then runs out of workers.
# Here a nanny lives as long as the run: it starts its worker again, and NO_WORKERS_SECONDS bounds a
# cluster that gets none back.
LOCAL_CONFIG = {"distributed.scheduler.no-workers-timeout": f"{NO_WORKERS_SECONDS}s",
                "distributed.deploy.lost-worker-timeout": "1 day"}
DOCS = "see docs/scaling.md"


@contextmanager
def dask_backend(n_jobs: int, scheduler_address: str | None) -> Iterator[_Backend]:
    """Yield joblib's dask backend over the cluster at `scheduler_address`, or over a LocalCluster of `n_jobs`.

    Raises BackendUnavailable when the cluster cannot be reached or cannot run plait.
    """
    with _client(n_jobs, scheduler_address) as client:
        backend = _Backend(client=client, wait_for_workers_timeout=WAIT_FOR_WORKERS)
        backend.shared = scheduler_address is not None
        try:
            yield backend
        finally:
            backend.forget_plugins()


@contextmanager
def _client(n_jobs: int, address: str | None) -> Iterator[Client]:
    """Yield a client of the cluster at `address`, or of a LocalCluster started (and closed) here."""
    if address is None:
        with dask.config.set(LOCAL_CONFIG):  # read by the cluster while it runs, not only as it starts
            cluster = _local_cluster(n_jobs)
            logger.info(f"running nodes on a local Dask cluster of {n_jobs} worker process(es) at "
                        f"{cluster.scheduler_address}")
            try:
                with Client(cluster, set_as_default=False) as client:
                    yield client
            finally:
                cluster.close()
        return
    try:
        client = Client(address, set_as_default=False)
    except (OSError, ValueError, TypeError) as err:
        raise BackendUnavailable(f"cannot connect to the Dask scheduler at '{address}': {err}; check the address "
                                 "(tcp://HOST:8786) and that `dask scheduler` runs there") from err
    try:
        _check_cluster(client, address)
        yield client
    finally:
        client.close()


def _local_cluster(n_workers: int) -> LocalCluster:
    """Start a loopback-only LocalCluster of one-thread worker processes that ignore Ctrl-C."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # inherited by the workers
    try:
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, silence_logs=logging.CRITICAL, scheduler_kwargs=LOCAL_SCHEDULER)
    except (OSError, RuntimeError) as err:
        raise BackendUnavailable(f"cannot start a local Dask cluster of {n_workers} workers ({str(err).rstrip('.')}); "
                                 "from a Python script, run it under `if __name__ == \"__main__\":` "
                                 f"({DOCS})") from err
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _check_cluster(client: Client, address: str) -> None:
    """Check that a cluster plait did not start can run plait; warn about what may go wrong there."""
    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
    except (TimeoutError, asyncio.TimeoutError) as err:  # the same class from Python 3.11 on
        raise BackendUnavailable(f"the Dask scheduler at '{address}' has no worker after {WAIT_FOR_WORKERS:g} s; "
                                 "start some with `dask worker " + address + " --nthreads 1`") from err
    try:
        facts = client.run(_worker_facts)
    except Exception as err:
        raise BackendUnavailable(f"the Dask workers of '{address}' cannot run plait ({type(err).__name__}: {err}); "
                                 f"install plait, the same version as here, on every worker ({DOCS})") from err
    here = _worker_facts()
    for what in ("plait", "python"):
        other = sorted({f[what] for f in facts.values() if f[what] != here[what]})
        if other:
            logger.warning(f"Dask workers of {address} have {what} {', '.join(map(str, other))}, this machine "
                           f"{here[what]}: install the same versions everywhere ({DOCS})")
    nthreads = client.nthreads()
    logger.info(f"running nodes on the Dask cluster at {address}: {len(nthreads)} worker(s), "
                f"{sum(nthreads.values())} thread(s)")
    threaded = sorted(worker for worker, n in nthreads.items() if n > 1)
    if threaded:
        logger.warning(f"{len(threaded)} Dask worker(s) of {address} run several threads: node timeouts cannot "
                       "interrupt a node there and node logs may mix; start workers with `--nthreads 1` "
                       f"({DOCS})")


def _worker_facts() -> dict[str, Any]:
    """Return what must match between plait's process and a worker: plait's and Python's versions."""
    try:
        version = importlib.metadata.version("plait")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"plait": version, "python": platform.python_version()}


class _Failed:
    """A task that Dask failed (not its function), on its way to joblib's completion callback."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Backend(DaskDistributedBackend):
    """joblib's dask backend that reports the tasks Dask fails (see the module docstring), and prepares workers."""

    shared = False  # a cluster plait did not start: check what it sees
    _plugins: list[str]

    def effective_n_jobs(self, n_jobs: int) -> int:
        # Never 1: joblib runs a call with one job in this process, not on the cluster (and a node that
        # kills its process would kill plait). A cluster of one worker thread, or of two while one
        # restarts, just queues. With no worker alive, joblib would wait for one by running a probe task,
        # which a node still running from an aborted call can kill along with its worker (a KilledWorker
        # that is no node's failure): waiting for a worker to join runs nothing.
        if not self.client.ncores():
            try:
                self.client.wait_for_workers(1, timeout=self.wait_for_workers_timeout)
            except (TimeoutError, asyncio.TimeoutError) as err:  # the same class from Python 3.11 on
                raise _no_workers(self.wait_for_workers_timeout) from err
        return max(2, sum(self.client.ncores().values()))

    def submit(self, func: Any, callback: Callable[[Any], None] | None = None) -> Future:
        future = super().submit(func, callback)

        def report(done: Future) -> None:
            if callback is not None and not done.cancelled() and done.exception() is not None:
                callback(_Failed(done.exception()))

        future.add_done_callback(report)
        return future

    def retrieve_result_callback(self, out: Any) -> Any:
        if isinstance(out, _Failed):
            raise _in_plait_words(out.error)
        try:
            return super().retrieve_result_callback(out)
        except CancelledError as err:
            raise BackendUnavailable(f"the Dask cluster cancelled plait's tasks ({err}): was the scheduler restarted "
                                     "or the connection to it lost? run again to resume") from err

    def abort_everything(self, ensure_ready: bool = True) -> None:
        left = list(getattr(self, "_results", ()))
        super().abort_everything(ensure_ready)
        if left:
            with suppress(Exception):
                self.client.cancel(left)
        for pending in (getattr(self, "_results", None), getattr(self, "_callbacks", None)):
            if pending is not None:
                pending.clear()

    def sibling(self) -> _Backend:
        """Return a backend over the same client, for another `Parallel`.

        joblib keeps a call's futures, and the `Parallel` it reports to, on its backend: calls that
        overlap (`plait.runtime.calls`) each need one of their own. The client, and so the cluster,
        its workers and the plugins `prepare` registered, are shared.
        """
        other = _Backend(client=self.client, wait_for_workers_timeout=self.wait_for_workers_timeout)
        other.shared = self.shared
        return other

    def prepare(self, info: RunInfo) -> None:
        """Prepare every worker, present and future, for this run's units; check what they see. Mutates."""
        name = f"plait-{info.run_id}"
        self.client.register_plugin(_PrepareWorker(info), name=name)
        self._plugins = [*getattr(self, "_plugins", []), name]
        if self.shared:
            _check_workspace(self.client, info)

    def forget_plugins(self) -> None:
        """Unregister the plugins this backend registered (on a shared cluster they would outlive the run)."""
        for name in getattr(self, "_plugins", []):
            with suppress(Exception):
                self.client.unregister_worker_plugin(name)


def _in_plait_words(error: BaseException) -> BaseException:
    """Translate a task that Dask failed into WorkerLost (its workers died) or BackendUnavailable."""
    if isinstance(error, KilledWorker):
        last = getattr(getattr(error, "last_worker", None), "address", "?")
        return WorkerLost(f"{error.allowed_failures + 1} Dask worker(s) died running it, the last {last}")
    if isinstance(error, NoWorkerError):
        return _no_workers(NO_WORKERS_SECONDS)
    return BackendUnavailable(f"the Dask cluster could not run plait's task ({type(error).__name__}: {error}); "
                              f"plait must be installed on every worker, the same version as here ({DOCS})")


def _no_workers(seconds: float) -> BackendUnavailable:
    return BackendUnavailable(f"the Dask cluster had no worker for {seconds:g} s: its workers died and could not be "
                              "started again (out of memory? a limit on processes?); run again to resume, with fewer "
                              "--jobs or another --backend")


class _PrepareWorker(WorkerPlugin):
    """Run execute's per-process set-up on a worker's main thread, before it takes this run's tasks."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info

    def setup(self, worker: Any) -> None:
        from plait.runtime.execute import prepare_process

        prepare_process(self.info)


def _check_workspace(client: Client, info: RunInfo) -> None:
    """Warn when some workers do not see this run's workspace and workflow folder at the same paths."""
    probe = Path(info.stop_file).with_name(f"probe-{info.run_id}")  # beside the stop file, which workers must see
    try:
        probe.write_text(info.run_id, encoding="utf-8")
        seen = client.run(_sees, [str(probe), str(info.workflow_dir)])
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted(worker for worker, (ws, wf) in seen.items() if not ws)
    if blind:
        logger.warning(f"{len(blind)} of {len(seen)} Dask worker(s) do not see this run's workspace {info.workspace} "
                       f"(e.g. {blind[0]}): shell and file tasks write there, `ctx.workspace` points there, and a "
                       f"gentle stop (Ctrl-C) is signalled through a file there; put the workspace on a filesystem "
                       f"shared with the workers, at the same path ({DOCS})")
    blind = sorted(worker for worker, (ws, wf) in seen.items() if not wf)
    if blind:
        logger.warning(f"{len(blind)} of {len(seen)} Dask worker(s) do not see the workflow folder {info.workflow_dir} "
                       f"(e.g. {blind[0]}): `function: module:func` tasks import their module from there, so it must "
                       f"be shared at the same path or installed on the workers ({DOCS})")


def _sees(paths: list[str]) -> tuple[bool, ...]:
    """Return, on a worker, whether each path exists there."""
    return tuple(os.path.exists(p) for p in paths)
