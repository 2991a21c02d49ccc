"""Settling: take the outcomes a chunk brings back, and make nodes final.

What an outcome means: a failure the retry policy allows again goes on the retry timer; a final
failure is judged against its step's budget (`max_failures`) and `on_error`; a node whose
dependency failed is skipped; every final node is recorded and releases its dependents. Every
function here takes the `RunState` it changes.

Failure policy
    A node's final failure is tolerated when its step's `max_failures` budget still covers it.
    A node whose dependency failed is skipped, unless that failure was tolerated and the node is
    a fan-in (it then sees None for the failed item); a per-item partner of a failed item is
    always skipped. A step that only runs `after` another is never skipped for it: it waits for
    that step to end, however it ended. An untolerated failure in an `on_error: fail` step stops
    the run: running nodes finish, nothing new starts, the run fails. Under `on_error: continue`
    the rest runs.

Settling in bulk
    A chunk whose every node succeeded and logged nothing, the common case, is settled in one
    pass of C-level operations (dict updates, `zip`, a `Counter` of the successors released)
    rather than a Python call per node; any other chunk is settled node by node, with retries,
    budgets and skips decided as each outcome is taken. Both record the same ledger rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import groupby, repeat
from operator import attrgetter

from loguru import logger

from plait.compiler import NodeSpec
from plait.runtime.execute import Chunk, Results
from plait.runtime.ledger import Attempt, NodeRecord
from plait.runtime.outcome import FAILED, NOT_STARTED, SKIPPED, SUCCEEDED, retry_delay
from plait.runtime.state import RunState, interrupted, release, retry_later, run_again
from plait.runtime.worker import SAID

__all__ = ["all_succeeded", "blocked", "settle", "settle_skip", "take"]

_STEP, _KEY, _KIND = attrgetter("step"), attrgetter("key"), attrgetter("kind")
_ALL_SUCCEEDED = frozenset({SUCCEEDED})


def take(state: RunState, chunk: Chunk, results: Results) -> None:
    """Settle a chunk's outcomes (those not asked for, e.g. of an aborted call, are dropped). Mutates."""
    nodes = chunk.nodes
    if (not results.errors and not results.logs and not results.outputs and not state.log_nodes
            and results.statuses.count(SUCCEEDED) == len(nodes) and state.in_flight.issuperset(nodes)):
        _settle_succeeded(state, chunk, results)
        return
    for i, nid in enumerate(nodes):
        status = results.statuses[i]
        if status is None or nid not in state.in_flight:
            continue  # not run (the node feeding it did not succeed), or not asked for
        state.in_flight.discard(nid)
        for level, message in results.logs.get(i, ()):
            if level == SAID:
                print(message, flush=True)  # what the task said, for the run's terminal (plait.runtime.output)
            else:
                logger.bind(node=nid).log(level, message)
        if status == NOT_STARTED:  # the run is stopping, or its call was fenced off after a worker died
            if state.stopping:
                interrupted(state, [nid])
            else:
                run_again(state, [nid])
            continue
        attempt = state.attempts[nid] = chunk.attempts[i]
        error, printed = results.errors.get(i), results.outputs.get(i)
        if status == FAILED:
            retry = state.plan.nodes[nid].retry
            if error["retryable"] and attempt < retry.max_attempts and not state.stopping:
                wait = retry_delay(retry, attempt, state.rng)
                logger.bind(node=nid).warning(f"{nid}: attempt {attempt} failed ({error['error_type']}: "
                                              f"{error['error']}); retrying in {wait:.2f} s")
                state.earlier_attempts.append(Attempt(
                    nid, state.info.run_id, attempt, FAILED, results.started[i], results.ended[i], results.worker,
                    _reason(state, nid), json.dumps(error, default=str), printed))
                retry_later(state, nid, wait)
                continue
        settle(state, nid, status, results.results[i], error, results.started[i], results.ended[i],
               worker=results.worker, output=printed)


def _settle_succeeded(state: RunState, chunk: Chunk, results: Results) -> None:
    """Settle a chunk whose every job succeeded, in bulk: what `settle` does, without Python per node. Mutates."""
    nodes = chunk.nodes
    state.in_flight.difference_update(nodes)
    state.status.update(dict.fromkeys(nodes, SUCCEEDED))
    if any(map(state.succ.__getitem__, nodes)):  # no node reads a leaf's result: the ledger keeps it, memory need not
        state.results.update(zip(nodes, results.results))
    state.report.counts[SUCCEEDED] += len(nodes)
    decisions = state.decisions
    specs = list(map(state.plan.nodes.__getitem__, nodes))
    state.buffer += NodeRecord.columns(nodes, repeat(SUCCEEDED), chunk.attempts, map(state.fp.__getitem__, nodes),
                                       results.results, repeat(None), repeat(None), results.started, results.ended,
                                       repeat(results.worker), [decisions[n].text for n in nodes], repeat(None),
                                       map(_STEP, specs), map(_KEY, specs), map(_KIND, specs))
    if state.on_settle is not None:
        for call, jobs in groupby(chunk.calls):
            state.on_settle(call.step, SUCCEEDED, sum(1 for _ in jobs))
    release(state, nodes)


