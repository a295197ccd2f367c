"""Warm start: the statistics a replay of past orders learned (lane transit, promise-relative
transit, hand-off delays), so a shop going live does not start cold.

A replay writes them per partition (`learned.json`); here they are merged into one set (counts
summed over partitions), which every partition of a worker or a replay reads under its own: what a
partition learns itself is stored and takes over, the warm set is only the fallback (engine._PartitionView).
Pure: bytes in, dicts out; the caller reads the file.
"""

from __future__ import annotations

import orjson

FORMAT = "aftersale-learned/1"


def merge(per_partition: dict) -> dict:
    """{"<partition>|<key>": stats} -> {"<key>": stats}, counts summed, keys sorted."""
    merged: dict[str, dict] = {}
    for full_key in sorted(per_partition):
        stats = per_partition[full_key]
        _, _, key = full_key.partition("|")
        into = merged.get(key)
        if into is None:
            merged[key] = {"counts": list(stats["counts"]), "total": stats["total"]}
        else:
            into["counts"] = [a + b for a, b in zip(into["counts"], stats["counts"])]
            into["total"] += stats["total"]
    return dict(sorted(merged.items()))


def dumps(per_partition: dict, source: str) -> bytes:
    """The file a replay writes: the merged statistics and where they were learned."""
    return (
        orjson.dumps({"format": FORMAT, "source": source, "stats": merge(per_partition)}, option=orjson.OPT_SORT_KEYS)
        + b"\n"
    )


def loads(data: bytes) -> dict:
    """The statistics of a learned.json, as the `warm` mapping the order stage takes."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a learned-statistics file ({FORMAT})")
    stats = doc["stats"]
    for key, value in stats.items():
        if not isinstance(value, dict) or len(value.get("counts") or ()) == 0 or "total" not in value:
            raise ValueError(f"bad statistics for {key!r}")
    return stats
