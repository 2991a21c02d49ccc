"""The `shell` task kind: run one command with `/bin/sh` in the workspace.

Decisions:
- The command arrives rendered as a `ShellCommand` (the field renders as "shell"): a script whose
  every `{{ … }}` is a reference such as `"${PLAIT_V1}"`, and the values, which travel as
  environment variables. No value is ever part of the text `/bin/sh` parses, so an item such as
  `; rm -rf ~` or `$(touch x)` is data in any context: a bare word, the command's own quotes, a
  heredoc, a comment (`plait.shell_template`). The places where even a reference would be code
  (shell arithmetic, `eval`, `sh -c`, …) are refused at compile time (`check_inputs`, with
  `plait.shell_syntax`). A command without templates arrives as plain text.
- The command runs in its own session, so it and everything it starts form one process group.
  On timeout the whole group gets SIGKILL *before* the shell is reaped: killing only the shell
  (what `subprocess.run` does) leaves `cmd &` children running, holding the output pipes open.
  That is why this uses `Popen` directly rather than `subprocess.run`.
- stdin is /dev/null: a command that reads its input must not hang, or take the runner's.
- A non-zero exit raises `CommandFailed`, which carries `exit_code` and `stderr_tail` as data
  for the error record and for `retry_on_exit_codes`; it pickles, so it crosses process pools.
- Output goes to the node's logger at DEBUG, at most `LOG_LINES` lines per stream: a chatty
  command must not flood the log. The full text is in the result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

from plait.shell_template import PREFIX, ShellCommand, position
from plait.tasks.base import Field, TaskContext, task
from plait.templating import shell_refusals

__all__ = ["FIELDS", "LOG_LINES", "CommandFailed", "check_inputs", "run_shell"]

LOG_LINES = 50
TAIL_LINES = 20
TAIL_CHARS = 2000

FIELDS = {
    "command": Field(types=(str,), required=True, render="shell",
                     doc="a /bin/sh command line; every {{ }} value reaches it as data, never as code"),
    "env": Field(types=(dict,), render="value", doc="environment variables added to plait's own"),
}


class CommandFailed(Exception):
    """A command exited with a non-zero code; carries `exit_code` and `stderr_tail`."""

    def __init__(self, exit_code: int, stderr_tail: str) -> None:
        last_line = stderr_tail.rstrip().rpartition("\n")[2]
        if exit_code < 0:
            message = f"command was killed by signal {-exit_code}"
        else:
            message = f"command exited with code {exit_code}"
        super().__init__(f"{message}: {last_line}" if last_line else message)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail

    def __reduce__(self) -> tuple[type[CommandFailed], tuple[int, str]]:
        return CommandFailed, (self.exit_code, self.stderr_tail)


_RESERVED = re.compile(rf"^{PREFIX}\d+$")


def check_inputs(inputs: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Refuse a `{{ … }}` where even a reference to its value would be code, and env names plait uses."""
    problems: list[tuple[str | None, str, str | None]] = []
    command = inputs.get("command")
    if isinstance(command, str):
        for offset, message, hint in shell_refusals(command):
            problems.append(("command", f"{message}: {_excerpt(command, offset)}", hint))
    env = inputs.get("env")
    if isinstance(env, Mapping):
        for name in env:
            if _RESERVED.match(str(name)):
                problems.append(("env", f"the environment variable '{name}' is plait's own",
                                 f"plait passes the command's values as {PREFIX}1, {PREFIX}2, …; choose another name"))
    return problems


def _excerpt(command: str, offset: int) -> str:
    """Return "`{{ x }}` at line 2, column 5 of the command" for the value at `offset`."""
    end = command.find("}}", offset)
    shown = command[offset:end + 2 if end >= 0 else offset + 40]
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    return f"`{shown}` at {position(command, offset)} of the command"


@task("shell", fields=FIELDS, check=check_inputs, own_timeout=True)
def run_shell(config: dict[str, Any], item: Any, ctx: TaskContext) -> dict[str, Any]:
    """Run a shell command in the workspace; return its stdout, stderr and exit code."""
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    command = config["command"]
    if not isinstance(command, ShellCommand):
        command = ShellCommand(command)
    ctx.logger.debug("command: {}", command)
    extra = {**_env_strings(config.get("env") or {}), **command.env}
    exit_code, stdout, stderr = _run(command.script, ctx, {**os.environ, **extra} if extra else None)
    _log_lines(ctx.logger, "stdout", stdout)
    _log_lines(ctx.logger, "stderr", stderr)
    if exit_code != 0:
        raise CommandFailed(exit_code, _tail(stderr))
    return {"stdout": stdout, "stderr": stderr, "exit_code": exit_code}


def _env_strings(env: Mapping[str, Any]) -> dict[str, str]:
    """Return `env` with every value as text (YAML reads `PORT: 8080` as a number)."""
    return {str(name): str(value) for name, value in env.items()}


def _run(command: str, ctx: TaskContext, env: dict[str, str] | None) -> tuple[int, str, str]:
    """Run `command`; return (exit code, stdout, stderr). Raise TimeoutError after `ctx.timeout` s."""
    try:
        process = subprocess.Popen(["/bin/sh", "-c", command], cwd=ctx.workspace, env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
    except OSError as err:
        if err.errno != errno.E2BIG:
            raise
        size = len(command) + sum(len(k) + len(v) for k, v in (env or {}).items())
        raise ValueError(f"the command and its values ({size:,} characters) are more than the system passes to "
                         "a process; write large values to a file (a `file` task) and pass its path") from None
    with process:
        try:
            stdout, stderr = process.communicate(timeout=ctx.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise TimeoutError(f"command timed out after {ctx.timeout:g} s") from None
        except BaseException:
            _kill_group(process)
            raise
    return process.returncode, stdout, stderr


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the command's whole process group, then reap the shell."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """Return the last `lines` lines of `text`, cut to its last `chars` characters."""
    return "\n".join(text.splitlines()[-lines:])[-chars:]


def _log_lines(logger: Any, stream: str, text: str) -> None:
    """Log the first LOG_LINES lines of `text` at DEBUG, then how many were left out."""
    lines = text.splitlines()
    for line in lines[:LOG_LINES]:
        logger.debug("{}: {}", stream, line)
    if len(lines) > LOG_LINES:
        logger.debug("{}: … {} more lines", stream, len(lines) - LOG_LINES)
