"""Resume: what a second run skips and what it runs again, after a clean end, an edit, or a SIGKILL.

Every task here appends its node ID to `<workspace>/executions.log` each time it runs, so a test
counts executions instead of trusting the ledger's own account of them.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from reliability.harness import wait_for
from runtime.support import PLAIT, RECORDER, Flow, ledger_query, ledger_rows, plait, remove_shared_memory_of, untraced

from plait.compiler import compile_text
from plait.runtime import node_logs, run_workflow, workflow_status
from plait.runtime.ledger import Ledger

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


def recorder(flow: Flow) -> str:
    return flow.module("recorder", RECORDER)


CHAIN = """
    name: chain
    steps:
      - name: a
        task: python
        items: [0, 1, 2]
        on_error: continue
        inputs: {function: "<mod>:work"}
      - name: b
        task: python
        for_each: a
        inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.a.result }}"}}
      - name: c
        task: python
        depends_on: [b]
        inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.b.results }}"}}
      - name: x
        task: python
        inputs: {function: "<rec>:record", kwargs: {value: "{{ params.suffix }}"}}
    params:
      suffix: {type: string, default: "!"}
"""

WORK = '''
def work(item, ctx):
    note(ctx)
    if (ctx.workspace / f"fail-{item}").exists():
        raise OSError(f"item {item} is told to fail")
    return item * 10
'''


def chain(flow: Flow, text: str = CHAIN) -> None:
    rec = recorder(flow)
    flow.write(text, mod=flow.module("work", f"from {rec} import note\n" + WORK), rec=rec)


def test_a_second_run_skips_every_succeeded_node(flow: Flow) -> None:
    chain(flow)
    first = flow.run()
    assert (first.ok, len(flow.executions())) == (True, 8)
    rows = flow.nodes()
    second = flow.run(backend="loky")
    assert (second.ok, second.report.restored, second.report.plan_summary, second.report.counts) == (
        True, 8, {"done": 8}, {"succeeded": 8})
    assert len(flow.executions()) == 8
    assert flow.nodes() == rows  # not a single row rewritten


LOADS_JOBLIB = """
import sys
from plait.cli import main
code = main(["run", "workflow.yaml", "--workspace", sys.argv[1], "-q", *sys.argv[2:]])
print(code, "joblib" in sys.modules)
"""


def test_a_resume_with_nothing_to_do_does_not_load_joblib_and_one_with_work_does_unless_sequential(
        flow: Flow) -> None:
    chain(flow)
    flow.ws.mkdir()
    (flow.ws / "fail-1").touch()

    def resume(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", LOADS_JOBLIB, str(flow.ws), *args], cwd=flow.dir,
                              capture_output=True, text=True, timeout=120)
        return done.stdout.strip()

    assert resume() == "1 True"  # a fresh workspace: workers start
    assert resume("--until", "x") == "0 False"  # a[1] failed, but x, all this run is to run, is done
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 1  # a[1] runs again
    (flow.ws / "fail-1").unlink()
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    assert resume() == "0 False"  # everything succeeded: no worker, no joblib
    assert sorted(flow.executions()) == ["a[0]", "a[1]", "a[1]", "a[1]", "a[2]", "b[0]", "b[1]", "b[2]", "c", "x"]
    assert resume("--until", "b") == "0 False"
    # Work on the sequential backend runs in this process as joblib's Parallel of one job would, without joblib.
    assert resume("--rerun", "c", "--backend", "sequential") == "0 False"
    assert flow.executions()[-1] == "c"


def basis(flow: Flow) -> list[tuple[str]]:
    return ledger_query(flow.ledger_path, "SELECT value FROM meta WHERE name = 'basis'")


def test_a_resume_of_a_plan_the_ledger_holds_writes_the_same_fingerprints_as_a_full_one(flow: Flow) -> None:
    chain(flow)
    flow.ws.mkdir()
    (flow.ws / "fail-1").touch()
    assert flow.run().ok is False
    kept = basis(flow)
    assert len(kept) == 1  # nothing changed: the ledger holds the plan, failures and all
    (flow.ws / "fail-1").unlink()
    assert flow.run().ok  # reads only what did not succeed, fingerprints a[1], b[1] and c from the ledger's
    assert basis(flow) == kept
    fingerprints = flow.view("fingerprint")
    with closing(sqlite3.connect(flow.ledger_path)) as db, db:
        db.execute("DELETE FROM meta WHERE name = 'basis'")
    done = len(flow.executions())
    third = flow.run()  # fingerprints every node again, and finds every one as recorded
    assert (third.report.plan_summary, len(flow.executions()) - done) == ({"done": 8}, 0)
    assert (flow.view("fingerprint"), basis(flow)) == (fingerprints, kept)


def test_a_resume_with_every_node_done_reports_and_records_what_a_resume_deciding_every_node_does(flow: Flow) -> None:
    chain(flow)
    assert flow.run().ok
    kept = basis(flow)

    def resume() -> tuple[object, ...]:
        done = len(flow.executions())
        shown = io.StringIO()
        result = flow.run(progress=shown)
        report = result.report
        [(counts,)] = ledger_query(flow.ledger_path, "SELECT counts FROM runs ORDER BY started DESC LIMIT 1")
        progress = re.sub(r"\(.*\)", "", shown.getvalue().splitlines()[-1])  # the last line, without its time
        return (report.status, dict(report.counts), report.restored, report.plan_summary, report.failed,
                json.loads(counts), progress, len(flow.executions()) - done, basis(flow))

    held = resume()  # the ledger holds the plan, every node done: nothing is decided node by node
    with closing(sqlite3.connect(flow.ledger_path)) as db, db:
        db.execute("DELETE FROM meta WHERE name = 'basis'")
    decided = resume()  # every node fingerprinted and decided again
    assert held == decided == ("succeeded", {"succeeded": 8}, 8, {"done": 8}, [], {"succeeded": 8, "restored": 8},
                               held[6], 0, kept)
    assert held[6].startswith("progress: a 3/3 done; b 3/3 done")


STALE = """
    name: stale
    params:
      v: {type: string, default: one}
    steps:
      - name: first
        task: python
        inputs: {function: "<mod>:first", kwargs: {value: "{{ params.v }}"}}
      - name: later
        task: python
        depends_on: [first]
        inputs: {function: "<rec>:record", kwargs: {value: "{{ params.v }}"}}
