"""Choosing what runs: nodes to run again whatever the ledger says (`--rerun`), steps to stop at (`--until`).

`select` turns what a user names into a `Selection` the scheduler applies as it decides each node
(`plait.runtime.scheduler`): a node named by `--rerun` runs again (reason `forced`), and so does
everything downstream of it; with `--until`, only the named steps and the steps they need run,
and the rest of the workflow is left as the ledger has it (neither run nor counted as pending).
A name is a step, a node id (`resize[photo1.jpg]`) or a pattern over node ids (`resize[*.png]`:
`*` stands for any text and `?` for one character; brackets are the node id's own, not a
character class as in a shell glob). One that matches nothing is an error with the closest
name as a hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from plait.compiler import Plan

__all__ = ["Selection", "select"]


@dataclass(frozen=True)
class Selection:
    """What a run is told to run: nodes forced to run again, and the steps it is limited to (None: all)."""

    forced: frozenset[str] = field(default_factory=frozenset)
    steps: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        """Whether the run decides every node by the ledger alone (nothing forced, nothing left out)."""
        return not self.forced and self.steps is None


def select(plan: Plan, rerun: Iterable[str] = (), until: Iterable[str] = ()) -> Selection:
    """Resolve `--rerun` targets and `--until` steps against a plan. Raises ValueError naming what matches nothing."""
    forced: set[str] = set()
    for target in rerun:
        if target in plan.steps:
            forced.update(n.id for n in plan.nodes.values() if n.step == target)
        elif target in plan.nodes:
            forced.add(target)
        else:
            pattern = _pattern(target)
            matched = [nid for nid in plan.nodes if pattern.fullmatch(nid)]
            if not matched:
                raise ValueError(_unknown("--rerun", target, [*plan.steps, *plan.nodes]))
            forced.update(matched)
    until = list(until)
    for step in until:
        if step not in plan.steps:
            raise ValueError(_unknown("--until", step, list(plan.steps)))
    steps = None
    if until:
        graph = nx.DiGraph((dep, s.name) for s in plan.steps.values() for dep in (*s.depends_on, *s.after))
        graph.add_nodes_from(plan.steps)
        steps = frozenset(until).union(*(nx.ancestors(graph, step) for step in until))
    return Selection(frozenset(forced), steps)


def _pattern(target: str) -> re.Pattern[str]:
    """Return a pattern over node ids: `*` any text, `?` one character, everything else itself."""
    return re.compile(re.escape(target).replace(r"\*", ".*").replace(r"\?", "."), re.DOTALL)


def _unknown(option: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "name a step, a node id (step[key]) or a pattern (step[*.png])"
    return f"{option} {name}: no step or node of this workflow is called that; {hint}"
