"""The backends a run can use, as a table of what sets each apart; the one check of a choice.

Every backend goes through the same `joblib.Parallel` and the same dispatch (`plait.runtime.backends`);
what differs between them is data, one `Backend` entry each, rather than `name == "loky"` tests
spread through the runtime (joblib's own `BACKENDS` registry is the model). This module imports
neither joblib nor anything heavy: a run checks its backend before it starts, and one with nothing
to do (a no-op resume) never imports joblib at all.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "backend"]


class BackendUnavailable(RuntimeError):
    """The backend cannot run here: its package is missing, or its cluster cannot be reached or used."""


@dataclass(frozen=True, slots=True)
class Backend:
    """What sets one backend apart."""

    name: str
    joblib_name: str  # what `Parallel` is given as `backend` (dask: an instance, built by plait.runtime.dask_backend)
    own_workers: bool  # joblib starts worker processes on this machine for the run (they get plait's initializer)
    crash_trail: bool  # workers keep a crash trail (plait.runtime.trail): only processes on this machine can
    opens_early: bool  # worth opening on a thread while the run is set up (workers take a while to boot)
    journal: bool = True  # its workers can journal what they finish into the run's folder (all on this machine)
    one_worker: bool = False  # runs one job at a time whatever --jobs says
    overlaps: bool = False  # calls may run at once on its workers, each on a thread (plait.runtime.calls)
    cluster: bool = False  # may run on a cluster at a scheduler address
    needs: str | None = None  # the module it needs, from plait's extra of the same name

    def starts_processes(self, scheduler_address: str | None) -> bool:
        """Say whether `--jobs` starts that many processes on this machine (loky's, or a local cluster's)."""
        return self.own_workers or (self.cluster and scheduler_address is None)

    def calls(self, jobs: int) -> int:
        """Return how many calls may run at once with `--jobs`: one, unless its calls overlap on several workers.

        (joblib runs a call of one job in the calling thread: two such calls would run two nodes at once.)
        """
        return jobs if self.overlaps and not self.one_worker and jobs > 1 else 1

    def workers(self, jobs: int) -> int:
        """Return `Parallel`'s n_jobs for `--jobs`: -1 lets a cluster's size decide.

        joblib runs a `Parallel` of one job in the calling process, so a backend whose nodes run in
        worker processes of their own gets two for `--jobs 1`, of which `in_flight` keeps one busy:
        a node that crashes its process must not take the run with it.
        """
        return 1 if self.one_worker else -1 if self.cluster else max(jobs, 2) if self.own_workers else jobs

    def in_flight(self, jobs: int) -> int | str:
        """Return `Parallel`'s pre_dispatch for `--jobs`: how many chunks may be out on the workers at once."""
        return jobs if self.workers(jobs) > jobs else "2 * n_jobs"  # joblib's default, but for --jobs 1 on loky


BACKENDS: dict[str, Backend] = {
    "loky": Backend("loky", "loky", own_workers=True, crash_trail=True, opens_early=True, overlaps=True),
    "threading": Backend("threading", "threading", own_workers=False, crash_trail=False, opens_early=False,
                         overlaps=True),
    "sequential": Backend("sequential", "sequential", own_workers=False, crash_trail=False, opens_early=False,
                          one_worker=True),
    "dask": Backend("dask", "dask", own_workers=False, crash_trail=False, opens_early=False, journal=False,
                    overlaps=True, cluster=True, needs="distributed"),
}


def backend(name: str, scheduler_address: str | None = None) -> Backend:
    """Return the backend `name`, checked for this machine and address. Raises ValueError, BackendUnavailable."""
    chosen = BACKENDS.get(name)
    if chosen is None:
        raise ValueError(f"backend '{name}' is not one of {', '.join(BACKENDS)}")
    if scheduler_address is not None and not chosen.cluster:
        raise ValueError(f"a scheduler address ({scheduler_address}) is only for backend 'dask', not '{name}'")
    if chosen.needs is not None and importlib.util.find_spec(chosen.needs) is None:
        raise BackendUnavailable(f"backend '{name}' needs plait's '{name}' extra, which is not installed here "
                                 f"(no module named '{chosen.needs}'); install it with `pip install 'plait[{name}]'`, "
                                 f"which brings `{chosen.needs}`")
    return chosen
