"""Compile rows: how long a batch of N items takes to compile, and what each node costs in memory.

The workflow is one batch step of N items plus a fan-in step that waits for all of them
(N + 1 nodes, N edges). Each size compiles in a fresh process, `python -c` that imports plait
and calls `compile_workflow`, so one measurement's memory never inflates the next.

Floors. `python -c "import plait"` is not enough of one: `import plait` is kept light and
compiling imports more (YAML, Jinja, networkx), which at N = 1,000 would pass for a per-node
cost many times the real one. So:
- `compile_workflow, 1 item` (N = 1 in the table) is the whole compile process of a 1-item
  workflow against floor `import`, the whole process of `python -c "import plait"`: the fixed
  cost of compiling at all, in seconds and in peak RSS.
- `compile_workflow, whole process` and `compile_workflow, peak RSS` at N are divided by floor
  `1 item`, that same 1-item process measured again beside each size. It differs from the
  measured process by the N items alone, so beyond floor/item is the compile time per item and
  the bytes per node beyond a baseline interpreter that has imported plait and compiled once.
The library call rather than `plait compile`: the CLI only adds argument parsing and a summary.

Item sources: `range` (`items: {range: N}`, the default), `lines` (a file of N lines), `list`
(N literal items in the YAML, which also measures YAML parsing), `matrix` (two axes, N/100 × 100
values, or N × 1 when N is not a multiple of 100: mapping items with joined keys) or `zip` (two
lists of N numbers made by templates, `{{ range(N) | list }}`; Jinja's sandbox caps a range at
100,000, so zip is measured up to that). The project's aims are 100,000 items in under a second
and under 1.5 KB a node, and a matrix or zip within 1.2× a range of the same size: with the
default source, each N also gets `matrix` and `zip` rows against floor `range`, the range
process measured at that N. The suite reports, it does not assert.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.measure import Sample, best
from benchmarks.table import Row

__all__ = ["FLOORS", "SOURCES", "measure_compile", "measure_compile_floor", "write_workflow"]

FLOORS = {
    "import": 'python -c "import plait" (whole process)',
    "1 item": "the same compile process on a 1-item workflow, measured beside each size",
    "range": "the same compile process with `items: {range: N}` at the same N",
}
SOURCES = ("range", "lines", "list", "matrix", "zip")
ZIP_MAX = 100_000  # Jinja's sandbox refuses a longer range, and the zip's lists are made by one

CHILD = """
import json, sys, time
import plait
start = time.perf_counter()
plan = plait.compile_workflow(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "nodes": len(plan.nodes)}))
"""


def write_workflow(folder: Path, n: int, source: str = "range") -> Path:
    """Write the compile workflow for `n` items into `folder`; return its path."""
    if source == "range":
        items = f"{{range: {n}}}"
    elif source == "lines":
        (folder / "items.txt").write_text("".join(f"item-{i:07d}\n" for i in range(n)), encoding="utf-8")
        items = "{lines: items.txt}"
    elif source == "matrix":
        rows = 100 if n % 100 == 0 else 1
        items = f"{{matrix: {{a: {list(range(n // rows))}, b: {list(range(rows))}}}}}"
    elif source == "zip":
        items = f'{{zip: {{a: "{{{{ range({n}) | list }}}}", b: "{{{{ range({n}) | list }}}}"}}}}'
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


def measure_compile_floor(repeat: int, folder: Path, source: str = "range") -> list[Row]:
    """Return the 1-item compile rows (N = 1) against `import plait`. Raises MeasureError."""
    floor = best([sys.executable, "-c", "import plait"], folder, repeat)
    one = _compile(1, repeat, folder, source)
    what = _what(source)
    return [
        Row("compile", f"{what}, 1 item, whole process", 1, "s", one.seconds, "import", floor.seconds),
        Row("compile", f"{what}, 1 item, peak RSS", 1, "B", one.peak_rss, "import", floor.peak_rss),
    ]


def measure_compile(n: int, repeat: int, folder: Path, source: str = "range") -> list[Row]:
    """Return the compile rows for `n` items against the 1-item floor. Raises MeasureError, RuntimeError."""
    floor = _compile(1, repeat, folder / "one", source)
    done = _compile(n, repeat, folder / "n", source)
    what = _what(source)
    rows = [
        Row("compile", f"{what}, whole process", n, "s", done.seconds, "1 item", floor.seconds),
        Row("compile", f"{what}, peak RSS", n, "B", done.peak_rss, "1 item", floor.peak_rss),
    ]
    if source == "range":
        for shape in ("matrix", "zip"):
            if shape == "zip" and n > ZIP_MAX:
                continue
            shaped = _compile(n, repeat, folder / shape, shape)
            rows.append(Row("compile", f"{_what(shape)} vs range, whole process", n, "s", shaped.seconds, "range",
                            done.seconds))
    return rows


def _compile(n: int, repeat: int, folder: Path, source: str) -> Sample:
    folder.mkdir(exist_ok=True)
    path = write_workflow(folder, n, source)
    done = best([sys.executable, "-c", CHILD, str(path)], folder, repeat)
    nodes = _last_json(done.stdout)["nodes"]
    if nodes != n + 1:
        raise RuntimeError(f"compiling {n:,} items gave {nodes:,} nodes, expected {n + 1:,}")
    return done


def _what(source: str) -> str:
    return "compile_workflow" + ("" if source == "range" else f" ({source})")


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])
