"""The scatter example's steps: count a file's chunks, count each chunk's words, add each file's up."""

from __future__ import annotations

import json
from pathlib import Path


def chunks(path: str, lines: int) -> int:
    """Return how many chunks of `lines` lines the file at `path` makes: known only once it is read."""
    count = len(Path(path).read_text().splitlines())
    return -(-count // lines)


def count_words(chunk: int, path: str, lines: int) -> dict:
    """Count the words of chunk number `chunk` of the file at `path`."""
    part = Path(path).read_text().splitlines()[chunk * lines:(chunk + 1) * lines]
    return {"chunk": chunk, "lines": len(part), "words": sum(len(line.split()) for line in part)}


def gather(file: str, parts: list, ctx) -> dict:
    """Add up one file's chunks (the results of its own children, in chunk order); write and return the total."""
    total = {"file": file, "chunks": len(parts), "lines": sum(p["lines"] for p in parts),
             "words": sum(p["words"] for p in parts)}
    out = ctx.path(f"counts/{file}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(total))
    return total
