"""The `file` task kind: read, write, append, copy, move or delete one file inside the workspace.

Decisions:
- Every path goes through `TaskContext.path`, which resolves it (symlinks included) and refuses
  anything outside the workspace with PermissionError: `../x`, `/etc/passwd`, a link pointing out.
  A consequence: a symlink inside the workspace stands for its target, so deleting it deletes
  the file it points to.
- Text is written as given; any other value as JSON (indent 2) with a final newline, so a step
  can save an upstream result without a template. Bytes are counted as encoded.
- Files are read and written as bytes and decoded/encoded explicitly: no newline translation,
  so `bytes` is exactly what landed on disk.
- `read_json` and `read_yaml` return the parsed value (YAML through the safe loader: no tag builds
  a Python object); `write_json` and `write_yaml` always encode `content`, text included, so a
  string lands as a JSON or YAML string and reads back as the same value.
- Writing creates missing parent folders; deleting a missing file is not an error (`deleted: false`),
  so a clean-up step can be re-run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from plait.tasks.base import Field, TaskContext, task

__all__ = ["ACTIONS", "FIELDS", "check_inputs", "run_file"]

ACTIONS = ("read", "read_json", "read_yaml", "write", "write_json", "write_yaml", "append", "copy", "move",
           "delete")
DEFAULT_ENCODING = "utf-8"

FIELDS = {
    "action": Field(types=(str,), required=True, choices=ACTIONS, doc="one of " + ", ".join(ACTIONS)),
    "path": Field(types=(str,), required=True, doc="a path inside the workspace"),
    "content": Field(types=(object,), doc="what to write: text as is, any other value as JSON"),
    "to": Field(types=(str,), doc="where `copy` and `move` put the file, inside the workspace"),
    "encoding": Field(types=(str,), doc=f"the text encoding, {DEFAULT_ENCODING} unless given"),
}

_NEEDS = {"write": "content", "write_json": "content", "write_yaml": "content", "append": "content",
          "copy": "to", "move": "to"}


def check_inputs(inputs: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Require `content` for the writes and append and `to` for copy and move, and nowhere else."""
    action = inputs.get("action")
    if action not in ACTIONS:
        return []  # the field table reports a missing or unknown action
    needed = _NEEDS.get(action)
    problems = []
    if needed and inputs.get(needed) is None:
        message = f"a 'file' task with action '{action}' needs '{needed}'"
        problems.append((needed, message, f"add `{needed}:`"))
    for name in sorted({"content", "to"} - {needed}):
        if inputs.get(name) is not None:
            users = ", ".join(a for a, n in _NEEDS.items() if n == name)
            problems.append((name, f"'{name}' is not used by action '{action}'", f"used only by {users}"))
    return problems


@task("file", fields=FIELDS, check=check_inputs)
def run_file(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    """Read, write, append, copy, move or delete a file in the workspace."""
    action, path = config["action"], config["path"]
    encoding = config.get("encoding") or DEFAULT_ENCODING
    target = ctx.path(path)
    if action.startswith("read"):
        text = target.read_bytes().decode(encoding)
        return json.loads(text) if action == "read_json" else yaml.safe_load(text) if action == "read_yaml" else text
    if action in ("write", "append", "write_json", "write_yaml"):
        content = config["content"]
        if action == "write_json":
            content = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        elif action == "write_yaml":
            content = yaml.safe_dump(content, allow_unicode=True, sort_keys=False)
        return {"path": path, "bytes": _write(target, content, encoding, append=action == "append")}
    if action in ("copy", "move"):
        _copy(target, ctx.path(config["to"]))
        if action == "move":
            target.unlink()
        return {"path": path, "to": config["to"]}
    if action == "delete":
        return {"path": path, "deleted": _delete(target)}
    raise ValueError(f"file action '{action}' is not one of {', '.join(ACTIONS)}")


def _write(target: Path, content: Any, encoding: str, *, append: bool) -> int:
    """Write `content` to `target` (text as is, other values as JSON); return the bytes written."""
    text = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    data = text.encode(encoding)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("ab" if append else "wb") as stream:
        stream.write(data)
    return len(data)


def _copy(source: Path, destination: Path) -> None:
    """Copy one file, with its times and mode, creating the destination's folders."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)


def _delete(target: Path) -> bool:
    """Delete one file; return False when there was none."""
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True
