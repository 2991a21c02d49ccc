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
    item_keys: list | None = None  # their default keys when the source names them (glob, matrix, zip), else None
    keys_checked: bool = False  # item_keys are known to be usable keys (each part checked once: a matrix)
    deferred_items: Any = None  # items known at run time: a template, or a source mapping holding templates
    items_loc: SourceLoc | None = None
    for_each: str | None = None
    group_by: str | None = None  # the step whose items this one groups (one node per distinct key)
    group_key: str | None = None  # the group key template, rendered per item of `group_by`
    group_loc: SourceLoc | None = None
    depends_on: dict[str, SourceLoc] = field(default_factory=dict)  # explicit, for_each, from templates
    after: dict[str, SourceLoc] = field(default_factory=dict)  # order only: run once these have ended
    reads: list[tuple[str, str, SourceLoc]] = field(default_factory=list)  # (step, result|results, where)
    key: str | None = None
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    on_error: str = "fail"
    on_error_template: str | None = None  # rendered per node when it fails; `on_error` is the fallback
    error_message: str | None = None  # rendered per node when it fails, into its error record's `message`
    max_failures: int | float | None = None
    allow_empty: bool = False
    description: str | None = None
    input_files: tuple[str, ...] | None = None  # declared files each node reads (plait.compiler.tracking)
    output_files: tuple[str, ...] | None = None  # declared files each node writes
    code_changes: str | None = None  # "ignore": a code edit keeps finished nodes; None: they run again
    max_parallel: int | None = None  # at most this many of the step's nodes at once
    file_items: str | None = None  # "glob" | "lines": the items name files, tracked by content
    params_read: set[str] = field(default_factory=set)  # the params its templates read (when compiled or run)
    written: str | None = None  # a hash of the step as written, before params are rendered into it

    @property
    def is_batch(self) -> bool:
        return self.items_loc is not None or self.for_each is not None or self.group_by is not None

    @property
    def fans_out(self) -> bool:
        """Say whether the step runs for_each over a parent and reads its items from each parent's result."""
        return self.for_each is not None and self.deferred_items is not None
