"""What runs, and why: dry runs, chosen re-runs, targets, tracked files and code fingerprints (issue 14).

Through the real command line (its entry point, with real workers) on a real workspace: every
reason a node runs again, as `plait run --dry-run --format json` gives it and as the real run then
does it (what executed is read from an executions log the tasks append to); a dry run leaves the
ledger's bytes as they were; `--rerun` and `--until` choose what runs, alone and with a dry run; an
edited input file, template file or declared output re-runs exactly the nodes that read or wrote it;
a comment-only edit of a function module re-runs nothing, and `code_changes: ignore` keeps finished
nodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from reliability.harness import Runs, gate, open_gate, stop_flag_raised, wait_for
from runtime.support import RECORDER, Flow, plait_process

from plait.runtime.ledger import Ledger

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI


READER = RECORDER + '''
    from pathlib import Path


    def read(item, *, ctx):
        """Read a data file."""
        note(ctx)
        return len(Path(item).read_text(encoding="utf-8"))


    def check(item, *, ctx):
        """Fail while the workspace holds fail-<item>."""
        note(ctx)
        if (ctx.workspace / f"fail-{item}").exists():
            raise ValueError("asked to fail")
        return item
'''

# A module of its own: its edits change the fingerprints of the steps whose function lives in it, only.
WORKER = RECORDER + '''
    def work(item=None, *, ctx):
        """Code whose edits the tests make: a comment, a docstring, or a real change."""
        note(ctx)
        return 1
'''

WORKFLOW = """
name: control
params:
  scale: {default: 1}
steps:
  - name: read
    task: python
    items: {glob: "data/*.txt"}
    inputs: {function: "<rec>:read"}
  - name: checked
    task: python
    items: [k]
    on_error: continue
    inputs: {function: "<rec>:check"}
  - name: total
    task: python
    depends_on: [read]
    inputs:
      code: |
        from <rec> import note
        note(ctx)
        result = params["scale"]
  - name: page
    task: template
    items: [a, b]
    inputs: {template_file: page.j2, output_file: "pages/{{ item }}.txt"}
  - name: stamp
    task: shell
    items: [x, y]
    output_files: "out/{{ item }}.stamp"
    inputs:
      command: "mkdir -p out && echo {{ item }} > out/{{ item }}.stamp && echo stamp[{{ item }}] >> executions.log"
  - name: conf
    task: python
    input_files: settings.ini
    inputs: {function: "<rec>:record"}
  - name: scaled
    task: python
    items: [1, 2]
    inputs: {code: "result = item * params['scale']"}
  - name: coded
    task: python
    items: [p, q]
    inputs: {function: "<work>:work"}
  - name: shaped
    task: python
    items: [{name: m, size: 1}]
    key: "{{ item.name }}"
    inputs: {code: "result = item['size']"}
  - name: said
    task: shell
    inputs: {command: "echo hello"}
"""


def _setup(flow: Flow) -> tuple[str, str]:
    rec, work = flow.module("reader", READER), flow.module("worker", WORKER)
    flow.write(WORKFLOW, rec=rec, work=work)
    (flow.dir / "data").mkdir()
    for name in "abc":
        (flow.dir / "data" / f"{name}.txt").write_text(f"{name}\n", encoding="utf-8")
    (flow.dir / "page.j2").write_text("page {{ item }}\n", encoding="utf-8")
    (flow.dir / "settings.ini").write_text("level = 1\n", encoding="utf-8")
    return rec, work


def _run(flow: Flow, *args: str) -> str:
    """Run the workflow for real (sequential: executions are logged in order); return stderr."""
    done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", *args)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def _dry(flow: Flow, *args: str) -> dict:
    """Return the dry run's JSON."""
    done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "--dry-run", "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _reasons(dry: dict) -> dict[str, tuple[str, str | None]]:
    return {n["id"]: (n["reason"], n["detail"]) for n in dry["would_run"]}


def _executed(flow: Flow, before: int) -> list[str]:
    return flow.executions()[before:]


