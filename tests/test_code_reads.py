"""What raw inputs read of other steps: a task-rendered template depends on what it names; code must say so.

The failing cases (a read without `depends_on`, an unknown step) are bad-workflow fixtures with
their full messages (tests/fixtures/bad/code_reads_*); here the cases that must run.
"""

from __future__ import annotations

import json
from pathlib import Path

from plait import compile_workflow
from plait.runtime import run_workflow

WORKFLOW = """\
name: reads
steps:
  - name: square
    task: python
    items: {range: [0, 4]}
    inputs: {code: "result = item * item"}
  - name: page
    task: template
    inputs:
      template: "{% for r in steps.square.results %}{{ r }};{% endfor %}"
  - name: total
    task: python
    depends_on: [square]
    inputs:
      code: |
        guarded = steps.get("page", "absent")
        result = [sum(steps["square"]["results"]), guarded]
"""


def test_a_template_body_depends_on_what_it_names_and_declared_code_reads_run(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    plan = compile_workflow(str(tmp_path / "wf.yaml"))
    assert (plan.steps["page"].depends_on, plan.steps["total"].depends_on) == (("square",), ("square",))
    result = run_workflow(plan, workspace=tmp_path / "ws", backend="sequential")
    assert result.ok
    import sqlite3

    with sqlite3.connect(tmp_path / "ws" / ".plait" / "ledger.db") as db:
        rows = dict(db.execute("SELECT node_id, result FROM nodes WHERE node_id IN ('page', 'total')").fetchall())
    assert {k: json.loads(v) for k, v in rows.items()} == {"page": "0;1;4;9;", "total": [14, "absent"]}
