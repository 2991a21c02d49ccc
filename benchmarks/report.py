"""Report rows: `plait report` on the workspace of the run rows' failing run (N items, 1% failed).

Rows, and the floor each is divided by:
- plait report, HTML [status]: the whole `plait report -o report.html` process, against `plait
  status --format json` of the same workspace (both read the whole ledger; the report also sums
  durations, lays out the steps and bins the timeline). Its target: 3 s at 100,000 nodes.
- report size, HTML: the page's bytes; no floor. Its target: 5 MB at 100,000 nodes.
- plait report --format json [status]: the same data with a trace row per attempt, to stdout.
- report ready in Chromium: from the start of navigation to the end of the page's load event, as
  the page's own `performance` entries tell it, opened from disk in headless Chromium by
  tests/browser.py (the browser's start is not counted: that is the browser, not the page). Its
  target: 2 s at 100,000 nodes. Without Chromium the row is left out, with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.measure import REPO, best, run_process
from benchmarks.table import Row

__all__ = ["FLOORS", "measure_report"]

FLOORS = {"status": "`plait status --format json` of the same workspace (whole process)"}
BROWSER = REPO / "tests" / "browser.py"
NO_BROWSER = 3  # tests/browser.py's exit code when no Chromium is installed


def measure_report(n: int, repeat: int, folder: Path, workspace: str) -> tuple[list[Row], list[str]]:
    """Return the report rows for the workspace `folder/workspace` of a run of `n` items, and notes."""
    python = sys.executable
    plait = [python, "-m", "plait.cli"]
    page = folder / "report.html"
    html = best([*plait, "report", "--workspace", workspace, "-o", str(page)], folder, repeat)
    as_json = best([*plait, "report", "--workspace", workspace, "--format", "json"], folder, repeat)
    status = best([*plait, "status", "--workspace", workspace, "--format", "json"], folder, repeat)
    rows = [Row("report", "plait report, HTML", n, "s", html.seconds, "status", status.seconds),
            Row("report", "report size, HTML", n, "B", page.stat().st_size),
            Row("report", "plait report --format json", n, "s", as_json.seconds, "status", status.seconds)]
    loads = []
    for _ in range(max(1, repeat)):
        opened = run_process([python, str(BROWSER), str(page)], folder, ok=(0, NO_BROWSER), timeout=300)
        if opened.returncode == NO_BROWSER:
            return rows, [f"N={n:,}: no Chromium, so the report was not opened in a browser (apt-get install chromium)"]
        found = json.loads(opened.stdout)
        if found["problems"]:
            return rows, [f"N={n:,}: the report had problems in Chromium: {found['problems']}"]
        loads.append(found["timings"]["load"] / 1000)
    rows.append(Row("report", "report ready in Chromium", n, "s", min(loads)))
    return rows, []