def _state_files(ws: Path) -> dict[str, str]:
    """Return {name: sha256} of everything in the workspace's .plait folder (the ledger, its WAL, the lock...)."""
    files = sorted(p for p in (ws / ".plait").iterdir() if p.is_file())
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_a_dry_run_gives_each_reason_and_the_run_then_does_exactly_that(flow: Flow) -> None:
    rec, work = _setup(flow)
    flow.ws.mkdir()
    (flow.ws / "fail-k").touch()
    _run(flow)
    assert _dry(flow)["would_run"] == [{"id": "checked[k]", "step": "checked", "reason": "failed",
                                        "detail": "ValueError: asked to fail"}]
    # One change of every kind.
    (flow.ws / "fail-k").unlink()
    (flow.dir / "data" / "a.txt").write_text("a, edited\n", encoding="utf-8")
    (flow.dir / "data" / "d.txt").write_text("d\n", encoding="utf-8")
    (flow.dir / "page.j2").write_text("page {{ item }}, edited\n", encoding="utf-8")
    (flow.ws / "out" / "y.stamp").unlink()
    (flow.dir / "settings.ini").write_text("level = 2\n", encoding="utf-8")
    module = flow.dir / f"{work}.py"
    module.write_text(module.read_text(encoding="utf-8").replace("return 1", "return 2"), encoding="utf-8")
    flow.write(WORKFLOW.replace("size: 1", "size: 2").replace("echo hello", "echo hello again"), rec=rec, work=work)
    ledger = _state_files(flow.ws)

    dry = _dry(flow, "--param", "scale=3")

    assert _state_files(flow.ws) == ledger  # not a byte written, no lock left behind
    reasons = _reasons(dry)
    assert reasons.pop("total")[1].startswith("params: scale; upstream: read[data/")
    assert reasons == {
        "read[data/a.txt]": ("changed", "input file: data/a.txt"),
        "checked[k]": ("failed", "ValueError: asked to fail"),
        "read[data/d.txt]": ("new", None),
        "page[a]": ("changed", "input file: page.j2"),
        "page[b]": ("changed", "input file: page.j2"),
        "stamp[y]": ("output missing", "out/y.stamp"),
        "conf": ("changed", "input file: settings.ini"),
        "scaled[1]": ("changed", "params: scale"),
        "scaled[2]": ("changed", "params: scale"),
        "coded[p]": ("changed", "code"),
        "coded[q]": ("changed", "code"),
        "shaped[m]": ("changed", "item"),
        "said": ("changed", "config"),
    }
    assert (dry["nodes"], dry["done"]) == (17, 3)  # read[data/b.txt], read[data/c.txt] and stamp[x] are done
    text = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-n", "--param", "scale=3")
    assert text.stdout.splitlines()[0] == ("dry run of control: 17 nodes: 3 done, 1 to retry (failed), 11 changed, "
                                           "1 output missing, 1 new; nothing was run or written")
    assert "    output missing (1): stamp[y] (out/y.stamp)" in text.stdout.splitlines()

    before = len(flow.executions())
    stderr = _run(flow, "--param", "scale=3")
    assert "17 nodes: 3 done, 1 to retry (failed), 11 changed, 1 output missing, 1 new" in stderr
    ran = set(_executed(flow, before))
    assert ran == {"read[data/a.txt]", "checked[k]", "read[data/d.txt]", "total", "stamp[y]", "conf",
                   "coded[p]", "coded[q]"}  # the nodes that log their executions, each once
    assert (flow.ws / "pages" / "a.txt").read_text(encoding="utf-8") == "page a, edited\n"
    assert (flow.ws / "out" / "y.stamp").exists()
    assert _dry(flow, "--param", "scale=3")["would_run"] == []
    status = json.loads(flow.cli("status", "--workspace", str(flow.ws), "--format", "json").stdout)
    assert status["nodes"]["stamp[y]"]["reason"] == "output missing: out/y.stamp"
    assert status["nodes"]["read[data/d.txt]"]["reason"] == "new"


SPLITTER = RECORDER + '''
    from pathlib import Path


    def split(item, *, ctx):
        """A file's chunk count: one chunk a line."""
        note(ctx)
        return len(Path(item).read_text(encoding="utf-8").splitlines())


    def chunk(item, *, ctx, path):
        note(ctx)
        return f"{Path(path).name}/{item}"


    def gather(key, *, ctx, parts):
        note(ctx)
        return parts
'''


