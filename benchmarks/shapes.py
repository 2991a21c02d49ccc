"""Shape rows: what a per-group fan-in and a per-parent fan-out cost a run, node for node.

Each is a whole `plait run --jobs 2 --quiet` in an empty workspace, on trivial work, against a
plain batch of as many task nodes (`items: {range: M}`), so the ratio is the cost per node of
the shape's wiring, expansion and views. The aim is within 1.1× the plain batch.
- group_by: N items (`range`) and N/100 groups (`key: item // 100`), each reading its members'
  results (`group.results`): N + N/100 task nodes.
- per-parent fan-out: N/100 parents, each giving 100 children from its result
  (`items: {range: "{{ parent.result }}"}`), and a group per parent gathering them
  (`group_by: {key: "{{ parent.key }}"}`): N + 2·N/100 task nodes.
- max_parallel: the plain batch of N with `max_parallel: 2` (as many as `--jobs`): its nodes travel
  in two lanes, one chunk each, rather than in chunks sized as they go (`plait.runtime.waves`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from benchmarks.measure import best
from benchmarks.table import Row

__all__ = ["FLOORS", "measure_shapes"]

FLOORS = {"plain batch": "`plait run` of a plain batch (`items: {range: M}`) of as many task nodes (whole process)"}

PLAIN = """
name: plain
params:
  m: {type: integer, default: 1000}
steps:
  - name: work
    task: python
    items: {range: "{{ params.m }}"}
    inputs: {code: "result = item"}
"""

GROUPED = """
name: grouped
params:
  n: {type: integer, default: 1000}
steps:
  - name: work
    task: python
    items: {range: "{{ params.n }}"}
    inputs: {code: "result = item"}
  - name: merge
    task: python
    group_by: {step: work, key: "{{ item // 100 }}"}
    inputs: {code: "result = len(group['results'])"}
"""

LIMITED = PLAIN.replace("name: plain", "name: limited").replace("    inputs:", "    max_parallel: 2\n    inputs:")

FANNED = """
name: fanned
params:
  parents: {type: integer, default: 10}
steps:
  - name: split
    task: python
    items: {range: "{{ params.parents }}"}
    inputs: {code: "result = 100"}
  - name: process
    task: python
    for_each: split
    items: {range: "{{ parent.result }}"}
    inputs: {code: "result = item"}
  - name: gather
    task: python
    group_by: {step: process, key: "{{ parent.key }}"}
    inputs: {code: "result = len(group['results'])"}
"""


def measure_shapes(n: int, repeat: int, folder: Path) -> list[Row]:
    """Return the group_by, fan-out and max_parallel rows for `n` items (a multiple of 100), against plain batches."""
    python = sys.executable
    for name, text in (("plain.yaml", PLAIN), ("grouped.yaml", GROUPED), ("fanned.yaml", FANNED),
                       ("limited.yaml", LIMITED)):
        (folder / name).write_text(text, encoding="utf-8")
    groups = n // 100

    def run(workflow: str, param: str) -> float:
        ws = folder / f"ws-{workflow}"
        command = [python, "-m", "plait.cli", "run", workflow, "--workspace", str(ws), "--jobs", "2", "--quiet",
                   "--param", param]
        return best(command, folder, repeat, before=lambda: shutil.rmtree(ws, ignore_errors=True)).seconds

    grouped = run("grouped.yaml", f"n={n}")
    grouped_floor = run("plain.yaml", f"m={n + groups}")
    fanned = run("fanned.yaml", f"parents={groups}")
    fanned_floor = run("plain.yaml", f"m={n + 2 * groups}")
    limited = run("limited.yaml", f"m={n}")
    limited_floor = run("plain.yaml", f"m={n}")
    return [
        Row("run", "plait run, group_by (N/100 groups)", n, "s", grouped, "plain batch", grouped_floor),
        Row("run", "plait run, per-parent fan-out (N/100 parents)", n, "s", fanned, "plain batch", fanned_floor),
        Row("run", "plait run, max_parallel: 2", n, "s", limited, "plain batch", limited_floor),
    ]
