"""Settling: take the outcomes a chunk brings back, and make nodes final.

The half of the scheduler that decides what an outcome means (its state lives in `Scheduler`,
which mixes this in): a failure the retry policy allows again goes on the retry timer, a final
failure is judged against its step's budget (`max_failures`) and `on_error`, a node whose
dependency failed is skipped, and every final node is recorded and releases its dependents.

Settling in bulk
    A chunk whose every node succeeded and logged nothing, the common case, is settled in one
    pass of C-level operations (dict updates, `zip`, a `Counter` of the successors released)
    rather than a Python call per node; any other chunk is settled node by node, with retries,
    budgets and skips decided as each outcome is taken. Both record the same ledger rows.
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter
from itertools import chain, groupby, repeat
from typing import TYPE_CHECKING

from loguru import logger

from plait.compiler import NodeSpec
from plait.runtime.execute import Chunk, Results
from plait.runtime.outcome import FAILED, NOT_STARTED, SKIPPED, SUCCEEDED, retry_delay

if TYPE_CHECKING:
    from plait.runtime.scheduler import Scheduler

__all__ = ["Settling"]


class Settling:
    """Settles outcomes for `Scheduler` (a mixin: every attribute used here is the scheduler's)."""

    def _take(self: Scheduler, chunk: Chunk, results: Results) -> None:
        """Settle a chunk's outcomes (those not asked for, e.g. of an aborted call, are dropped). Mutates.

        A chunk whose every job succeeded and logged nothing (the common case) is settled in one
        pass of C-level bulk operations; any other goes node by node.
        """
        nodes = chunk.nodes
        if (not results.errors and not results.logs and not self.log_nodes
                and results.statuses.count(SUCCEEDED) == len(nodes) and self.in_flight.issuperset(nodes)):
            self._settle_succeeded(chunk, results)
            return
        for i, nid in enumerate(nodes):
            status = results.statuses[i]
            if status is None or nid not in self.in_flight:
                continue  # not run (the node feeding it did not succeed), or not asked for
            self.in_flight.discard(nid)
            for level, message in results.logs.get(i, ()):
                logger.bind(node=nid).log(level, message)
            if status == NOT_STARTED:
                self._mark_interrupted([nid])
                continue
            attempt = self.attempts[nid] = chunk.attempts[i]
            error = results.errors.get(i)
            if status == FAILED:
                retry = self.plan.nodes[nid].retry
                if error["retryable"] and attempt < retry.max_attempts and not self.stopping:
                    wait = retry_delay(retry, attempt, self.rng)
                    logger.bind(node=nid).warning(f"{nid}: attempt {attempt} failed "
                                                  f"({error['error_type']}: {error['error']}); "
                                                  f"retrying in {wait:.2f} s")
                    heapq.heappush(self.retries, (time.monotonic() + wait, self.order[nid], nid))
                    continue
            self._settle(nid, status, results.results[i], error, results.started[i], results.ended[i])

    def _settle_succeeded(self: Scheduler, chunk: Chunk, results: Results) -> None:
        """Settle a chunk whose every job succeeded in bulk: what `_settle` does, without Python per node. Mutates."""
        nodes = chunk.nodes
        self.in_flight.difference_update(nodes)
        self.status.update(dict.fromkeys(nodes, SUCCEEDED))
        self.results.update(zip(nodes, results.results))
        self.report.counts[SUCCEEDED] += len(nodes)
        self.buffer += zip(nodes, repeat(SUCCEEDED), chunk.attempts, map(self.fp.__getitem__, nodes), results.results,
                           repeat(None), repeat(None), results.started, results.ended)
        if self.on_settle is not None:
            for call, jobs in groupby(chunk.calls):
                self.on_settle(call.step, SUCCEEDED, sum(1 for _ in jobs))
        for succ, count in Counter(chain.from_iterable(map(self.succ.__getitem__, nodes))).items():
            if succ in self.status:
                continue  # restored from the ledger at start, or settled in this chunk (a fused partner)
            left = self.remaining[succ] = self.remaining[succ] - count
            if left == 0 and succ not in self.in_flight:
                self.ready.append(succ)

    def _settle(self: Scheduler, nid: str, status: str, result: str | None, error: dict | None, started: float | None,
                ended: float | None, note: str | None = None) -> None:
        """Make `nid` final: record it, count it, and release its dependents."""
        node = self.plan.nodes[nid]
        self.status[nid] = status
        self.results[nid] = result
        if status == FAILED:
            self._judge_failure(nid, node, error)
        elif status == SKIPPED and note is None:
            note = "condition is false"
        self.report.counts[status] += 1
        self.buffer.append((nid, status, self.attempts.get(nid, 0), self.fp.get(nid), result,
                            json.dumps(error, default=str) if error else None, note, started, ended))
        if node.kind == "task" and self.on_settle is not None:
            self.on_settle(node.step, status, 1)
        if status == SUCCEEDED:
            if self.log_nodes:
                logger.bind(node=nid).debug(f"{nid} succeeded")
        elif status == SKIPPED:
            logger.bind(node=nid).info(f"{nid} skipped: {note}")
        for succ in self.succ[nid]:
            if succ in self.status:
                continue  # restored from the ledger at start
            left = self.remaining[succ] = self.remaining[succ] - 1
            if left == 0 and succ not in self.in_flight:
                self.ready.append(succ)

    def _judge_failure(self: Scheduler, nid: str, node: NodeSpec, error: dict | None) -> None:
        step = self.plan.steps[node.step]
        self.failures[node.step] += 1
        budget = step.max_failures
        total = max(1, len(self.members[node.step]))
        if budget is not None and self.failures[node.step] <= (budget if isinstance(budget, int) else budget * total):
            self.tolerated.add(nid)
            logger.bind(node=nid).warning(f"{nid} failed within the step's failure budget: {error and error['error']}")
            return
        self.report.failed.append(error or {"node": nid})
        logger.bind(node=nid).error(f"{nid} failed: {error and error['error_type']}: {error and error['error']}")
        if step.on_error == "fail":
            self.stop()

    def _blocked(self: Scheduler, nid: str, node: NodeSpec) -> tuple[str, bool] | None:
        """Return (why, tolerated) when a failed dependency means `nid` must be skipped, else None."""
        step = self.plan.steps[node.step]
        for_each = step.for_each
        for pred in self.pred[nid]:
            if self.status.get(pred) in (SUCCEEDED, None) or (
                    self.status[pred] == SKIPPED and pred not in self.skipped_for_failure):
                continue
            if self.plan.nodes[pred].step in step.after:
                continue  # order only: it has ended, however
            tolerated = pred in self.tolerated
            if not tolerated or self.plan.nodes[pred].step == for_each:
                return f"upstream {pred} failed" if self.status[pred] == FAILED else f"upstream {pred} was skipped", \
                    tolerated
        return None

    def _settle_skip(self: Scheduler, nid: str, why: str, tolerated: bool) -> None:
        self.skipped_for_failure.add(nid)
        if tolerated:
            self.tolerated.add(nid)
        now = time.time()
        self._settle(nid, SKIPPED, None, None, now, now, note=why)
