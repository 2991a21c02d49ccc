"""`plait graph --workspace W`: the plan drawn in DOT, Mermaid and SVG, coloured by the ledger's statuses.

Each box is coloured as the HTML report colours it (any failure wins, then work left to do, then
skipped); DOT stripes a box's fill in proportion to its nodes' statuses and its label counts them.
The drawings are compared whole. `--expand` to SVG past EXPAND_SVG_MAX nodes asks for `--force`.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from runtime.support import plait

from plait.draw import EXPAND_SVG_MAX

WORKFLOW = """\
name: coloured
steps:
  - name: fetch
    task: shell
    items: [a, b, c]
    on_error: continue
    inputs: {command: "test {{ item }} != c"}
  - name: parse
    task: shell
    for_each: fetch
    inputs: {command: "echo {{ item }}"}
  - name: report
    task: shell
    depends_on: [parse]
    inputs: {command: "echo done"}
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder with wf.yaml and the workspace ws of its run: fetch[c] failed, what follows it skipped."""
    folder = tmp_path_factory.mktemp("coloured")
    (folder / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet", cwd=folder)
    assert done.returncode == 1, done.stderr
    return folder


def test_dot_is_coloured_and_counted_by_status(ran: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran)
    result = cli("graph", "wf.yaml", "--workspace", "ws")
    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent("""\
        digraph "coloured" {
          rankdir=LR;
          node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];
          "fetch" [label="fetch\\nshell × 3\\n2 done · 1 failed", shape=box3d, style=striped, fillcolor="#b2f2bb;0.6667:#ffc9c9;0.3333", color="#e03131", penwidth=2, tooltip="failed"];
          "parse" [label="parse\\nshell × 3\\n2 done · 1 skipped", shape=box3d, style=striped, fillcolor="#b2f2bb;0.6667:#ffec99;0.3333", color="#2f9e44", penwidth=2, tooltip="succeeded"];
          "report" [label="report\\nshell", style=striped, fillcolor="#ffec99;1.0000", color="#f59f00", penwidth=2, tooltip="skipped"];
          "fetch" -> "parse" [style=bold, label="per item"];
          "parse" -> "report";
        }
        """)  # noqa: E501


def test_a_node_new_since_the_run_is_to_do(ran: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grown = tmp_path / "wf.yaml"
    grown.write_text(WORKFLOW.replace("[a, b, c]", "[a, b, c, d]"), encoding="utf-8")
    monkeypatch.chdir(ran)
    result = cli("graph", str(grown), "--workspace", "ws", "--format", "mermaid")
    assert (result.code, result.err) == (0, "")
    assert result.out == textwrap.dedent("""\
        ---
        title: coloured
        ---
        flowchart LR
          n0[["fetch<br/>shell × 4<br/>2 done · 1 failed · 1 to do"]]
          n1[["parse<br/>shell × 4<br/>2 done · 1 skipped · 1 to do"]]
          n2["report<br/>shell"]
          n0 ==>|per item| n1
          n1 --> n2
          classDef failed fill:#ffc9c9,stroke:#e03131,stroke-width:2px
          class n0 failed
          classDef pending fill:#e9ecef,stroke:#868e96,stroke-width:2px
          class n1 pending
          classDef skipped fill:#ffec99,stroke:#f59f00,stroke-width:2px
          class n2 skipped
        """)


def test_expanded_nodes_each_take_their_own_status(ran: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran)
    result = cli("graph", "wf.yaml", "--workspace", "ws", "--format", "mermaid", "--expand")
    assert result.code == 0
    classes = {line.split()[2]: line.split()[1].split(",") for line in result.out.splitlines()
               if line.startswith("  class ")}
    assert classes == {"succeeded": ["n0", "n1", "n3", "n4"], "failed": ["n2"], "skipped": ["n5", "n6"]}
    assert '  n2["fetch[c]<br/>shell"]' in result.out


def test_a_deferred_step_is_counted_from_the_ledger(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""\
        name: later
        steps:
          - name: listing
            task: python
            inputs: {code: "result = ['x', 'y']"}
          - name: each
            task: python
            items: "{{ steps.listing.result }}"
            inputs: {code: "result = item"}
        """), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert '"each" [label="each\\npython × ? (deferred)", shape=box3d' in cli("graph", "wf.yaml").out
    done = plait("run", "wf.yaml", "--workspace", "ws", "--backend", "sequential", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = cli("graph", "wf.yaml", "--workspace", "ws").out
    assert ('"each" [label="each\\npython × 2\\n2 done", shape=box3d, style=striped, fillcolor="#b2f2bb;1.0000", '
            'color="#2f9e44"') in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed: svg gives exit 2")
def test_svg_carries_the_colours(ran: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran)
    result = cli("graph", "wf.yaml", "--workspace", "ws", "--format", "svg")
    assert (result.code, result.err) == (0, "")
    for colour in ("#e03131", "#b2f2bb", "#ffc9c9", "#ffec99", "#f59f00"):
        assert colour in result.out
    assert "2 done · 1 failed" in result.out


def test_graph_of_a_workspace_without_a_ledger(ran: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran)
    result = cli("graph", "wf.yaml", "--workspace", "elsewhere")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("plait: error: no plait run found in workspace 'elsewhere'")


def test_expanding_a_big_plan_to_svg_asks_for_force(tmp_path: Path, cli) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent(f"""\
        name: wide
        steps:
          - name: many
            task: noop
            items: {{range: {EXPAND_SVG_MAX + 1}}}
        """), encoding="utf-8")
    result = cli("graph", str(wf), "--expand", "--format", "svg")
    assert (result.code, result.out) == (2, "")
    assert result.err == (f"plait: error: drawing all {EXPAND_SVG_MAX + 1:,} nodes as SVG would keep Graphviz busy "
                          f"for minutes (past {EXPAND_SVG_MAX:,} nodes its layout time explodes); add --force to "
                          "draw it anyway, or drop --expand for one box per step, or use --format dot or mermaid\n")
    assert cli("graph", str(wf), "--expand", "--format", "dot").code == 0  # DOT text costs nothing to write
    forced = cli("graph", str(wf), "--expand", "--format", "svg", "--force")
    if shutil.which("dot"):
        assert (forced.code, forced.out.count("<g id=\"node")) == (0, EXPAND_SVG_MAX + 1)
    else:
        assert forced.err.startswith("plait: error: SVG output needs Graphviz's `dot` program")  # past the guard