@pytest.mark.parametrize("edited", ["a.txt", "c.txt"])
def test_a_dry_run_of_a_fan_out_counts_each_done_parents_children_as_done(flow: Flow, edited: str) -> None:
    """A done parent's placeholder expands before anything runs, its children coming back from the ledger as done:
    the dry run names only what runs, and counts as the run does, which then runs exactly those nodes and the
    edited file's children."""
    mod = flow.module("splitter", SPLITTER)
    (flow.dir / "data").mkdir()
    sizes = {"a.txt": 2, "b.txt": 1, "c.txt": 3}
    for name, lines in sizes.items():
        (flow.dir / "data" / name).write_text("x\n" * lines, encoding="utf-8")
    flow.write("""
        name: fanned
        steps:
          - name: split
            task: python
            items: {glob: "data/*.txt"}
            key: "{{ item | basename }}"
            inputs: {function: "<mod>:split"}
          - name: chunk
            task: python
            for_each: split
            items: {range: "{{ parent.result }}"}
            inputs: {function: "<mod>:chunk", kwargs: {path: "{{ parent.item }}"}}
          - name: gather
            task: python
            group_by: {step: chunk, key: "{{ parent.key }}"}
            inputs: {function: "<mod>:gather", kwargs: {parts: "{{ group.results }}"}}
    """, mod=mod)
    _run(flow)
    (flow.dir / "data" / edited).write_text("y\n" * 4, encoding="utf-8")

    dry = _dry(flow)
    assert _reasons(dry) == {f"split[{edited}]": ("changed", f"input file: data/{edited}"),
                             f"chunk[{edited}]": ("changed", f"upstream: split[{edited}]"),
                             f"gather[{edited}]": ("changed", f"upstream: chunk[{edited}]")}
    children = sum(sizes.values()) - sizes[edited]  # of the two files not edited: done, from the ledger
    assert (dry["nodes"], dry["done"]) == (9 + children, 6 + children)
    text = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-n").stdout.splitlines()
    assert text[0] == f"dry run of fanned: {9 + children} nodes: {6 + children} done, 3 changed; nothing was run or " \
                      "written"
    assert not any("done (" in line for line in text)  # done nodes are counted, not listed

    before = len(flow.executions())
    assert f"fanned: {9 + children} nodes: {6 + children} done, 3 changed" in _run(flow)
    assert sorted(_executed(flow, before)) == sorted([f"split[{edited}]", f"gather[{edited}]",
                                                      *(f"chunk[{edited}/{i}]" for i in range(4))])
    assert _dry(flow)["would_run"] == []


DEFERRED = """
    name: deferred
    steps:
      - name: listing
        task: python
        inputs: {function: "<rec>:record", kwargs: {value: [1, 2, 3]}}
      - name: double
        task: python
        items: "{{ steps.listing.result }}"
        inputs: {function: "<rec>:record", kwargs: {value: "{{ item * FACTOR }}"}}
      - name: again
        task: python
        items: "{{ steps.double.results }}"
        inputs: {function: "<rec>:record", kwargs: {value: "{{ item }}"}}
      - name: total
        task: python
        depends_on: [again]
        inputs: {function: "<rec>:record", kwargs: {value: "{{ steps.again.results | sum }}"}}
"""


def test_a_deferred_step_whose_upstream_is_done_has_its_items_decided_before_the_run_says_what_it_will_do(
        flow: Flow) -> None:
    """Its items were decided only once the run was going: the dry run and the run's header said "all done", and
    the run then ran the edited step's items. A deferred step fed by another (`again`) is decided as far as what is
    done reaches."""
    rec = flow.module("recorder", RECORDER)
    flow.write(DEFERRED.replace("FACTOR", "2"), rec=rec)
    _run(flow)
    assert flow.view("result")["total"] == 12
    assert _dry(flow)["would_run"] == []
    text = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-n").stdout.splitlines()
    assert text == ["dry run of deferred: 10 nodes: 10 done; nothing was run or written"]  # the items counted

    flow.write(DEFERRED.replace("FACTOR", "3"), rec=rec)  # double's items change their value: a changed input
    dry = _dry(flow)
    changed = {f"double[{i}]": ("changed", "config") for i in (1, 2, 3)}
    assert _reasons(dry) == {"double": ("changed", "config"), **changed, "again": ("changed", "upstream: double"),
                             "total": ("changed", "upstream: again")}  # again: its items wait for double's
    assert (dry["nodes"], dry["done"]) == (7, 1)
    before = len(flow.executions())
    assert "deferred: 7 nodes: 1 done, 6 changed" in _run(flow)
    assert sorted(_executed(flow, before)) == sorted([*changed, "again[3]", "again[6]", "again[9]", "total"])
    assert flow.view("result")["total"] == 18


