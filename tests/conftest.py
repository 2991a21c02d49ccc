"""Shared test helpers: run the command line in-process and capture what it prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from plait.cli import main


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Return a function that runs `plait ARGS...` in-process and returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()  # start from empty buffers
        code = main(list(argv))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
