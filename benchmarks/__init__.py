"""plait's benchmark suite: one command, one table, every figure beside a floor from the same run.

    python -m benchmarks [--quick] [--peers] [--repeat R] [--sizes N,N] [--json FILE]

Sections, each a module whose docstring says what its rows mean and why:
- `compile`: compiling a batch of N items plus a fan-in step: seconds and bytes per node.
- `run`: `plait run` on N trivial items against bare joblib and a plain loop; no-op and 1%
  resumes; `plait status`; ledger size and log volume; peak memory.
- `peers`: the same work through Snakemake and doit, when installed (`--peers`).
`measure` times whole processes from outside; `table` prints the table and the growth line.
Absolute times drift on shared machines; the ratios to the floors are what to compare.
"""

from benchmarks.suite import main

__all__ = ["main"]
