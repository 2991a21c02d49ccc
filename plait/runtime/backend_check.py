"""Check a backend choice before a run starts, without importing joblib.

A run that turns out to have nothing to do (a no-op resume) never opens a backend, so it should
not pay for importing joblib (0.08 s) either: the checks a run makes up front live here, and
`plait.runtime.backends`, which imports joblib, is imported only when a backend opens.
"""

from __future__ import annotations

from plait.runtime import BACKENDS

__all__ = ["BackendUnavailable", "check_backend"]


class BackendUnavailable(RuntimeError):
    """The backend cannot run here: its package is missing, or its cluster cannot be reached or used."""


def check_backend(name: str, scheduler_address: str | None = None) -> None:
    """Check a backend choice before a run starts. Raises ValueError, BackendUnavailable."""
    if name not in BACKENDS:
        raise ValueError(f"backend '{name}' is not one of {', '.join(BACKENDS)}")
    if scheduler_address is not None and name != "dask":
        raise ValueError(f"a scheduler address ({scheduler_address}) is only for backend 'dask', not '{name}'")
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as err:
            raise BackendUnavailable(f"backend 'dask' needs plait's 'dask' extra, which is not installed here ({err}); "
                                     "install it with `pip install 'plait[dask]'`, which brings `distributed`") from err