def test_a_dry_run_names_the_failed_children_of_a_done_parent_and_the_run_runs_them_alone_or_as_told(
        flow: Flow) -> None:
    flow.write("""
        name: fan
        steps:
          - name: split
            task: python
            items: [a, b]
            inputs: {function: "<rec>:record", kwargs: {value: 3}}
          - name: part
            task: python
            for_each: split
            items: {range: "{{ parent.result }}"}
            on_error: continue
            inputs: {function: "<rec>:check"}
        """, rec=flow.module("reader", READER))
    flow.ws.mkdir()
    (flow.ws / "fail-1").touch()
    _run(flow)
    (flow.ws / "fail-1").unlink()
    failed = ("failed", "ValueError: asked to fail")
    assert _reasons(_dry(flow)) == {"part[a]": ("pending", None), "part[a/1]": failed,
                                    "part[b]": ("pending", None), "part[b/1]": failed}  # the joins wait for them
    before = len(flow.executions())
    assert "fan: 10 nodes: 6 done, 2 to retry (failed), 2 not run yet" in _run(flow)
    assert sorted(_executed(flow, before)) == ["part[a/1]", "part[b/1]"]
    assert _dry(flow)["would_run"] == []

    # --rerun of one parent's placeholder runs what it expands into again, and no other parent's
    forced = ("forced", "--rerun")
    assert _reasons(_dry(flow, "--rerun", "part[a]")) == {f"part[a{n}]": forced for n in ("", "/0", "/1", "/2")}
    before = len(flow.executions())
    assert "fan: 10 nodes: 6 done, 4 forced (--rerun)" in _run(flow, "--rerun", "part[a]")
    assert sorted(_executed(flow, before)) == ["part[a/0]", "part[a/1]", "part[a/2]"]


def test_a_dry_run_counts_what_a_dead_runs_journals_hold_as_the_run_then_does(flow: Flow) -> None:
    rec = flow.module("reader", READER)
    flow.write("""
        name: journaled
        steps:
          - name: checked
            task: python
            items: [a, b, c]
            on_error: continue
            inputs: {function: "<rec>:check"}
        """, rec=rec)
    flow.ws.mkdir()
    for item in "bc":
        (flow.ws / f"fail-{item}").touch()  # they fail: were they run again, they would fail again
    _run(flow)
    fingerprints = {n: row["fingerprint"] for n, row in flow.nodes().items()}
    # A run that died left a journal (plait.runtime.journal) of a node it finished but did not record.
    dead = flow.ws / ".plait" / "trail-20260101T000000-dead"
    dead.mkdir()
    (dead / "journal-4242").write_text(json.dumps(["checked[b]", fingerprints["checked[b]"], 1, '"b"', 1.0, 2.0,
                                                   "w", None]) + "\n", encoding="utf-8")
    before = _state_files(flow.ws)
    assert _reasons(_dry(flow)) == {"checked[c]": ("failed", "ValueError: asked to fail")}
    assert _state_files(flow.ws) == before
    executed = len(flow.executions())
    _run(flow)
    assert _executed(flow, executed) == ["checked[c]"]
    assert flow.view("status", "result")["checked[b]"] == ("succeeded", "b")


