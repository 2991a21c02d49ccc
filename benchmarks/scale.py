"""Scale and efficiency rows: a million items (`--million`), and real work beside joblib and xargs.

`measure_scale(n)` is the lean set of run rows for a size too large for every row of `run`
(a million tracked files, a report of a million nodes): each measured once or `repeat` times,
in this order, so each reads the workspace the one before it left:
- plait run --jobs 2 [joblib] and its peak RSS [joblib]: as in `run`, on `items: {range: N}`.
- ledger size [sqlite-file]: the ledger after that run, against (node_id, status) rows alone.
- plait compile [none] (the CLI: the plan and its summary), then no-op resume [compile].
- plait status --format json [sqlite] and plait status, text [sqlite]: the whole process.

`measure_efficiency()` is size-independent: what plait makes of work that is not trivial.
- 400 × 10 ms sleep, 2 workers [ideal]: `time.sleep(0.01)` as `code:` on `--jobs 2`, and bare
  `joblib.Parallel(n_jobs=2)` on the same sleeps, each against the ideal of 400 × 10 ms / 2 = 2 s.
- N shell items [xargs]: `task: shell` running `echo ITEM >/dev/null` for 1,000 items on
  `--jobs 2`, against `xargs -P 2` running the same command through `/bin/sh -c` (as plait does).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from benchmarks.measure import best
from benchmarks.run import BARE_JOBLIB, DUMP_LEDGER, WORKFLOW, _bare_ledger, _ledger_bytes, _ledger_path
from benchmarks.table import Row

__all__ = ["FLOORS", "SHELL_ITEMS", "SLEEPS", "measure_efficiency", "measure_scale"]

FLOORS = {
    "ideal": "400 sleeps of 10 ms on 2 workers with no overhead at all: 2 s",
    "xargs": "xargs -P 2 running the same commands through /bin/sh -c (whole process)",
}
SLEEPS, SLEEP_SECONDS = 400, 0.01
SHELL_ITEMS = 1_000

SLEEP_WORKFLOW = f"""
name: sleeps
steps:
  - name: sleep
    task: python
    items: {{range: {SLEEPS}}}
    inputs:
      code: "import time; time.sleep({SLEEP_SECONDS}); result = item"
"""

BARE_SLEEP = f"""
import time
from joblib import Parallel, delayed
def work(item):
    time.sleep({SLEEP_SECONDS})
    return item
assert len(Parallel(n_jobs=2)(delayed(work)(i) for i in range({SLEEPS}))) == {SLEEPS}
"""

SHELL_WORKFLOW = f"""
name: shells
steps:
  - name: echo
    task: shell
    items: {{range: {SHELL_ITEMS}}}
    inputs:
      command: "echo {{{{ item }}}} >/dev/null"
"""

XARGS = f"seq 0 {SHELL_ITEMS - 1} | xargs -P 2 -I ITEM /bin/sh -c 'echo ITEM >/dev/null'"

STATUS_TEXT = "plait status, text"


def measure_scale(n: int, repeat: int, folder: Path) -> list[Row]:
    """Return the lean run rows for `n` items, measured in `folder`."""
    python = sys.executable
    for name, text in (("bare.py", BARE_JOBLIB), ("dump.py", DUMP_LEDGER), ("wf.yaml", WORKFLOW)):
        (folder / name).write_text(text, encoding="utf-8")
    plait = [python, "-m", "plait.cli"]
    ws = folder / "ws"
    run = [*plait, "run", "wf.yaml", "--workspace", "ws", "--jobs", "2", "--quiet", "--param", f"n={n}"]
    joblib = best([python, "bare.py", str(n)], folder, repeat)
    fresh = best(run, folder, repeat, before=lambda: shutil.rmtree(ws, ignore_errors=True))
    ledger = _ledger_path(ws)
    size = _ledger_bytes(ledger)
    compiled = best([*plait, "compile", "wf.yaml", "--param", f"n={n}"], folder, repeat)
    noop = best(run, folder, repeat)
    status = best([*plait, "status", "--workspace", "ws", "--format", "json"], folder, repeat)
    text = best([*plait, "status", "--workspace", "ws"], folder, repeat)
    dump = best([python, "dump.py", str(ledger)], folder, repeat)
    t = joblib.seconds
    return [
        Row("scale", "plait run --jobs 2", n, "s", fresh.seconds, "joblib", t),
        Row("scale", "plait run, peak RSS", n, "B", fresh.peak_rss, "joblib", joblib.peak_rss),
        Row("scale", "ledger size", n, "B", size, "sqlite-file", _bare_ledger(folder, n)),
        Row("scale", "plait compile", n, "s", compiled.seconds),
        Row("scale", "no-op resume", n, "s", noop.seconds, "compile", compiled.seconds),
        Row("scale", "plait status --format json", n, "s", status.seconds, "sqlite", dump.seconds),
        Row("scale", STATUS_TEXT, n, "s", text.seconds, "sqlite", dump.seconds),
    ]


def measure_efficiency(repeat: int, folder: Path) -> list[Row]:
    """Return the sleep and shell rows, measured in `folder`."""
    python = sys.executable
    for name, text in (("sleep.yaml", SLEEP_WORKFLOW), ("bare_sleep.py", BARE_SLEEP), ("shell.yaml", SHELL_WORKFLOW)):
        (folder / name).write_text(text, encoding="utf-8")
    plait = [python, "-m", "plait.cli", "run", "--jobs", "2", "--quiet", "--fresh"]
    ideal = SLEEPS * SLEEP_SECONDS / 2
    sleeps = best([*plait, "sleep.yaml", "--workspace", "wss"], folder, repeat)
    bare = best([python, "bare_sleep.py"], folder, repeat)
    shells = best([*plait, "shell.yaml", "--workspace", "wsh"], folder, repeat)
    xargs = best(["/bin/sh", "-c", XARGS], folder, repeat)
    return [
        Row("efficiency", f"plait, {SLEEPS} × 10 ms sleep, 2 workers", SLEEPS, "s", sleeps.seconds, "ideal", ideal),
        Row("efficiency", f"joblib, {SLEEPS} × 10 ms sleep, 2 workers", SLEEPS, "s", bare.seconds, "ideal", ideal),
        Row("efficiency", f"plait, {SHELL_ITEMS:,} shell items, 2 workers", SHELL_ITEMS, "s", shells.seconds, "xargs",
            xargs.seconds),
    ]
