"""What each `Parallel` of a run is given as its backend, so that all of them run on the run's one set of workers.

A run's calls may overlap (`plait.runtime.calls`), each on a `Parallel` of its own
(`plait.runtime.backends`), and `--jobs` must bound them all together, not each:
- loky: every `Parallel` asks loky for its reusable executor with the same arguments, and so
  gets the one executor of `--jobs` worker processes;
- threading: joblib gives each `Parallel` a pool of threads of its own; `SharedThreads` hands
  every one of them the run's one pool of `--jobs` threads;
- dask: a backend each (joblib keeps a call's futures on it), all over the cluster's one client
  (`plait.runtime.dask_backend`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing.pool import ThreadPool
from typing import Any

from joblib._parallel_backends import ThreadingBackend

from plait.runtime.backend_table import Backend
from plait.runtime.execute import RunInfo

__all__ = ["Prepare", "SharedThreads", "shared_workers"]

Prepare = Callable[[RunInfo], None] | None  # a backend's set-up for a run, before its first wave


@contextmanager
def shared_workers(backend: Backend, n_jobs: int,
                   scheduler_address: str | None) -> Iterator[tuple[Callable[[], Any], Prepare]]:
    """Yield how to make what a `Parallel` takes as `backend` (one each), and how to prepare the backend for a run.

    Every `Parallel` of the run shares the same workers: loky's reusable executor, one pool of
    `n_jobs` threads (`SharedThreads`), or the one cluster's client.
    """
    if backend.cluster:
        from plait.runtime.dask_backend import dask_backend

        with dask_backend(n_jobs, scheduler_address) as cluster:
            yield cluster.sibling, cluster.prepare
    elif backend.joblib_name == "threading" and n_jobs > 1:
        pool = ThreadPool(n_jobs)
        try:
            yield partial(SharedThreads, pool), None
        finally:
            pool.close()
            pool.terminate()
    else:
        yield (lambda: backend.joblib_name), None


class SharedThreads(ThreadingBackend):
    """joblib's threading backend over the run's one pool of threads, which every `Parallel` of the run shares.

    joblib gives each `Parallel` a pool of its own: calls that overlap would run twice `--jobs`
    nodes at once. The pool is the run's, closed by `shared_workers`, not by a `Parallel`.
    """

    def __init__(self, pool: ThreadPool) -> None:
        super().__init__()
        self._shared = pool

    def _get_pool(self) -> ThreadPool:
        return self._shared

    def terminate(self) -> None:
        """Leave the shared pool to the run."""
