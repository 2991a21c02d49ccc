"""The run state: everything that changes while a plan runs, in one object, and the operations on it.

The scheduler (`plait.runtime.scheduler`), wave forming (`plait.runtime.waves`) and settling
(`plait.runtime.settling`) are functions of one `RunState`, passed to them explicitly, as dask's
`local.py` passes its `state`. Nothing else holds run state, and only this process changes it.

State
    Constant for a plan (updated by `RunState.grow` by what an expansion adds to the plan):
        plan         the plan being run
        order        node -> position in the plan: waves and retries go in plan order
        succ, pred   node -> {successor or predecessor: {}} (networkx's own adjacency dicts)
        members      batch step -> its item nodes, in item order
        step_calls   step -> the `StepCall` every job of the step shares
        paired       steps another step runs `for_each` over (their nodes may carry fused partners)
        limits       step -> its `max_parallel`, for the steps that set one (their nodes run in lanes)
        plain        steps whose nodes neither carry partners nor run in lanes: a root node of one is a
                     unit of one job, added to a wave in bulk
        reads_upstream  steps that see upstream results under `steps` (a step it depends on other than the one
                     it sees as `group` or `parent`)
        scoped       steps whose nodes see a `group` or a `parent` (group_by, per-parent fan-out)
        parents      a per-parent fan-out's child -> its parent (children are only ever added by a growth,
                     whose account names their parents: the scheduler adds them)
    Constant for the run:
        info         the `RunInfo` every node shares
        clock        monotonic time, wall time, and waiting (a fake one in tests)
        rng          the random source of retry jitter
        load_results reads restored nodes' results from the ledger, on demand
        on_settle    counts settled task nodes for the progress display (step, status, how many)
        on_grow      tells the progress display what placeholders expanded into (the step of each, the new nodes,
                     and `status`, where those the ledger has as done already are)
        log_nodes    a DEBUG line per succeeded node
    Changing:
        status       node -> final status (succeeded, failed, skipped): settled nodes only
        results      node -> result as JSON text (restored nodes: loaded when first read)
        errors       node -> error record of a node that failed in this run (what `steps.X.error` shows)
        fp           node -> fingerprint
        decisions    node -> `Decision`, for every node this run decided to run
        left_out     nodes of steps a `--until` run does not run: neither run nor pending
        remaining    node -> predecessors not settled yet, for the nodes waiting
        attempts     node -> attempts made (nodes settled in bulk record theirs from the chunk)
        failures     step -> final failures so far, for its failure budget
        tolerated    failed or skipped nodes whose failure a budget covers
        skipped_for_failure  nodes skipped because an upstream failed (not by their condition)
        ready        nodes whose predecessors are all settled, not dispatched yet
        looked       the `ready` list the scheduler last looked ahead in, and how far (`Scheduler._ahead`, while
                     no call may start): each node that becomes ready is looked at once
        ahead        ready placeholders and joins seen while looking ahead, not taken yet
        group_views  group node -> its `group` view, made while the calls before its wave ran (`group_scope`)
        retries      heap of (due, plan position, node): failed attempts waiting for their next
        in_flight    nodes dispatched in a call still running, not settled yet
        calls        call number -> `Dispatched`: what each running call has not brought back yet, and its
                     lanes (calls may overlap: `plait.runtime.calls`)
        lanes        limited step -> its lanes in flight (not all their nodes back): a new wave deals only the
                     lanes left
        skipping     nodes `--skip` names that were to run: settled skipped when they come up
        buffer       ledger records settled since the last hand-over to the ledger writer
        earlier_attempts  failed attempts that were retried, for the ledger's attempts table
        stopping     no new node starts: a signal, or an untolerated failure under `on_error: fail`
        report       counts and failures, for the summary and the exit code

The operations that every path shares live here, once each: `restore` (nodes the ledger has as
done), `release` (successors of settled nodes), `retry_later` and `due_retries` (the retry
timer), and `interrupted` (dispatched nodes a stopping run did not finish).
"""

from __future__ import annotations

import heapq
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from plait.compiler import NodeSpec, Plan
from plait.runtime.decide import Decision
from plait.runtime.execute import RunInfo, StepCall, step_call
from plait.runtime.ledger import Attempt, NodeRecord
from plait.runtime.outcome import SUCCEEDED

if TYPE_CHECKING:
    from plait.runtime.fingerprint import Fingerprint

__all__ = ["Clock", "Dispatched", "RunReport", "RunState", "due_retries", "interrupted", "release", "restore",
           "retry_later", "run_again", "wait_for_predecessors"]

