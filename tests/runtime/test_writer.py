"""The ledger writer: outcomes waiting for it are bounded (`MOST_WAITING`), and none is lost for it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from reliability.harness import wait_for

from plait.runtime import writer
from plait.runtime.ledger import Ledger, NodeRecord
from plait.runtime.writer import LedgerWriter


def records(first: int, count: int) -> list[NodeRecord]:
    return [NodeRecord(f"w[{i}]", "succeeded", 1, b"\x01" * 16, str(i), None, None, 1.0, 2.0, step="w", key=i)
            for i in range(first, first + count)]


class _Watched(threading.Condition):
    """The writer's condition, noting when a submission waits on it for room."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.set()
        return super().wait(timeout)


class HeldWriter:
    """A writer whose commits wait at a gate the test opens, so that outcomes wait for it as long as the test says."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        record = Ledger.record

        def held(ledger: Ledger, run_id: str, rows: list[NodeRecord]) -> None:
            self.entered.set()
            assert self.gate.wait(30)
            record(ledger, run_id, rows)

        monkeypatch.setattr(Ledger, "record", held)
        self.path = path
        self.writer = LedgerWriter(path)
        self.watched = self.writer._committed = _Watched()  # before the first submission: nothing waits on it yet

    def submit_waits(self, rows: list[NodeRecord]) -> bool:
        """Submit `rows` from another thread while the gate is shut; return whether the submission waited for room.
        Then open the gate, and wait for the submission and the writer to end."""
        done = threading.Event()
        thread = threading.Thread(target=lambda: (self.writer.submit("record", "run-1", rows), done.set()))
        thread.start()
        wait_for(lambda: self.watched.waited.is_set() or done.is_set(), "the submission to wait or to be taken")
        waited = self.watched.waited.is_set()  # a submission that waits cannot be done while the gate is shut
        self.gate.set()
        assert done.wait(30)
        thread.join()
        self.writer.close()
        return waited

    def recorded(self) -> list[str]:
        reader = Ledger(self.path, readonly=True)
        try:
            return [row[0] for row in reader.nodes()]
        finally:
            reader.close()


def test_a_submission_waits_while_too_many_outcomes_wait_for_the_writer_then_every_one_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "MOST_WAITING", 3)
    monkeypatch.setattr(writer, "FLUSH_EVERY", 5)  # the first five outcomes are committed at once
    held = HeldWriter(tmp_path / "ledger.db", monkeypatch)
    held.writer.submit("record", "run-1", records(0, 5))  # 0 waiting before it: taken at once
    assert held.entered.wait(30)  # the writer is committing those five, held at the gate
    waited = held.submit_waits(records(5, 5))  # five wait uncommitted, more than three: it waits
    assert (waited, held.recorded()) == (True, [f"w[{i}]" for i in range(10)])


@pytest.mark.parametrize("where", ["result", "output"])
def test_a_submission_waits_while_too_much_text_waits_for_the_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setattr(writer, "MOST_WAITING_BYTES", 1000)  # the count's bound is far off: the text's holds
    monkeypatch.setattr(writer, "FLUSH_EVERY", 1)

    def big(i: int) -> NodeRecord:
        text = '"' + "x" * 600 + '"'
        row = NodeRecord(f"w[{i}]", "succeeded", 1, b"\x01" * 16, "1", None, None, 1.0, 2.0, step="w", key=i)
        return row._replace(**{where: text})

    held = HeldWriter(tmp_path / "ledger.db", monkeypatch)
    held.writer.submit("record", "run-1", [big(0)])
    assert held.entered.wait(30)  # the writer holds the first at the gate
    held.writer.submit("record", "run-1", [big(1)])  # 600 characters wait: room for these
    waited = held.submit_waits([big(2)])  # 1,200 characters wait, more than 1,000: it waits
    assert (waited, held.recorded()) == (True, [f"w[{i}]" for i in range(3)])


def test_a_submission_under_the_bounds_does_not_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "MOST_WAITING", 10)
    monkeypatch.setattr(writer, "FLUSH_EVERY", 5)
    held = HeldWriter(tmp_path / "ledger.db", monkeypatch)
    held.writer.submit("record", "run-1", records(0, 5))
    assert held.entered.wait(30)
    assert (held.submit_waits(records(5, 5)), held.recorded()) == (False, [f"w[{i}]" for i in range(10)])
