"""Shared test fixtures: a workflow folder (`flow`), plait processes in groups (`runs`), and the command line run
in-process with what it prints (`cli`)."""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from reliability.harness import Runs, runs_fixture
from runtime.support import FIGURE, Flow, make_flow, plait

import plait as plait_package

# Where Python is told not to write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine), pytest does not keep the
# test modules it rewrites for assertions: each xdist worker would parse, rewrite and compile all of them again at
# every run, two thirds of its collection's time. The suite's own modules are cached; plait's are by
# `pytest_configure`; the processes the tests start still write nothing.
BYTECODE_REFUSED = sys.dont_write_bytecode
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core this process may run on (a CPU count can name cores it may not use), and one more.

    Many tests wait on the processes they start (a gate, a timeout, a worker booting) with a core
    idle meanwhile, which the extra worker takes (docs/performance.md, "The test suite").
    """
    return len(os.sched_getaffinity(0)) + 1


def pytest_configure(config: pytest.Config) -> None:
    """Compile plait's modules to bytecode once, before the tests start plait processes by the hundred.

    Where Python is told not to write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine) and
    the checkout has none yet (a fresh clone), every `plait` process a test starts, and each of
    its workers, would compile plait's modules from source again. Only the controller compiles
    (xdist's workers start after it); a module whose bytecode is current is left as it is.
    """
    if BYTECODE_REFUSED and not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(plait_package.__file__).parent, quiet=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the soak tests out unless asked for (`soak_left_out`), and start the long tests first.

    Long tests start first (soak, then slow): dealt out last, one of them would run alone at the end while the other
    workers idle. The order of the rest is kept.
    """
    if soak_left_out(config):
        soak = [item for item in items if item.get_closest_marker("soak")]
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]
    items.sort(key=lambda item: (item.get_closest_marker("soak") is None, item.get_closest_marker("slow") is None))


def soak_left_out(config: pytest.Config) -> bool:
    """Whether this session leaves out the soak tests: a plain `python -m pytest` does.

    The soak tests (the promises tested at volume: random SIGKILLs, fuzzing, a crash storm, 100,000-node runs) run
    when asked for: by a marker expression (`-m soak`, as CI does after the suite, or `-m "not slow"` which has
    none of them anyway), or by naming their files or folders on the command line.
    """
    return not config.option.markexpr and config.args_source != pytest.Config.ArgsSource.ARGS


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A workflow folder and a workspace under tmp_path (see runtime.support.Flow)."""
    yield from make_flow(tmp_path, monkeypatch)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    """Start plait processes in groups of their own; whatever is left of them is killed at teardown."""
    yield from runs_fixture(tmp_path)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Return a function that runs `plait ARGS...` in-process, in the current folder (runtime.support.plait), and
    returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> CliResult:
        done = plait(*argv, cwd=Path.cwd())
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


# Figures measured by tests (kills survived, fuzz cases, peak memory, ...): a test records them through
# the `figures` fixture (tests/reliability/conftest.py) as user properties of its reports, which xdist
# sends to this process too; they are printed at the end of the session.
FIGURES: dict[str, Any] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == FIGURE:
            FIGURES[value[0]] = value[1]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if soak_left_out(terminalreporter.config):
        terminalreporter.write_line("the soak tests were left out: `python -m pytest -m soak` runs them (CI does)")
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
