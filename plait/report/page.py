"""Write the report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

The page holds what a person reads, never the raw trace: counts, per-step summaries, a timeline
whose size is bounded (see `timeline`), and the failures, the first `FAILURE_DETAILS` in full and up
to `FAILURE_LIST` more one line each. So a run of 100,000 nodes makes a page of a few hundred
kilobytes that a browser shows at once, and `plait report --format json` has every attempt.
Everything taken from the workflow or the ledger is escaped. Without a script there is nothing to
fail in the browser: tooltips are SVG `<title>`s, folding is `<details>`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from plait.report.data import STATUSES, Report
from plait.report.stepgraph import step_state, step_svg
from plait.report.text import STATUS_COLOURS, clock, count, esc, seconds
from plait.report.timeline import timeline_html

__all__ = ["FAILURE_DETAILS", "FAILURE_LIST", "render_html"]

FAILURE_DETAILS = 50  # failed nodes shown in full (error, traceback, output, attempts)
FAILURE_LIST = 1_000  # failed nodes listed one line each after those
TEXT_TAIL = 6_000  # characters of a traceback or an output stream shown; the end, where the error is


def render_html(report: Report) -> str:
    """Return the report as a complete HTML document."""
    run = report.run or {}
    title = f"{report.workflow or 'plait'}: run {run.get('run_id', '—')}"
    timeline_run = _timeline_run(report)
    sections = [
        _summary(report),
        _section("history", "Runs in this workspace", _history(report)),
        _section("graph", "Steps", f'<div class="scroll">{step_svg(report.steps, report.edges, run.get("live", False))}'
                 f"</div>{_legend()}"),
        _section("steps", "Step by step", _step_table(report.steps)),
        _section("timeline", "Timeline", timeline_html(report.trace, [s["name"] for s in report.steps], timeline_run)),
        _section("failures", f"Failed nodes ({count(len(report.failures))})", _failures(report.failures)),
        _about(report),
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            + "\n".join(sections) + "</main></body></html>\n")


def _timeline_run(report: Report) -> str | None:
    """Return the run the timeline shows: the last one, or if it ran nothing, the last one that ran a node."""
    ran = {r.run for r in report.trace if r.start is not None and r.status != "skipped"}
    for entry in reversed(report.history):
        if entry["run_id"] in ran:
            return entry["run_id"]
    return report.run["run_id"] if report.run else None


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(heading)}</h2>{body}</section>'


def _chips(counts: Mapping[str, int]) -> str:
    return "".join(f'<span class="chip {esc(s)}" data-status="{esc(s)}"><b>{count(n)}</b> {esc(s)}</span>'
                   for s, n in counts.items() if n)


def _bar(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    cells = "".join(f'<i style="width:{100 * n / total:.3f}%;background:{STATUS_COLOURS.get(s, "#868e96")}" '
                    f'title="{count(n)} {esc(s)}"></i>' for s, n in counts.items() if n)
    return f'<div class="bar">{cells}</div>'


def _summary(report: Report) -> str:
    run = report.run or {}
    outcome = run.get("status", "never run")
    facts = [("workflow", report.workflow or "—"), ("run", run.get("run_id", "—")), ("outcome", outcome),
             ("started", clock(run.get("started"))),
             ("duration", seconds(run.get("duration")) + (" so far" if run.get("live") else "")),
             ("ended", clock(run.get("ended"))), ("workspace", report.workspace),
             ("report written", clock(report.generated))]
    rows = "".join(f"<div><dt>{esc(k)}</dt><dd{_outcome_class(k, v)}>{esc(v)}</dd></div>" for k, v in facts)
    live = ""
    if run.get("live"):
        gone = (f" No process holds its workspace now: the run (process {run.get('pid')}) died without recording "
                "its end." if run.get("process_gone") else " Counts are as of the time this report was written.")
        live = (f'<p class="live">This run was still going when the report was written: '
                f"{count(run.get('recorded'))} nodes recorded so far.{gone}</p>")
    nodes = sum(report.counts.values())
    return (f'<header><h1>{esc(report.workflow or "plait")} <span class="sub">run report</span></h1>{live}'
            f'<dl class="facts">{rows}</dl><p class="counts"><b>{count(nodes)}</b> nodes: '
            f"{_chips(report.counts)}</p>{_bar(report.counts)}</header>")


def _outcome_class(key: str, value: str) -> str:
    return f' class="outcome {esc(value)}"' if key == "outcome" else ""


def _history(report: Report) -> str:
    if not report.history:
        return '<p class="note">No run recorded yet.</p>'
    rows = []
    for entry in reversed(report.history):
        rows.append(f"<tr><td><code>{esc(entry['run_id'])}</code></td><td>{esc(clock(entry['started']))}</td>"
                    f"<td class=num>{esc(seconds(entry['duration']))}</td>"
                    f'<td><span class="outcome {esc(entry["status"])}">{esc(entry["status"])}</span></td>'
                    f"<td>{_chips(entry['counts']) or '<span class=note>nothing</span>'}</td></tr>")
    sources = Counter(e["counts_from"] for e in report.history)
    note = {"run": "Counts are what each run recorded of its own nodes.",
            "attempts": "Counts are each run's attempts' outcomes, one per node it ran.",
            "still current": "The ledger keeps each node's last record only, so a run's counts here are the nodes "
                             "whose last record it wrote: what it did that still stands (a node it failed and a later "
                             "run redid counts for the later run)."}
    notes = " ".join(note[s] for s in sources)
    return (f'<table><thead><tr><th>run</th><th>started</th><th class=num>duration</th><th>outcome</th>'
            f'<th>nodes</th></tr></thead><tbody>{"".join(rows)}</tbody></table><p class="note">{esc(notes)}</p>')


def _legend() -> str:
    keys = "".join(f'<span class="key"><i style="background:{STATUS_COLOURS[s]}"></i>{s}</span>' for s in STATUSES)
    return (f'<p class="legend">{keys}<span class="key">bold edge: per item (<code>for_each</code>)</span>'
            '<span class="key">dashed: order only (<code>after</code>)</span></p>')


_STEP_COLUMNS = ("nodes", "succeeded", "failed", "skipped", "pending", "retried")
_DURATIONS = ("total", "mean", "p50", "p95", "max", "span")


def _step_table(steps: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th class=num>{c}</th>" for c in _STEP_COLUMNS + _DURATIONS)
    rows = []
    for step in steps:
        durations = step["duration"] or {}
        cells = "".join(f'<td class="num{" bad" if c == "failed" and step[c] else ""}">{count(step[c])}</td>'
                        for c in _STEP_COLUMNS)
        cells += "".join(f"<td class=num>{esc(seconds(durations.get(c)))}</td>" for c in _DURATIONS)
        slowest = ", ".join(f"<code>{esc(s['id'])}</code> {esc(seconds(s['seconds']))}" for s in step["slowest"])
        state = step_state(step, False)
        rows.append(f'<tr data-step="{esc(step["name"])}"><th><span class="dot" style="background:'
                    f'{STATUS_COLOURS[state]}"></span>{esc(step["name"])}</th>{cells}'
                    f'<td class="slowest">{slowest or "—"}</td></tr>')
    return (f'<div class="scroll"><table class="steps"><thead><tr><th>step</th>{head}<th>slowest nodes</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div><p class="note">Durations are of each node\'s '
            "last attempt: total is their sum, p50 and p95 nearest-rank percentiles, span the wall time from the "
            "step's first start to its last end. Retried: nodes that took more than one attempt.</p>")


def _failures(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return '<p class="note">No node failed.</p>'
    groups = Counter((f["step"], f["error_type"] or "error") for f in failures)
    first = {}
    for f in failures:
        first.setdefault((f["step"], f["error_type"] or "error"), f)
    summary = "".join(f"<tr><td>{esc(step)}</td><td><code>{esc(kind)}</code></td><td class=num>{count(n)}</td>"
                      f"<td><code>{esc(first[(step, kind)]['id'])}</code>: {esc(_line(first[(step, kind)]['error']))}"
                      "</td></tr>" for (step, kind), n in groups.most_common())
    parts = [f'<table><thead><tr><th>step</th><th>error</th><th class=num>nodes</th><th>first</th></tr></thead>'
             f"<tbody>{summary}</tbody></table>"]
    parts += [_failure(f, open_it=i == 0) for i, f in enumerate(failures[:FAILURE_DETAILS])]
    rest = failures[FAILURE_DETAILS:FAILURE_DETAILS + FAILURE_LIST]
    if rest:
        lines = "".join(f"<li><code>{esc(f['id'])}</code> {esc(f['error_type'] or '')}: {esc(_line(f['error']))}</li>"
                        for f in rest)
        parts.append(f'<details class="more"><summary>{count(len(rest))} more, one line each</summary>'
                     f'<ul class="more">{lines}</ul></details>')
    left = len(failures) - FAILURE_DETAILS - len(rest)
    if left > 0:
        parts.append(f'<p class="note">… and {count(left)} more: <code>plait report --format json</code> lists '
                     "every failure.</p>")
    return "".join(parts)


def _failure(f: Mapping[str, Any], open_it: bool) -> str:
    facts = [("step", f["step"]), ("attempts", count(f["attempts"])), ("run", f["run"]), ("worker", f["worker"]),
             ("started", clock(f["started"])),
             ("duration", seconds(f["ended"] - f["started"]) if f["started"] and f["ended"] else "—")]
    if f.get("reason"):
        facts.append(("why it ran", f["reason"]))
    body = [f'<dl class="facts">{"".join(f"<div><dt>{k}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)}</dl>',
            "<h4>Traceback</h4>", _pre(f["traceback"]) if f["traceback"] else
            '<p class="note">Not recorded: this ledger keeps no traceback.</p>', "<h4>Output</h4>"]
    output = f["output"]
    if isinstance(output, Mapping):
        body += [f"<p class=stream>{esc(name)}</p>{_pre(text)}" for name, text in output.items() if text]
    elif output:
        body.append(_pre(output))
    else:
        body.append('<p class="note">None recorded.</p>')
    if f["tries"]:
        rows = "".join(f"<tr><td class=num>{esc(t.get('attempt'))}</td><td>{esc(t.get('status'))}</td>"
                       f"<td>{esc(clock(t.get('started')))}</td><td class=num>{esc(_took(t))}</td>"
                       f"<td>{esc(t.get('worker') or '?')}</td><td>{esc(_line(_error_text(t.get('error'))))}</td></tr>"
                       for t in f["tries"])
        body.append("<h4>Attempts</h4><table><thead><tr><th class=num>#</th><th>status</th><th>started</th>"
                    f"<th class=num>took</th><th>worker</th><th>error</th></tr></thead><tbody>{rows}</tbody></table>")
    body += ["<h4>Error record</h4>", _pre(json.dumps(f["record"], indent=2, default=str))]
    summary = f"<code>{esc(f['id'])}</code> <span>{esc(f['error_type'] or 'error')}: {esc(_line(f['error']))}</span>"
    return (f'<details class="failure" data-node="{esc(f["id"])}"{" open" if open_it else ""}><summary>{summary}'
            f'</summary>{"".join(body)}</details>')


def _took(attempt: Mapping[str, Any]) -> str:
    start, end = attempt.get("started"), attempt.get("ended")
    return seconds(end - start) if start is not None and end is not None else "—"


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('error_type', 'error')}: {error.get('error', '')}"
    return str(error or "")


def _line(text: Any, width: int = 200) -> str:
    """Return the first line of a message, cut to `width` characters."""
    first = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return first if len(first) <= width else first[:width - 1] + "…"


def _pre(text: Any) -> str:
    text = str(text)
    if len(text) > TEXT_TAIL:
        text = f"[… {len(text) - TEXT_TAIL:,} characters before]\n" + text[-TEXT_TAIL:]
    return f"<pre>{esc(text)}</pre>"


def _about(report: Report) -> str:
    holds = report.ledger
    missing = [what for key, what in (("attempts", "one row per attempt"), ("worker", "which worker ran a node"),
                                      ("reason", "why a node ran"), ("output", "node output"),
                                      ("run_counts", "each run's own counts")) if not holds.get(key)]
    lines = [f"This ledger does not record {', '.join(missing)}: the report shows what it has."] if missing else []
    lines += report.notes
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return (f'<footer><p>Written by <code>plait report</code> from <code>{esc(report.workspace)}</code>; '
            f'<code>plait report --format json</code> gives the same data with a row per attempt.</p>'
            f"{f'<ul>{items}</ul>' if items else ''}</footer>")


_CSS = """
:root{--ok:#2f9e44;--bad:#e03131;--skip:#f59f00;--run:#1c7ed6;--wait:#ced4da;--ink:#212529;--mute:#6c757d;
--line:#dee2e6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:#f1f3f5}
main{max-width:1320px;margin:0 auto;padding:16px 20px 40px}
header,section,footer{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:0 0 14px}
h1{margin:0 0 10px;font-size:22px}h1 .sub{color:var(--mute);font-weight:400}
h2{margin:0 0 10px;font-size:17px}h3{font-size:14px;margin:14px 0 6px}h4{margin:12px 0 4px;font-size:13px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f8f9fa;border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow:auto;max-height:360px;
white-space:pre-wrap;word-break:break-word;margin:4px 0}
.facts{display:flex;flex-wrap:wrap;gap:6px 26px;margin:0 0 10px}.facts div{min-width:120px}
dt{color:var(--mute);font-size:12px}dd{margin:0;font-weight:600;word-break:break-all}
.outcome{padding:1px 8px;border-radius:10px;color:#fff;background:var(--mute);font-weight:600}
.outcome.succeeded{background:var(--ok)}.outcome.failed{background:var(--bad)}.outcome.running{background:var(--run)}
.outcome.interrupted{background:var(--skip)}
dd.outcome{display:inline-block}
.chip{display:inline-block;margin:2px 6px 2px 0;padding:1px 8px;border-radius:10px;background:#f1f3f5;
border-left:4px solid var(--mute)}
.chip.succeeded{border-color:var(--ok)}.chip.failed{border-color:var(--bad)}.chip.skipped{border-color:var(--skip)}
.chip.running{border-color:var(--run)}.chip.pending{border-color:var(--wait)}
.counts{margin:4px 0 8px}
.bar{display:flex;height:12px;border-radius:6px;overflow:hidden;background:#f1f3f5}.bar i{display:block;height:100%}
.live{background:#e7f5ff;border-left:4px solid var(--run);padding:6px 10px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:12px;color:var(--mute);font-weight:600;white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.bad{color:var(--bad);font-weight:600}
.steps tbody th{white-space:nowrap}.slowest{font-size:12px;min-width:260px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.scroll{overflow-x:auto}
.note{color:var(--mute);font-size:12.5px;margin:6px 0}
.legend{font-size:12px;color:var(--mute);margin:6px 0 0}
.key{margin-right:14px;white-space:nowrap}.key i{display:inline-block;width:11px;height:11px;border-radius:2px;
margin-right:5px;vertical-align:-1px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg.steps .name{font-size:13.5px;font-weight:700;fill:#212529}
svg.steps .what,svg.steps .counts{font-size:11.5px;fill:#495057}
svg .tick{font-size:10.5px;fill:#6c757d;text-anchor:middle}svg .tick.end{text-anchor:end}
svg .lane{font-size:11px;fill:#495057;text-anchor:end}
details.failure{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:6px;padding:6px 10px;
margin:8px 0}
details.failure summary{cursor:pointer}details.failure summary span{color:#c92a2a;margin-left:8px}
.stream{margin:6px 0 0;font-size:12px;color:var(--mute)}
details.more{margin:10px 0}details.more summary{cursor:pointer;font-weight:600}
ul.more{columns:2;font-size:12.5px;padding-left:18px}
footer{font-size:12.5px;color:var(--mute)}footer ul{margin:6px 0 0;padding-left:18px}
"""
