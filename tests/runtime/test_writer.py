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


@pytest.mark.parametrize("where", ["result", "output"])
def test_a_submission_waits_while_too_much_text_waits_for_the_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setattr(writer, "MOST_WAITING_BYTES", 1000)  # the count's bound is far off: the text's holds
    monkeypatch.setattr(writer, "FLUSH_EVERY", 1)
    gate, entered = threading.Event(), threading.Event()
    record = Ledger.record

    def held(self: Ledger, run_id: str, rows: list[NodeRecord]) -> None:
        entered.set()
        assert gate.wait(30)
        record(self, run_id, rows)

    def big(i: int) -> NodeRecord:
        text = '"' + "x" * 600 + '"'
        row = NodeRecord(f"w[{i}]", "succeeded", 1, b"\x01" * 16, "1", None, None, 1.0, 2.0, step="w", key=i)
        return row._replace(**{where: text})

    monkeypatch.setattr(Ledger, "record", held)
    path = tmp_path / "ledger.db"
    ledger_writer = LedgerWriter(path)
    ledger_writer.submit("record", "run-1", [big(0)])
    assert entered.wait(30)  # the writer holds the first at the gate
    ledger_writer.submit("record", "run-1", [big(1)])  # 600 characters wait: room for these
    second = threading.Event()

    def submit() -> None:
        ledger_writer.submit("record", "run-1", [big(2)])
        second.set()

    thread = threading.Thread(target=submit)
    thread.start()
    blocked = not second.wait(0.5)  # 1,200 characters wait, more than 1,000: the third submission waits
    gate.set()
    assert second.wait(30)
    thread.join()
    ledger_writer.close()
    reader = Ledger(path, readonly=True)
    try:
        assert (blocked, [row[0] for row in reader.nodes()]) == (True, [f"w[{i}]" for i in range(3)])
    finally:
        reader.close()
