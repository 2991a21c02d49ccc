"""Fixtures for the runtime tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.support import Flow, make_flow


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """A workflow folder and workspace under tmp_path (see runtime.support.Flow)."""
    yield from make_flow(tmp_path, monkeypatch)