def settle(state: RunState, nid: str, status: str, result: str | None, error: dict | None, started: float | None,
           ended: float | None, note: str | None = None, *, worker: str | None = None,
           output: str | None = None) -> None:
    """Make `nid` final: judge a failure, record it, count it, and release its dependents. Mutates."""
    node = state.plan.nodes[nid]
    state.status[nid] = status
    if state.succ[nid]:  # a result some node reads (a leaf's is in the ledger alone)
        state.results[nid] = result
    if status == FAILED:
        state.errors[nid] = error or {"node": nid}
        _judge_failure(state, nid, node, error)
    elif status == SKIPPED and note is None:
        note = "condition is false"
    state.report.counts[status] += 1
    state.buffer.append(NodeRecord(nid, status, state.attempts.get(nid, 0), state.fp.get(nid), result,
                                   json.dumps(error, default=str) if error else None, note, started, ended, worker,
                                   _reason(state, nid), output, node.step, node.key, node.kind))
    if node.kind == "task" and state.on_settle is not None:
        state.on_settle(node.step, status, 1)
    if status == SUCCEEDED:
        if state.log_nodes:
            logger.bind(node=nid).debug(f"{nid} succeeded")
    elif status == SKIPPED:
        logger.bind(node=nid).info(f"{nid} skipped: {note}")
    release(state, [nid])


def _reason(state: RunState, nid: str) -> str | None:
    """Return why this run ran `nid`, as the ledger keeps it (None for a node it did not decide: a skip)."""
    decision = state.decisions.get(nid)
    return decision.text if decision is not None else None


def _judge_failure(state: RunState, nid: str, node: NodeSpec, error: dict | None) -> None:
    """Count a final failure against its step's budget; past it, fail the run (and stop it under on_error: fail)."""
    step = state.plan.steps[node.step]
    state.failures[node.step] += 1
    budget = step.max_failures
    total = max(1, len(state.members[node.step]))
    if budget is not None and state.failures[node.step] <= (budget if isinstance(budget, int) else budget * total):
        state.tolerated.add(nid)
        logger.bind(node=nid).warning(f"{nid} failed within the step's failure budget: {error and error['error']}")
        return
    state.report.failed.append(error or {"node": nid})
    logger.bind(node=nid).error(f"{nid} failed: {error and error['error_type']}: {error and error['error']}"
                                + (f" ({error['message']})" if error and error.get("message") else ""))
    if (error or {}).get("on_error", step.on_error) == "fail":  # a per-node on_error was decided where it ran
        state.stopping = True


def all_succeeded(state: RunState, nodes: Iterable[str]) -> bool:
    """Whether every one of `nodes` has settled as succeeded: checked in C-level passes, for hundreds at once."""
    return _ALL_SUCCEEDED.issuperset(map(state.status.get, nodes))


def blocked(state: RunState, nid: str, node: NodeSpec) -> tuple[str, bool] | None:
    """Return (why, tolerated) when a failed dependency means `nid` must be skipped, else None."""
    preds = state.pred[nid]
    if all_succeeded(state, preds):  # the common case (a join of hundreds)
        return None
    step = state.plan.steps[node.step]
    for pred in preds:
        pred_status = state.status.get(pred)
        if pred_status in (SUCCEEDED, None) or (pred_status == SKIPPED and pred not in state.skipped_for_failure):
            continue
        pred_step = state.plan.nodes[pred].step
        if pred_step in step.after:
            continue  # order only: it has ended, however
        tolerated = pred in state.tolerated
        if not tolerated or pred_step == step.for_each:
            what = "failed" if pred_status == FAILED else "was skipped"
            return f"upstream {pred} {what}", tolerated
    return None


def settle_skip(state: RunState, nid: str, why: str, tolerated: bool) -> None:
    """Skip a node because an upstream node failed (tolerated: a budget covers that failure). Mutates."""
    state.skipped_for_failure.add(nid)
    if tolerated:
        state.tolerated.add(nid)
    now = state.clock.wall()
    settle(state, nid, SKIPPED, None, None, now, now, note=why)
