"""The `shell` task kind: run one command with `/bin/sh` in the workspace.

Decisions:
- The command arrives rendered with every substituted value shell-quoted (the field renders as
  "shell"), so an item such as `; rm -rf ~` stays one argument. This module adds no quoting.
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
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

from plait.tasks.base import Field, TaskContext, task

__all__ = ["FIELDS", "LOG_LINES", "CommandFailed", "check_inputs", "run_shell"]

LOG_LINES = 50
TAIL_LINES = 20
TAIL_CHARS = 2000

FIELDS = {
    "command": Field(types=(str,), required=True, render="shell",
                     doc="a /bin/sh command line; substituted values are quoted for you"),
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


def check_inputs(inputs: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Refuse a `{{ … }}` written inside the command's own quotes.

    plait quotes every substituted value itself; inside the user's double quotes that quoting
    becomes literal text and `$(…)` in a value would run again. So a value must stand bare.
    """
    command = inputs.get("command")
    if isinstance(command, str) and (quote := _quoted_substitution(command)):
        return [("command", f"a {{{{ … }}}} stands inside {quote} quotes in the command",
                 "remove those quotes: plait quotes every substituted value itself (write `echo {{ item }}`)")]
    return []


def _quoted_substitution(command: str) -> str | None:
    """Return "single" or "double" when a `{{` opens inside quotes, else None."""
    quote: str | None = None
    i = 0
    while i < len(command):
        if command.startswith("{{", i):
            if quote:
                return "single" if quote == "'" else "double"
            end = command.find("}}", i)
            i = len(command) if end < 0 else end + 2
            continue
        char = command[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        i += 1
    return None


@task("shell", fields=FIELDS, check=check_inputs, own_timeout=True)
def run_shell(config: dict[str, Any], item: Any, ctx: TaskContext) -> dict[str, Any]:
    """Run a shell command in the workspace; return its stdout, stderr and exit code."""
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_env_strings(config["env"])} if config.get("env") else None
    exit_code, stdout, stderr = _run(config["command"], ctx, env)
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
    with subprocess.Popen(command, shell=True, cwd=ctx.workspace, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
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
