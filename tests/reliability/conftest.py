"""The figures the reliability tests report at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from runtime.support import FIGURE


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Record a figure for the session's summary (and docs/reliability.md): it travels with the test's reports
    (tests/conftest.py prints them), so the summary has it whether tests ran here or in xdist's workers."""
    found: dict[str, Any] = {}
    yield found
    request.node.user_properties += [(FIGURE, (name, value)) for name, value in found.items()]
