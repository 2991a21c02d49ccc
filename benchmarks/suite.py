"""The suite: measure every section at every size, print one table, and write it as JSON.

    python -m benchmarks                 # N = 1,000, 10,000, 100,000 (compile also 1,000,000), best of 3
    python -m benchmarks --quick         # about a minute: N = 1,000, 10,000, 100,000 once, no 1,000,000
    python -m benchmarks --peers         # add Snakemake and doit (N <= 10,000) when they are installed
    python -m benchmarks --million       # add the scale rows at N = 1,000,000 (a few minutes, about 1 GB)
    python -m benchmarks --json FILE     # where the JSON goes (default benchmarks/results/latest.json)

For each N the sections run in order (compile, run, shapes, peers), each in a fresh temporary folder,
then the efficiency rows once (real work beside joblib and xargs), then with `--million` the
compile and the lean run rows (benchmarks/scale.py) at 1,000,000,
and every figure is measured right beside its floor, so a machine that slows down part-way
moves both. The table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import compile as compile_rows
from benchmarks import peers, report, run, scale, shapes
from benchmarks.measure import REPO, compile_bytecode
from benchmarks.table import GROWTH_TO, Row, growth, render, render_growth

__all__ = ["main"]

FULL_SIZES = (1_000, 10_000, 100_000)
COMPILE_ONLY = 1_000_000  # compile alone in the full run; its run rows with --million (benchmarks/scale.py)
QUICK_SIZES = (1_000, 10_000, 100_000)
DEFAULT_JSON = REPO / "benchmarks" / "results" / "latest.json"
FLOORS = {**compile_rows.FLOORS, **run.FLOORS, **report.FLOORS, **shapes.FLOORS, **scale.FLOORS}


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; write the JSON; return the exit code."""
    args = _parser().parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    found = peers.available() if args.peers else {}
    limits = peers.QUICK_MAX if args.quick else peers.PEER_MAX
    notes = [f"peers: {name} is not installed, skipped (pip install {name} to compare)"
             for name, version in found.items() if version is None]
    notes += [_cap_note(name, limits[name], args.quick) for name, version in found.items()
              if version and any(n > limits[name] for n in sizes)]
    compile_bytecode()
    started = time.perf_counter()
    rows = _measure(args, repeat, sizes, {name: limits[name] for name, version in found.items() if version}, notes)
    meta = _meta(args, repeat, time.perf_counter() - started, found)
    ratios = growth(rows)
    ratios.update({f"{what} (to 1,000,000)": ratio for what, ratio in growth(rows, GROWTH_TO, COMPILE_ONLY).items()})
    print(_header(meta))
    print(render(rows, FLOORS))
    print(render_growth(ratios))
    for note in notes:
        print(f"note: {note}")
    _write_json(args.json, {"meta": meta, "floors": FLOORS, "rows": [r.to_json() for r in rows],
                            "growth": ratios, "notes": notes})
    print(f"written: {args.json}", file=sys.stderr)
    return 0


def _measure(args: argparse.Namespace, repeat: int, sizes: list[int], peer_limits: dict[str, int],
             notes: list[str]) -> list[Row]:
    """Measure every section at every size, in order; return the rows. Appends to `notes`."""
    started = time.perf_counter()
    compile_sizes = sizes + ([COMPILE_ONLY] if args.million or not (args.quick or args.sizes) else [])
    with _stage("compile N=1", started) as folder:
        rows = compile_rows.measure_compile_floor(repeat, folder, args.source)
    for n in sorted(set(compile_sizes)):
        with _stage(f"compile N={n:,}", started) as folder:
            rows += compile_rows.measure_compile(n, repeat, folder, args.source)
        if n not in sizes:
            continue
        with _stage(f"run N={n:,}", started) as folder:
            run_rows, run_notes = run.measure_run(n, repeat, folder)
        rows += run_rows
        notes += run_notes
        if n % 100 == 0:
            with _stage(f"shapes N={n:,}", started) as folder:
                rows += shapes.measure_shapes(n, repeat, folder)
        if any(n <= limit for limit in peer_limits.values()):
            floor = next(r.floor_value or 0.0 for r in run_rows if r.floor == "joblib")
            with _stage(f"peers N={n:,}", started) as folder:
                peer_rows, peer_notes = peers.measure_peers(n, repeat, folder, floor, peer_limits)
            rows += peer_rows
            notes += peer_notes
    with _stage("efficiency: sleeps and shell commands", started) as folder:
        rows += scale.measure_efficiency(repeat, folder)
    if args.million:
        with _stage(f"scale N={COMPILE_ONLY:,}", started) as folder:
            rows += scale.measure_scale(COMPILE_ONLY, 1, folder)  # once: minutes and gigabytes a time
    return rows


def _cap_note(name: str, limit: int, quick: bool) -> str:
    full = peers.PEER_MAX[name]
    why = f" (--quick; the full run goes to {full:,})" if quick and limit < full else ""
    return f"peers: {name} measured up to N = {limit:,} only{why}: see benchmarks/peers.py for why"


class _stage:
    """Print what is being measured, to stderr, and hold a temporary folder for it."""

    def __init__(self, label: str, started: float):
        self.label, self.started = label, started
        self.tmp = tempfile.TemporaryDirectory(prefix="plait-bench-")

    def __enter__(self) -> Path:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {self.label}", file=sys.stderr, flush=True)
        return Path(self.tmp.name)

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Benchmark plait against its floors: "
                                     "compile, run, resume, status, ledger and logs at N items.")
    parser.add_argument("--quick", action="store_true", help="about a minute: best of 1, no 1,000,000 compile")
    parser.add_argument("--peers", action="store_true", help="also run Snakemake and doit when installed")
    parser.add_argument("--million", action="store_true",
                        help="also run 1,000,000 items (compile, run, resume, status, ledger; once; about 1 GB)")
    parser.add_argument("--repeat", type=_positive, metavar="R", help="best of R runs (default 3, quick 1)")
    parser.add_argument("--sizes", type=_sizes, metavar="N,N,...", help="item counts (default 1000,10000,100000)")
    parser.add_argument("--source", choices=compile_rows.SOURCES, default="range",
                        help="where the compile workflow's items come from (default range)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                        help="write the table as JSON to FILE (default benchmarks/results/latest.json)")
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 1 or more")
    return int(text)


def _sizes(text: str) -> list[int]:
    try:
        return sorted({_positive(part.strip().replace("_", "")) for part in text.split(",")})
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"--sizes: {err}; write item counts like 1000,10000") from err


def _meta(args: argparse.Namespace, repeat: int, seconds: float, found: dict[str, str | None]) -> dict[str, Any]:
    return {"mode": "quick" if args.quick else "full", "repeat": repeat, "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "commit": _commit(), "source": args.source,
            "peers": found, "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def _header(meta: dict[str, Any]) -> str:
    return (f"plait benchmarks, {meta['mode']}, best of {meta['repeat']}: plait {meta['commit']}, "
            f"Python {meta['python']}, {meta['cpus']} CPUs, {meta['date']}, took {meta['seconds']:.0f} s")


def _commit() -> str:
    """Return the checkout's commit, '+dirty' when tracked files changed (read-only git calls)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "--no-optional-locks", *cmd], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "-uno") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
