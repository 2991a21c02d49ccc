"""A run's backend, opened when the first wave needs it, or early on a thread while the run is set up.

Opened only when a wave comes, a run with nothing left to do (a no-op resume) never starts
workers or a cluster, nor imports joblib. Opened early (`open_early`), for a backend whose workers
take a while to boot (`Backend.opens_early`), joblib loads and the workers start while the run
reads the ledger, fingerprints the plan and forms the first wave.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

from plait.runtime.backend_table import Backend

__all__ = ["LazyBackend"]


class LazyBackend:
    """The run's dispatch function: opens the backend at the first wave, or earlier on a thread."""

    def __init__(self, backend: Backend, jobs: int, address: str | None) -> None:
        self.backend, self.jobs, self.address = backend, jobs, address
        self.scope = contextlib.ExitStack()  # the open backend, closed by `close`
        self.dispatch: Any = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def idle(self) -> bool:
        """Whether the backend is neither open nor opening."""
        return self.dispatch is None and self.thread is None and self.error is None

    def open(self) -> Any:
        """Open the backend; return its dispatch function (the first use of joblib in the run)."""
        from plait.runtime.backends import open_backend

        return self.scope.enter_context(open_backend(self.backend, self.jobs, scheduler_address=self.address))

    def open_early(self) -> None:
        """Start opening the backend on a thread, with SIGINT blocked so the workers it starts inherit that. Mutates."""
        if not self.idle:
            return

        def open_here() -> None:
            try:
                self.dispatch = self.open()
            except BaseException as err:  # raised in the main thread, at the first wave
                self.error = err

        main = threading.current_thread() is threading.main_thread()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            self.thread = threading.Thread(target=open_here, name="plait-backend-open", daemon=True)
            self.thread.start()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def join(self) -> None:
        """Wait for an early opening to finish (its error, if any, is kept for the first wave). Mutates."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def close(self) -> None:
        """Close the backend (after an early opening has finished): its workers or cluster end."""
        self.join()
        self.scope.close()

    def __call__(self, *wave: Any) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        if self.dispatch is None:
            self.dispatch = self.open()
        return self.dispatch(*wave)
