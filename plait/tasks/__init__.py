"""Task kinds: the handlers plait ships and the registry users extend with `@plait.task`."""

from plait.tasks import basic, file, python, shell, template  # noqa: F401  (each registers its kind)
from plait.tasks.base import ENTRY_POINTS, Field, TaskContext, TaskKind, get_kind, kinds, say, task

__all__ = ["ENTRY_POINTS", "Field", "TaskContext", "TaskKind", "get_kind", "kinds", "say", "task"]
