"""How a wave is cut into chunks: whole units only, a probe of one unit first, sizes from measured node times."""

from __future__ import annotations

from plait.runtime.chunks import MOST_JOBS, TARGET_SECONDS, ChunkSizer, cut_wave
from plait.runtime.execute import Chunk, Results


def wave_of(units: list[int]) -> tuple[Chunk, list[int]]:
    """Return a wave whose units have the given numbers of jobs (a root, then jobs each fed by the one before)."""
    nodes, feeders, starts = [], [], []
    for number, size in enumerate(units):
        starts.append(len(nodes))
        nodes += [f"s{depth}[{number}]" for depth in range(size)]
        feeders += [0] + [1] * (size - 1)
    count = len(nodes)
    return Chunk(nodes, [None] * count, list(range(count)), list(range(count)), list(range(count)),  # type: ignore[list-item]
                 [1] * count, [{}] * count, feeders, [{}] * count, [""] * count), starts


def results(jobs: int, seconds_each: float) -> Results:
    return Results(["succeeded"] * jobs, ["null"] * jobs, [0.0] * jobs, [seconds_each] * jobs, {}, {}, {}, "1")


def test_a_wave_is_cut_at_unit_boundaries_and_loses_no_job() -> None:
    wave, starts = wave_of([1, 3, 1, 2, 2, 1, 3])
    sizer = ChunkSizer(workers=1)
    sizer.ramp = 4
    assert [c.nodes for c in cut_wave(wave, starts, sizer)] == [
        ["s0[0]", "s0[1]", "s1[1]", "s2[1]"],  # 4 jobs asked: units 0 and 1
        ["s0[2]", "s0[3]", "s1[3]", "s0[4]", "s1[4]"],  # unit 4 starts within the 4 asked, so all of it comes
        ["s0[5]", "s0[6]", "s1[6]", "s2[6]"],  # 4 jobs left: half of them asked (one worker), unit 6 whole
    ]


def test_chunks_start_with_one_unit_and_double_as_chunks_come_back() -> None:
    wave, starts = wave_of([1] * 10_000)
    sizer = ChunkSizer(workers=2)
    cut = cut_wave(wave, starts, sizer)
    sizes = [len(next(cut).nodes) for _ in range(3)]  # asked before anything came back
    for _ in range(4):
        sizer.measure(results(1, 0.000_01))
    sizes.append(len(next(cut).nodes))
    assert sizes == [1, 1, 1, 16]


def test_slow_nodes_keep_chunks_small_and_fast_ones_are_capped() -> None:
    slow, fast = ChunkSizer(workers=2), ChunkSizer(workers=2)
    for _ in range(20):
        slow.measure(results(1, 1.0))
        fast.measure(results(100, 0.000_001))
    assert (slow.size(left=100_000), fast.size(left=100_000)) == (1, MOST_JOBS)
    assert ChunkSizer(workers=2).size(left=100_000) == 1  # nothing measured yet: a probe
    medium = ChunkSizer(workers=2)
    medium.ramp = MOST_JOBS
    medium.measure(results(10, 1 / 1024))  # a millisecond a node, exact in binary
    assert medium.size(left=100_000) == int(TARGET_SECONDS * 1024) == 51


def test_the_last_chunks_of_a_wave_spread_over_the_workers() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.ramp = MOST_JOBS
    assert [sizer.size(left) for left in (8_000, 400, 3)] == [2_000, 100, 1]
