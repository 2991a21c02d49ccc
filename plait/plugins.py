"""Task kinds from outside plait: `--plugin MODULE` on the command line, and installed entry points.

A plugin is a module that registers task kinds with `@plait.task` when it is imported. The
command line imports each `--plugin` module before it compiles, with the current folder first on
`sys.path` (as `python -m` has it); installed packages declare theirs in the entry-point group
`plait.tasks`, loaded when a workflow first names their kind (`plait.tasks.base`).

Worker processes need nothing more: a step's handler is sent to them by reference (its module's
name and its own), and unpickling it imports that module there; loky's workers and a local Dask
cluster's start with the parent's `sys.path`. Workers of a remote Dask cluster must have the
plugin installed, as any module their tasks import (docs/tasks.md).

This module is small and imports nothing heavy: `plait status` reads it too.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["PluginError", "load_modules"]


class PluginError(Exception):
    """A plugin (a `--plugin` module, or an entry point of `plait.tasks`) that cannot be loaded."""


def load_modules(modules: list[str] | None) -> None:
    """Import each plugin module, the current folder first on `sys.path`. Raises PluginError."""
    if not modules:
        return
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:
            if isinstance(err, ModuleNotFoundError) and err.name == name.split(".")[0]:
                hint = (f"give a module's name (mypkg.kinds for mypkg/kinds.py, not a path), importable from "
                        f"the current folder ({here}) or installed")
            else:
                hint = f"the module failed while it was imported; see it with `python -c 'import {name}'`"
            raise PluginError(f"--plugin {name}: cannot import it: {type(err).__name__}: {err}\n  hint: {hint}") \
                from err