_STEP, _ID = attrgetter("step"), attrgetter("id")

# Counts settled task nodes: (step, status, how many).
OnSettle = Callable[[str, str, int], None]
# Tells what a placeholder expanded into: (placeholder, its step, the new nodes, the statuses so far).
OnGrow = Callable[[list[str], list[NodeSpec], Mapping[str, str]], None]


@dataclass
class RunReport:
    """What a run did, for the summary and the exit code."""

    run_id: str
    status: str = "succeeded"  # succeeded | failed | interrupted
    counts: Counter = field(default_factory=Counter)  # final statuses of every node, restored ones included
    restored: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # untolerated failure records
    plan_summary: dict[str, int] = field(default_factory=dict)  # nodes by the reason they run (or are done)


class Clock(NamedTuple):
    """Where the scheduler gets its time: the system's, or a fake one that tests move by hand."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class Dispatched(NamedTuple):
    """What one running call holds: its nodes not brought back yet, and its lanes' (step, nodes not back yet)."""

    waiting: set[str]
    lanes: list[tuple[str, set[str]]]


class RunState:
    """Everything that changes while one plan runs (see the module docstring for each field)."""

    __slots__ = ("ahead", "attempts", "buffer", "calls", "clock", "decisions", "earlier_attempts", "errors",
                 "failures", "fp", "group_views", "in_flight", "info", "lanes", "left_out", "limits", "load_results",
                 "log_nodes", "looked", "members", "on_grow", "on_settle", "order", "paired", "parents", "plain",
                 "plan", "pred", "reads_upstream", "ready", "remaining", "report", "results", "retries", "rng",
                 "scoped", "skipped_for_failure", "skipping", "status", "step_calls", "stopping", "succ", "tolerated")

    def __init__(self, plan: Plan, info: RunInfo, *, load_results: Callable[[list[str]], Mapping[str, Any]],
                 clock: Clock | None = None, seed: int | None = None, on_settle: OnSettle | None = None,
                 log_nodes: bool = False) -> None:
        self.info = info
        self.clock = clock or Clock()
        self.rng = random.Random(seed)
        self.load_results = load_results
        self.on_settle = on_settle
        self.on_grow: OnGrow | None = None
        self.log_nodes = log_nodes
        self.status: dict[str, str] = {}
        self.results: dict[str, str | None] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.fp: dict[str, Fingerprint] = {}
        self.decisions: dict[str, Decision] = {}
        self.left_out: set[str] = set()
        self.remaining: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.failures: Counter = Counter()
        self.tolerated: set[str] = set()
        self.skipped_for_failure: set[str] = set()
        self.ready: list[str] = []
        self.looked: tuple[list[str] | None, int] = (None, 0)
        self.ahead: dict[str, None] = {}
        self.group_views: dict[str, Mapping[str, Any]] = {}
        self.retries: list[tuple[float, int, str]] = []
        self.in_flight: set[str] = set()
        self.calls: dict[int, Dispatched] = {}
        self.lanes: Counter = Counter()
        self.skipping: set[str] = set()
        self.buffer: list[tuple[Any, ...]] = []
        self.earlier_attempts: list[Attempt] = []
        self.stopping = False
        self.report = RunReport(info.run_id)
        self.index(plan)

    def index(self, plan: Plan) -> None:
        """Take the run's `plan` and build its lookups. Mutates."""
        self.members: dict[str, list[str]] = defaultdict(list)
        self.parents: dict[str, str] = {}
        self._take(plan, [node for node in plan.nodes.values() if node.kind == "task" and node.key is not None])

    def grow(self, plan: Plan, new: list[NodeSpec]) -> None:
        """Take `plan`, the run's grown by `new` nodes (in plan order), and update the lookups by them. Mutates.

        Positions are taken anew (the new nodes are spliced in before their placeholders: one
        C-level pass); a step's members are merged with its new ones; the rest is per step.
        """
        self._take(plan, [node for node in new if node.kind == "task" and node.key is not None])

    def _take(self, plan: Plan, items: list[NodeSpec]) -> None:
        """Take `plan` and add its item nodes `items` (in plan order) to the members. Mutates."""
        self.plan = plan
        self.order = order = dict(zip(plan.nodes, range(len(plan.nodes))))
        self.succ = plan.graph._succ  # networkx's own adjacency dicts, as `DiGraph.__init__` names them: read here,
        self.pred = plan.graph._pred  # never written (a plan's graph is frozen), so not copied
        for step, nodes in groupby(items, _STEP):  # a step's nodes are together, but for those an expansion added
            members = self.members[step]
            last = order[members[-1]] if members else -1
            start = len(members)
            members += map(_ID, nodes)
            if last > order[members[start]]:
                members.sort(key=order.__getitem__)  # new ones among the old: two sorted runs, merged
        self.step_calls: dict[str, StepCall | None] = {
            s.name: step_call(s, len(self.members[s.name]) if s.kind != "single" else None)
            for s in plan.steps.values()}
        self.paired = {s.for_each for s in plan.steps.values() if s.for_each}
        self.limits = {s.name: s.max_parallel for s in plan.steps.values() if s.max_parallel is not None}
        self.plain = plan.steps.keys() - self.paired - self.limits.keys()
        self.reads_upstream = {s.name for s in plan.steps.values()
                               if any(d != s.group_by and not (s.fans_out and d == s.for_each) for d in s.depends_on)}
        self.scoped = {s.name for s in plan.steps.values() if s.group_by is not None or s.fans_out}

    def result_text(self, nid: str) -> str | None:
        """Return a settled node's result as JSON text, reading a restored node's from the ledger once."""
        if nid not in self.results:
            self.results.update({k: json.dumps(v) for k, v in self.load_results([nid]).items()})
        return self.results.get(nid)


