"""Benchmark `plait run` on N trivial items against bare joblib on the same work.

Every figure is a whole process (interpreter start, imports, compile, ledger, dispatch), timed
from outside, because that is what a user waits for; each comes with its ratio to bare
`joblib.Parallel(n_jobs=2)` running the same function in the same run, since absolute times on a
shared machine drift. Rows: a plain loop, bare joblib (the floor), `plait run` from scratch,
`plait run` again with everything done (no-op resume), and `plait status` on the ledger.

    python benchmarks/run.py                 # N = 1,000 and 10,000
    python benchmarks/run.py --n 100000      # any sizes
    python benchmarks/run.py --json out.json

Each row is the best of `--repeat` runs (default 3): the least disturbed measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_JOBLIB = """
import sys
from joblib import Parallel, delayed
def work(item):
    return item
results = Parallel(n_jobs=2)(delayed(work)(i) for i in range(int(sys.argv[1])))
assert len(results) == int(sys.argv[1])
"""

PLAIN_LOOP = """
import sys
results = [item for item in range(int(sys.argv[1]))]
"""

WORKFLOW = """
name: trivial
params:
  n: {type: integer, default: 1000}
steps:
  - name: work
    task: python
    items: {range: "{{ params.n }}"}
    inputs:
      code: "result = item"
"""


def timed(cmd: list[str], cwd: Path) -> float:
    """Run a command to completion and return its wall time; raise when it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def best(cmd: list[str], cwd: Path, repeat: int, before: list[str] | None = None) -> float:
    """Return the best of `repeat` timings, running `before` (untimed) ahead of each."""
    times = []
    for _ in range(repeat):
        if before:
            subprocess.run(before, cwd=cwd, check=True, capture_output=True)
        times.append(timed(cmd, cwd))
    return min(times)


def measure(n: int, repeat: int, folder: Path) -> list[dict]:
    """Return the rows for N items."""
    python = sys.executable
    (folder / "bare.py").write_text(BARE_JOBLIB)
    (folder / "loop.py").write_text(PLAIN_LOOP)
    (folder / "wf.yaml").write_text(WORKFLOW)
    plait = [python, "-m", "plait.cli"]
    run = [*plait, "run", "wf.yaml", "--workspace", "ws", "--jobs", "2", "--quiet", "--param", f"n={n}"]
    wipe = [python, "-c", "import shutil; shutil.rmtree('ws', ignore_errors=True)"]
    floor = best([python, "bare.py", str(n)], folder, repeat)
    rows = [
        ("plain loop", best([python, "loop.py", str(n)], folder, repeat)),
        ("bare joblib (floor)", floor),
        ("plait run", best(run, folder, repeat, before=wipe)),
        ("plait run, all done (no-op resume)", best(run, folder, repeat)),
        ("plait status", best([*plait, "status", "--workspace", "ws", "--format", "json"], folder, repeat)),
    ]
    ledger = folder / "ws" / ".plait" / "ledger.db"
    logs = sum(f.stat().st_size for f in (folder / "ws" / ".plait" / "logs").glob("*.log"))
    out = [{"n": n, "row": name, "seconds": round(s, 3), "ratio": round(s / floor, 2)} for name, s in rows]
    out.append({"n": n, "row": "ledger size (MB)", "seconds": None, "ratio": None,
                "value": round(ledger.stat().st_size / 1e6, 2)})
    out.append({"n": n, "row": "log volume, all runs (KB)", "seconds": None, "ratio": None,
                "value": round(logs / 1e3, 1)})
    return out


def table(rows: list[dict]) -> str:
    """Return the rows as an aligned text table."""
    lines = [f"{'N':>9}  {'what':<36} {'seconds':>8} {'× joblib':>9}"]
    for r in rows:
        if r["seconds"] is None:
            lines.append(f"{r['n']:>9,}  {r['row']:<36} {r['value']:>8}")
        else:
            lines.append(f"{r['n']:>9,}  {r['row']:<36} {r['seconds']:>8.3f} {r['ratio']:>8.2f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="item counts (default 1,000 and 10,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows: list[dict] = []
    for n in args.n or [1000, 10000]:
        folder = Path(tempfile.mkdtemp(prefix=f"plait-bench-{n}-"))
        try:
            rows += measure(n, args.repeat, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"plait run benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