def test_edits_that_cannot_change_a_result_rerun_nothing_and_a_code_edit_reruns_its_step(flow: Flow) -> None:
    rec, work = _setup(flow)
    _run(flow)
    module = flow.dir / f"{work}.py"
    source = module.read_text(encoding="utf-8")
    assert "    return 1\n" in source
    module.write_text(source.replace('    return 1', '    # a comment, and layout\n\n    return (1)')
                      .replace('"""Code whose edits', '"""A docstring rewritten: code whose edits'), encoding="utf-8")
    commented = 'code: "# a comment\\nresult = item * params[\'scale\']  # another"'
    flow.write(WORKFLOW.replace('code: "result = item * params[\'scale\']"', commented), rec=rec, work=work)
    assert _dry(flow)["would_run"] == []
    before = len(flow.executions())
    assert "16 nodes: 16 done" in _run(flow)
    assert _executed(flow, before) == []

    module.write_text(module.read_text(encoding="utf-8").replace("return (1)", "return 1 + 1"), encoding="utf-8")
    assert _reasons(_dry(flow)) == {"coded[p]": ("changed", "code"), "coded[q]": ("changed", "code")}
    _run(flow)
    assert _executed(flow, before) == ["coded[p]", "coded[q]"]


def test_code_changes_ignore_keeps_finished_nodes_and_what_follows_them(flow: Flow) -> None:
    rec, work = flow.module("reader", READER), flow.module("worker", WORKER)
    text = """
        name: ignored
        steps:
          - name: coded
            task: python
            items: [p, q]
            code_changes: <mode>
            inputs: {function: "<work>:work"}
          - name: after
            task: python
            depends_on: [coded]
            inputs: {function: "<rec>:record"}
    """
    flow.write(text, rec=rec, work=work, mode="rerun")
    _run(flow)
    module = flow.dir / f"{work}.py"
    module.write_text(module.read_text(encoding="utf-8").replace("return 1", "return 2"), encoding="utf-8")
    assert set(_reasons(_dry(flow))) == {"coded[p]", "coded[q]", "after"}
    flow.write(text, rec=rec, work=work, mode="ignore")  # said after the edit: the finished nodes stay
    assert _dry(flow)["would_run"] == []
    before = len(flow.executions())
    _run(flow)
    assert _executed(flow, before) == []
    flow.write(text.replace("[p, q]", "[p, q, r]"), rec=rec, work=work, mode="ignore")  # a new item runs the new code
    _run(flow)
    assert _executed(flow, before) == ["coded[r]", "after"]
    flow.write(text.replace("[p, q]", "[p, q, r]"), rec=rec, work=work, mode="rerun")  # back: the old code shows
    assert _reasons(_dry(flow)) == {"coded[p]": ("changed", "code"), "coded[q]": ("changed", "code"),
                                    "after": ("changed", "upstream: coded[p]")}


def test_an_edited_glob_file_reruns_its_node_and_the_fan_in_and_nothing_else(flow: Flow) -> None:
    _setup(flow)
    _run(flow)
    (flow.dir / "data" / "c.txt").write_text("c, longer now\n", encoding="utf-8")
    before = len(flow.executions())
    _run(flow)
    assert _executed(flow, before) == ["read[data/c.txt]", "total"]
    result = json.loads(flow.cli("status", "--workspace", str(flow.ws), "--format", "json").stdout)
    assert result["nodes"]["read[data/c.txt]"]["reason"] == "changed: input file: data/c.txt"
    (flow.dir / "data" / "b.txt").unlink()  # a file that goes: its node leaves the plan, the fan-in runs
    _run(flow)
    assert _executed(flow, before)[2:] == ["total"]


def test_the_stat_cache_trusts_size_and_time_but_not_a_time_too_recent_to_tell(flow: Flow) -> None:
    _setup(flow)
    a, c = flow.dir / "data" / "a.txt", flow.dir / "data" / "c.txt"
    past, future = 1_600_000_000 * 10**9, (int(time.time()) + 3600) * 10**9
    os.utime(a, ns=(past, past))  # untouched for years
    os.utime(c, ns=(future, future))  # a time plait cannot trust: as if written in the same tick as it looked
    _run(flow)
    for path, moment in ((a, past), (c, future)):
        path.write_text(path.read_text(encoding="utf-8").upper(), encoding="utf-8")  # same size, new content
        os.utime(path, ns=(moment, moment))  # and the time as it was
    # Size and time as recorded: a.txt is trusted, not read (as git and make do); c.txt is read again.
    assert _reasons(_dry(flow)) == {"read[data/c.txt]": ("changed", "input file: data/c.txt"),
                                    "total": ("changed", "upstream: read[data/c.txt]")}
    os.utime(a)  # its time moves: read again, and it did change
    assert set(_reasons(_dry(flow))) == {"read[data/a.txt]", "read[data/c.txt]", "total"}


