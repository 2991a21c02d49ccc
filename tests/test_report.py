"""The run report: `plait report` (HTML and JSON), `plait run --report`, read from real runs' ledgers.

Workflows run through the real command line; the report is read back as JSON (compared as whole values),
parsed as HTML (it must be one file that fetches nothing), and opened from disk in headless
Chromium (no console error, no request but the page, the steps and their counts in the DOM, a
screenshot that is not blank). Chromium is Debian's `chromium` package, which .ci/run installs; the
browser tests say so and skip where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import Chromium, chromium_path
from reliability.harness import wait_for
from runtime.support import PLAIT, plait

from plait.report import collect
from plait.report.data import TraceRow
from plait.report.timeline import BINS, EACH_MAX, MAX_ROWS, timeline_html

WORKFLOW = """\
name: reported
description: a batch with a flaky item and a broken one, and the steps that follow them
steps:
  - name: fetch
    task: python
    items: [a, b, c, d]
    retry: {max_attempts: 2, delay: 0}
    on_error: continue
    inputs:
      code: |
        import os
        tried = os.path.join(workspace, "tried-" + item)
        if item == "b" and not os.path.exists(tried):
            open(tried, "w").close()
            raise OSError("the network blinked")
        if item == "d" and not os.path.exists(os.path.join(workspace, "healed")):
            print("about to fail on", item)
            raise ValueError("d is broken")
        result = item
  - name: parse
    task: python
    for_each: fetch
    inputs:
      code: "result = item.upper()"
  - name: summary
    task: python
    depends_on: [parse]
    inputs:
      code: "result = 1"
"""

COUNTED = ("nodes", "succeeded", "failed", "skipped", "pending", "retried")
STEPS_AFTER_FAILURE = {
    "fetch": {"nodes": 4, "succeeded": 3, "failed": 1, "skipped": 0, "pending": 0, "retried": 1},
    "parse": {"nodes": 4, "succeeded": 3, "failed": 0, "skipped": 1, "pending": 0, "retried": 0},
    "summary": {"nodes": 1, "succeeded": 0, "failed": 0, "skipped": 1, "pending": 0, "retried": 0},
}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder with the workflow (wf.yaml) and the workspace (ws) of its first run, which failed."""
    folder = tmp_path_factory.mktemp("reported")
    (folder / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "threading", "--quiet", cwd=folder)
    assert done.returncode == 1, done.stderr
    return folder


@pytest.fixture
def copy(failed_run: Path, tmp_path: Path) -> Path:
    """Return a copy of the failed run's folder, for a test that changes it."""
    shutil.copytree(failed_run, tmp_path / "run")
    return tmp_path / "run"


