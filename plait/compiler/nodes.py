"""Building nodes and naming items: what compile-time and run-time expansion share.

`make_node` builds one `NodeSpec` from its step's spec (the step's config, policy and position
shared by reference); `item_keys` gives each item of a batch its key, by the step's `key:`
template or the default rule of `plait.compiler.items`, and refuses a bad or repeated key.
Both the compiler (`plait.compiler.expand`) and the expansions done while a plan runs
(`plait.compiler.grow`) come here, so a node is named and built the same way whenever it is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from plait.compiler.diagnostics import Diagnostic, WorkflowError
from plait.compiler.items import check_key, default_key
from plait.compiler.plan import FrozenDict, NodeSpec, StepSpec, freeze
from plait.templating import ItemRenderError, render_items

__all__ = ["item_keys", "make_node", "make_nodes"]

_EMPTY = FrozenDict()
_FROZEN = frozenset({str, int, float, bool, type(None), FrozenDict})  # what `freeze` gives back as it is (a
# FrozenDict is made of frozen values: a matrix's or a zip's items)


def make_node(spec: StepSpec, nid: str, kind: str, key: Any = None, item: Any = None,
              index: int | None = None) -> NodeSpec:
    """Return the node `nid` of step `spec`: a task, a deferred placeholder, or a join."""
    # Positional: a keyword call costs twice as much, 100,000 times over.
    return NodeSpec(nid, spec.name, kind, "join" if kind == "join" else spec.task,
                    _EMPTY if kind == "join" else spec.config, spec.retry, spec.timeout, spec.loc, key, freeze(item),
                    index)


def make_nodes(spec: StepSpec, kind: str, ids: Sequence[str], keys: Sequence[Any],
               items: Sequence[Any]) -> list[NodeSpec]:
    """Return the task or placeholder nodes of a batch: what `make_node` gives for each item, index counting from 0.

    Built column by column, with no Python call per node (a million items a compile): each node is
    the tuple of its columns, zipped.
    """
    frozen = items if set(map(type, items)) <= _FROZEN else list(map(freeze, items))
    columns = zip(ids, repeat(spec.name), repeat(kind), repeat(spec.task), repeat(spec.config), repeat(spec.retry),
                  repeat(spec.timeout), repeat(spec.loc), keys, frozen, range(len(ids)))
    return list(map(tuple.__new__, repeat(NodeSpec), columns))


def as_join(node: NodeSpec) -> NodeSpec:
    """Return a placeholder turned into the join of the nodes it expanded into."""
    return node._replace(kind="join", task="join", config=_EMPTY)


def item_keys(step: str, items: Sequence[Any], key_template: str | None, params: Mapping[str, Any],
              matched: Sequence[Any] | None = None, *, checked: bool = False, workflow_dir: Any = None,
              parent: Mapping[str, Any] | None = None) -> list:
    """Return one unique key per item; raise WorkflowError naming the first bad or duplicate key.

    `matched` gives keys the source named (a glob's paths, a matrix's joined values), used when
    the step has no `key:`; `checked` says they are known to be usable. `parent` is what a
    per-parent fan-out's key template sees as `parent`.
    """
    total = len(items)
    keys = []
    if key_template is None and matched is not None and checked:
        keys = list(matched)
    elif key_template is None and matched is None and set(map(type, items)) <= {int}:
        keys = list(items)  # numbers name their nodes as they are (the common `range`): nothing to check
    else:
        rendered = None
        if key_template is not None:
            try:
                rendered = render_items(key_template, params, zip(items, range(total), repeat(None), repeat(parent)),
                                        total=total, step=step, workflow_dir=workflow_dir)
            except ItemRenderError as failed:
                raise WorkflowError([Diagnostic(None, f"step '{step}': the key of item {failed.position} does not "
                                                      f"render: {failed.error}", "the key template sees item, index, "
                                                                                 "batch and params")]) from failed.error
        for index, item in enumerate(items):
            if rendered is not None:
                key = rendered[index]
            elif matched is None and type(item) is int:
                keys.append(item)  # a number names its node as it is (the common `range`): nothing to check
                continue
            else:
                key = matched[index] if matched is not None else default_key(item)
            problem = check_key(key)
            if problem:
                raise WorkflowError([Diagnostic(None, f"step '{step}': item {index}: {problem}",
                                                "set `key:` to a template that gives a short name, e.g. "
                                                "\"{{ item | basename }}\"")])
            keys.append(key)
    if _distinct(keys) != len(keys):
        seen: set = set()
        dup = next(k for k in map(str, keys) if k in seen or seen.add(k))
        raise WorkflowError([Diagnostic(None, f"step '{step}': two items have the key '{dup}'",
                                        "keys name nodes and must be unique: remove the duplicate item, "
                                        "or set `key:` to something that tells them apart")])
    return keys


def _distinct(keys: list) -> int:
    """Return how many node names the keys give: 1 and "1" would both name `step[1]`."""
    kinds = set(map(type, keys))
    if len(kinds) == 1 and kinds <= {int, str}:
        return len(set(keys))  # keys of one kind name their nodes apart exactly when they differ
    return len({str(k) for k in keys})
