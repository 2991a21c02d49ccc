"""Run rows: `plait run` on N trivial items against bare joblib doing the same work.

Every time is a whole process (interpreter start, imports, compile, ledger, dispatch, exit),
timed from outside, because that is what a user waits for. The work is `code: "result = item"`
over `items: {range: N}`, run as `plait run --jobs 2 --quiet` on plait's default backend (loky
processes), so what plait adds is its own overhead. `--quiet` turns off the progress display,
which a benchmark's captured stderr would only slow down.

Rows, and the floor each is divided by:
- plain loop [joblib]: the same work as a list comprehension, the least any tool could take.
- plait run --jobs 2 [joblib]: a fresh run in an empty workspace.
- plait run, peak RSS [joblib]: the largest process of that run (see measure.py) against bare
  joblib's largest.
- no-op resume [compile]: `plait run` again when every node succeeded: nothing should run. Its
  floor is `plait compile` of the same workflow, which a resume cannot do without.
- partial resume, 1% failed [compile+work]: a first run fails the items with `item % 100 == 0`
  (the code raises while a marker file is missing; `on_error: continue` lets the others finish);
  then the marker is created and the second run is timed. It should re-run those N/100 items
  only, which is checked from its summary line ("(… already done)"). Its floor is the compile
  plus the failed items' work: bare joblib on N/100 items as a whole process, less the start of
  an empty interpreter (the compile's process has started one already).
- dry run (-n), all done [no-op resume]: `plait run --dry-run` on that workspace: it decides
  every node as the resume does, and writes nothing.
- no-op resume, N tracked files [compile]: a glob over N files (each node tracks its file by
  content, behind the stat cache), run, then run again and timed; its floor is `plait compile` of
  the same glob workflow. What tracking adds is a `stat` per file (the stat row says how long
  N of them take, in a process of their own).
- plait status --format json [sqlite]: on the workspace of the fresh run and its no-op resumes,
  against a script that reads (node_id, status) from that ledger and prints it as JSON: the least
  a status can do. (Dumping every column of every row is no floor: at 100,000 nodes it is slower
  than `plait status`, which prints less per node.)
- ledger size [sqlite-file]: ledger.db (with any -wal and -shm) after the fresh run and no-op
  resumes, against an SQLite file holding only (node_id, status) for the same nodes.
- log written, all succeed: the fresh run's log file. Its floor is zero bytes (nothing to report),
  so it has no ratio; it should not grow with N (the growth line covers times only: read it here).
- log written, 1% failing [failure-lines]: the log files of the failing run and its resume,
  against one line per failed node naming it and its error, the least such a log can say.
- the report rows (benchmarks/report.py), on the workspace of a failing run made again for them.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

from benchmarks.measure import best, run_process
from benchmarks.report import measure_report
from benchmarks.table import Row

__all__ = ["FLOORS", "measure_run"]

FLOORS = {
    "joblib": "bare joblib.Parallel(n_jobs=2) over the same function (whole process)",
    "compile": "`plait compile` of the same workflow (whole process)",
    "compile+work": "that compile, plus bare joblib on the failed items alone, less an empty interpreter's start",
    "no-op resume": "`plait run` again on the same workspace when nothing is left to do (whole process)",
    "sqlite": "a script printing the ledger's {node_id: status} as JSON (whole process)",
    "sqlite-file": "an SQLite file of (node_id, status) for the same nodes",
    "failure-lines": "one line per failed node: 'work[i]: ValueError: <message>'",
}

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

DUMP_LEDGER = """
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(json.dumps(dict(db.execute("SELECT node_id, status FROM nodes")), indent=2))
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

GLOB_WORKFLOW = """
name: tracked
steps:
  - name: work
    task: python
    items: {glob: "files/*.txt"}
    inputs:
      code: "result = 1"
"""

STAT_FILES = """
import os, sys
for name in os.listdir("files"):
    os.stat(os.path.join("files", name))
"""

FAIL_MESSAGE = "item {item} fails until the marker exists"
FAILING_WORKFLOW = """
name: partial
params:
  n: {type: integer, default: 1000}
steps:
  - name: work
    task: python
    items: {range: "{{ params.n }}"}
    on_error: continue
    inputs:
      code: |
        import os
        if item % 100 == 0 and not os.path.exists(os.path.join(workspace, "healed")):
            raise ValueError(f"MESSAGE")
        result = item
""".replace("MESSAGE", FAIL_MESSAGE)