def test_rerun_and_until_choose_what_runs_with_and_without_a_dry_run(flow: Flow) -> None:
    _setup(flow)
    _run(flow)
    cases = {
        ("--rerun", "read[data/a.txt]"): {"read[data/a.txt]": ("forced", "--rerun"),
                                          "total": ("forced", "upstream: read[data/a.txt]")},
        ("--rerun", "page"): {"page[a]": ("forced", "--rerun"), "page[b]": ("forced", "--rerun")},
        ("--rerun", "read[*/b.*]", "--rerun", "said"): {"read[data/b.txt]": ("forced", "--rerun"),
                                                      "total": ("forced", "upstream: read[data/b.txt]"),
                                                      "said": ("forced", "--rerun")},
        ("--rerun", "read", "--until", "read"): {f"read[data/{n}.txt]": ("forced", "--rerun") for n in "abc"},
    }
    for args, expected in cases.items():
        assert _reasons(_dry(flow, *args)) == expected, args
    dry = _dry(flow, "--until", "total", "--rerun", "read")
    assert dry["left_out"] == 12  # all but read's four nodes and total
    before = len(flow.executions())
    _run(flow, "--rerun", "read[*/b.*]", "--rerun", "said")
    assert _executed(flow, before) == ["read[data/b.txt]", "total"]  # said logs nothing of its own

    (flow.dir / "data" / "a.txt").write_text("edited\n", encoding="utf-8")
    (flow.dir / "settings.ini").write_text("level = 9\n", encoding="utf-8")
    assert _reasons(_dry(flow, "--until", "read")) == {"read[data/a.txt]": ("changed", "input file: data/a.txt")}
    before = len(flow.executions())
    _run(flow, "--until", "read")
    assert _executed(flow, before) == ["read[data/a.txt]"]  # not total, not conf: left for later
    assert set(_reasons(_dry(flow))) == {"total", "conf"}


@pytest.mark.parametrize(("args", "message"), [
    (("--rerun", "raed"), "did you mean 'read'?"),
    (("--rerun", "read[data/z.txt]"), "read[data/z.txt]"),
    (("--until", "totl"), "did you mean 'total'?"),
    (("--rerun", "nothing[*]"), "nothing[*]"),
])
def test_an_unknown_target_is_a_usage_error_with_a_did_you_mean(flow: Flow, args: tuple[str, ...],
                                                                 message: str) -> None:
    _setup(flow)
    for dry in ((), ("--dry-run",)):
        done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), *dry, *args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    assert not (flow.ws / ".plait" / "ledger.db").exists()


def test_a_node_a_stopped_run_did_not_start_is_interrupted(flow: Flow, runs: Runs) -> None:
    rec = flow.module("reader", READER)
    flow.write(f"""
        name: stopped
        steps:
          - name: work
            task: python
            items: [1, 2]
            inputs:
              code: |
                from <rec> import note
                note(ctx)
                {gate("item == 1").replace(chr(10), chr(10) + " " * 16)}
                result = item
    """, rec=rec)
    proc = runs.start("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q",
                      cwd=flow.dir)
    wait_for(lambda: flow.executions() or proc.poll() is not None, "the first node to start")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: stop_flag_raised(flow.ws) or proc.poll() is not None, "the run to take the signal")
    open_gate(flow.ws)
    assert runs.finish(proc) == 1
    assert _reasons(_dry(flow)) == {"work[2]": ("interrupted", None)}


