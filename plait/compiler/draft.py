"""`StepDraft`: one step as the checks leave it, before it is expanded into nodes.

Mutable on purpose: each check of `plait.compiler.steps` fills in its part. Once every step is
checked, `plait.compiler.expand` turns drafts into the frozen `StepSpec`s and `NodeSpec`s of a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plait.compiler.diagnostics import SourceLoc
from plait.compiler.plan import RetryPolicy

__all__ = ["StepDraft"]


@dataclass
class StepDraft:
    """A checked step, before node expansion."""

    name: str
    task: str
    loc: SourceLoc
    position: int
    config: Any = None
    items: list | None = None  # static items (a batch step)
    item_keys: list | None = None  # their keys as matched (glob), else None
    deferred_items: str | None = None  # an items template over upstream results
    items_loc: SourceLoc | None = None
    for_each: str | None = None
    depends_on: dict[str, SourceLoc] = field(default_factory=dict)  # explicit, for_each, from templates
    after: dict[str, SourceLoc] = field(default_factory=dict)  # order only: run once these have ended
    reads: list[tuple[str, str, SourceLoc]] = field(default_factory=list)  # (step, result|results, where)
    key: str | None = None
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    on_error: str = "fail"
    max_failures: int | float | None = None
    allow_empty: bool = False
    description: str | None = None

    @property
    def is_batch(self) -> bool:
        return self.items_loc is not None or self.for_each is not None
