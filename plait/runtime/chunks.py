"""Chunks: how many jobs travel in one joblib call.

A wave of 100,000 trivial nodes sent one per call spends more time in joblib's per-call machinery
(a callback, a future, a pickled wrapper each) than in the nodes; sent as a few dozen chunks, it
spends almost none. But a chunk's outcomes come back only when its last job ends, so a big chunk
of slow nodes holds back the recording of the ones that finished. The size is therefore measured,
not guessed:

- Probe. Each wave starts with chunks of one unit; every chunk that comes back doubles the size
  allowed next (`ramp`). A wave of slow nodes never gets past a few small chunks before its first
  outcomes say how slow they are; a wave of trivial ones reaches the largest size after a dozen
  chunks, a few milliseconds in.
- Measure. Each chunk's node times (ended - started, summed) update an average time per job, and
  a chunk is sized to take about `TARGET_SECONDS` at that rate, so a finished node waits at most
  about that long for its chunk's slower mates (and never more than one node's own time beyond).
- Balance. No chunk takes more than half a worker's share of what is left of the wave, so the
  last chunks spread over every worker instead of one of them running the tail alone.
- Cap. Never more than `MOST_JOBS` jobs, so the parent settles chunks a few milliseconds apart.

Chunks are cut at unit boundaries (a fused chain travels whole) when joblib asks for the next
one, which it does from its callback thread as workers free up: the size reflects what has been
measured by then. joblib is given `batch_size=1`, so it does not batch the chunks again.

Lanes (the units of a step with `max_parallel`, `plait.runtime.waves`) are not sized: each goes
whole as a chunk of its own, since two chunks of one lane could run at once, and they go first,
so the limited step's nodes start at once and the other workers take the sized chunks after them.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterator

from plait.runtime.execute import Chunk, Results

__all__ = ["MOST_JOBS", "TARGET_SECONDS", "ChunkSizer", "cut_wave"]

TARGET_SECONDS = 0.05
MOST_JOBS = 4000


class ChunkSizer:
    """Sizes chunks from the node times measured so far (see the module docstring)."""

    def __init__(self, workers: int, per_job: float | None = None) -> None:
        """One sizer per wave: it probes again (a new wave may hold another step's slower nodes), from
        `per_job`, the time a job took in the waves before, when there were any."""
        self.workers = max(1, workers)
        self.per_job = per_job  # seconds a job takes, averaged over the chunks measured
        self.ramp = 1

    def measure(self, results: Results) -> None:
        """Fold a returned chunk's node times into the average, and let the next chunk be twice as big. Mutates."""
        ran = len(results.statuses) - results.statuses.count(None)
        if ran:
            per_job = sum(map(operator.sub, results.ended, results.started)) / ran
            self.per_job = per_job if self.per_job is None else (self.per_job + per_job) / 2
        self.ramp = min(self.ramp * 2, MOST_JOBS)

    def size(self, left: int) -> int:
        """Return how many jobs the next chunk should hold when `left` jobs of the wave are still to send."""
        fits = MOST_JOBS if self.per_job is None else int(TARGET_SECONDS / max(self.per_job, 1e-7))
        share = -(-left // (2 * self.workers))
        return max(1, min(self.ramp, fits, share, MOST_JOBS))


def cut_wave(wave: Chunk, starts: list[int], sizer: ChunkSizer, lanes: int = 0) -> Iterator[Chunk]:
    """Yield a wave as chunks of whole units, each sized when it is asked for, after its lanes, one chunk each.

    `starts` holds the position of each unit's first job, in order; the last `lanes` units are lanes.
    """
    units = len(starts) - lanes
    total = starts[units] if lanes else len(wave.nodes)
    for first, end in zip(starts[units:], [*starts[units + 1:], len(wave.nodes)]):
        yield wave.cut(first, end)
    unit = 0
    while unit < units:
        first = starts[unit]
        end = bisect.bisect_left(starts, first + sizer.size(total - first), unit + 1, units)
        yield wave.cut(first, starts[end] if end < units else total)
        unit = end
