"""The samples example's steps: map one replicate's reads, then merge one sample's replicates."""

from __future__ import annotations

import json


def map_reads(sample: str, rep: int, ctx) -> dict:
    """Read `reads/SAMPLE-REP.txt` beside the workflow; write and return its counts."""
    reads = (ctx.workflow_dir / "reads" / f"{sample}-{rep}.txt").read_text().split()
    bases = "".join(reads)
    counts = {"sample": sample, "rep": rep, "reads": len(reads), "bases": len(bases),
              "gc": sum(b in "GC" for b in bases)}
    out = ctx.path(f"mapped/{sample}-{rep}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(counts))
    return counts


def merge(sample: str, parts: list, ctx) -> dict:
    """Add up one sample's replicates (the results of its own map_reads nodes, in replicate order)."""
    merged = {"sample": sample, "replicates": [p["rep"] for p in parts],
              "reads": sum(p["reads"] for p in parts),
              "gc_fraction": round(sum(p["gc"] for p in parts) / sum(p["bases"] for p in parts), 4)}
    out = ctx.path(f"merged/{sample}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged))
    return merged
