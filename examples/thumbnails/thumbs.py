"""Helpers for the thumbnails example: "thumbnail" a text file by keeping its first few characters.

A real workflow would resize images with Pillow; this one shortens text files so that it runs
with the standard library alone. The function writes only inside the run's workspace.
"""

from __future__ import annotations

from pathlib import Path


def thumbnail(path: str, size: int, ctx) -> dict:
    """Write the first `size` characters of `path` to thumbs/<name> in the workspace; describe it."""
    source = Path(path)
    text = source.read_text(encoding="utf-8")
    short = " ".join(text.split())  # one line
    if len(short) > size:
        short = short[:size].rsplit(" ", 1)[0] + " …"  # cut at a word boundary
    target = ctx.path(f"thumbs/{source.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(short + "\n", encoding="utf-8")
    ctx.logger.info("{} -> {} ({} of {} characters)", source.name, target.name, len(short), len(text))
    return {"photo": source.name, "thumbnail": f"thumbs/{source.name}", "chars": len(short),
            "original_chars": len(text)}
