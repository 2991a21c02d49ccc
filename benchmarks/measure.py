"""Measure whole processes from outside: wall time and peak memory, best of a few fresh runs.

Every figure in the suite is a whole process (interpreter start, imports, work, exit), because
that is what a user waits for, and each measurement is a fresh process, so one never warms or
bloats the next.

How
    A process is started with `subprocess.Popen` and reaped with `os.wait4`, timed with
    `time.perf_counter` from start to reaped: the same wall time as `subprocess.run`, plus the
    child's own resource usage. Its `ru_maxrss` is the peak resident set of the process or of
    any descendant it reaped (what GNU `time -f %M` prints): the largest single process, not the
    sum of the workers. `getrusage(RUSAGE_CHILDREN)` deltas would not do: that figure is a
    running maximum over every child so far, so a small process after a big one shows nothing.

Best of
    `best` runs a command `repeat` times and keeps the least wall time and the least peak RSS
    (each the least disturbed on a shared machine). A `before` callable runs untimed ahead of
    each repetition, to put the workspace in the state the measurement starts from.

Every child gets the checkout this suite sits in first on `PYTHONPATH`, so `python -m plait.cli`
measures this checkout even when another plait is installed.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPO", "MeasureError", "Sample", "best", "child_env", "compile_bytecode", "run_process"]

REPO = Path(__file__).resolve().parents[1]


class MeasureError(RuntimeError):
    """A measured process failed or ran out of time; `.sample` holds what it did."""

    def __init__(self, message: str, sample: Sample):
        super().__init__(message)
        self.sample = sample


@dataclass(frozen=True)
class Sample:
    """One process: wall seconds, peak RSS in bytes, exit code and output."""

    seconds: float
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str


def compile_bytecode() -> None:
    """Write the bytecode of plait's modules, as installing plait does, before any process is timed.

    Every measured process imports plait from this checkout. Where PYTHONDONTWRITEBYTECODE is set
    (as on the machines these tables come from) nothing writes it, and each process would compile
    plait's modules from source again: 30-40 ms of every row that no installed plait pays.
    """
    compileall.compile_dir(REPO / "plait", quiet=1)


def child_env() -> dict[str, str]:
    """Return the environment for children: this checkout first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run_process(cmd: Sequence[str], cwd: Path, *, ok: Sequence[int] = (0,), timeout: float | None = None) -> Sample:
    """Run `cmd` in `cwd` to its end and return its sample. Raises MeasureError outside `ok` or past `timeout`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=timeout is not None)
        expired = threading.Event()
        timer = threading.Timer(timeout, _kill_group, (proc.pid, expired)) if timeout is not None else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        sample = Sample(seconds, _rss_bytes(usage.ru_maxrss), proc.returncode,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if expired.is_set():
        raise MeasureError(f"{' '.join(cmd)} ran out of time ({timeout:g} s) in {cwd}", sample)
    if sample.returncode not in ok:
        raise MeasureError(f"{' '.join(cmd)} exited {sample.returncode} in {cwd}, expected one of {list(ok)}:\n"
                           f"{sample.stderr[-2000:]}", sample)
    return sample


def best(cmd: Sequence[str], cwd: Path, repeat: int, *, before: Callable[[], object] | None = None,
         ok: Sequence[int] = (0,), timeout: float | None = None, enough: float | None = None) -> Sample:
    """Run `cmd` `repeat` times (after `before`, untimed, each time); return the least time and least peak RSS.

    Stops repeating once a run took `enough` seconds or more: a run of minutes is not noisy enough
    to repeat. The output and exit code are those of the last run.
    """
    samples: list[Sample] = []
    for _ in range(max(1, repeat)):
        if samples and enough is not None and samples[-1].seconds >= enough:
            break
        if before is not None:
            before()
        samples.append(run_process(cmd, cwd, ok=ok, timeout=timeout))
    last = samples[-1]
    return Sample(min(s.seconds for s in samples), min(s.peak_rss for s in samples), last.returncode,
                  last.stdout, last.stderr)


def _kill_group(pid: int, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _rss_bytes(maxrss: int) -> int:
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # macOS reports bytes, Linux kilobytes