def restore(state: RunState, nodes: Iterable[str]) -> int:
    """Settle nodes the ledger has as done: succeeded, counted, their results read when asked for. Mutates.

    Returns how many. They release nobody: their successors are decided after them, and count
    only the predecessors not yet settled.
    """
    done = dict.fromkeys(nodes, SUCCEEDED)
    state.status.update(done)
    state.report.counts[SUCCEEDED] += len(done)
    state.report.restored += len(done)
    return len(done)


def release(state: RunState, settled: Iterable[str]) -> None:
    """Count settled nodes off their successors' waits; ready those left with none. Mutates.

    A successor settled already (restored from the ledger, or a fused partner settled in the
    same chunk) is left alone, and so is one still in flight, and one that `--until` leaves out.
    """
    status, remaining, ready, in_flight = state.status, state.remaining, state.ready, state.in_flight
    succ, left_out = state.succ, state.left_out
    for node, count in Counter(chain.from_iterable(map(succ.__getitem__, settled))).items():
        if node in status or node in left_out:
            continue
        left = remaining[node] = remaining.get(node, 0) - count  # (a node readied with none left keeps no count)
        if left == 0 and node not in in_flight:
            ready.append(node)


def wait_for_predecessors(state: RunState, nodes: Iterable[str]) -> None:
    """Make each node that is to run wait for its predecessors not yet settled, or ready it (a node readied keeps no
    count: a million of a fan-out's children would keep a million zeros). Mutates."""
    pred, status, remaining, ready = state.pred, state.status, state.remaining, state.ready
    for nid in nodes:
        preds = pred[nid]
        left = len(preds) - sum(map(status.__contains__, preds))
        if left:
            remaining[nid] = left
        else:
            ready.append(nid)


def retry_later(state: RunState, nid: str, wait: float) -> None:
    """Put a failed attempt on the retry timer: it joins the first wave after `wait` seconds. Mutates."""
    heapq.heappush(state.retries, (state.clock.monotonic() + wait, state.order[nid], nid))


def due_retries(state: RunState) -> None:
    """Ready the retries that are due. Mutates."""
    now = state.clock.monotonic()
    while state.retries and state.retries[0][0] <= now:
        state.ready.append(heapq.heappop(state.retries)[2])


def run_again(state: RunState, nodes: Iterable[str]) -> None:
    """Ready again dispatched nodes that did not run though the run goes on (their call was fenced off after a
    worker died, or ended without them): each at once, or once its predecessors not yet settled are. Mutates."""
    state.ready += [n for n in nodes if state.remaining.get(n, 0) == 0]  # a root node has no count: 0


def interrupted(state: RunState, nodes: Iterable[str]) -> None:
    """Record dispatched nodes that the stopping run did not finish: still pending, noted "interrupted". Mutates.

    A node a worker was running when a Ctrl-C broke the pool lands here too: it runs again on
    resume (at least once), and the ledger says why it is pending.
    """
    specs = state.plan.nodes
    state.buffer += [NodeRecord(n, "pending", state.attempts.get(n, 0), state.fp.get(n), None, None, "interrupted",
                                None, None, step=specs[n].step, key=specs[n].key, kind=specs[n].kind) for n in nodes]
