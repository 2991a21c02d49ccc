"""The `template` task kind: render a Jinja2 template to text, and optionally save it in the workspace.

Decisions:
- The template is left raw by the compiler and rendered here, once per node, with
  `plait.templating.render_text`: the same sandbox (`''.__class__` is refused with SecurityError),
  the same strict undefined names, filters and per-process compile cache as every other
  template in a workflow. There is no second Jinja environment to keep in step.
- The result is always text, trailing newlines kept; `whitespace: trim` renders as the original
  engine did (Jinja's trim_blocks and lstrip_blocks, no final line break), for its files.
- `template_file` is read relative to the workflow's folder, where the YAML sits; it is read
  anew for each node, so editing it between runs takes effect. `output_file` is written inside
  the workspace (through `TaskContext.path`), as UTF-8, creating its folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.tasks.base import Field, TaskContext, task
from plait.templating import render_limits, render_text

__all__ = ["FIELDS", "check_inputs", "run_template"]

FIELDS = {
    "template": Field(types=(str,), render="raw", doc="the Jinja2 template text"),
    "template_file": Field(types=(str,), render="value",
                           doc="a template file, relative to the workflow's folder"),
    "output_file": Field(types=(str,), render="value",
                         doc="where to save the text in the workspace; without it, the text is the result"),
    "whitespace": Field(types=(str,), choices=("keep", "trim"),
                        doc="keep (default): the text as written; trim: block tags leave no blank lines and the "
                            "final line break goes, as the original engine rendered"),
}


def check_inputs(inputs: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Require exactly one of `template` and `template_file`."""
    given = [name for name in ("template", "template_file") if inputs.get(name) is not None]
    if not given:
        return [(None, "a 'template' task needs 'template' or 'template_file'",
                 "add `template: |` with the text, or `template_file:` with a path beside the workflow")]
    if len(given) == 2:
        return [("template_file", "a 'template' task takes 'template' or 'template_file', not both",
                 "keep one of them")]
    return []


@task("template", fields=FIELDS, check=check_inputs)
def run_template(config: dict[str, Any], item: Any, ctx: TaskContext) -> Any:
    """Render a Jinja2 template; return the text, or save it to `output_file` and return its size."""
    source = config.get("template")
    if source is None:
        source = (ctx.workflow_dir / config["template_file"]).read_text(encoding="utf-8")
    with render_limits(ctx.timeout):  # the node's timeout bounds the render (10 s without one)
        text = render_text(source, ctx.template_context(item), trim=config.get("whitespace") == "trim")
    output_file = config.get("output_file")
    if output_file is None:
        return text
    target = ctx.path(output_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    target.write_bytes(data)
    return {"path": output_file, "bytes": len(data)}
