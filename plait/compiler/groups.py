"""Per-group fan-in: which items of a step fall in which group of a `group_by` step.

`group_by: {step: S, key: TEMPLATE}` gives a step one node per distinct group key among S's
items (`merge[A]`), and each group node waits for its own members only: n member edges in all,
where a fan-in over the whole of S would make every group wait for every item. The key template
renders once per item of S with that item's names (`item`, `index`, `key`, `batch`, params), and
`parent` (key, item) when S fans out per parent. Groups come in the order of their first member,
members in item order, so the plan is the same under any hash seed. The key template is rendered
for every member in one go (`render_items`, over the members' columns, `Members`), which spares
Jinja most of its set-up per render; a key that is a number needs no check, and whether two keys
would name one node is checked once per group, not per member.

The groups are worked out when S's items are known: at compile time for a static S; when S
expands for a deferred S; and for a step that fans out per parent, at compile time when the key
reads only `parent` (every child of a parent falls in its parent's group, so the group nodes are
known from the parents), else once the whole fan-out has expanded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.items import check_key
from plait.templating import ITEM_NAMES, ItemRenderError, TemplateError, analyze, render_items

__all__ = ["Members", "assign_groups", "parent_only"]


class Members(NamedTuple):
    """The items of the grouped step as its group key template sees them: a column each, a row per member."""

    keys: Sequence[Any]
    items: Sequence[Any]
    indexes: Sequence[int | None]
    parents: Sequence[Mapping[str, Any]] | None = None  # {key, item} of each one's parent, when the step fans out


def parent_only(key_template: str) -> bool:
    """Say whether a group key reads none of the member's own names (so every child shares its parent's group)."""
    try:
        return not analyze(key_template).names & ITEM_NAMES
    except TemplateError:
        return False


def assign_groups(step: str, grouped: str, key_template: str, members: Members, params: Mapping[str, Any],
                  workflow_dir: Any = None) -> dict[Any, list[int]]:
    """Return {group key: positions of its members} in order of first appearance. Raises WorkflowError.

    The error names the item whose key did not render or cannot name a node; its position is
    left for the caller to give (where the key template is written).
    """
    groups: dict[Any, list[int]] = {}
    total = len(members.keys)
    rows = zip(members.items, members.indexes, members.keys,
               members.parents if members.parents is not None else repeat(None, total))
    try:
        keys = render_items(key_template, params, rows, total=total, step=grouped, workflow_dir=workflow_dir)
    except ItemRenderError as failed:
        member = members.keys[failed.position]
        raise WorkflowError([Diagnostic(None, f"step '{step}': the group key of {grouped}[{member}] does not render: "
                                              f"{failed.error}",
                                        "the group key sees the grouped item (item, index, key, batch), params, "
                                        "and parent's key and item when that step fans out")]) from failed.error
    for position, (member, key) in enumerate(zip(members.keys, keys)):
        problem = check_key(key) if type(key) is not int else None  # a number names its node as it is
        if problem:
            raise WorkflowError([Diagnostic(None, f"step '{step}': the group key of {grouped}[{member}]: {problem}",
                                            "the group key names a node: make it short text or a number, e.g. "
                                            "\"{{ item.sample }}\"")])
        group = groups.get(key)
        if group is None:
            groups[key] = [position]
        else:
            group.append(position)
    names: dict[str, Any] = {}  # str(key) -> key: 1 and "1" would both name `step[1]`
    for key in groups:
        text = str(key)
        if text in names:
            raise WorkflowError([Diagnostic(None, f"step '{step}': group keys {names[text]!r} and {key!r} would both "
                                                  f"name node {step}[{text}]",
                                            "make the group key give one type, e.g. \"{{ item.sample | string }}\"")])
        names[text] = key
    return groups
