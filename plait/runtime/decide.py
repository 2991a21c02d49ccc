"""The resume decision: for every node, run it or restore it from the ledger, and why.

One function decides (`decide`): for the nodes of the plan when a run prepares, and for the nodes
an expansion adds while it runs. It reads what the ledger holds of the node (`Prior`) and the
node's fingerprint now, and returns a `Decision`: restore or run, with a reason.

Reasons
    done         succeeded before with the same fingerprint: restored, not run
    new          never recorded: a new node
    failed       failed last time (detail: its last error)
    changed      succeeded with another fingerprint (detail: what changed: `code`, `params: a, b`,
                 `config`, `item`, `input file: <path>`, or `upstream: <node>`; see
                 `plait.runtime.fingerprint`)
    output missing  succeeded with the same fingerprint, but a file its step declares it writes
                 (`output_files`) is not in the workspace (detail: the path)
    interrupted  dispatched by a run that stopped before the node finished
    pending      recorded but never finished: never reached, or skipped because an upstream failed
    forced       named by `--rerun` (detail: `--rerun`), or downstream of such a node (`upstream: <node>`)
    skipped      was to run, for one of the reasons above, but `--skip` names it (detail: `--skip`): recorded
                 skipped when it comes up, and what follows it runs

A node of a step with `code_changes: ignore` whose code alone changed is done: its fingerprint is
compared without the code segment, and the run keeps the recorded one for it (its downstream
then sees no change).

A deferred step's placeholder always runs (it expands again, listing its items anew); its
decision still says whether it was done before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from plait.compiler import NodeSpec, Plan
from plait.runtime.fingerprint import Fingerprinter, Segments, basis
from plait.runtime.ledger import Ledger, Prior
from plait.runtime.outcome import FAILED, SUCCEEDED

__all__ = ["REASONS", "RESTORE", "Decision", "Explainer", "decide", "grows", "ledger_holds"]

REASONS = ("done", "new", "failed", "changed", "output missing", "interrupted", "pending", "forced", "skipped")


class Decision(NamedTuple):
    """Whether a node runs, and why (one of `REASONS`, with a detail for some)."""

    run: bool
    reason: str
    detail: str | None = None

    @property
    def text(self) -> str:
        """Return the reason as the ledger keeps it: "reason" or "reason: detail"."""
        return self.reason if self.detail is None else f"{self.reason}: {self.detail}"


RESTORE = Decision(False, "done")
_NEW = Decision(True, "new")
_PENDING = Decision(True, "pending")
_INTERRUPTED = Decision(True, "interrupted")


def decide(node: NodeSpec, prior: Prior | None, fingerprint: str, explainer: Explainer) -> Decision:
    """Decide whether `node` runs, from what the ledger holds of it and its fingerprint now."""
    if prior is None:
        return _NEW
    status = prior.status
    if status == SUCCEEDED:
        if prior.fingerprint != fingerprint and not explainer.code_ignored(node, prior.fingerprint, fingerprint):
            return Decision(True, "changed", explainer.changed(node, prior.fingerprint, fingerprint))
        missing = explainer.missing_output(node)
        return RESTORE if missing is None else Decision(True, "output missing", missing)
    if status == FAILED:
        return Decision(True, "failed", _last_error(prior.error))
    return _INTERRUPTED if prior.note == "interrupted" else _PENDING


class Explainer:
    """Says what changed in a node whose fingerprint differs from the one recorded, and what else `decide` asks
    beyond the ledger: whether a step ignores its code's changes, and whether a declared output is missing.

    `recorded` holds each step's signature parts as the ledger last recorded them; `runs(node)`
    says whether a node of the plan runs in this run (an upstream node that does is named).
    """

    def __init__(self, fingerprints: Fingerprinter, recorded: Mapping[str, Any],
                 predecessors: Callable[[str], Sequence[str]], runs: Callable[[str], bool]) -> None:
        self.fingerprints = fingerprints
        self.recorded = recorded
        self.predecessors = predecessors
        self.runs = runs

    def changed(self, node: NodeSpec, before: str | None, now: str) -> str:
        """Return what changed: the `code`, in the step (`params: …`, `config`) or the `item`, an `input file: <path>`,
        and `upstream: <node>`."""
        if before is None:
            return "config (recorded before plait kept what a fingerprint is made of)"
        was, is_ = Segments.of(before), Segments.of(now)
        changes = []
        if was.code != is_.code:
            changes.append("code")
        if was.own != is_.own:
            changes += self._own(node)
        if was.files != is_.files:
            path = self.fingerprints.tracked.changed_input(node)
            changes.append(f"input file: {path}" if path else "input file")
        if was.upstream != is_.upstream:
            upstream = next((p for p in self.predecessors(node.id) if self.runs(p)), None)
            changes.append(f"upstream: {upstream}" if upstream else "upstream")
        return "; ".join(changes)

    def code_ignored(self, node: NodeSpec, before: str | None, now: str) -> bool:
        """Say whether the node's step ignores code changes (`code_changes: ignore`) and only its code changed."""
        if before is None or self.fingerprints.steps[node.step].code_changes != "ignore":
            return False
        return Segments.of(before)._replace(code=None) == Segments.of(now)._replace(code=None)

    def missing_output(self, node: NodeSpec) -> str | None:
        """Return a declared output of a done node that is not in the workspace, or None."""
        return self.fingerprints.tracked.missing_output(node) if node.kind == "task" else None

    def _own(self, node: NodeSpec) -> list[str]:
        """Return what changed in the node itself: its step's params or config, or else its item."""
        recorded = self.recorded.get(node.step)
        if recorded is None:
            return ["config (recorded before plait kept what a fingerprint is made of)"]
        current = self.fingerprints.parts(node.step)
        changes = []
        key = "reads" if "reads" in recorded else "params"  # a ledger from before "reads" was kept
        before, now = recorded.get(key, {}), current[key]
        params = sorted(n for n in before.keys() | now.keys() if before.get(n) != now.get(n))
        if params:
            changes.append("params: " + ", ".join(params))
        if recorded.get("config") != current["config"] and (
                not params or recorded.get("written") is None or recorded["written"] != current["written"]):
            changes.append("config")  # edited as written, or changed with no param to say why
        return changes or ["item"]


def _last_error(error: str | None) -> str | None:
    """Return "ErrorType: message" from a stored error record."""
    if not error:
        return None
    try:
        record = json.loads(error)
    except ValueError:
        return None
    return f"{record.get('error_type')}: {record.get('error')}" if isinstance(record, dict) else None


def ledger_holds(ledger: Ledger, plan: Plan, fingerprints: Fingerprinter) -> bool:
    """Say whether the ledger holds this very plan whole and up to date (its basis is this plan's).

    Then only the nodes that did not succeed need reading and fingerprinting. Costs the plan's
    digest, which the run records anyway, and a stat of each tracked file, only when the ledger
    has a basis to compare with. A plan whose steps declare outputs is never held: each done
    node's outputs are looked for.
    """
    kept = ledger.basis()
    if kept is None or grows(plan) or any(step.output_files for step in plan.steps.values()):
        return False
    signature = fingerprints.signature(plan.nodes.values())
    return signature is not None and kept == basis(plan.digest, signature)


def grows(plan: Plan) -> bool:
    """Say whether the plan adds nodes as it runs (a deferred step): not one the ledger can hold whole."""
    return any(step.kind == "deferred" for step in plan.steps.values())
