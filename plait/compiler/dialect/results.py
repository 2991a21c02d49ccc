"""Where the original engine's result shapes differ from plait's, and how reads of them are rewritten.

The original wrapped some results (`read_file` gave `{path, content}`, `read_json` gave `{data}`,
a batch gave `{processed, failed, results, stats}`) and
named a shell's exit code `return_code` (`returncode` for python_module and python_script, which
plait runs as shell commands); plait's kinds return the value itself and `exit_code`.
A template that reads `steps.X.result.content` is rewritten to `steps.X.result`, and so on, so the
value read is the same. Inline code reads `steps` as a mapping the translator cannot follow, so a
python_code step that names another step gets `steps` bound in its `kwargs`, in the original's
shapes, built from templates over plait's results (`code_view`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FIELDS", "as_original", "code_view", "rewrite_reads"]

# original kind -> {field of the original's result: what it is in plait's result, "" for the result itself}
FIELDS: dict[str, dict[str, str]] = {
    "shell": {"return_code": "exit_code", "stdout": "stdout", "stderr": "stderr"},
    "python_module": {"returncode": "exit_code", "stdout": "stdout", "stderr": "stderr"},
    "python_script": {"returncode": "exit_code", "stdout": "stdout", "stderr": "stderr"},
    "read_file": {"content": ""},
    "read_json": {"data": ""},
    "read_yaml": {"data": ""},
}

_READ = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)\.result\.([A-Za-z_][A-Za-z0-9_]*)")


def rewrite_reads(text: str, kinds: Mapping[str, str]) -> str:
    """Rewrite `steps.X.result.field` reads of the original's wrapped results into plait's shapes."""

    def replace(match: re.Match[str]) -> str:
        step, field = match.group(1), match.group(2)
        kind = kinds.get(step)
        if kind == "batch" and field == "results":
            return f"steps.{step}.results"
        target = FIELDS.get(kind or "", {}).get(field)
        if target is None:
            return match.group(0)
        return f"steps.{step}.result" + (f".{target}" if target else "")

    return _READ.sub(replace, text) if "steps." in text else text


def as_original(kind: str, result: Any) -> Any:
    """Return plait's result of an original `kind` with the original's names added (`return_code` beside `exit_code`).

    For Python callers that read a result the way the original's API gave it; a result that the
    original wrapped (`{content}`, `{data}`) is plait's value itself, and stays so.
    """
    fields = FIELDS.get(kind, {})
    if not isinstance(result, dict) or not all(target for target in fields.values()):
        return result
    return {**result, **{name: result[target] for name, target in fields.items() if target in result}}


def code_view(code: str, kinds: Mapping[str, str], items: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return `steps` in the original's shapes for the steps `code` names, as templates; None if it names none.

    `items` gives each batch step's items (a template or a list), for the original's `processed`.
    A batch that a downstream step sees has succeeded whole (a failed item fails its step, unless
    a budget allows it, and then its result is null), so `failed` is empty.
    """
    if "steps" not in code:
        return None
    named = [step for step in kinds if re.search(rf"""["']{re.escape(step)}["']""", code)]
    if not named:
        return None
    view: dict[str, Any] = {}
    for step in named:
        kind = kinds[step]
        if kind == "batch":
            results = f"{{{{ steps.{step}.results }}}}"
            view[step] = {"result": {"results": results, "processed": items.get(step), "failed": [],
                                     "stats": {"total": f"{{{{ steps.{step}.results | length }}}}",
                                               "processed": f"{{{{ steps.{step}.results | length }}}}",
                                               "failed": 0}}}
        elif kind in FIELDS:
            view[step] = {"result": {field: f"{{{{ steps.{step}.result{'.' + target if target else ''} }}}}"
                                     for field, target in FIELDS[kind].items()}}
        else:
            view[step] = {"result": f"{{{{ steps.{step}.result }}}}"}
    return view
