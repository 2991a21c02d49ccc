"""Fingerprints given in bulk (`Fingerprinter.fill`) are the bytes `Fingerprinter.node` gives a node at a time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import plait
from plait.compiler import Plan
from plait.runtime.fingerprint import Fingerprinter

MIXED = """
name: mixed
steps:
  - name: a
    task: noop
    items: [1, 2, "x", 3]
  - name: b
    task: python
    for_each: a
    inputs: {code: "result = item"}
  - name: c
    task: noop
    items: [{k: 1}, 2.5, [1, 2], true]
    depends_on: [a]
  - name: d
    task: noop
    depends_on: [c]
  - name: e
    task: python
    items: {range: 5}
    inputs: {code: "result = item"}
  - name: f
    task: python
    items: {glob: "*.txt"}
    inputs: {code: "result = item"}
"""


def _one_by_one(plan: Plan) -> dict[str, bytes | str]:
    fingerprints = Fingerprinter(plan.steps, plan.workflow_dir, plan.params)
    fp: dict[str, bytes | str] = {}
    for nid, node in plan.nodes.items():
        preds = plan.graph._pred[nid]
        fp[nid] = fingerprints.node(node, [fp[p] for p in preds] if preds else ())
    return fp


def test_fingerprints_filled_in_bulk_are_those_of_one_node_at_a_time(tmp_path: Path) -> None:
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    flow = tmp_path / "wf.yaml"
    flow.write_text(textwrap.dedent(MIXED), encoding="utf-8")
    plan = plait.compile_workflow(flow)
    ids = list(plan.nodes)
    filled: dict[str, bytes | str] = {}

    Fingerprinter(plan.steps, plan.workflow_dir, plan.params).fill(
        filled, ids, [plan.nodes[n] for n in ids], [plan.graph._pred[n] for n in ids])

    expected = _one_by_one(plan)
    assert list(filled.items()) == list(expected.items())
    assert len(set(expected.values())) == len(ids)  # every node its own: the items and keys told apart
