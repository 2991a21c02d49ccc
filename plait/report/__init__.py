"""The run report: one self-contained HTML page (or the same data as JSON) read from a workspace's ledger.

    collect(workspace) -> Report          plait.report.data: the ledger, read-only, into data
    render_html(report) -> str            plait.report.page: the page, with plait.report.stepgraph's graph
                                          and plait.report.timeline's Gantt chart
    write_report(workspace, path, fmt)    both, written atomically (a browser may have the old one open)

`plait report` and `plait run --report` call `write_report`; `plait graph --workspace` colours its
drawing with `node_statuses`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from plait.masking import mask
from plait.report.data import NodeState, Report, TraceRow, collect, node_statuses
from plait.report.page import render_html

if TYPE_CHECKING:
    from plait.compiler import Plan

__all__ = ["FORMATS", "NodeState", "Report", "TraceRow", "collect", "node_statuses", "render", "render_html",
           "write_report"]

FORMATS = ("html", "json")


def render(workspace: str | Path, fmt: str = "html", plan: Plan | None = None) -> str:
    """Return the workspace's report as HTML or JSON text. Raises LedgerError, ValueError for a bad format."""
    if fmt not in FORMATS:
        raise ValueError(f"report format '{fmt}' is not one of {', '.join(FORMATS)}")
    report = collect(workspace, plan)
    if fmt == "json":
        return mask(json.dumps(report.to_json(), default=str)) + "\n"
    return mask(render_html(report))


def write_report(workspace: str | Path, path: str | Path, fmt: str = "html", plan: Plan | None = None) -> Path:
    """Write the workspace's report to `path`, replacing it whole; return the path. Raises LedgerError, OSError."""
    text = render(workspace, fmt, plan)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # created as any file is (umask)
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
