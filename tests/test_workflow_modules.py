"""Workflow folders on one process's `sys.path` (plait.tasks.workflow_modules), as the threading backend's nodes
see them: a node whose folder already stands first finds no module of another workflow's folder."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from plait.tasks import workflow_modules


def test_a_node_finds_its_folder_first_only_once_the_other_folders_modules_are_forgotten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / f"helpers_{tmp_path.name}.py").write_text(f"WHICH = {folder.name!r}\n", encoding="utf-8")
    workflow_modules.use_folder(first)
    __import__(f"helpers_{tmp_path.name}")  # the first workflow's module, as its node imported it

    forgetting, forgotten = threading.Event(), threading.Event()
    forget = workflow_modules._forget_modules_of

    def slow_forget(folders: set[str]) -> None:
        forgetting.set()
        forgotten.wait(60)  # a bound on a hang: the test opens it
        forget(folders)

    monkeypatch.setattr(workflow_modules, "_forget_modules_of", slow_forget)
    seen: list[str] = []
    changing = threading.Thread(target=workflow_modules.use_folder, args=(second,))
    changing.start()
    assert forgetting.wait(60)
    beside = threading.Thread(target=lambda: seen.append(workflow_modules.use_folder(second)))
    beside.start()
    beside.join(0.2)  # only a broken lock lets it through: a correct one never returns here, however slow
    assert seen == [], "a node went on while the other workflow's modules were still there"
    forgotten.set()
    changing.join(60)
    beside.join(60)
    assert seen == [str(second)]
    assert sys.path[0] == str(second) and sys.path.count(str(second)) == 1
    assert __import__(f"helpers_{tmp_path.name}").WHICH == "second"
    del sys.modules[f"helpers_{tmp_path.name}"]