def report_json(folder: Path, *args: str) -> dict[str, Any]:
    done = plait("report", "--workspace", "ws", "--format", "json", *args, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def step_counts(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {s["name"]: {c: s[c] for c in COUNTED} for s in report["steps"]}


def test_json_report_of_a_run_with_a_retry_a_failure_and_skips(failed_run: Path) -> None:
    report = report_json(failed_run)
    run_id = report["run"]["run_id"]
    assert (report["workflow"], report["run"]["status"], report["run"]["live"]) == ("reported", "failed", False)
    assert report["counts"] == {"succeeded": 6, "failed": 1, "skipped": 2, "running": 0, "pending": 0}
    assert step_counts(report) == STEPS_AFTER_FAILURE
    assert report["edges"] == [["fetch", "parse", "for_each"], ["parse", "summary", "depends"]]
    trace = {(r["id"], r["status"], r["attempt"], r["run"]) for r in report["trace"]}
    assert trace == {("fetch[a]", "succeeded", 1, run_id), ("fetch[b]", "failed", 1, run_id),
                     ("fetch[b]", "succeeded", 2, run_id), ("fetch[c]", "succeeded", 1, run_id),
                     ("fetch[d]", "failed", 1, run_id), ("parse[a]", "succeeded", 1, run_id),
                     ("parse[b]", "succeeded", 1, run_id), ("parse[c]", "succeeded", 1, run_id),
                     ("parse[d]", "skipped", 0, run_id), ("summary", "skipped", 0, run_id)}
    workers = {r["id"]: r["worker"] for r in report["trace"] if r["status"] != "skipped"}
    assert all(re.fullmatch(r"\d+/Thread-\d+ \(worker\)", w) for w in workers.values()), workers  # joblib's threads
    assert {r["reason"] for r in report["trace"] if r["status"] != "skipped"} == {"new"}
    reasons = {r["id"]: r["reason"] for r in report["trace"] if r["status"] == "skipped"}
    assert reasons == {"parse[d]": "upstream fetch[d] failed", "summary": "upstream parse[d] was skipped"}
    for row in report["trace"]:
        if row["status"] != "skipped":
            assert report["run"]["started"] <= row["start"] <= row["end"] <= report["run"]["ended"]
    [failure] = report["failures"]
    assert {k: failure[k] for k in ("id", "step", "error_type", "error", "attempts", "run")} == {
        "id": "fetch[d]", "step": "fetch", "error_type": "ValueError", "error": "d is broken", "attempts": 1,
        "run": run_id}
    assert [(h["run_id"], h["status"], h["counts"]) for h in report["history"]] == [
        (run_id, "failed", {"succeeded": 6, "failed": 1, "skipped": 2})]
    fetch = next(s for s in report["steps"] if s["name"] == "fetch")
    durations = fetch["duration"]
    assert durations["p50"] <= durations["p95"] <= durations["max"] <= durations["total"]
    assert durations["mean"] == pytest.approx(durations["total"] / 4)
    assert [s["seconds"] for s in fetch["slowest"]] == sorted((s["seconds"] for s in fetch["slowest"]), reverse=True)
    assert len(fetch["slowest"]) == 4


class _Page(HTMLParser):
    """Collect what a self-contained page must not have, and the steps and text it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.steps: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action") and value and not value.startswith("#"):
                self.links.append(value)
            if name == "data-step" and tag == "tr":
                self.steps.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_one_file_that_fetches_nothing(failed_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = plait("report", "--workspace", "ws", "-o", str(out), cwd=failed_run)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"report: {out}\n"
    text = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert page.links == []
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not re.search(r"url\((?!#)", text) and "@import" not in text  # url(#arrow) is the page's own marker
    assert page.steps == ["fetch", "parse", "summary"]
    shown = " ".join(page.text)
    for expected in ("ValueError: d is broken", "fetch[d]", "fetch[b]", "Failed nodes (1)", "Runs in this workspace",
                     "Timeline"):
        assert expected in shown
    assert "about to fail on d" in shown  # what the failed node printed


def test_default_report_goes_beside_the_ledger_and_json_to_stdout(copy: Path) -> None:
    done = plait("report", "--workspace", "ws", cwd=copy)
    assert (done.returncode, done.stderr) == (0, "report: ws/.plait/report.html\n")
    assert (copy / "ws" / ".plait" / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert report_json(copy, "-o", "-")["workflow"] == "reported"
    done = plait("report", "--workspace", "ws", "--format", "json", "-o", "out/r.json", cwd=copy)
    assert done.returncode == 0
    assert json.loads((copy / "out" / "r.json").read_text(encoding="utf-8"))["workflow"] == "reported"


def test_report_errors_name_the_problem(copy: Path) -> None:
    done = plait("report", "--workspace", "nowhere", cwd=copy)
    assert done.returncode == 2
    assert done.stderr == ("plait: error: no plait run found in workspace 'nowhere' (no nowhere/.plait/ledger.db); "
                           "run `plait run WF.yaml --workspace DIR` first, or pass the right --workspace\n")
    (copy / "a-file").write_text("", encoding="utf-8")
    done = plait("report", "--workspace", "ws", "-o", "a-file/report.html", cwd=copy)
    assert done.returncode == 2
    assert done.stderr.startswith("plait: error: cannot write the report to 'a-file/report.html': ")
    assert "Traceback" not in done.stderr


def test_history_shows_each_run_and_the_timeline_the_last_that_ran(copy: Path) -> None:
    first = report_json(copy)["run"]["run_id"]
    (copy / "ws" / "healed").touch()
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "threading", "--quiet", cwd=copy)
    assert done.returncode == 0, done.stderr
    report = report_json(copy)
    second = report["run"]["run_id"]
    assert [(h["run_id"], h["status"], h["counts"], h["counts_from"]) for h in report["history"]] == [
        (first, "failed", {"succeeded": 6, "failed": 1, "skipped": 2}, "run"),
        (second, "succeeded", {"succeeded": 9, "restored": 6}, "run")]
    assert step_counts(report)["fetch"] == {"nodes": 4, "succeeded": 4, "failed": 0, "skipped": 0, "pending": 0,
                                            "retried": 1}
    assert report["failures"] == []
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "threading", "--quiet", cwd=copy)
    assert done.returncode == 0  # a no-op resume: it ran nothing, so the timeline shows the run before
    html = (copy / "page.html")
    assert plait("report", "--workspace", "ws", "-o", str(html), cwd=copy).returncode == 0
    assert f"Run {second}: 3 attempts" in html.read_text(encoding="utf-8")


def test_run_with_report_writes_it_when_the_run_ends_and_keeps_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet", "--report",
                 cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.endswith("report: ws/.plait/report.html\n")
    run_id = json.loads(plait("report", "-w", "ws", "--format", "json", cwd=tmp_path).stdout)["run"]["run_id"]
    assert f"run {run_id}" in (tmp_path / "ws" / ".plait" / "report.html").read_text(encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet", "--report", "r.html",
                 cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (1, "report: r.html")
    assert "fetch[d]" in (tmp_path / "r.html").read_text(encoding="utf-8")
    (tmp_path / "healed").write_text("", encoding="utf-8")  # a file where the report's folder would go
    (tmp_path / "ws" / "healed").touch()
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet", "--report",
                 "healed/r.html", cwd=tmp_path)
    assert done.returncode == 0  # the run succeeded; its report could not be written
    assert done.stderr.splitlines()[-1].startswith("plait: warning: the run's report was not written: ")


GATED = """\
name: gated
steps:
  - name: first
    task: python
    items: [1, 2, 3]
    inputs:
      code: "result = item"
  - name: gate
    task: python
    depends_on: [first]
    inputs:
      code: |
        import os, time
        open(os.path.join(workspace, "waiting"), "w").close()
        while not os.path.exists(os.path.join(workspace, "open")):
            time.sleep(0.01)
        result = 1
"""




def start_gated(folder: Path) -> subprocess.Popen[str]:
    """Start a run of GATED in `folder` (a process group of its own); return once its gate node is waiting."""
    (folder / "wf.yaml").write_text(GATED, encoding="utf-8")
    run = subprocess.Popen([*PLAIT, "run", "wf.yaml", "--workspace", "ws", "--backend", "threading", "--quiet"],
                           cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        wait_for(lambda: (folder / "ws" / "waiting").exists(), "gate node started")
    except BaseException:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate(timeout=60)
        raise
    return run


def test_report_while_a_run_is_going(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = start_gated(tmp_path)
    try:

        # Outcomes are written in batches: read (through the API, cheaply) until the first step's are in.
        wait_for(lambda: collect(ws).counts["succeeded"] == 3, "record of the first step")
        report = report_json(tmp_path)
        assert (report["run"]["status"], report["run"]["live"], report["run"]["process_gone"]) == (
            "running", True, False)
        assert report["counts"] == {"succeeded": 3, "failed": 0, "skipped": 0, "running": 0, "pending": 1}
        assert step_counts(report)["gate"]["pending"] == 1
        page = tmp_path / "live.html"
        assert plait("report", "--workspace", "ws", "-o", str(page), cwd=tmp_path).returncode == 0
        assert "This run was still going when the report was written: 3 nodes recorded so far." in page.read_text(
            encoding="utf-8")
    finally:
        (ws / "open").touch()
        _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    report = report_json(tmp_path)
    assert (report["run"]["status"], report["run"]["live"], report["counts"]["succeeded"]) == ("succeeded", False, 4)


def test_report_of_a_run_killed_while_going_says_its_process_is_gone(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = start_gated(tmp_path)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    with closing(sqlite3.connect(ws / ".plait" / "ledger.db")) as db, db:
        db.execute("UPDATE runs SET pid = ?", (os.getpid(),))  # its process id, since taken by a live process
    report = report_json(tmp_path)
    assert (report["run"]["status"], report["run"]["live"], report["run"]["process_gone"]) == ("running", True, True)
    page = tmp_path / "dead.html"
    assert plait("report", "--workspace", "ws", "-o", str(page), cwd=tmp_path).returncode == 0
    assert "No process holds its workspace now: the run (process " in page.read_text(encoding="utf-8")


def test_report_reads_what_the_runtime_records(copy: Path) -> None:
    """Workers, reasons, output, tracebacks, earlier attempts, a run's counts and its step graph: each in the report."""
    (copy / "wf.yaml").unlink()  # the step graph comes from runs.step_graph
    report = report_json(copy)
    assert report["edges"] == [["fetch", "parse", "for_each"], ["parse", "summary", "depends"]]
    assert report["notes"] == []
    assert report["ledger"] == {"attempts": True, "worker": True, "reason": True, "output": True, "traceback": True,
                                "run_counts": True}
    fetch_b = [(r["attempt"], r["status"], r["reason"]) for r in report["trace"] if r["id"] == "fetch[b]"]
    assert fetch_b == [(1, "failed", "new"), (2, "succeeded", "new")]
    assert len({r["worker"] for r in report["trace"] if r["id"] == "fetch[b]"} - {"?"}) >= 1
    assert [r["attempt"] for r in report["trace"]].count(0) == 2  # skipped nodes, which made no attempt
    assert len(report["trace"]) == 10
    [failure] = report["failures"]
    assert (failure["output"], failure["reason"]) == ({"stdout": "about to fail on d\n", "stdout_chars": 19}, "new")
    assert failure["traceback"].startswith("Traceback (most recent call last):\n  File \"<step fetch>\", line ")
    assert failure["traceback"].endswith("ValueError: d is broken\n")
    assert failure["worker"] != "?"
    assert [(h["counts"], h["counts_from"]) for h in report["history"]] == [
        ({"succeeded": 6, "failed": 1, "skipped": 2}, "run")]


def test_timeline_bins_many_attempts_and_sums_busy_time_exactly() -> None:
    """A worker busy the whole run and one busy a fifth of it: its every bin full, the other's a fifth full."""
    n = 10_000
    rows = [TraceRow(f"w[{i}]", "w", "failed" if i == 5_000 else "succeeded", 1, i * 0.001, (i + 1) * 0.001,
                     "host:1", None, "r") for i in range(n)]
    rows += [TraceRow(f"v[{i}]", "v", "succeeded", 1, i * 0.002, i * 0.002 + 0.0004, "host:2", None, "r")
             for i in range(n // 2)]
    assert len(rows) > EACH_MAX
    svg = timeline_html(rows, ["w", "v"], "r")
    cells = [part for part in svg.split("<rect ") if "fill-opacity" in part]
    assert len(cells) == 2 * BINS
    full = [c for c in cells if "worker host:1," in c]
    fifth = [c for c in cells if "worker host:2," in c]
    assert {c.split('fill-opacity="')[1][:4] for c in full} == {"1.00"}
    assert {c.split('fill-opacity="')[1][:4] for c in fifth} == {f"{0.15 + 0.85 * 0.2:.2f}"}
    assert svg.count('fill="#e03131"/>') == 1  # the one failure's mark
    assert "10,000 started" not in svg and "50 started" in svg


def test_timeline_draws_each_attempt_of_a_small_run_and_packs_slots_without_workers() -> None:
    rows = [TraceRow("a", "s", "succeeded", 1, 0.0, 1.0, "?", None, "r"),
            TraceRow("b", "s", "succeeded", 1, 0.5, 1.5, "?", None, "r"),
            TraceRow("c", "s", "failed", 2, 1.0, 2.0, "?", None, "r"),
            TraceRow("old", "s", "succeeded", 1, -5.0, -4.0, "?", None, "earlier run")]
    svg = timeline_html(rows, ["s"], "r")
    assert "3 attempts over 2.00 s on 2 slots, each a bar." in svg
    assert [t.split("</title>")[0] for t in svg.split("<title>")[1:] if ": " in t and "attempt" in t] == [
        "a: succeeded in 1.00 s, attempt 1", "b: succeeded in 1.00 s, attempt 1", "c: failed in 1.00 s, attempt 2"]
    assert timeline_html(rows, ["s"], "no such run").startswith('<p class="note">No node ran in this run')


needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's `chromium` "
                                    "package (.ci/run does) to open the report in a real browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(width=1280, height=900) as chromium:
        yield chromium


STEP_CELLS = """[...document.querySelectorAll('table.steps tbody tr')].map(tr =>
    [tr.dataset.step, ...[...tr.querySelectorAll('td.num')].slice(0, 6).map(td => td.textContent)])"""


@needs_chromium
def test_report_in_chromium(failed_run: Path, browser: Chromium, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert plait("report", "--workspace", "ws", "-o", str(out), cwd=failed_run).returncode == 0
    page = browser.page()
    page.open(out.as_uri())
    assert page.problems() == []
    assert page.requests() == [out.as_uri()]
    assert page.evaluate(STEP_CELLS) == [[name, *(str(c[k]) for k in COUNTED)]
                                         for name, c in STEPS_AFTER_FAILURE.items()]
    boxes = page.evaluate("[...document.querySelectorAll('svg.steps g.step')].map(g => [g.dataset.step, "
                          "g.dataset.state, g.querySelector('.counts').textContent])")
    assert boxes == [["fetch", "failed", "3 done · 1 failed"], ["parse", "succeeded", "3 done · 1 skipped"],
                     ["summary", "skipped", "1 skipped"]]
    assert page.evaluate("[...document.querySelectorAll('header .chip')].map(c => c.textContent)") == [
        "6 succeeded", "1 failed", "2 skipped"]
    assert page.evaluate("document.querySelector('details.failure').open") is True
    picture = page.picture(page.screenshot())
    assert (picture["width"], picture["height"]) == (1280, 900)
    assert picture["colours"] > 100 and picture["unlike"] > 0.3, picture


BIG = """\
name: big
params:
  n: {type: integer, default: 100000}
steps:
  - name: work
    task: python
    items: {range: "{{ params.n }}"}
    on_error: continue
    inputs:
      code: |
        if item % 100 == 0:
            raise ValueError(f"item {item} is bad")
        result = item
  - name: tally
    task: python
    depends_on: [work]
    inputs:
      code: "result = 1"
"""


@pytest.mark.soak  # 100,000 nodes run, reported and opened in a browser
@pytest.mark.slow
def test_report_of_100000_nodes_is_small_and_opens(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(BIG, encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--quiet", "--report", "big.html", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    page_file = tmp_path / "big.html"
    size = page_file.stat().st_size
    assert size <= 5_000_000, size
    text = page_file.read_text(encoding="utf-8")
    assert text.count("<rect ") < 3 * 32 * BINS  # bounded whatever the node count
    assert "100,000 attempts over" in text and "in 200 bins of" in text
    report = report_json(tmp_path)
    assert len(report["trace"]) == 100_001 and len(report["failures"]) == 1_000
    assert step_counts(report)["work"] == {"nodes": 100_000, "succeeded": 99_000, "failed": 1_000, "skipped": 0,
                                           "pending": 0, "retried": 0}
    if chromium_path() is None:
        pytest.skip("no Chromium: the 100,000-node page was checked as a file, not in a browser")
    with Chromium() as chromium:
        page = chromium.page()
        page.open(page_file.as_uri())
        assert page.problems() == []
        assert page.evaluate(STEP_CELLS) == [["work", "100,000", "99,000", "1,000", "0", "0", "0"],
                                             ["tally", "1", "0", "0", "1", "0", "0"]]
        picture = page.picture(page.screenshot())
        assert picture["colours"] > 100 and picture["unlike"] > 0.3, picture


def test_report_of_a_ledger_with_no_run_yet(tmp_path: Path) -> None:
    """A ledger that records no run (its first run was killed as it began): the report says so."""
    from plait.runtime import Ledger

    ledger = Ledger(tmp_path / "ws" / ".plait" / "ledger.db")
    ledger.claim("gated")
    ledger.close()
    report = report_json(tmp_path)
    assert (report["run"], report["steps"], report["trace"], report["history"]) == (None, [], [], [])
    done = plait("report", "--workspace", "ws", "-o", "empty.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "No run recorded yet." in (tmp_path / "empty.html").read_text(encoding="utf-8")


def test_step_graph_from_a_workflow_file_that_changed_or_went(copy: Path) -> None:
    wf = copy / "wf.yaml"
    with closing(sqlite3.connect(copy / "ws" / ".plait" / "ledger.db")) as db, db:
        # the copy's file, not the module's shared folder; and no step graph, as an older ledger has none
        db.execute("UPDATE runs SET source = ?, step_graph = NULL", (str(wf),))
    wf.write_text(WORKFLOW + "  - name: extra\n    task: noop\n    depends_on: [summary]\n", encoding="utf-8")
    report = collect(copy / "ws")
    assert report.edges == [("fetch", "parse", "for_each"), ("parse", "summary", "depends"),
                            ("summary", "extra", "depends")]
    assert [s["name"] for s in report.steps] == ["fetch", "parse", "summary", "extra"]
    assert report.notes == [f"the workflow file {wf} changed since the run: the steps' dependencies are drawn as the "
                            "file has them now"]
    wf.unlink()
    report = collect(copy / "ws")
    assert (report.edges, [s["name"] for s in report.steps]) == ([], ["fetch", "parse", "summary"])
    assert report.notes == [f"the steps are shown without their dependencies: the workflow file {wf} does not compile "
                            f"now (cannot read workflow file '{wf}': No such file or directory)"]


def test_timeline_of_many_workers_shares_rows() -> None:
    """100 workers draw as 25 rows of 4 (at most MAX_ROWS rows), each named by its first worker, in number order."""
    rows = [TraceRow(f"s[{w}-{i}]", "s", "succeeded", 1, float(i), i + 0.5, f"host:{w}", None, "r")
            for w in range(100) for i in range(30)]
    svg = timeline_html(rows, ["s"], "r")
    assert "3,000 attempts over 29.50 s on 100 workers, 4 to a row, in 200 bins" in svg
    labels = re.findall(r'class="lane">([^<]*)<title>([^<]*)</title>', svg)
    assert len(labels) == 25 <= MAX_ROWS
    assert labels[:2] == [("worker host:0 +3", "worker host:0, worker host:1, worker host:2, worker host:3"),
                          ("worker host:4 +3", "worker host:4, worker host:5, worker host:6, worker host:7")]
