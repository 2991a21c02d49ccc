"""Fixtures for the reliability tests, and the figures they report at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime.support import FIGURE, Flow, make_flow

from reliability.harness import Runs, runs_fixture


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A workflow folder and a workspace under tmp_path (see runtime.support.Flow)."""
    yield from make_flow(tmp_path, monkeypatch)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    """Start plait processes in groups of their own; whatever is left of them is killed at teardown."""
    yield from runs_fixture(tmp_path)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Record a figure for the session's summary (and docs/reliability.md): it travels with the test's reports
    (tests/conftest.py prints them), so the summary has it whether tests ran here or in xdist's workers."""
    found: dict[str, Any] = {}
    yield found
    request.node.user_properties += [(FIGURE, (name, value)) for name, value in found.items()]
