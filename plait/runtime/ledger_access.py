"""Opening a workspace's ledger file, and what SQLite's failures become: a LedgerError that names the way out.

Decisions:
- WAL mode, so `plait status` reads while a run writes, and `synchronous=NORMAL`: a committed
  transaction survives the process being killed at any instant (it is in the WAL); only a power
  loss may take the last transactions back, never corrupt the file.
- A run opens the ledger for writing and upgrades it to this schema (plait.runtime.ledger_schema);
  a reader (status, logs, reports) opens it read-only and reads an older schema through temporary
  tables, so reading a workspace never changes it. On a read-only disk the file is read as immutable.
- A write first checks that the path still names the file it opened (`writing`): a task that
  deletes `.plait/ledger.db` under a run stops the run loudly rather than letting it record into
  a deleted file.
- A full, read-only or failing disk is named as such (the ledger is not damaged); anything else
  SQLite cannot read is named damaged, with the way out (move it away, or `--fresh`).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plait.runtime.ledger_schema import emulate, upgrade

__all__ = ["LedgerError", "LedgerFile", "connect_readonly", "disk_trouble", "readable", "writing"]


class LedgerError(Exception):
    """The ledger cannot be used: corrupt, from another workflow, or not writable."""


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a ledger for reading only; as an immutable file on a read-only disk.

    SQLite reads a WAL database through a shared-memory file beside it, which it cannot create on a
    read-only disk; nothing can be writing a ledger there, so reading it as immutable is sound.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK) and not _read_only_mount(path):
            raise
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=30)
    return db


def _read_only_mount(path: Path) -> bool:
    """Say whether the filesystem holding `path` is mounted read-only (root may write anywhere else)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def disk_trouble(err: sqlite3.Error) -> bool:
    """Say whether SQLite's error is the disk's (full, read-only, I/O), not the ledger's content."""
    text = str(err)
    return any(word in text for word in ("full", "readonly", "read-only", "I/O"))


def readable(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SQLite's errors while reading ("database disk image is malformed", ...) into a LedgerError."""

    @functools.wraps(method)
    def read(self: LedgerFile, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            raise self.damaged(err) from err

    return read


def writing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Check the ledger is still the file it opened, then write; turn SQLite's errors into a LedgerError that says why.

    A task may delete or replace `.plait/ledger.db` under a run (a shell command can do anything):
    SQLite would go on writing into the deleted file and the run would end "succeeded" with
    nothing kept. So every write first checks that the path still names the file this connection
    opened (one `stat` a commit), and stops the run loudly when it does not.
    """

    @functools.wraps(method)
    def write(self: LedgerFile, *args: Any, **kwargs: Any) -> Any:
        self._check_identity()
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise self.cannot_write(err) from err

    return write


class LedgerFile:
    """A connection to one workspace's ledger file: opened, checked before each write, its errors explained."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None
        try:
            if readonly:
                self.db = connect_readonly(self.path)
                emulate(self.db)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                upgrade(self.db)
                stat = os.stat(self.path)
                self._identity = (stat.st_dev, stat.st_ino)
        except sqlite3.DatabaseError as err:
            raise (self.cannot_write(err) if not readonly and disk_trouble(err) else self.damaged(err)) from err

    def damaged(self, err: sqlite3.DatabaseError) -> LedgerError:
        """Return the error for a ledger SQLite cannot read, with the way out."""
        if disk_trouble(err):
            return LedgerError(f"the ledger {self.path} cannot be used: {err}: the disk is full, read-only or "
                               "failing (the ledger is not damaged); fix the disk and try again")
        return LedgerError(f"the ledger {self.path} cannot be used: {err}. If it is damaged, move it away "
                           "(or run with --fresh) to start over")

    def cannot_write(self, err: sqlite3.Error) -> LedgerError:
        """Return the error for a write SQLite refused, naming a full or read-only disk when that is the cause."""
        text = str(err)
        if "full" in text:
            why = f"the disk holding {self.path.parent} is full ({text}); free some space, then run again"
        elif "readonly" in text or "read-only" in text:
            why = f"{self.path} cannot be written ({text}: a read-only file or disk); make it writable, then run again"
        elif "I/O" in text:
            why = f"the disk holding {self.path.parent} failed a write ({text}: full, or failing?); then run again"
        elif isinstance(err, sqlite3.OperationalError) or "malformed" in text or "not a database" in text:
            why = f"{self.path}: {text}"
        else:
            why = text
        return LedgerError(f"writing the ledger failed: {why}: what the ledger recorded before is kept, and the "
                           "next run resumes from it")

    def _check_identity(self) -> None:
        """Raise LedgerError when the ledger's path no longer names the file this connection opened."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
            same = (stat.st_dev, stat.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            raise LedgerError(f"writing the ledger failed: {self.path} was deleted or replaced while the run was "
                              "going (by a task? tasks must leave .plait/ alone); nothing more this run does can be "
                              "recorded, so it stops")

    def close(self) -> None:
        """Close the connection (everything written is already committed)."""
        self.db.close()
