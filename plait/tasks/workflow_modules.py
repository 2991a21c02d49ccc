"""Modules beside a workflow, as one long-lived process sees several workflows' folders.

A workflow's helper modules sit beside its YAML (`function: helpers:f`, or `import helpers` in
`code:`), so its folder goes first on `sys.path`. A process that outlives one run (the API in a
notebook, a reused loky worker, a test suite) meets other workflows, whose folders may hold modules
of the same name; Python would keep the first one it imported under that name.

Decisions:
- `use_folder` keeps the folder of the workflow being run first on `sys.path`. When the folder
  first on it changes, the modules that another workflow's folder gave this process are forgotten
  (with their submodules), so that the next import finds this workflow's own. Folders change
  rarely (once per workflow, not once per node), so a node pays one comparison. The change is
  made under a lock, and the folder goes first only once the forgetting is done: a node on
  another thread (the threading backend) that finds its folder first imports nothing stale.
- `fresh` reloads a module whose source file changed since this process imported it: nodes re-run
  precisely because their code changed (their fingerprint hashes it), and must run the new code.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["fresh", "use_folder"]

_folders: set[str] = set()  # the workflow folders this process put on sys.path
_loaded: dict[str, tuple[int, int]] = {}  # module file -> (mtime_ns, size) of the source imported
_changing = threading.Lock()  # held while the folder first on sys.path changes


def use_folder(workflow_dir: Path) -> str:
    """Put the workflow's folder first on `sys.path`, forgetting modules of other workflows' folders; return it."""
    folder = str(workflow_dir)
    if sys.path[:1] != [folder]:
        with _changing:
            if sys.path[:1] != [folder]:
                _forget_modules_of(_folders - {folder})
                if folder in sys.path:
                    sys.path.remove(folder)
                sys.path.insert(0, folder)
                _folders.add(folder)
    return folder


def _forget_modules_of(folders: set[str]) -> None:
    """Drop from `sys.modules` each top-level module imported from one of `folders`, and its submodules."""
    if not folders:
        return
    tops = {name for name, module in list(sys.modules.items()) if "." not in name and _root(module) in folders}
    for name in [n for n in sys.modules if n.partition(".")[0] in tops]:
        del sys.modules[name]


def _root(module: ModuleType | None) -> str | None:
    """Return the folder a top-level module was imported from (a package's parent folder), or None."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    folder = os.path.dirname(file)
    return os.path.dirname(folder) if os.path.basename(file) == "__init__.py" else folder


def fresh(module: ModuleType) -> ModuleType:
    """Return `module`, reloaded when its source file changed since this process imported it."""
    path = getattr(module, "__file__", None)
    if not path:
        return module
    try:
        stat = os.stat(path)
    except OSError:
        return module
    seen = (stat.st_mtime_ns, stat.st_size)
    before = _loaded.setdefault(path, seen)
    if before != seen:
        module = importlib.reload(module)
        _loaded[path] = seen
    return module
