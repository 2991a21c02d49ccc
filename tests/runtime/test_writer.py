"""The ledger writer: outcomes waiting for it are bounded (`MOST_WAITING`), and none is lost for it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plait.runtime import writer
from plait.runtime.ledger import Ledger, NodeRecord
from plait.runtime.writer import LedgerWriter


def records(first: int, count: int) -> list[NodeRecord]:
    return [NodeRecord(f"w[{i}]", "succeeded", 1, b"\x01" * 16, str(i), None, None, 1.0, 2.0, step="w", key=i)
            for i in range(first, first + count)]


def test_a_submission_waits_while_too_many_outcomes_wait_for_the_writer_then_every_one_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "MOST_WAITING", 3)
    monkeypatch.setattr(writer, "FLUSH_EVERY", 5)  # the first five outcomes are committed at once
    gate, entered = threading.Event(), threading.Event()
    record = Ledger.record

    def held(self: Ledger, run_id: str, rows: list[NodeRecord]) -> None:
        entered.set()
        assert gate.wait(30)
        record(self, run_id, rows)

    monkeypatch.setattr(Ledger, "record", held)
    path = tmp_path / "ledger.db"
    ledger_writer = LedgerWriter(path)
    ledger_writer.submit("record", "run-1", records(0, 5))  # 0 waiting before it: taken at once
    assert entered.wait(30)  # the writer is committing those five, held at the gate
    second = threading.Event()

    def submit() -> None:
        ledger_writer.submit("record", "run-1", records(5, 5))
        second.set()

    thread = threading.Thread(target=submit)
    thread.start()
    blocked = not second.wait(0.5)  # five wait uncommitted, more than three: the second submission waits
    gate.set()
    assert second.wait(30)
    thread.join()
    ledger_writer.close()
    reader = Ledger(path, readonly=True)
    try:
        assert (blocked, [row[0] for row in reader.nodes()]) == (True, [f"w[{i}]" for i in range(10)])
    finally:
        reader.close()
