"""The command line: parse arguments, call the library, print, and exit with the contract's codes.

Exit codes: 0 success; 1 a run that failed; 2 a bad workflow or bad arguments (a clear message
on stderr, never a traceback). Every command is a thin `cmd_*` function over the Python API.

Everything a command prints goes through `plait.terminal`: the workflow's data (items, keys,
errors, results) reaches the terminal as text, never as control sequences.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from plait.compiler.diagnostics import WorkflowError
from plait.draw import EXPAND_SVG_MAX
from plait.limits import JOBS_PER_CORE, MAX_RESULT_BYTES
from plait.masking import MASK, MaskedStream, mask
from plait.plugins import PluginError, load_modules
from plait.runtime.ledger import LEDGER_NAME, LedgerError
from plait.screen import Screen, use_colour
from plait.terminal import EscapingStream, escaped_output, log_format, raw
from plait.workspace import LOCK_NAME, STATE_DIR, state_dir

if TYPE_CHECKING:
    from plait.compiler import Plan

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70  # 70: EX_SOFTWARE, a bug in plait itself
_WHICH_WORKSPACE = "the one under runs/ that ran last"


class UsageError(Exception):
    """Bad arguments: printed as they are, exit 2."""


def _params(args: argparse.Namespace) -> dict[str, Any]:
    """Return the overrides of `--param` and `--flow` (the original engine's flows are a `flow` param)."""
    from plait.compiler import parse_param_overrides

    try:
        params = parse_param_overrides(args.param or [])
    except ValueError as err:
        raise UsageError(str(err)) from err
    if args.flow is not None:
        if params.get("flow", args.flow) != args.flow:
            raise UsageError(f"--flow {args.flow} and --param flow={params['flow']} disagree; give one of them")
        params["flow"] = args.flow
    return params


def _plan(args: argparse.Namespace) -> Plan:
    from plait.compiler import compile_workflow

    load_modules(args.plugin)
    plan = compile_workflow(args.workflow, _params(args), params_file=args.params_file)
    if not getattr(args, "quiet", False):
        for note in plan.notes:
            print(note, file=sys.stderr)
    return plan


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the workflow format, for editors (yaml-language-server) to check files as typed."""
    from plait.compiler.json_schema import workflow_schema

    load_modules(args.plugin)
    text = json.dumps(workflow_schema(), indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write '{args.output}': {err.strerror}") from err
        print(f"wrote {args.output}: point your editor at it with the first line "
              f"`# yaml-language-server: $schema={args.output}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    """Validate a workflow and print its plan."""
    plan = _plan(args)
    if args.format == "json":
        print(json.dumps(plan.to_json(), default=str))
    else:
        print(summary(plan))
    return EXIT_OK


def summary(plan: Plan) -> str:
    """Return a short readable summary of a plan: steps, node counts, batches, deferred expansions."""
    from plait.compiler import thaw

    counts = {step: n for (step, kind), n in plan.node_counts().items() if kind == "task"}  # counted, not looped
    lines = [f"workflow {plan.workflow}" + (f": {plan.description}" if plan.description else "")]
    if plan.params:
        lines.append("params: " + ", ".join(f"{k}={v!r}" for k, v in thaw(plan.params).items()))
    n_steps = len(plan.steps)
    lines.append(f"{len(plan.nodes):,} nodes, {plan.edge_count:,} edges, "
                 f"{n_steps} step{'s' if n_steps != 1 else ''}:")
    width = max(len(s) for s in plan.steps)
    for step in plan.steps.values():
        if step.fans_out:
            shape = "items from each parent's result, at run time"
        elif step.group_by and step.kind == "deferred":
            shape = "groups known at run time"
        elif step.kind == "deferred":
            shape = "items expanded at run time"
        elif step.group_by:
            shape = f"{counts.get(step.name, 0):,} group{'s' if counts.get(step.name, 0) != 1 else ''}"
        elif step.kind == "batch":
            shape = f"batch of {counts.get(step.name, 0):,}"
        else:
            shape = "1 node"
        after = [d for d in step.depends_on if d not in (step.for_each, step.group_by)]
        extra = [f"for_each {step.for_each}"] if step.for_each else []
        extra += [f"group_by {step.group_by}"] if step.group_by else []
        extra += [f"after {', '.join(after)}"] if after else []
        extra += [f"once {', '.join(step.after)} ended"] if step.after else []
        lines.append(f"  {step.name:<{width}}  {step.task:<8} {shape}" + (f" ({'; '.join(extra)})" if extra else ""))
    if plan.deferred:
        lines.append(f"deferred: {', '.join(plan.deferred)} (expanded when their upstream finishes)")
    lines.append(f"digest: {plan.digest[:16]}")
    return "\n".join(lines)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Write a workflow of the original engine in plait's own form."""
    from plait.compiler.dialect.migrate import migrate

    text, notes = migrate(args.workflow, _params(args))
    for note in notes:
        print(note, file=sys.stderr)
    if args.output:
        _write(args.output, text)
        print(f"wrote {args.output}: check it with `plait compile {args.output}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw a workflow's plan, coloured by the status of its nodes in a workspace when one is given."""
    from plait.draw import DrawingTooBig, GraphvizMissing, draw

    plan = _plan(args)
    states = None
    if args.workspace:
        from plait.report import node_statuses

        states = node_statuses(args.workspace)
    try:
        text = draw(plan, args.format, expand=args.expand, states=states, force=args.force)
    except (GraphvizMissing, DrawingTooBig) as err:
        raise UsageError(str(err)) from err
    if args.output:
        _write(args.output, mask(text))  # as stdout would show it
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _write(path: str, text: str) -> None:
    """Write an output file; a path that cannot be written is a usage error, not a traceback."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write '{path}': {err.strerror or err}; choose a writable path for -o") from err


def cmd_run(args: argparse.Namespace, plan: Plan | None = None) -> int:
    """Run (or resume) a workflow in a workspace."""
    from plait.runtime import BackendUnavailable, run_workflow
    from plait.runtime.selection import SelectionError

    backend = args.backend or ("dask" if args.scheduler_address else "loky")
    if args.scheduler_address and backend != "dask":
        raise UsageError(f"--scheduler-address is for --backend dask, not --backend {backend}; drop one of them")
    plan = plan or _plan(args)
    if args.dry_run:
        return _dry_run(args, plan)
    start = time.monotonic()
    level = "DEBUG" if args.verbose else "WARNING" if args.quiet else "INFO"
    # While the run goes, the terminal is a screen with the live progress block at its bottom: what is
    # printed goes above it, escaped; the block itself is plait's own drawing, written raw.
    screen = Screen(raw(sys.stderr))
    try:
        with screen, redirect_stderr(EscapingStream(screen)), \
                redirect_stdout(EscapingStream(screen.above(raw(sys.stdout)))), _terminal_log(level, screen):
            result = run_workflow(plan, workspace=args.workspace, jobs=args.jobs, backend=backend, fresh=args.fresh,
                                  progress=None if args.quiet else screen,
                                  scheduler_address=args.scheduler_address,
                                  log_level="DEBUG" if args.verbose else "INFO",
                                  max_result_bytes=args.max_result_size, force_jobs=args.force_jobs,
                                  rerun=args.rerun or (), until=args.until or (), skip=args.skip or ())
    except BackendUnavailable as err:
        raise UsageError(str(err)) from err
    except SelectionError as err:  # --rerun, --until or --skip naming nothing
        raise UsageError(str(err)) from err
    print(_run_summary(result, time.monotonic() - start), file=sys.stderr)
    if args.report:
        _run_report(result.workspace, args.report, plan)
    return EXIT_OK if result.ok else EXIT_FAILED


def _dry_run(args: argparse.Namespace, plan: Plan) -> int:
    """Print what the run would do and why; run and write nothing."""
    from plait.runtime import dry_run, format_dry_run
    from plait.runtime.selection import SelectionError

    if args.fresh:
        raise UsageError("--dry-run with --fresh: a fresh run runs every node; drop one of them")
    try:
        result = dry_run(plan, workspace=args.workspace, rerun=args.rerun or (), until=args.until or (),
                         skip=args.skip or ())
    except SelectionError as err:
        raise UsageError(str(err)) from err
    print(json.dumps(result.to_json()) if args.format == "json" else format_dry_run(result))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume the last run of a workspace with the same workflow file and params."""
    from plait.compiler import compile_workflow
    from plait.runtime import Ledger

    workspace = _workspace(args.workspace)
    path = state_dir(workspace) / LEDGER_NAME
    if not path.exists():
        raise UsageError(f"workspace '{workspace}' has no run to resume; use `plait run WF.yaml --workspace "
                         f"{workspace}`")
    ledger = Ledger(path, readonly=True)
    try:
        last = ledger.last_run()
    finally:
        ledger.close()
    if not last or not last.get("source"):
        raise UsageError(f"workspace '{workspace}' has no run to resume; use `plait run WF.yaml --workspace "
                         f"{workspace}`")
    args.workspace, args.fresh = str(workspace), False
    load_modules(args.plugin)
    return cmd_run(args, compile_workflow(last["source"], _resumed_params(last, args), params_file=args.params_file))


def _resumed_params(last: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Return the params to resume with: the last run's, less its secrets (stored as ***), then those given now.

    A params file given now replaces the stored value of each name it holds; `--param` wins over both.
    """
    from plait.compiler.params import read_params_file

    stored = {name: value for name, value in json.loads(last.get("params") or "{}").items() if value != MASK}
    if args.params_file:
        for name in read_params_file(args.params_file):
            stored.pop(name, None)
    return {**stored, **_params(args)}


def cmd_status(args: argparse.Namespace) -> int:
    """Print a workspace's state from its ledger."""
    from plait.runtime import format_status
    from plait.runtime.status import status_summary, write_status_json

    if args.format == "json":
        # Streamed (a million nodes are 80 MB of JSON) and past the terminal's escaping: JSON escapes every
        # control character itself (ASCII only, as `json.dumps` writes it), and checking 80 MB again cost 0.2 s.
        write_status_json(_workspace(args.workspace), raw(sys.stdout))
    else:
        print(format_status(status_summary(_workspace(args.workspace))))  # counted by SQLite
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a node's story (or every failed node's of a step): why it ran, each attempt, its output and error."""
    from plait.runtime import format_logs, node_logs

    try:
        entries = node_logs(_workspace(args.workspace), args.target, attempt=args.attempt, failed=args.failed)
    except KeyError as err:
        raise UsageError(err.args[0]) from err
    if args.format == "json":
        print(json.dumps(entries, default=str))
    elif entries:
        print(format_logs(entries))
    else:
        print(f"no {'failed ' if args.failed else ''}node of '{args.target}' to show")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    """List a workspace's runs: id, start, duration, outcome, counts."""
    from plait.runtime import format_runs, workspace_runs

    runs = workspace_runs(_workspace(args.workspace))
    print(json.dumps(runs, default=str) if args.format == "json" else format_runs(runs))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Write a workspace's run report: one self-contained HTML page, or the same data as JSON."""
    from plait.report import render, write_report

    workspace = _workspace(args.workspace)
    output = args.output or (str(_default_report(workspace)) if args.format == "html" else "-")
    if output == "-":
        sys.stdout.write(render(workspace, args.format))
        return EXIT_OK
    try:
        path = write_report(workspace, output, args.format)
    except OSError as err:
        raise UsageError(f"cannot write the report to '{output}': {err.strerror or err}") from err
    print(f"report: {path}", file=sys.stderr)
    return EXIT_OK


def _default_report(workspace: Path) -> Path:
    """Return where a workspace's HTML report goes unless told: beside its ledger, clear of the tasks' files."""
    return state_dir(workspace) / "report.html"


def _run_report(workspace: Path, output: str | bool, plan: Plan) -> None:
    """Write the HTML report at the end of a run (to its default file when `output` is True).

    A report that cannot be written is a warning: the run's outcome and exit code stand.
    """
    from plait.report import write_report

    try:
        path = write_report(workspace, _default_report(workspace) if output is True else output, plan=plan)
    except (OSError, LedgerError) as err:
        print(f"plait: warning: the run's report was not written: {getattr(err, 'strerror', None) or err}",
              file=sys.stderr)
        return
    print(f"report: {path}", file=sys.stderr)


def _workspace(given: str | None) -> Path:
    """Return the workspace to read: the one given, else the one under runs/ that ran last (named on stderr
    when there are several, so that nobody reads another workflow's state unawares)."""
    if given:
        return Path(given)
    found = sorted(p.parent.parent for p in Path("runs").glob(f"*/{STATE_DIR}/{LEDGER_NAME}"))
    if not found:
        raise UsageError("no workspace under runs/ in this folder; pass --workspace DIR")
    if len(found) == 1:
        return found[0]
    last = max(found, key=_last_used)
    print(f"plait: {last} ran last of the {len(found)} workspaces under runs/ ({', '.join(str(p) for p in found)}); "
          "pass --workspace DIR for another", file=sys.stderr)
    return last


def _last_used(workspace: Path) -> float:
    """Return when a run last started in `workspace`: it writes its PID to the lock file as it starts."""
    for name in (LOCK_NAME, LEDGER_NAME):
        try:
            return (state_dir(workspace) / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


@contextmanager
def _terminal_log(level: str, stream: TextIO | Screen) -> Iterator[None]:
    """Show plait's log records from `level` up on `stream` while the command runs (plait is silent otherwise)."""
    from loguru import logger

    logger.remove()
    sink = logger.add(stream, level=level, format=log_format, colorize=use_colour(raw(sys.stderr)))
    logger.enable("plait")
    try:
        yield
    finally:
        logger.remove(sink)
        logger.disable("plait")


def _run_summary(result: Any, seconds: float) -> str:
    report = result.report
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(report.counts.items()) if n)
    lines = [f"run {report.run_id} {report.status} in {seconds:.1f} s: {counts or 'nothing to do'}"
             + (f" ({report.restored:,} already done)" if report.restored else "")]
    if report.failed:
        lines.append(f"failed nodes ({len(report.failed):,}):")
        for error in report.failed[:10]:
            lines.append(f"  {error.get('node')}: {error.get('error_type')}: {error.get('error')}")
        if len(report.failed) > 10:
            lines.append(f"  … and {len(report.failed) - 10:,} more")
    if result.log_file and (report.failed or report.status != "succeeded"):
        lines.append(f"logs: {result.log_file} (lines name their node); state: plait status --workspace "
                     f"{result.workspace}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plait", description="Compile YAML workflows into a DAG and run them "
                                     "as parallel, resumable batches.")
    parser.add_argument("--version", action=_Version, help="print plait's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def plugin_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugin", action="append", metavar="MODULE", help="import MODULE first: it registers task "
                       "kinds with @plait.task (importable from the current folder, or installed); repeatable")

    def workflow_command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("workflow", metavar="WF.yaml", help="the workflow file")
        param_options(p)
        p.add_argument("--flow", metavar="NAME", help="for a file of the original engine: the flow to run "
                       "(the same as --param flow=NAME)")
        p.set_defaults(func=func)
        return p

    def param_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--param", "-p", action="append", metavar="NAME=VALUE",
                       help="set a parameter; overrides --params-file").completer = _complete_param  # type: ignore[attr-defined]
        p.add_argument("--params-file", metavar="FILE", help="parameters from a YAML or JSON file of NAME: VALUE, "
                       "typed as written (as a default in the workflow is)")
        plugin_option(p)

    p = workflow_command("compile", cmd_compile, "validate a workflow and print its plan")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = workflow_command("graph", cmd_graph, "draw a workflow's plan")
    p.add_argument("--format", choices=("dot", "mermaid", "svg"), default="dot")
    p.add_argument("--expand", action="store_true", help="draw every node, not one per step")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--workspace", "-w", metavar="DIR", help="colour the drawing by the status of each node in "
                   "this workspace's ledger")
    p.add_argument("--force", action="store_true", help=f"draw --expand as svg even past {EXPAND_SVG_MAX:,} nodes "
                   "(Graphviz may take minutes)")

    def run_options(p: argparse.ArgumentParser, default_workspace: str = "runs/<workflow name>") -> None:
        from plait.runtime import BACKENDS

        p.add_argument("--workspace", "-w", metavar="DIR", help="where the run works and keeps its state "
                       f"(default: {default_workspace})")
        p.add_argument("--jobs", "-j", type=_positive, default=2, metavar="N", help="parallel workers (default 2; "
                       f"at most {JOBS_PER_CORE} per core unless --force-jobs)")
        p.add_argument("--force-jobs", action="store_true", help="start every worker --jobs asks for, past "
                       f"{JOBS_PER_CORE} per core")
        p.add_argument("--backend", choices=BACKENDS, help="where nodes run (default loky; dask with "
                       "--scheduler-address)")
        p.add_argument("--scheduler-address", metavar="ADDRESS", help="the Dask scheduler to run nodes on "
                       "(tcp://HOST:8786; implies --backend dask); without it, --backend dask starts a local "
                       "cluster of --jobs workers for the run")
        p.add_argument("--verbose", "-v", action="store_true", help="log every node event to the terminal")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress display; only warnings and errors")
        p.add_argument("--max-result-size", type=_size, default=MAX_RESULT_BYTES, metavar="SIZE",
                       help="the most JSON one node's result may take, as bytes or with K, M or G "
                       f"(default {MAX_RESULT_BYTES // 2**20}M); a bigger result fails its node")
        p.add_argument("--dry-run", "-n", action="store_true", help="print what would run and why; run and write "
                       "nothing")
        p.add_argument("--format", choices=("text", "json"), default="text", help="how --dry-run prints")
        p.add_argument("--rerun", action="append", metavar="TARGET", help="run TARGET again even if it succeeded, "
                       "and everything downstream of it: a step, a node id or a pattern (step[*.png]); repeatable")
        p.add_argument("--until", action="append", metavar="STEP", help="run only STEP and the steps it needs; "
                       "repeatable")
        p.add_argument("--skip", action="append", metavar="TARGET", help="do not run TARGET (a step, a node id or "
                       "a pattern): record it skipped, as a false condition would, and run what follows it; "
                       "repeatable")
        p.add_argument("--report", nargs="?", const=True, metavar="FILE", help="write the HTML run report "
                       "when the run ends, to FILE (default: <workspace>/.plait/report.html)")

    p = workflow_command("run", cmd_run, "run a workflow; running again in the same workspace resumes")
    run_options(p)
    p.add_argument("--fresh", action="store_true", help="forget the workspace's ledger and start over")
    p = sub.add_parser("resume", help="resume a workspace's last run", description="resume a workspace's last run "
                       "with the same workflow file and params (a secret parameter is never stored: give it again)")
    run_options(p, default_workspace=_WHICH_WORKSPACE)
    param_options(p)
    p.set_defaults(func=cmd_resume, flow=None)
    p = workflow_command("migrate", cmd_migrate, "write a workflow of the original engine (yaml-workflow) in "
                         "plait's own form, comments kept")
    p.add_argument("-o", "--output", metavar="NEW.yaml", help="write to NEW.yaml instead of stdout")
    p = sub.add_parser("status", help="show a workspace's state", description="show a workspace's state")
    p.add_argument("--workspace", "-w", metavar="DIR", help=f"the workspace (default: {_WHICH_WORKSPACE})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("logs", help="show why a node ran, each attempt, what it printed and how it failed",
                       description="show a node's story: why it ran, each attempt (times, worker), what it printed, "
                       "its error and traceback; or every failed node of a step with --failed")
    p.add_argument("target", metavar="NODE", help="a node id (step[key]), a step, or a pattern (step[*.png])")
    p.add_argument("--workspace", "-w", metavar="DIR", help=f"the workspace (default: {_WHICH_WORKSPACE})")
    p.add_argument("--attempt", type=_positive, metavar="N", help="show only attempt N of the last run that ran it")
    p.add_argument("--failed", action="store_true", help="of a step or pattern, only the nodes that failed")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("runs", help="list a workspace's runs", description="list a workspace's runs: id, start, "
                       "duration, outcome and counts (a run that died is shown as interrupted)")
    p.add_argument("--workspace", "-w", metavar="DIR", help=f"the workspace (default: {_WHICH_WORKSPACE})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_runs)
    p = sub.add_parser("report", help="write a workspace's run report (HTML, or JSON with a row per attempt)",
                       description="write a workspace's run report: one self-contained HTML page (the run, its "
                       "history, the steps coloured by status, a table per step, a timeline, the failures), or "
                       "the same data as JSON with a trace of one row per attempt; works while a run is going")
    p.add_argument("--workspace", "-w", metavar="DIR", help=f"the workspace (default: {_WHICH_WORKSPACE})")
    p.add_argument("--format", choices=("html", "json"), default="html")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it, - for stdout (default: html to "
                   "<workspace>/.plait/report.html, json to stdout)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("schema", help="print the JSON Schema of the workflow format (for editors)",
                       description="print the JSON Schema of the workflow format, from the tables the compiler checks "
                       "files with (task kinds of --plugin modules and installed plugins included); an editor with "
                       "yaml-language-server validates and completes a workflow whose first line is "
                       "`# yaml-language-server: $schema=FILE`")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    plugin_option(p)
    p.set_defaults(func=cmd_schema)
    return parser


class _Version(argparse.Action):
    """`--version`: print the installed version (read only when asked: the metadata costs milliseconds)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        import plait

        print(f"plait {plait.__version__}")
        parser.exit()


def _complete_param(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Complete `--param` with `NAME=` for each parameter the workflow declares (for argcomplete)."""
    import yaml

    from plait.compiler.loader import read_regular_file

    try:
        declared = (yaml.safe_load(read_regular_file(parsed_args.workflow)) or {}).get("params") or {}
    except Exception:  # completion must never fail: nothing to offer
        return []
    return [f"{name}=" for name in declared if isinstance(name, str) and f"{name}=".startswith(prefix)]


def _size(text: str) -> int:
    """Parse a size: '16M', '1.5G', '500K' or a number of bytes (K, M and G are powers of 1024)."""
    scales = {"K": 2**10, "M": 2**20, "G": 2**30}
    body = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = scales.get(body[-1:], 1)
    try:
        value = float(body[:-1] if body[-1:] in scales else body) * scale
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: write bytes, or a number with K, M or G (16M)")
    return int(value)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 1 or more")
    return value


class _PipeSafe(io.TextIOBase):
    """A standard stream that a closed reader cannot break (`plait status | head`, `plait run -v | head`).

    After a broken pipe, writes are dropped (and the stream's descriptor points at /dev/null, so the
    interpreter's last flush is quiet too): a command goes on and ends with its own exit code, and
    no traceback is printed for it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def isatty(self) -> bool:
        return not self.broken and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code.

    What it prints is escaped (plait.terminal), then masked: the values of secret parameters are
    shown as *** in a command's output and its error messages alike (plait.masking), then written
    safely from broken pipes.
    """
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskedStream(_PipeSafe(sys.stdout)), MaskedStream(_PipeSafe(sys.stderr))
    try:
        with escaped_output():
            return _main(argv)
    finally:
        sys.stdout, sys.stderr = real


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (docs: `register-python-argcomplete plait`)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WorkflowError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    except LedgerError as err:
        print(f"plait: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, PluginError) as err:
        print(f"plait: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in plait: said in one line, its traceback kept in a file for the report
        print(f"plait: internal error: {type(err).__name__}: {err}\n  hint: this is a bug in plait, not in your "
              f"workflow; what the run recorded is kept (plait status shows it). The traceback is in "
              f"{_keep_traceback()}: please report it", file=sys.stderr)
        return EXIT_INTERNAL


def _keep_traceback() -> str:
    """Write the exception being handled, masked, to a file of its own in the temporary folder; return its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="plait-internal-error-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as file:
        file.write(mask(traceback.format_exc()))
    return path


if __name__ == "__main__":
    sys.exit(main())
