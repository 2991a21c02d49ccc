"""A harness that drives the scheduler in this process, with no workers, no threads and no waiting.

As dask's `get_sync` steps through its scheduler in one thread, `SyncRun` runs a plan through the
real `Scheduler`, `RunState`, wave forming and settling, and the real task handlers (the jobs of a
wave run here, in order, through `execute.run_chunk`), but replaces what makes real runs slow or
unpredictable:
- the clock is `FakeClock`: waiting for a retry moves it forward at once, and every dispatch is
  stamped with the time it happened, so backoff is asserted as numbers, not measured;
- the ledger is a list: every record the scheduler hands the writer is kept in order
  (`records`), and a resume reads its priors from the records of the runs before it;
- dispatch keeps each wave's units (`waves`), so fusing, pipelining and lanes are seen as data;
- calls run in this thread (`InlineCalls`): one at a time, or, with `overlap`, up to that many at
  once, their outcomes taken one per call in turn, so overlapping waves happen in a fixed order.
A whole run takes milliseconds, and its outcome is compared as values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.compiler import Plan, compile_text
from plait.runtime.calls import InlineCalls
from plait.runtime.chunks import ChunkSizer, cut_wave
from plait.runtime.execute import Chunk, Results, RunInfo, run_chunk
from plait.runtime.fingerprint import Fingerprinter
from plait.runtime.ledger import NodeRecord, Prior
from plait.runtime.scheduler import Scheduler
from plait.runtime.selection import Selection
from plait.runtime.state import Clock, RunReport, RunState


class FakeClock:
    """A clock that stands still until something waits on it; waiting moves it forward at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(self.monotonic, self.wall, self.sleep)


@dataclass
class Wave:
    """One dispatch: when it happened, each unit's nodes (a fused chain is one unit), and how many nodes had
    come back before it (`SyncRun.settled`)."""

    at: float
    units: list[list[str]]
    after: int = 0


@dataclass
class SyncRun:
    """Runs plans in this process, one after another in the same fake ledger (see the module docstring)."""

    root: Path
    clock: FakeClock = field(default_factory=FakeClock)
    records: list[NodeRecord] = field(default_factory=list)  # every record of every run, in order
    added: list[tuple[str, str, Any, str]] = field(default_factory=list)  # nodes an expansion added
    waves: list[Wave] = field(default_factory=list)  # the last run's dispatches
    parts: dict[str, Any] = field(default_factory=dict)  # each step's signature parts, as last recorded
    runs: int = 0
    overlap: int = 1  # how many calls may run at once
    settled: list[str] = field(default_factory=list)  # the last run's nodes, in the order their outcomes came back

    def compile(self, yaml: str, params: dict[str, Any] | None = None) -> Plan:
        """Compile workflow text, with the harness's folder as the workflow's (for helper modules)."""
        (self.root / "flow").mkdir(parents=True, exist_ok=True)
        return compile_text(yaml, "<test>", self.root / "flow", params)

    def run(self, plan: Plan, *, seed: int = 0, selection: Selection | None = None) -> tuple[RunReport, RunState]:
        """Run (or resume, after an earlier run) `plan`, limited by `selection` (`--rerun`, `--until`, `--skip`)
        if given; return its report and final state."""
        self.runs += 1
        self.waves = []
        self.settled = []
        info = RunInfo(run_id=f"run-{self.runs}", workspace=self.root / "ws", workflow_dir=self.root / "flow",
                       params=plan.params, stop_file=str(self.root / f"stop-{self.runs}"), parent_pid=os.getpid())
        info.workspace.mkdir(exist_ok=True)
        state = RunState(plan, info, load_results=self.results_of, clock=self.clock.clock(), seed=seed)
        fingerprints = Fingerprinter(plan.steps, info.workflow_dir, plan.params)
        scheduler = Scheduler(state, dispatch=self.dispatch, submit=self.submit, previous=self.priors(),
                              fingerprints=fingerprints, recorded_parts=dict(self.parts),
                              fingerprints_of=lambda ids: {n: self.last()[n].fingerprint for n in ids},
                              selection=selection, calls=InlineCalls(self.overlap))
        scheduler.prepare()
        report = scheduler.run()
        self.parts = {step: fingerprints.parts(step) for step in plan.steps}
        return report, state

    def dispatch(self, info: RunInfo, wave: Chunk, starts: list[int], lanes: int,
                 drained: Callable[[], None]) -> Iterator[tuple[Chunk, Results]]:
        """Run a wave here, one unit per chunk, in the order the dispatcher sends them (lanes first, each whole);
        remember its units and when it went. Every chunk is cut at once, so the call is drained at once.

        Each chunk checks the run's stop file before its first job (`run_chunk` always does), so a
        stop raised while one unit settles leaves the units after it unstarted, as in a real run
        whose workers see the stop file.
        """
        chunks = list(cut_wave(wave, starts, ChunkSizer(workers=1), lanes))  # nothing measured: one unit each
        self.waves.append(Wave(self.clock.now, [chunk.nodes for chunk in chunks], len(self.settled)))
        drained()
        return self.outcomes(info, chunks)

    def outcomes(self, info: RunInfo, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Results]]:
        """Run each chunk when its outcome is asked for, and note its nodes as come back."""
        for chunk in chunks:
            results = run_chunk(info, chunk)
            self.settled += chunk.nodes
            yield chunk, results

    def submit(self, method: str, *args: Any) -> None:
        """Take what the scheduler hands the ledger writer."""
        if method == "record":
            self.records += [NodeRecord(*record) for record in args[1]]
        elif method == "add_nodes":
            self.added += args[0]

    def last(self) -> dict[str, NodeRecord]:
        """Return each node's last record."""
        return {record.node_id: record for record in self.records}

    def priors(self) -> dict[str, Prior]:
        """Return what a ledger holding these records would say of each node."""
        return {n: Prior(r.status, r.fingerprint, True, r.note, r.error) for n, r in self.last().items()}

    def results_of(self, ids: list[str]) -> dict[str, Any]:
        """Return the stored results of the given nodes (restored nodes' results, read on demand)."""
        last = self.last()
        return {n: json.loads(last[n].result) if last[n].result is not None else None for n in ids if n in last}

    def statuses(self) -> dict[str, str]:
        """Return each node's last recorded status."""
        return {n: r.status for n, r in self.last().items()}

    def dispatched(self) -> list[list[list[str]]]:
        """Return the last run's waves as lists of units."""
        return [wave.units for wave in self.waves]