def test_tracked_files_and_keys_from_names_that_are_not_utf8(flow: Flow) -> None:
    flow.write("""
        name: bytes
        steps:
          - name: size
            task: shell
            items: {glob: "data/*"}
            inputs: {command: "wc -c < {{ item }}"}
    """)
    data = flow.dir / "data"
    data.mkdir()
    name = os.fsdecode(b"caf\xe9.txt")
    (data / name).write_bytes(b"12345")
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws)).returncode == 0
    node = "size[data/caf\\udce9.txt]"
    assert flow.nodes()[node]["result"]["stdout"].strip() == "5"  # the task read the file by its own name
    (data / name).write_bytes(b"1234567")
    assert _reasons(_dry(flow)) == {node: ("changed", "input file: data/caf\\udce9.txt")}


def test_lines_that_name_no_file_leave_no_row_in_the_file_cache_and_a_file_that_appears_reruns_its_node(
        flow: Flow) -> None:
    flow.write("""
        name: named
        steps:
          - name: read
            task: python
            items: {lines: names.txt}
            inputs: {code: "result = item"}
    """)
    (flow.dir / "names.txt").write_text("a.txt\nb.txt\nc.txt\n", encoding="utf-8")
    (flow.dir / "a.txt").write_text("here", encoding="utf-8")

    def cached() -> dict[str, str]:
        with closing(sqlite3.connect(flow.ledger_path)) as db:
            return {os.fsdecode(path): digest for path, digest in db.execute("SELECT path, hash FROM files")}

    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    assert list(cached()) == [str(flow.dir / "a.txt")]  # b.txt and c.txt are no files: nothing to keep of them
    assert _reasons(_dry(flow)) == {}
    (flow.dir / "b.txt").write_text("new", encoding="utf-8")
    (flow.dir / "a.txt").unlink()
    assert _reasons(_dry(flow)) == {"read[a.txt]": ("changed", "input file: a.txt"),
                                    "read[b.txt]": ("changed", "input file: b.txt")}
    assert flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), "-q").returncode == 0
    assert (cached()[str(flow.dir / "a.txt")], sorted(cached())) == (
        "missing", sorted(str(flow.dir / name) for name in ("a.txt", "b.txt")))  # a file that went: kept as gone
    assert _reasons(_dry(flow)) == {}


