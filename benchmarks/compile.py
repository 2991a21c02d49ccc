"""Benchmark the compiler: how long a big batch takes to compile, and what each node costs in memory.

The workflow is one batch step of N items plus a fan-in step that waits for all of them
(N + 1 nodes, N edges). Each size compiles in a fresh subprocess, so one measurement's memory
never inflates the next; peak RSS is the child's `ru_maxrss` minus that of a baseline child that
only imports plait, so the figure is what the plan (and compiling it) costs.

    python benchmarks/compile.py                 # N = 1,000, 10,000, 100,000
    python benchmarks/compile.py --million       # and 1,000,000
    python benchmarks/compile.py --source lines --json results.json

Item sources: `range` (`items: {range: N}`), `lines` (a file of N lines) or `list` (N literal
items written into the YAML, which also measures YAML parsing). The aim is 100,000 items in under
a second and under 1.5 KB a node; this script reports, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = (1_000, 10_000, 100_000)
MILLION = 1_000_000


def _write_workflow(folder: Path, n: int, source: str) -> Path:
    """Write the benchmark workflow for `n` items into `folder`; return its path."""
    if source == "range":
        items = f"{{range: {n}}}"
    elif source == "lines":
        (folder / "items.txt").write_text("".join(f"item-{i:07d}\n" for i in range(n)), encoding="utf-8")
        items = "{lines: items.txt}"
    else:
        items = "\n" + "".join(f"      - item-{i:07d}\n" for i in range(n)).rstrip("\n")
    text = (
        "name: bench\n"
        "steps:\n"
        "  - name: work\n"
        "    task: shell\n"
        f"    items: {items}\n"
        '    inputs: {command: "echo {{ item }}"}\n'
        "  - name: collect\n"
        "    task: shell\n"
        "    depends_on: [work]\n"
        "    inputs: {command: echo done}\n"
    )
    path = folder / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _child(n: int, source: str) -> None:
    """Compile once (n > 0) or only import plait (n == 0); print a JSON measurement."""
    import plait

    nodes, edges, seconds = 0, 0, 0.0
    if n:
        with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
            path = _write_workflow(Path(tmp), n, source)
            start = time.perf_counter()
            plan = plait.compile_workflow(path)
            seconds = time.perf_counter() - start
            nodes, edges = len(plan.nodes), plan.graph.number_of_edges()
    max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    if sys.platform == "darwin":
        max_rss_kb //= 1024  # bytes on macOS
    print(json.dumps({"n": n, "nodes": nodes, "edges": edges, "seconds": seconds, "max_rss_kb": max_rss_kb}))


def _measure(n: int, source: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, __file__, "--child", str(n), "--source", source], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child for N={n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(sizes: list[int], source: str) -> list[dict]:
    """Measure every size in its own subprocess; return one row per size."""
    baseline = _measure(0, source)["max_rss_kb"]
    rows = []
    for n in sizes:
        m = _measure(n, source)
        extra_mb = (m["max_rss_kb"] - baseline) / 1024
        rows.append({
            "n": n,
            "source": source,
            "nodes": m["nodes"],
            "edges": m["edges"],
            "seconds": round(m["seconds"], 4),
            "peak_rss_mb": round(extra_mb, 1),
            "bytes_per_node": round(extra_mb * 1024 * 1024 / m["nodes"]) if m["nodes"] else None,
            "baseline_rss_mb": round(baseline / 1024, 1),
        })
    return rows


def table(rows: list[dict]) -> str:
    """Return the rows as a plain-text table."""
    lines = [f"{'N':>10}  {'nodes':>10}  {'seconds':>8}  {'peak RSS MB':>11}  {'bytes/node':>10}"]
    for r in rows:
        lines.append(f"{r['n']:>10,}  {r['nodes']:>10,}  {r['seconds']:>8.3f}  {r['peak_rss_mb']:>11.1f}  "
                     f"{r['bytes_per_node']:>10,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark compiling a batch of N items plus a fan-in step.")
    parser.add_argument("--million", action="store_true", help="also compile 1,000,000 items")
    parser.add_argument("--source", choices=("range", "lines", "list"), default="range",
                        help="where the items come from (default: range)")
    parser.add_argument("--json", metavar="FILE", help="also write the measurements to FILE as JSON")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.source)
        return 0
    sizes = [*SIZES, MILLION] if args.million else list(SIZES)
    rows = run(sizes, args.source)
    print(f"compile: one batch of N items ({args.source}) + one fan-in step; "
          f"Python {sys.version.split()[0]}, baseline RSS (import plait) {rows[0]['baseline_rss_mb']} MB")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
