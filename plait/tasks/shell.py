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
- Output is read as it comes, and is bounded by what a node may return (`--max-result-size`,
  `ctx.max_result_bytes`): a command that prints more is killed and fails its node
  (`OutputTooLarge`), so a command printing gigabytes costs at most that much memory, and the run
  goes on. Bytes that are not UTF-8 are kept as Python's `surrogateescape` keeps them (the result
  stores them as `\\udcXX` escapes), so no output fails a node for its encoding.
- Output goes to the node's logger at DEBUG, at most `LOG_LINES` lines per stream: a chatty
  command must not flood the log. The full text is in the result, and the node's output
  (`plait logs`) keeps the tail of each stream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from plait.limits import size_text
from plait.shell_template import PREFIX, ShellCommand, position
from plait.tasks.base import Field, TaskContext, task
from plait.templating import shell_refusals

__all__ = ["FIELDS", "LOG_LINES", "CommandFailed", "OutputTooLarge", "check_inputs", "run_shell"]

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


class OutputTooLarge(ValueError):
    """A command printed more than one node may return; it was killed."""


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
    sys.stdout.write(stdout)  # the node's output while plait runs it (plait.runtime.output)
    sys.stderr.write(stderr)
    _log_lines(ctx.logger, "stdout", stdout)
    _log_lines(ctx.logger, "stderr", stderr)
    if exit_code != 0:
        raise CommandFailed(exit_code, _tail(stderr))
    return {"stdout": stdout, "stderr": stderr, "exit_code": exit_code}


def _env_strings(env: Mapping[str, Any]) -> dict[str, str]:
    """Return `env` with every value as text (YAML reads `PORT: 8080` as a number)."""
    return {str(name): str(value) for name, value in env.items()}


def _run(command: str, ctx: TaskContext, env: dict[str, str] | None) -> tuple[int, str, str]:
    """Run `command`; return (exit code, stdout, stderr). Raise TimeoutError after `ctx.timeout` s, and
    OutputTooLarge when it prints more than `ctx.max_result_bytes`."""
    try:
        process = subprocess.Popen(["/bin/sh", "-c", command], cwd=ctx.workspace, env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
    except OSError as err:
        if err.errno != errno.E2BIG:
            raise
        size = len(command) + sum(len(k) + len(v) for k, v in (env or {}).items())
        raise ValueError(f"the command and its values ({size:,} characters) are more than the system passes to "
                         "a process; write large values to a file (a `file` task) and pass its path") from None
    with process:
        try:
            stdout, stderr = _read(process, ctx.timeout, ctx.max_result_bytes)
        except BaseException:
            _kill_group(process)
            raise
    return process.returncode, _text(stdout), _text(stderr)


def _read(process: subprocess.Popen[bytes], timeout: float | None, limit: int) -> tuple[bytes, bytes]:
    """Read both output pipes to their end and reap the command, within `timeout` and `limit` bytes in all."""
    deadline = None if timeout is None else time.monotonic() + timeout
    assert process.stdout is not None and process.stderr is not None
    read: dict[IO[bytes], bytearray] = {process.stdout: bytearray(), process.stderr: bytearray()}
    total = 0
    with selectors.DefaultSelector() as selector:
        for pipe in read:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"command timed out after {timeout:g} s")
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                read[key.fileobj] += chunk
                total += len(chunk)
                if total > limit:
                    raise OutputTooLarge(f"the command printed more than {size_text(limit)}, all that one node may "
                                         "return (--max-result-size); it was stopped. Write large output to a file "
                                         "in the workspace (`> out.txt`) and print its path")
    try:
        process.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"command timed out after {timeout:g} s") from None
    return bytes(read[process.stdout]), bytes(read[process.stderr])


def _text(data: bytes) -> str:
    """Decode output as UTF-8, keeping any other byte as `surrogateescape` does."""
    return data.decode("utf-8", "surrogateescape")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
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
