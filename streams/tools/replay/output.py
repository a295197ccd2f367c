"""What a replay writes: intents and audit records as JSON Lines, plus a summary, all deterministic
(sorted keys, records in a stable order, no wall-clock times), so two runs can be diffed."""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import orjson

from ...core import model

DUMP = orjson.OPT_SORT_KEYS


@contextmanager
def no_cyclic_gc():
    """A replay allocates millions of small records and keeps most of them (states, outputs), so
    the cyclic collector kept re-walking a growing heap for nothing (~25% of a run, half of writing
    its outputs): they hold no reference cycles, and reference counting frees them as usual.
    Switched back on afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def as_record(obj) -> dict:
    """A core record (dataclass) as the plain dict the Avro writer and our JSONL files carry."""
    return obj if isinstance(obj, dict) else orjson.loads(orjson.dumps(obj))


def _ms(value):
    if value is None or isinstance(value, int):
        return value
    return model.to_ms(value)


def intent_record(obj) -> dict:
    """An intent as a plain dict, times in epoch ms (records read back from Kafka carry datetimes)."""
    r = as_record(obj)
    if not isinstance(obj, dict):
        return r
    r = dict(r)
    for k in ("decided_at", "send_at", "expires_at"):
        r[k] = _ms(r.get(k))
    if isinstance(r.get("content"), dict):
        c = dict(r["content"])
        for k in ("window_start", "window_end"):
            c[k] = _ms(c.get(k))
        r["content"] = c
    return r


def audit_record(obj) -> dict:
    r = as_record(obj)
    if isinstance(obj, dict):
        r = {**r, "decided_at": _ms(r.get("decided_at"))}
    return r


def sorted_intents(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["decided_at"], r["intent_id"]))


def sorted_audit(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["decided_at"], r["audit_id"], r["decision"], r["reasons"]))


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "wb") as fh:
        for r in records:
            fh.write(orjson.dumps(r, option=DUMP))
            fh.write(b"\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def summarize(intents: list[dict], audit: list[dict], report: dict, extra: dict | None = None) -> dict:
    by_type = Counter(r["intent_type"] for r in intents)
    by_channel = Counter(r["channel"] for r in intents)
    by_type_channel = Counter(f"{r['intent_type']}/{r['channel']}" for r in intents)
    decisions = Counter(r["decision"] for r in audit)
    reasons = Counter(f"{r['decision']}:{r['reasons'][0] if r['reasons'] else '-'}" for r in audit)
    return {
        "input": report,
        "intents": len(intents),
        "audit": len(audit),
        "intents_by_type": dict(sorted(by_type.items())),
        "intents_by_channel": dict(sorted(by_channel.items())),
        "intents_by_type_and_channel": dict(sorted(by_type_channel.items())),
        "audit_by_decision": dict(sorted(decisions.items())),
        "audit_by_first_reason": dict(sorted(reasons.items())),
        **(extra or {}),
    }


def write_outputs(
    out_dir: str | Path,
    intents: list,
    audit: list,
    report: dict,
    rejected: list[tuple[str, str]] = (),
    extra: dict | None = None,
    scores: list | None = None,
    candidates: list | None = None,
    learned: dict | None = None,
    source: str = "",
    outcomes: dict | None = None,
) -> dict:
    """intents.jsonl, audit.jsonl, rejected.jsonl and summary.json in `out_dir`; returns the summary.
    In-process replays also write scores.jsonl (every delay assessment: order, phase, at, p_late,
    basis), candidates.jsonl (every candidate intent id the order stage proposed) and learned.json
    (the learned statistics, for a warm start: streams/core/warm.py) and, with experiments,
    outcomes.json (per experiment, arm and outcome: the total)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with no_cyclic_gc():
        intent_rows = sorted_intents([intent_record(i) for i in intents])
        audit_rows = sorted_audit([audit_record(a) for a in audit])
    write_jsonl(out / "intents.jsonl", intent_rows)
    write_jsonl(out / "audit.jsonl", audit_rows)
    write_jsonl(out / "rejected.jsonl", [{"id": i, "reason": r} for i, r in rejected])
    if scores is not None:
        write_jsonl(
            out / "scores.jsonl",
            [{"order_id": o, "phase": ph, "at": at, "p_late": p, "basis": b} for o, ph, at, p, b in sorted(scores)],
        )
    if candidates is not None:
        write_jsonl(
            out / "candidates.jsonl",
            sorted(
                ({"intent_id": c.intent_id, "intent_type": c.intent_type, "order_id": c.order_id} for c in candidates),
                key=lambda r: r["intent_id"],
            ),
        )
    if learned is not None:
        from ...core import warm

        (out / "learned.json").write_bytes(warm.dumps(learned, source))
    if outcomes is not None:  # (experiment, arm, outcome) -> total, as rows
        rows = [{"experiment": e, "arm": a, "outcome": o, "value": v} for (e, a, o), v in sorted(outcomes.items())]
        (out / "outcomes.json").write_bytes(orjson.dumps(rows, option=DUMP | orjson.OPT_INDENT_2) + b"\n")
    summary = summarize(intent_rows, audit_rows, report, extra)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=DUMP | orjson.OPT_INDENT_2) + b"\n")
    return summary