"""

FIRST = '''
def first(item=None, *, ctx, value=None):
    note(ctx)
    if (ctx.workspace / "fail").exists():
        raise OSError("told to fail")
    return value
'''


def test_a_run_that_finds_a_changed_node_gives_up_the_basis_so_a_node_it_never_reached_runs_later(flow: Flow) -> None:
    rec = recorder(flow)
    flow.write(STALE, mod=flow.module("first", f"from {rec} import note\n" + FIRST), rec=rec)
    assert (flow.run().ok, flow.view("result")) == (True, {"first": "one", "later": "one"})
    assert len(basis(flow)) == 1
    (flow.ws / "fail").touch()
    changed = flow.run(params={"v": "two"})  # both nodes changed; `first` fails, so `later` is never reached
    assert (changed.ok, changed.report.plan_summary, flow.view("status", "result")) == (
        False, {"changed": 2}, {"first": ("failed", None), "later": ("succeeded", "one")})
    assert basis(flow) == []  # `later` still holds the result of the old plan
    (flow.ws / "fail").unlink()
    assert flow.run(params={"v": "two"}).ok
    assert flow.view("result") == {"first": "two", "later": "two"}
    assert flow.executions() == ["first", "later", "first", "first", "later"]


def test_only_the_failed_items_of_a_batch_run_again(flow: Flow) -> None:
    chain(flow, CHAIN.replace("items: [0, 1, 2]", "items: [0, 1, 2, 3, 4]"))
    flow.ws.mkdir()
    (flow.ws / "fail-1").touch()
    (flow.ws / "fail-3").touch()
    first = flow.run()
    assert (first.ok, flow.view("status")["a[1]"], flow.view("status")["c"]) == (False, "failed", "skipped")
    done = len(flow.executions())
    (flow.ws / "fail-1").unlink()
    (flow.ws / "fail-3").unlink()
    second = flow.run()
    assert second.ok
    # b[1] and b[3] were skipped the first time: their partners had failed.
    assert sorted(flow.executions()[done:]) == ["a[1]", "a[3]", "b[1]", "b[3]", "c"]
    assert flow.view("status", "attempts", "result") == {  # a failed node starts a fresh attempt count
        **{f"a[{i}]": ("succeeded", 1, i * 10) for i in range(5)},
        **{f"b[{i}]": ("succeeded", 1, i * 10) for i in range(5)},
        "c": ("succeeded", 1, [0, 10, 20, 30, 40]), "x": ("succeeded", 1, "!")}


def test_editing_one_step_reruns_that_step_and_its_dependents_only(flow: Flow) -> None:
    chain(flow)
    flow.run()
    done = len(flow.executions())
    flow.path.write_text(flow.path.read_text().replace('value: "{{ steps.a.result }}"',
                                                       'value: "{{ steps.a.result + 1 }}"'))
    second = flow.run()
    assert (second.ok, second.report.plan_summary) == (True, {"done": 4, "changed": 4})
    assert sorted(flow.executions()[done:]) == ["b[0]", "b[1]", "b[2]", "c"]
    assert flow.view("result")["c"] == [1, 11, 21]


def test_changing_a_param_reruns_what_reads_it_only(flow: Flow) -> None:
    chain(flow)
    flow.run()
    done = len(flow.executions())
    assert flow.run(params={"suffix": "?"}).ok
    assert (flow.executions()[done:], flow.view("result")["x"]) == (["x"], "?")


def test_changing_retry_or_timeout_reruns_nothing(flow: Flow) -> None:
    chain(flow)
    flow.run()
    done = len(flow.executions())
    flow.path.write_text(flow.path.read_text().replace("on_error: continue",
                                                       "on_error: continue\n    timeout: 30\n    retry: "
                                                       "{max_attempts: 4}"))
    second = flow.run()
    assert (second.report.plan_summary, flow.executions()[done:]) == ({"done": 8}, [])


EDITED = '''
def work(item, ctx):
    note(ctx)
    return item * 10 + VERSION


VERSION = 1
'''


def test_editing_a_function_module_reruns_its_nodes_with_the_new_code(flow: Flow) -> None:
    """Through the command line: each run is a new process, as a user runs plait."""
    chain(flow)
    module = flow.dir / f"work_{flow.tag}.py"
    module.write_text(module.read_text().split("def work")[0] + EDITED)
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    done = len(flow.executions())
    module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 100"))
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q")
    assert cli.returncode == 0, cli.stderr
    assert sorted(flow.executions()[done:]) == ["a[0]", "a[1]", "a[2]", "b[0]", "b[1]", "b[2]", "c"]
    assert flow.view("result")["c"] == [100, 110, 120]


def test_editing_a_function_module_between_api_runs_runs_the_new_code(flow: Flow) -> None:
    chain(flow)
    module = flow.dir / f"work_{flow.tag}.py"
    module.write_text(module.read_text().split("def work")[0] + EDITED)
    flow.run()
    module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 100"))
    assert flow.run().report.plan_summary == {"done": 1, "changed": 7}
    assert flow.view("result")["c"] == [100, 110, 120]


@pytest.mark.parametrize("backend", ["sequential", "threading", "loky"])
def test_workflows_whose_folders_hold_modules_of_one_name_each_run_their_own_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"helpers_{uuid.uuid4().hex[:8]}"  # one name in both folders; no other test's
    for folder in ("a", "b"):
        (tmp_path / folder / "pkg").mkdir(parents=True)
        (tmp_path / folder / f"{name}.py").write_text(f"def which(item=None):\n    return {folder!r}\n")
        (tmp_path / folder / "pkg" / "__init__.py").write_text("")
        (tmp_path / folder / "pkg" / "part.py").write_text(f"WHICH = {folder!r}\n")
        (tmp_path / folder / "wf.yaml").write_text(textwrap.dedent(f"""
            name: from-{folder}
            steps:
              - name: called
                task: python
                inputs: {{function: "{name}:which"}}
              - name: imported
                task: python
                inputs: {{code: "from pkg.part import WHICH\\nresult = WHICH"}}
            """))
    try:
        for folder in ("a", "b", "a"):
            result = run_workflow(tmp_path / folder / "wf.yaml", workspace=tmp_path / f"ws-{folder}", backend=backend,
                                  jobs=2, fresh=True)
            assert result.ok
            assert ledger_rows(tmp_path / f"ws-{folder}" / ".plait" / "ledger.db")["called"]["result"] == folder
            assert ledger_rows(tmp_path / f"ws-{folder}" / ".plait" / "ledger.db")["imported"]["result"] == folder
    finally:
        for module in (name, "pkg", "pkg.part"):
            sys.modules.pop(module, None)


def test_a_plan_compiled_from_text_runs_from_the_folder_it_was_compiled_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"beside_{uuid.uuid4().hex[:8]}"
    (tmp_path / "flow").mkdir()
    (tmp_path / "flow" / f"{name}.py").write_text("def answer(item=None):\n    return 42\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not the folder the module is in
    text = f"name: texted\nsteps:\n  - name: ask\n    task: python\n    inputs: {{function: {name}:answer}}\n"
    plan = compile_text(text, "<text>", tmp_path / "flow")
    try:
        result = run_workflow(plan, workspace=tmp_path / "ws", backend="sequential")
    finally:
        sys.modules.pop(name, None)
    assert result.ok, untraced(result.report.failed)
    assert ledger_rows(tmp_path / "ws" / ".plait" / "ledger.db")["ask"]["result"] == 42


def test_a_file_added_to_a_glob_adds_one_node_and_reruns_only_it_and_the_fan_in(flow: Flow) -> None:
    rec = recorder(flow)
    (flow.dir / "in").mkdir()
    for name in ("a", "b"):
        (flow.dir / "in" / f"{name}.txt").write_text(name)
    flow.module("reader", f"from {rec} import note\n" + '''
from pathlib import Path


def read(item, ctx):
    note(ctx)
    return Path(item).read_text()
''')
    flow.write("""
        name: globbed
        steps:
          - name: read
            task: python
            items: {glob: "in/*.txt"}
            inputs: {function: "<mod>:read"}
          - name: each
            task: python
            for_each: read
            inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.read.result | upper }}"}}
          - name: total
            task: python
            depends_on: [read]
            inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.read.results | join(',') }}"}}
    """, mod=f"reader_{flow.tag}", rec=rec)
    flow.run()
    done = len(flow.executions())
    (flow.dir / "in" / "c.txt").write_text("c")
    second = flow.run()
    assert (second.ok, second.report.plan_summary) == (True, {"done": 4, "new": 2, "changed": 1})
    assert sorted(flow.executions()[done:]) == ["each[in/c.txt]", "read[in/c.txt]", "total"]
    assert flow.view("result")["total"] == "a,b,c"


def test_fresh_reruns_everything(flow: Flow) -> None:
    chain(flow)
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential",
                    "-q").returncode == 0
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "--fresh", "-q")
    assert cli.returncode == 0, cli.stderr
    assert Counter(flow.executions()) == {n: 2 for n in ("a[0]", "a[1]", "a[2]", "b[0]", "b[1]", "b[2]", "c", "x")}
    assert len(ledger_query(flow.ledger_path, "SELECT run_id FROM runs")) == 1


def test_plait_resume_reruns_the_last_runs_workflow_with_its_params(flow: Flow) -> None:
    chain(flow)
    flow.ws.mkdir()
    (flow.ws / "fail-2").touch()
    first = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-p", "suffix=?", "-q")
    assert first.returncode == 1, first.stderr
    done = len(flow.executions())
    (flow.ws / "fail-2").unlink()
    resumed = plait("resume", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.root)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(flow.executions()[done:]) == ["a[2]", "b[2]", "c"]
    assert ledger_query(flow.ledger_path, "SELECT source, params, status FROM runs ORDER BY started") == [
        (str(flow.path), '{"suffix": "?"}', "failed"), (str(flow.path), '{"suffix": "?"}', "succeeded")]
    assert flow.view("result")["x"] == "?"


def test_plait_resume_without_a_run_says_there_is_nothing_to_resume(flow: Flow) -> None:
    cli = flow.cli("resume", "--workspace", "empty")
    assert (cli.returncode, "damaged" in cli.stderr, "no run" in cli.stderr or "no plait run" in cli.stderr) == (
        2, False, True)


def test_the_summary_before_a_run_counts_done_failed_changed_and_new(flow: Flow) -> None:
    chain(flow)
    flow.ws.mkdir()
    (flow.ws / "fail-1").touch()
    flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
    (flow.ws / "fail-1").unlink()
    flow.path.write_text(flow.path.read_text().replace("items: [0, 1, 2]", "items: [0, 1, 2, 3]")
                         .replace('default: "!"', 'default: "!!"'))
    cli = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-v")
    assert cli.returncode == 0, cli.stderr
    # done: a[0] a[2] b[0] b[2]; failed: a[1]; changed: x; new: a[3] b[3]; not run yet: b[1] (pending), c (skipped)
    found = re.findall(r"run \S+ of chain: (.*)", cli.stderr)
    assert found == ["10 nodes: 4 done, 1 to retry (failed), 1 changed, 2 new, 2 not run yet"]


def test_the_plan_summary_is_in_the_report(flow: Flow) -> None:
    chain(flow)
    assert flow.run().report.plan_summary == {"new": 8}
    assert flow.run().report.plan_summary == {"done": 8}


def test_the_plan_summary_of_a_finished_run_with_a_deferred_step_says_nothing_changed(flow: Flow) -> None:
    flow.write("""
        name: deferred
        steps:
          - name: list
            task: python
            inputs: {code: "result = [1, 2]"}
          - name: each
            task: python
            items: "{{ steps.list.result }}"
            inputs: {code: "result = item"}
    """)
    flow.run()
    second = flow.run()
    # list, each, and each's two items, decided before the run began (`Scheduler.look_ahead`)
    assert (second.report.plan_summary, second.report.counts) == ({"done": 4}, {"succeeded": 4})
    assert basis(flow) == []  # a plan that grows as it runs is never held whole: every resume reads it all


WAITER = '''
import time


def wait(ctx):
    """Say it started, then wait (at most 30 s) until the test creates `go`."""
    (ctx.workspace / "started").write_text("yes")
    deadline = time.monotonic() + 30
    while not (ctx.workspace / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "waited"
'''




def test_a_second_run_on_a_busy_workspace_is_refused_naming_the_first_runs_pid(flow: Flow) -> None:
    flow.write("""
        name: busy
        steps:
          - name: wait
            task: python
            inputs: {function: "<mod>:wait"}
    """, mod=flow.module("waiter", WAITER))
    first = subprocess.Popen([*PLAIT, "run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "threading",
                              "-q"], cwd=flow.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (flow.ws / "started").exists() or first.poll() is not None, "the first run to start")
        second = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q")
        assert (second.returncode, second.stderr) == (
            2, f"plait: error: workspace '{flow.ws}' is in use by another plait run (pid {first.pid}); wait for it "
               "to finish, or use another --workspace\n")
        status = flow.cli("status", "--workspace", str(flow.ws), "--format", "json")  # reads while the run writes
        assert (status.returncode, json.loads(status.stdout)["run"]["status"],
                json.loads(status.stdout)["nodes"]["wait"]["status"]) == (0, "running", "pending")
    finally:
        (flow.ws / "go").touch()
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0  # the lock is free


def test_sigterm_stops_gently_and_the_next_run_resumes(flow: Flow) -> None:
    rec = recorder(flow)
    flow.write("""
        name: stopped
        steps:
          - name: wait
            task: python
            inputs: {function: "<mod>:wait"}
          - name: later
            task: python
            depends_on: [wait]
            inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.wait.result }}"}}
    """, mod=flow.module("waiter", WAITER), rec=rec)
    command = [*PLAIT, "run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "threading", "-q"]
    first = subprocess.Popen(command, cwd=flow.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (flow.ws / "started").exists() or first.poll() is not None, "the first run to start")
        first.send_signal(signal.SIGTERM)
        wait_for(lambda: any(flow.ws.joinpath(".plait").glob("stop-*")) or first.poll() is not None,
                 "the run to ask its workers to stop")
    finally:
        (flow.ws / "go").touch()
        _, err = first.communicate(timeout=60)
    assert first.returncode == 1, err
    assert (flow.view("status"), ledger_query(flow.ledger_path, "SELECT status FROM runs")) == (
        {"wait": "succeeded", "later": "pending"}, [("interrupted",)])  # the running node finished and counts
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    assert (flow.view("result"), flow.executions()) == ({"wait": "waited", "later": "waited"}, ["later"])


def test_an_unknown_backend_is_refused_before_anything_is_recorded(flow: Flow) -> None:
    chain(flow)
    with pytest.raises(ValueError, match="backend 'dask-typo' is not one of"):
        flow.run(backend="dask-typo")
    running = ledger_query(flow.ledger_path, "SELECT run_id FROM runs WHERE status = 'running'") \
        if flow.ledger_path.exists() else []
    assert running == []


def test_plait_resume_keeps_a_null_param_null(flow: Flow) -> None:
    flow.write("""
        name: optional
        params:
          label: {type: string, required: false}
        steps:
          - name: show
            task: python
            inputs: {code: "result = params['label']"}
    """)
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    resumed = flow.cli("resume", "--workspace", str(flow.ws), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert (flow.view("result"), ledger_query(flow.ledger_path, "SELECT params FROM runs")) == (
        {"show": None}, [('{"label": null}',), ('{"label": null}',)])


KILLED = '''
import time


def work(item, ctx):
    with open(ctx.workspace / "executions.log", "a") as log:
        log.write(ctx.node_id + "\\n")
    deadline = time.monotonic() + 60  # the later items wait until the test lets them go (60 s at most)
    while item >= 150 and not (ctx.workspace / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return item
'''


def succeeded(ledger: Path, polling: bool = False) -> set[str]:
    """Return the nodes a ledger has as succeeded (while polling a run that is starting: none yet, if unreadable)."""
    try:
        with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)) as db:
            return {row[0] for row in db.execute("SELECT node_id FROM nodes WHERE status = 'succeeded'")}
    except sqlite3.OperationalError:
        if polling:  # the file exists but its tables are not committed yet
            return set()
        raise


@pytest.mark.slow  # two runs of 300 items on loky, in subprocesses: 3-6 s
def test_a_run_killed_part_way_resumes_without_running_any_recorded_node_again(flow: Flow) -> None:
    flow.write("""
        name: killme
        steps:
          - name: work
            task: python
            items: {range: 300}
            inputs: {function: "<mod>:work"}
    """, mod=flow.module("killed", KILLED))
    command = [*PLAIT, "run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "loky", "--jobs", "2", "-q"]
    first = subprocess.Popen(command, cwd=flow.dir, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: first.poll() is not None or (
            len(flow.executions()) >= 50 and flow.ledger_path.exists() and succeeded(flow.ledger_path, polling=True)),
            "50 executions and a first committed outcome")
        assert first.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the run and its loky workers
        first.wait(timeout=30)
        remove_shared_memory_of(first.pid)
    recorded = succeeded(flow.ledger_path)
    ran_before = Counter(flow.executions())
    assert (first.returncode, 0 < len(recorded) < 300, sum(ran_before.values()) < 300) == (-signal.SIGKILL, True, True)
    (flow.ws / "go").touch()

    # The resume's backend is no matter: sequential spares two workers' boot.
    resume = [*command[:command.index("--backend")], "--backend", "sequential", "-q"]
    second = subprocess.run(resume, cwd=flow.dir, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    rows = ledger_rows(flow.ledger_path)
    assert {n: r["status"] for n, r in rows.items()} == {f"work[{i}]": "succeeded" for i in range(300)}
    executions = Counter(flow.executions())
    assert set(executions) == {f"work[{i}]" for i in range(300)}
    assert {n: executions[n] for n in recorded} == {n: 1 for n in recorded}  # none ran again
    assert {n: r["result"] for n, r in rows.items()} == {f"work[{i}]": i for i in range(300)}
    assert ledger_query(flow.ledger_path, "PRAGMA integrity_check") == [("ok",)]


WRITES = """
CREATE TABLE writes (node_id TEXT, what TEXT);
CREATE TRIGGER inserted AFTER INSERT ON settled BEGIN INSERT INTO writes VALUES (new.node_id, 'insert'); END;
CREATE TRIGGER updated AFTER UPDATE ON settled BEGIN INSERT INTO writes VALUES (new.node_id, 'update'); END;
"""


def test_a_node_gets_its_row_once_when_it_settles_and_the_plan_answers_for_the_others(flow: Flow) -> None:
    rec = recorder(flow)
    flow.write(STALE, mod=flow.module("first", f"from {rec} import note\n" + FIRST), rec=rec)
    flow.ws.mkdir()
    (flow.ws / "fail").touch()
    Ledger(flow.ledger_path).close()  # the ledger's tables, then SQLite's own account of every row written
    with closing(sqlite3.connect(flow.ledger_path)) as db, db:
        db.executescript(WRITES)

    assert flow.run().ok is False  # `first` fails and stops the run: `later` is never reached
    assert ledger_query(flow.ledger_path, "SELECT node_id, what FROM writes") == [("first", "insert")]
    assert ledger_query(flow.ledger_path, "SELECT node_id FROM nodes") == [("first",)]
    status = workflow_status(flow.ws)  # what every reader makes of `later`: pending, never ran
    assert (status["nodes"]["later"], status["steps"]["later"]["stats"]) == (
        {"status": "pending", "attempts": 0, "error": None, "reason": None},
        {"total": 1, "processed": 0, "failed": 0, "retried": 0, "skipped": 0, "pending": 1})
    assert [(e["id"], e["status"], e["attempts"]) for e in node_logs(flow.ws, "later")] == [("later", "pending", [])]
    dry = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--dry-run", "--format", "json")
    assert [(n["id"], n["reason"]) for n in json.loads(dry.stdout)["would_run"]] == [
        ("first", "failed"), ("later", "pending")]  # not "new": the plan it was in is kept

    (flow.ws / "fail").unlink()
    assert flow.run().ok
    assert ledger_query(flow.ledger_path, "SELECT node_id, what FROM writes ORDER BY rowid") == [
        ("first", "insert"), ("first", "update"), ("later", "insert")]
    assert ledger_query(flow.ledger_path, "SELECT node_id, status, reason FROM nodes ORDER BY seq") == [
        ("first", "succeeded", "failed: OSError: told to fail"), ("later", "succeeded", "pending")]
    assert len(basis(flow)) == 1  # every node has its row now: the ledger holds the plan whole
