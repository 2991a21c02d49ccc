"""Peer rows (`--peers`): the same trivial work through Snakemake and doit, divided by the joblib floor.

Each peer runs N items with 2 workers, fresh and then again with everything done (its own no-op
resume), as whole processes like every other row:
- Snakemake: `rule all` asks for `expand("out/{i}.txt", i=range(N))`; `rule work` writes the item
  to its file with `shell: "echo {wildcards.i} > {output}"`. Run as `snakemake --cores 2
  --scheduler greedy --max-jobs-per-timespan 100000/1s`: the ILP scheduler and the default limit
  of 100 jobs a second only slow trivial jobs down. Not `run:`: Snakemake 8 and later start a
  whole Snakemake process per `run:` job, seconds each.
- doit: one `task_work` generator yields N subtasks, each a Python action returning
  `{"result": item}` (doit stores it, as plait stores results), with `uptodate: [run_once]` so a
  second run skips them. Run as `doit -n 2` (processes).

A peer that is not installed is skipped with a note, never an error. Peers stop at N = 10,000
(`PEER_MAX`): Snakemake's time per job grows with the number of jobs (1,000 items took 6-8 s,
10,000 took 242 s on a 2-CPU machine), so 100,000 would take hours; doit stops there
too so that both cover the same sizes. `--quick` stops Snakemake at 1,000 (`QUICK_MAX`), and a
peer run that takes a minute or more is not repeated (`ENOUGH`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
from pathlib import Path

from benchmarks.measure import MeasureError, best
from benchmarks.table import Row

__all__ = ["PEERS", "PEER_MAX", "QUICK_MAX", "available", "measure_peers"]

PEERS = ("snakemake", "doit")
PEER_MAX = {"snakemake": 10_000, "doit": 10_000}
QUICK_MAX = {"snakemake": 1_000, "doit": 10_000}
ENOUGH = 60.0  # seconds: a peer run this long is not repeated
TIMEOUT = 1800.0  # seconds for one peer process: past it the row is dropped with a note

SNAKEFILE = """
N = int(config["items"])

rule all:
    input: expand("out/{i}.txt", i=range(N))

rule work:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""

DODO = """
from doit import get_var
from doit.tools import run_once

N = int(get_var("items", "1000"))


def work(item):
    return {"result": item}


def task_work():
    for i in range(N):
        yield {"name": str(i), "actions": [(work, [i])], "uptodate": [run_once]}
"""


def available() -> dict[str, str | None]:
    """Return each peer's installed version, or None when it cannot be imported."""
    found = {}
    for name in PEERS:
        found[name] = importlib.metadata.version(name) if importlib.util.find_spec(name) else None
    return found


def measure_peers(n: int, repeat: int, folder: Path, joblib_seconds: float,
                  limits: dict[str, int]) -> tuple[list[Row], list[str]]:
    """Return the rows of the peers in `limits` (installed ones) that go up to `n` items, and notes."""
    python = sys.executable
    runs = {
        "snakemake": ([python, "-m", "snakemake", "--snakefile", "Snakefile", "--config", f"items={n}", "--cores",
                       "2", "--quiet", "--scheduler", "greedy", "--max-jobs-per-timespan", "100000/1s"],
                      ("out", ".snakemake")),
        "doit": ([python, "-m", "doit", "-f", "dodo.py", "-n", "2", f"items={n}"],
                 (".doit.db", ".doit.db.bak", ".doit.db.dat", ".doit.db.dir")),
    }
    (folder / "Snakefile").write_text(SNAKEFILE, encoding="utf-8")
    (folder / "dodo.py").write_text(DODO, encoding="utf-8")
    rows: list[Row] = []
    notes: list[str] = []
    for name, version in available().items():
        if version is None or n > limits.get(name, 0):
            continue
        cmd, state = runs[name]
        try:
            fresh = best(cmd, folder, repeat, before=lambda state=state: _remove(folder, state), timeout=TIMEOUT,
                         enough=ENOUGH)
            ran = _items_done(name, folder, fresh.stdout)
            noop = best(cmd, folder, repeat, timeout=TIMEOUT, enough=ENOUGH)
        except MeasureError as err:
            notes.append(f"N={n:,}: {name} {version} left out: {str(err).splitlines()[0]}")
            continue
        if ran != n:
            notes.append(f"N={n:,}: {name} {version} ran {ran:,} items, expected {n:,}")
        rows.append(Row("peers", f"{name} {version}, 2 workers", n, "s", fresh.seconds, "joblib", joblib_seconds))
        rows.append(Row("peers", f"{name} {version}, no-op rerun", n, "s", noop.seconds, "joblib", joblib_seconds))
    return rows, notes


def _items_done(name: str, folder: Path, stdout: str) -> int:
    """Return how many items a fresh run did: Snakemake's output files, doit's executed-task lines."""
    if name == "snakemake":
        return sum(1 for _ in (folder / "out").iterdir()) if (folder / "out").is_dir() else 0
    return sum(1 for line in stdout.splitlines() if line.startswith(".  work:"))


def _remove(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
