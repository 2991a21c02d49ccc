"""Fixtures for the reliability tests, and the figures they report at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime.support import Flow, make_flow

from reliability.harness import Runs, runs_fixture

# Figures measured by the tests (kills survived, fuzz cases, items, peak memory, ...), printed at the end.
FIGURES: dict[str, Any] = {}


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A workflow folder and a workspace under tmp_path (see runtime.support.Flow)."""
    yield from make_flow(tmp_path, monkeypatch)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    """Start plait processes in groups of their own; whatever is left of them is killed at teardown."""
    yield from runs_fixture(tmp_path)


@pytest.fixture
def figures() -> dict[str, Any]:
    """Record a figure for the session's summary (and docs/reliability.md)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
