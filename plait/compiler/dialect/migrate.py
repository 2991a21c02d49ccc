"""`plait migrate`: the native text of a workflow written for the original engine.

The text is the translation `plait compile` runs (`translate`), written out by `emit.to_yaml` with
the source's comments, so the migrated file compiles to the same plan as the original file
(the same nodes, edges and step definitions; only positions and the file's path differ). The
original file is compiled first, so that what is wrong is reported in it; the text is then
checked before it is returned: it must load back to the translated values and compile.

The file is read as the original dialect whatever it holds, since list order must be written
out as `after:`; a file with nothing of the original's own gets a note saying so. With
`flows:`, the text holds the chosen flow (the default flow, or `flow=` among the params): its
steps, in its order. The `flow` parameter, which only chose steps, is left out and the flow is
named in the header comment; `plait migrate --flow NAME` writes another flow's file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from plait.compiler.compile import compile_text, in_file_order, read_workflow
from plait.compiler.diagnostics import WorkflowError
from plait.compiler.dialect.detect import is_original
from plait.compiler.dialect.emit import to_yaml
from plait.compiler.dialect.translate import Note, translate
from plait.compiler.dialect.tree import plain
from plait.compiler.loader import load_yaml

__all__ = ["migrate"]

_WIDTH = 98  # the header's notes, wrapped as a person would


def migrate(source: str | Path, params: Mapping[str, Any] | None = None) -> tuple[str, list[Note]]:
    """Return (the native YAML text, the notes) for a workflow file of the original engine.

    Raises WorkflowError for a file that cannot be translated, or whose translation does not compile.
    """
    text, filename, base_dir, _ = read_workflow(source)
    compile_text(text, filename, base_dir, params)  # what is wrong is reported in the user's own file
    doc = load_yaml(text, filename)
    translated = translate(doc, params or {})
    if translated.errors:  # a native file, whose own checks passed, that the original's rules refuse
        raise WorkflowError(in_file_order(translated.errors))
    tree, notes = translated.tree, translated.notes
    if not is_original(doc):
        notes.insert(0, Note(None, f"{filename} has nothing specific to the original engine; its list order is "
                                   "written out as `after:`"))
    flow = translated.flow
    if flow is not None:  # the `flow` parameter only chose the steps: the text holds that flow's
        del tree["params"]["flow"]
        if not tree["params"]:
            del tree["params"]
    params = {k: v for k, v in (params or {}).items() if k != "flow"}
    header = [f"Migrated by `plait migrate` from {Path(filename).name}" + (f", flow '{flow}'." if flow else ".")]
    for note in notes:
        header += textwrap.wrap(f"note: {note.message}", width=_WIDTH, subsequent_indent="  ")
    native = to_yaml(tree, text, header)
    if yaml.safe_load(native) != plain(tree):
        raise AssertionError(f"plait migrate wrote text that does not load back to the translation of {filename}")
    try:
        compile_text(native, f"{filename} (migrated)", base_dir, params)
    except WorkflowError as err:
        raise AssertionError(f"plait migrate wrote text that does not compile:\n{err}") from err
    return native, notes