def test_a_resume_with_nothing_to_decide_does_not_read_the_file_cache(flow: Flow,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    flow.write("""
        name: globbed
        steps:
          - name: read
            task: python
            items: {glob: "data/*.txt"}
            inputs: {code: "result = item"}
    """)
    (flow.dir / "data").mkdir()
    for name in ("a", "b", "c"):
        (flow.dir / "data" / f"{name}.txt").write_text(name, encoding="utf-8")
        os.utime(flow.dir / "data" / f"{name}.txt", (time.time() - 3600,) * 2)  # too old to be racy: trusted by stat
    reads: list[int] = []
    file_hashes = Ledger.file_hashes
    monkeypatch.setattr(Ledger, "file_hashes", lambda self: reads.append(1) or file_hashes(self))
    flow.run()
    assert reads == [1]  # the first run hashes the files, behind the cache
    flow.run()
    assert reads == [1]  # the ledger holds this very plan: nothing to decide, so nothing read of the cache
    (flow.dir / "data" / "b.txt").write_text("edited", encoding="utf-8")
    os.utime(flow.dir / "data" / "b.txt", (time.time() - 1800,) * 2)
    assert flow.run().report.restored == 2  # the edit is seen: the cache is read, and b.txt's node runs again
    assert reads == [1, 1]


SKIPPING = RECORDER + '''
    def seen(item=None, *, ctx):
        """Note the execution; return what this node sees of the step before it."""
        note(ctx)
        return {name: view.get("status", "succeeded") for name, view in ctx.steps.items() if "result" in view}
'''

SKIP_WORKFLOW = """
name: skipping
steps:
  - name: setup
    task: python
    inputs: {function: "<rec>:record", kwargs: {value: [a, b, c]}}
  - name: lone
    task: python
    inputs: {function: "<rec>:record"}
  - name: fetch
    task: python
    items: "{{ steps.setup.result }}"
    inputs: {function: "<rec>:record", kwargs: {value: "{{ item }}"}}
  - name: check
    task: python
    for_each: fetch
    inputs: {function: "<rec>:record"}
  - name: tidy
    task: python
    depends_on: [lone]
    inputs: {function: "<rec>:seen"}
  - name: report
    task: python
    depends_on: [check, tidy]
    inputs: {function: "<rec>:record"}
"""


def test_skip_records_what_it_names_skipped_runs_what_follows_and_keeps_what_is_done(flow: Flow) -> None:
    flow.write(SKIP_WORKFLOW, rec=flow.module("skipping", SKIPPING))
    assert _reasons(_dry(flow, "--skip", "check[b]", "--skip", "lone")) == {
        "setup": ("new", None), "lone": ("skipped", "--skip"), "fetch": ("new", None), "check": ("new", None),
        "tidy": ("new", None), "report": ("new", None)}  # fetch and check: placeholders, their nodes grow later

    _run(flow, "--skip", "lone", "--skip", "check[b]")  # a step with no predecessor, a node grown at run time
    assert sorted(_executed(flow, 0)) == ["check[a]", "check[c]", "fetch[a]", "fetch[b]", "fetch[c]", "report",
                                          "setup", "tidy"]
    assert {n: s for n, s in flow.view("status").items() if s != "succeeded"} == {
        "lone": "skipped", "check[b]": "skipped"}
    assert flow.view("result")["tidy"] == {"lone": "skipped"}  # what follows sees it skipped, as a condition's
    assert flow.view("note")["lone"] == "--skip"

    before = len(flow.executions())
    _run(flow, "--skip", "check[?]", "--skip", "fetch", "--skip", "setup")  # a pattern; what is done stays done
    assert _executed(flow, before) == ["lone"]
    assert {n: s for n, s in flow.view("status").items() if s != "succeeded"} == {"check[b]": "skipped"}

    before = len(flow.executions())
    _run(flow)  # skipped is not done: without --skip it runs
    assert _executed(flow, before) == ["check[b]"]
    assert [n["id"] for n in _dry(flow)["would_run"] if n["reason"] != "done"] == []  # placeholders list again


@pytest.mark.parametrize("target", ["fetch[b]", "fetch[*]", "check[a]"])
def test_rerun_naming_a_node_a_step_adds_as_the_run_goes_is_a_usage_error_naming_the_step(flow: Flow,
                                                                                        target: str) -> None:
    flow.write(SKIP_WORKFLOW, rec=flow.module("skipping", SKIPPING))
    _run(flow)
    step = target.partition("[")[0]
    for dry in ((), ("--dry-run",)):
        done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), *dry, "--rerun", target)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr == (f"plait: error: --rerun {target}: step '{step}' adds its nodes as the run goes (its "
                               "items come from what runs before it), so --rerun cannot name one of them; --rerun "
                               f"{step} runs all of them again\n")
    before = len(flow.executions())
    _run(flow, "--rerun", step)
    assert sorted(_executed(flow, before)) == sorted({"fetch": ["fetch[a]", "fetch[b]", "fetch[c]", "check[a]",
                                                                "check[b]", "check[c]", "report"],
                                                      "check": ["check[a]", "check[b]", "check[c]", "report"]}[step])


def test_skip_naming_nothing_is_a_usage_error(flow: Flow) -> None:
    flow.write(SKIP_WORKFLOW, rec=flow.module("skipping", SKIPPING))
    for dry in ((), ("--dry-run",)):
        done = flow.cli("run", "workflow.yaml", "--workspace", str(flow.ws), *dry, "--skip", "chek")
        assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
        assert "--skip chek: no step or node of this workflow is called that; did you mean 'check'?" in done.stderr


def test_a_tracked_input_that_is_no_regular_file_is_not_read(flow: Flow) -> None:
    os.mkfifo(flow.dir / "feed")  # nobody writes to it: reading it to hash it would block the run
    (flow.dir / "box").mkdir()
    flow.write("""
        name: fed
        steps:
          - name: a
            task: python
            input_files: [feed, box]
            inputs: {code: "result = 1"}
        """)
    for args in (("-q",), ("--dry-run",)):
        done = plait_process("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", *args,
                             cwd=flow.dir, timeout=60)  # a process: a read that blocks ends at the timeout
        assert done.returncode == 0, done.stderr
    assert flow.view("status") == {"a": "succeeded"}
