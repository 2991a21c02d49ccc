"""Full and read-only disks, for real: a small tmpfs that a task fills part-way, and a read-only bind mount.

A disk that fills during a run must stop it cleanly: exit 2 with one message naming the full disk,
no traceback, none of loguru's "Logging error" reports, no worker dying of a bus error in its
crash trail; everything committed is kept and, once space is freed, the next run resumes and runs
nothing recorded again. A ledger on a read-only disk must still be readable by `plait status`, and
no message may call a ledger "damaged" when the disk is the trouble.

Mounting needs root (CI and this machine run as root); without it these tests skip, saying so.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.support import Flow, plait

from reliability.harness import integrity, rows, run, succeeded

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

ITEMS = 3000


def executions(folder: Path) -> Counter[str]:
    """Return how many times each node ran (the workflow logs them off the small disk)."""
    log = folder / "executions.log"
    return Counter(log.read_text(encoding="utf-8").split()) if log.exists() else Counter()


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


FILLING = f"""
name: filling
steps:
  - name: work
    task: python
    items: {{range: {ITEMS}}}
    inputs:
      code: |
        from pathlib import Path
        with open(Path(params["flags"]) / "executions.log", "a", encoding="utf-8") as log:  # off the small disk
            log.write(ctx.node_id + "\\n")
        flag = Path(params["flags"]) / "filled"
        if item == 2000 and not flag.exists():  # once: fill what is left of the disk
            flag.touch()
            with open(ctx.workspace / "ballast", "wb", buffering=0) as ballast:
                try:
                    while True:
                        ballast.write(b"x" * 65536)
                except OSError:
                    pass
        result = item
params:
  flags: {{type: string}}
"""


@pytest.mark.parametrize("backend", ["loky", "sequential"])
def test_a_disk_that_fills_stops_the_run_with_one_clear_message_and_the_next_run_resumes(
        flow: Flow, small_disk: Path, tmp_path: Path, backend: str) -> None:
    flow.path.write_text(FILLING, encoding="utf-8")
    ws = small_disk / "ws"
    command = ("run", "workflow.yaml", "--workspace", str(ws), "--backend", backend, "--param",
               f"flags={tmp_path}", "-q")
    full = run(*command, cwd=flow.dir)
    assert full.returncode == 2, full.stderr
    assert full.stderr.splitlines()[-1].startswith(
        f"plait: error: writing the ledger failed: the disk holding {ws / '.plait'} is full"), full.stderr
    for bad in ("Traceback", "Logging error", "Bus error", "damaged"):
        assert bad not in full.stderr, full.stderr
    recorded, ran = succeeded(ws), executions(tmp_path)
    assert recorded <= set(ran)

    (ws / "ballast").unlink()
    again = run(*command, cwd=flow.dir)
    assert again.returncode == 0, again.stderr
    assert rows(ws) == {f"work[{i}]": ("succeeded", 1, i, None) for i in range(ITEMS)}
    final = executions(tmp_path)
    assert set(final) == {f"work[{i}]" for i in range(ITEMS)}
    assert {n: final[n] for n in recorded} == {n: ran[n] for n in recorded}  # nothing recorded ran again
    assert integrity(ws) == [("ok",)]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a writable folder, the same folder bind-mounted read-only), unmounted at the end."""
    source, view = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    view.mkdir()
    done = _mount("--bind", str(source), str(view))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip()}): needs root")
    try:
        remount = _mount("-o", "remount,ro,bind", str(view))
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({remount.stderr.strip()})")
        yield source, view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_status_reads_an_intact_ledger_on_a_read_only_disk_and_a_run_there_says_read_only(
        flow: Flow, read_only: tuple[Path, Path]) -> None:
    source, view = read_only
    flow.path.write_text(FILLING.replace(f"range: {ITEMS}", "range: 5").replace("item == 2000", "False"),
                         encoding="utf-8")
    (source / "ws").mkdir()
    done = plait("run", "workflow.yaml", "--workspace", str(source / "ws"), "--backend", "sequential", "--param",
                 f"flags={source}", "-q", cwd=flow.dir)
    assert done.returncode == 0, done.stderr
    status = plait("status", "--workspace", str(view / "ws"), "--format", "json", cwd=flow.dir)
    assert status.returncode == 0, status.stderr
    assert '"work[4]": {"status": "succeeded"' in status.stdout
    again = plait("run", "workflow.yaml", "--workspace", str(view / "ws"), "--backend", "sequential", "--param",
                  f"flags={source}", "-q", cwd=flow.dir)
    assert again.returncode == 2, again.stderr
    assert "Traceback" not in again.stderr and "damaged" not in again.stderr, again.stderr
    assert "Read-only file system" in again.stderr or "read-only" in again.stderr, again.stderr
