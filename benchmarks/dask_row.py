"""Benchmark row: the same trivial workflow on loky and on a local Dask cluster, side by side.

`plait run` of N trivial items (`result = item`, N = 10,000 by default) with `--jobs 2`, once on
`--backend loky` and once on `--backend dask` (no address: plait starts a LocalCluster of 2
one-thread worker processes for the run and closes it after), each from scratch in a fresh
workspace. Every figure is a whole process timed from outside (interpreter start, imports,
compile, cluster start-up, ledger, dispatch, shutdown), because that is what a user waits for;
each is the best of `--repeat` runs, the least disturbed on a shared machine. The ratio is
dask / loky: what moving the same run onto Dask costs on one machine.

    python -m benchmarks.dask_row                 # N = 10,000, best of 3
    python -m benchmarks.dask_row --n 1000 --n 10000 --repeat 5 --json dask.json

Needs the `dask` extra (`pip install -e '.[dask]'`). It runs the workflow of the run rows
(`benchmarks.run.WORKFLOW`). Children get this checkout first on PYTHONPATH, so it measures this
checkout.
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

from benchmarks.measure import compile_bytecode
from benchmarks.run import WORKFLOW

CHECKOUT = Path(__file__).resolve().parent.parent



def timed(cmd: list[str], cwd: Path) -> float:
    """Run a command to completion and return its wall time; raise when it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def fresh_run(backend: str, n: int, repeat: int, folder: Path) -> float:
    """Return the best wall time of `plait run` from scratch on `backend`."""
    ws = folder / f"ws-{backend}"
    cmd = [sys.executable, "-m", "plait.cli", "run", "wf.yaml", "--workspace", str(ws), "--backend", backend,
           "--jobs", "2", "--quiet", "--param", f"n={n}"]
    times = []
    for _ in range(repeat):
        shutil.rmtree(ws, ignore_errors=True)
        times.append(timed(cmd, folder))
    return min(times)


def measure(n: int, repeat: int, folder: Path) -> dict[str, float | int]:
    """Return the row for N items: loky and dask seconds and their ratio."""
    (folder / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    loky = fresh_run("loky", n, repeat, folder)
    dask = fresh_run("dask", n, repeat, folder)
    return {"n": n, "loky_s": round(loky, 3), "dask_s": round(dask, 3), "dask_over_loky": round(dask / loky, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="items (repeatable; default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("the dask extra is not installed: pip install -e '.[dask]'", file=sys.stderr)
        return 2
    compile_bytecode()
    rows = []
    print(f"{'N':>8}  {'loky --jobs 2':>14}  {'dask LocalCluster, 2 workers':>29}  {'dask / loky':>11}")
    with tempfile.TemporaryDirectory(prefix="plait-dask-bench-") as tmp:
        for n in args.n or [10_000]:
            row = measure(n, args.repeat, Path(tmp))
            rows.append(row)
            print(f"{n:>8,}  {row['loky_s']:>12.2f} s  {row['dask_s']:>27.2f} s  {row['dask_over_loky']:>10.2f}x",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