def measure_run(n: int, repeat: int, folder: Path) -> tuple[list[Row], list[str]]:
    """Return the run rows for `n` items, measured in `folder`, and notes on anything unexpected."""
    python = sys.executable
    for name, text in (("bare.py", BARE_JOBLIB), ("loop.py", PLAIN_LOOP), ("dump.py", DUMP_LEDGER),
                       ("wf.yaml", WORKFLOW), ("fail.yaml", FAILING_WORKFLOW), ("glob.yaml", GLOB_WORKFLOW),
                       ("stat.py", STAT_FILES)):
        (folder / name).write_text(text, encoding="utf-8")
    ws, wsf = folder / "ws", folder / "wsf"
    plait = [python, "-m", "plait.cli"]
    options = ["--jobs", "2", "--quiet", "--param", f"n={n}"]
    run = [*plait, "run", "wf.yaml", "--workspace", "ws", *options]
    run_failing = [*plait, "run", "fail.yaml", "--workspace", "wsf", *options]

    def heal_after_failing_run() -> None:
        shutil.rmtree(wsf, ignore_errors=True)
        run_process(run_failing, folder, ok=(1,))
        (wsf / "healed").touch()

    joblib = best([python, "bare.py", str(n)], folder, repeat)
    loop = best([python, "loop.py", str(n)], folder, repeat)
    fresh = best(run, folder, repeat, before=lambda: shutil.rmtree(ws, ignore_errors=True))
    fresh_log = _log_bytes(ws)
    noop = best(run, folder, repeat)
    dry = best([*plait, "run", "wf.yaml", "--workspace", "ws", "--dry-run", "--param", f"n={n}"], folder, repeat)
    ledger = _ledger_path(ws)
    status = best([*plait, "status", "--workspace", "ws", "--format", "json"], folder, repeat)
    dump = best([python, "dump.py", str(ledger)], folder, repeat)
    partial = best(run_failing, folder, repeat, before=heal_after_failing_run)
    failed = range(0, n, 100)
    compiled = best([*plait, "compile", "wf.yaml", "--param", f"n={n}"], folder, repeat)
    failed_work = best([python, "bare.py", str(len(failed))], folder, repeat)
    interpreter = best([python, "-c", "pass"], folder, repeat)
    _write_files(folder / "files", n)
    tracked = [*plait, "run", "glob.yaml", "--workspace", "wsg", "--jobs", "2", "--quiet"]
    run_process(tracked, folder)
    run_process(tracked, folder)  # the second run keeps the plan's basis (plait.runtime.ledger)
    tracked_noop = best(tracked, folder, repeat)
    glob_compiled = best([*plait, "compile", "glob.yaml"], folder, repeat)
    stats = best([python, "stat.py"], folder, repeat)
    failure_lines = sum(len(f"work[{i}]: ValueError: {FAIL_MESSAGE.format(item=i)}\n") for i in failed)
    t = joblib.seconds
    rows = [
        Row("run", "plain loop", n, "s", loop.seconds, "joblib", t),
        Row("run", "plait run --jobs 2", n, "s", fresh.seconds, "joblib", t),
        Row("run", "plait run, peak RSS", n, "B", fresh.peak_rss, "joblib", joblib.peak_rss),
        Row("run", "no-op resume", n, "s", noop.seconds, "compile", compiled.seconds),
        Row("run", "dry run (-n), all done", n, "s", dry.seconds, "no-op resume", noop.seconds),
        Row("run", "no-op resume, N tracked files", n, "s", tracked_noop.seconds, "compile", glob_compiled.seconds),
        Row("run", "stat N files (a process of its own)", n, "s", stats.seconds),
        Row("run", "partial resume, 1% failed", n, "s", partial.seconds, "compile+work",
            compiled.seconds + failed_work.seconds - interpreter.seconds),
        Row("run", "plait status --format json", n, "s", status.seconds, "sqlite", dump.seconds),
        Row("run", "ledger size", n, "B", _ledger_bytes(ledger), "sqlite-file", _bare_ledger(folder, n)),
        Row("run", "log written, all succeed", n, "B", fresh_log),
        Row("run", "log written, 1% failing", n, "B", _log_bytes(wsf), "failure-lines", failure_lines),
    ]
    shutil.rmtree(folder / "files", ignore_errors=True)
    shutil.rmtree(wsf, ignore_errors=True)
    run_process(run_failing, folder, ok=(1,))  # the report rows read a run with its 1% of failures
    report_rows, report_notes = measure_report(n, repeat, folder, "wsf")
    return rows + report_rows, _check_partial(partial.stderr, n, len(failed)) + report_notes


def _write_files(folder: Path, n: int) -> None:
    """Write `n` small files, each holding its number, and make them old enough for plait to trust their times."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    old = 1_600_000_000 * 10**9
    for i in range(n):
        path = folder / f"{i}.txt"
        path.write_text(str(i), encoding="utf-8")
        os.utime(path, ns=(old, old))


def _ledger_path(ws: Path) -> Path:
    """Return the ledger of a workspace."""
    return ws / ".plait" / "ledger.db"


def _check_partial(stderr: str, n: int, failed: int) -> list[str]:
    found = re.search(r"\(([\d,]+) already done\)", stderr)
    if not found:
        return [f"N={n:,}: partial resume: no '(… already done)' in plait's summary; could not check what re-ran"]
    done = int(found.group(1).replace(",", ""))
    if done != n - failed:
        return [f"N={n:,}: partial resume restored {done:,} nodes, expected {n - failed:,} (re-running {failed:,})"]
    return []


def _ledger_bytes(ledger: Path) -> int:
    return sum(p.stat().st_size for p in ledger.parent.glob(ledger.name + "*") if p.is_file())


def _log_bytes(ws: Path) -> int:
    return sum(p.stat().st_size for p in (ws / ".plait" / "logs").glob("*.log"))


def _bare_ledger(folder: Path, n: int) -> int:
    """Write the least ledger for `n` nodes, (node_id, status) rows; return its size in bytes."""
    path = folder / "bare-ledger.db"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE nodes (node_id TEXT PRIMARY KEY, status TEXT NOT NULL)")
        db.executemany("INSERT INTO nodes VALUES (?, 'succeeded')", ((f"work[{i}]",) for i in range(n)))
        db.commit()
    finally:
        db.close()
    return path.stat().st_size
