"""Choosing what runs: nodes to run again whatever the ledger says (`--rerun`), steps to stop at (`--until`),
nodes not to run (`--skip`).

`select` turns what a user names into a `Selection` the scheduler applies as it decides each node
(`plait.runtime.scheduler`): a node named by `--rerun` runs again (reason `forced`), and so does
everything downstream of it; with `--until`, only the named steps and the steps they need run,
and the rest of the workflow is left as the ledger has it (neither run nor counted as pending).
A node named by `--skip` that was to run is recorded skipped instead, as a false condition
would skip it, and what follows it runs (the original engine's `--skip-steps`); one the ledger
has as done stays done. `--skip` may name nodes a step grows at run time (a deferred or fan-out
step's `check[b]`, `check[*]`): such a name is matched as those nodes are added. `--rerun` may not
(a node decided before them could not be forced for them): it says so, naming the step instead.
`--rerun` of a placeholder (a deferred step, a fan-out's `check[a]`) runs again what it expands into.
A name is a step, a node id (`resize[photo1.jpg]`) or a pattern over node ids (`resize[*.png]`:
`*` stands for any text and `?` for one character; brackets are the node id's own, not a
character class as in a shell glob). One that matches nothing is an error with the closest
name as a hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from plait.compiler import NodeSpec, Plan
from plait.compiler.diagnostics import did_you_mean

__all__ = ["Selection", "SelectionError", "node_pattern", "select"]


class SelectionError(ValueError):
    """A `--rerun`, `--until` or `--skip` target that matches nothing (the message names the closest name)."""


@dataclass(frozen=True)
class Selection:
    """What a run is told to run: nodes forced to run again, the steps it is limited to (None: all), and the
    nodes and whole steps it is told to skip."""

    forced: frozenset[str] = field(default_factory=frozenset)
    steps: frozenset[str] | None = None
    skip: frozenset[str] = field(default_factory=frozenset)
    skip_steps: frozenset[str] = field(default_factory=frozenset)
    skip_later: tuple[re.Pattern[str], ...] = ()  # nodes of steps that grow at run time, matched as they are added

    @property
    def everything(self) -> bool:
        """Whether the run decides every node by the ledger alone (nothing forced, left out or skipped)."""
        return not self.forced and self.steps is None and not self.skips_any

    @property
    def skips_any(self) -> bool:
        return bool(self.skip or self.skip_steps or self.skip_later)

    def skips(self, node: NodeSpec) -> bool:
        """Whether `--skip` names this node, or its step."""
        return node.id in self.skip or node.step in self.skip_steps or \
            any(pattern.fullmatch(node.id) for pattern in self.skip_later)


def select(plan: Plan, rerun: Iterable[str] = (), until: Iterable[str] = (), skip: Iterable[str] = ()) -> Selection:
    """Resolve `--rerun` and `--skip` targets and `--until` steps against a plan. Raises SelectionError naming
    what matches nothing."""
    forced: set[str] = set()
    for target in rerun:
        try:
            forced.update(_nodes("--rerun", target, plan))
        except SelectionError:
            if not _grows(plan, target):
                raise
            step = target.partition("[")[0]
            raise SelectionError(f"--rerun {target}: step '{step}' adds its nodes as the run goes (its items come "
                                 f"from what runs before it), so --rerun cannot name one of them; --rerun {step} "
                                 "runs all of them again") from None
    skip_steps = frozenset(target for target in skip if target in plan.steps)
    later = tuple(node_pattern(target) for target in skip if target not in plan.steps and _grows(plan, target))
    skipped = frozenset(nid for target in skip if target not in plan.steps and not _grows(plan, target)
                        for nid in _nodes("--skip", target, plan))
    until = list(until)
    for step in until:
        if step not in plan.steps:
            raise SelectionError(_unknown("--until", step, list(plan.steps)))
    steps = None
    if until:
        graph = nx.DiGraph((dep, s.name) for s in plan.steps.values() for dep in (*s.depends_on, *s.after))
        graph.add_nodes_from(plan.steps)
        steps = frozenset(until).union(*(nx.ancestors(graph, step) for step in until))
    return Selection(frozenset(forced), steps, skipped, skip_steps, later)


def _grows(plan: Plan, target: str) -> bool:
    """Whether `target` names nodes of a step that adds its nodes at run time (`step[...]`)."""
    step = plan.steps.get(target.partition("[")[0]) if target.endswith("]") else None
    return step is not None and (step.kind == "deferred" or step.fans_out)


def _nodes(option: str, target: str, plan: Plan) -> list[str]:
    """Return the nodes a target names: a step's, a node, or those a pattern matches. Raises SelectionError for none."""
    if target in plan.steps:
        return [n.id for n in plan.nodes.values() if n.step == target]
    if target in plan.nodes:
        return [target]
    pattern = node_pattern(target)
    matched = [nid for nid in plan.nodes if pattern.fullmatch(nid)]
    if not matched:
        raise SelectionError(_unknown(option, target, [*plan.steps, *plan.nodes]))
    return matched


def node_pattern(target: str) -> re.Pattern[str]:
    """Return a pattern over node ids: `*` any text, `?` one character, everything else itself."""
    return re.compile(re.escape(target).replace(r"\*", ".*").replace(r"\?", "."), re.DOTALL)


def _unknown(option: str, name: str, known: list[str]) -> str:
    hint = did_you_mean(name, known) or "name a step, a node id (step[key]) or a pattern (step[*.png])"
    return f"{option} {name}: no step or node of this workflow is called that; {hint}"
