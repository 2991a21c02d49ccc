"""The garbage collector around compiling: a large plan is frozen as it is built, a small one is not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.collector import FREEZE_AFTER
from plait.compiler import compile_workflow

WORKFLOW = """
name: many
params:
  n: {type: integer, default: 10}
steps:
  - name: work
    task: python
    items: {range: "{{ params.n }}"}
    inputs: {code: "result = item"}
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # what a test froze goes back to the collector


def test_a_large_plan_is_frozen_out_of_the_collectors_sight_as_it_is_built(tmp_path: Path, unfrozen: None) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    plan = compile_workflow(path, {"n": FREEZE_AFTER})
    assert gc.get_freeze_count() >= len(plan.nodes) == FREEZE_AFTER
    assert gc.isenabled()


def test_a_small_plan_is_left_to_the_collector(tmp_path: Path, unfrozen: None) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    plan = compile_workflow(path, {"n": 100})
    assert (len(plan.nodes), gc.get_freeze_count(), gc.isenabled()) == (100, 0, True)
