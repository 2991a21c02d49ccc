"""The original engine's dialect: read its workflow files by translating them into plait's own form.

The YAML Workflow Engine (PyPI `yaml-workflow`) that plait grew from has users with files today.
`is_original` tells such a file from a native one, and `translate` rewrites its loaded tree into
a native tree, positions kept, so every later check points into the user's own file and the
compiler has one input language. `plait migrate` writes that native tree back out as YAML
(`emit.to_yaml`, comments kept), which is why the translation is a tree and not a plan.
"""

from __future__ import annotations

from plait.compiler.dialect.detect import is_original
from plait.compiler.dialect.translate import Note, Translation, translate

__all__ = ["Note", "Translation", "is_original", "translate"]
