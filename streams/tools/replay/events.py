"""Replay inputs: our own JSON Lines event log, an Olist folder, or simulated traffic, as one list of
events sorted by event time, each checked and converted to the core's record once, up front.

Both replay paths (in process, and through Kafka) take the same prepared list, so an event the core
would reject is rejected here for both, with a reason, and never fed or produced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ...core import model
from ...core.model import InvalidEvent

# The inputs a replay feeds (topic suffix -> what the key is, and the converter the worker uses).
INPUT_TOPICS = ("orders", "carrier-scans", "engagement", "support")
KEY_FIELD = {"orders": "order_id", "carrier-scans": "order_id", "engagement": "customer_id", "support": "customer_id"}
CONVERT = {
    "orders": model.order_event_from,
    "carrier-scans": model.carrier_scan_from,
    "engagement": model.engagement_event_from,
    "support": model.support_event_from,
}
SCHEMA_OF = {
    "orders": "io.aftersale.OrderEvent",
    "carrier-scans": "io.aftersale.CarrierScan",
    "engagement": "io.aftersale.EngagementEvent",
    "support": "io.aftersale.SupportEvent",
}
ORDER_TOPICS = frozenset({"orders", "carrier-scans"})


@dataclass(slots=True)
class ReplayEvent:
    topic: str  # topic suffix: orders, carrier-scans, engagement, support
    key: str
    record: dict  # the Avro-shaped record (what the Kafka path produces)
    event_time: int
    event: object = None  # the core record (OrderEvent, CarrierScan, ...), set by prepare()


@dataclass
class InputReport:
    """What was read, what was used, and what was not (with reasons): never fatal."""

    source: str
    kind: str  # jsonl | olist | simulated | events
    read: int = 0  # lines or rows looked at
    events: int = 0  # events accepted for the replay
    rejected: Counter = field(default_factory=Counter)  # reason -> events not replayed
    unjoined: Counter = field(default_factory=Counter)  # reason -> rows that did not join (Olist)
    missing_files: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # file -> rows read
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few ids, to look at
    notes: list[str] = field(default_factory=list)

    def reject(self, reason: str, ident: str = "?") -> None:
        self.rejected[reason] += 1
        self._example(reason, ident)

    def unjoin(self, reason: str, ident: str = "?") -> None:
        self.unjoined[reason] += 1
        self._example(reason, ident)

    def _example(self, reason: str, ident: str) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(str(ident))

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "read": self.read,
            "events": self.events,
            "rejected": dict(sorted(self.rejected.items())),
            "unjoined": dict(sorted(self.unjoined.items())),
            "missing_files": sorted(self.missing_files),
            "files": dict(sorted(self.files.items())),
            "examples": {k: v for k, v in sorted(self.examples.items())},
            "notes": list(self.notes),
        }


# --- Avro shape ------------------------------------------------------------------------------


def _normalizer(schema):
    """A function giving a value the shape of `schema` as the Avro writer would: unknown fields
    dropped, missing ones set to their default. What a record looks like after the Kafka round trip."""
    if isinstance(schema, list):  # a union: records are the only branch that needs reshaping
        records = [_normalizer(s) for s in schema if isinstance(s, dict) and s.get("type") in ("record", "array")]
        if not records:
            return None
        inner = records[0]
        return lambda v: inner(v) if isinstance(v, (dict, list)) else v
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            fields = [(f["name"], f.get("default", _MISSING), _normalizer(f["type"])) for f in schema["fields"]]

            def record(v):
                if not isinstance(v, dict):
                    return v
                out = {}
                for name, default, inner in fields:
                    value = v.get(name, default)
                    if value is _MISSING:
                        continue  # the converter reports it
                    out[name] = inner(value) if inner is not None and value is not None else value
                return out

            return record
        if kind == "array":
            inner = _normalizer(schema["items"])
            if inner is None:
                return None
            return lambda v: [inner(x) for x in v] if isinstance(v, list) else v
        if isinstance(kind, (dict, list)):
            return _normalizer(kind)
    return None


_MISSING = object()
_NORMALIZERS: dict = {}


def normalize(topic: str, record: dict) -> dict:
    fn = _NORMALIZERS.get(topic)
    if fn is None:
        from ...schemas import by_name

        fn = _NORMALIZERS[topic] = _normalizer(by_name(SCHEMA_OF[topic]).standalone)
    return fn(record)


def convert(topic: str, record: dict):
    """The core record of an input record, as the worker's codec would make it; raises InvalidEvent."""
    try:
        return CONVERT[topic](record)
    except InvalidEvent:
        raise
    except (TypeError, KeyError, ValueError, AttributeError):
        pass
    # Not exactly the Avro shape (an extra or a missing optional field): reshape, then try again.
    try:
        return CONVERT[topic](normalize(topic, record))
    except InvalidEvent:
        raise
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise InvalidEvent("invalid_field", f"{SCHEMA_OF[topic]}: {exc}") from exc


def prepare(raw: Iterable[tuple[str, str | None, dict]], report: InputReport, sort: bool = True) -> list[ReplayEvent]:
    """(topic, key, record) -> checked, converted events, stably sorted by event time (unless
    `sort` is False: then in the given order). Rejected ones are counted in `report`."""
    out: list[ReplayEvent] = []
    append = out.append
    for topic, key, record in raw:
        if topic not in CONVERT:
            report.reject("unknown_topic", topic)
            continue
        if not isinstance(record, dict):
            report.reject("not_a_record", str(key))
            continue
        try:
            event = convert(topic, record)
        except InvalidEvent as exc:
            report.reject(exc.reason, record.get("event_id", "?"))
            continue
        if not isinstance(event.event_time, int):
            report.reject("invalid_field", record.get("event_id", "?"))
            continue
        expected = getattr(event, KEY_FIELD[topic])
        if key is None:
            key = expected
        elif key != expected:
            # The worker dead-letters it too: keyed so, it would land where its state is not.
            report.reject("wrong_key", record.get("event_id", "?"))
            continue
        append(ReplayEvent(topic, key, record, event.event_time, event))
    if sort:
        out.sort(key=_event_time)  # stable: equal times keep the input order
    report.events = len(out)
    return out


def _event_time(e: ReplayEvent) -> int:
    return e.event_time


# --- sources ---------------------------------------------------------------------------------


def read_jsonl(path: str | Path, report: InputReport) -> Iterator[tuple[str, str | None, dict]]:
    """Our event log: one {"topic", "key", "value"} object per line (what `aftersale simulate
    --out` writes). Blank lines are skipped; lines that are not such objects are counted."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            report.read += 1
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                report.reject("undecodable", f"line {n}")
                continue
            if not isinstance(obj, dict) or "topic" not in obj or "value" not in obj:
                report.reject("not_an_event", f"line {n}")
                continue
            key = obj.get("key")
            yield obj["topic"], (key if key is None else str(key)), obj["value"]


def simulated_raw(orders: int, seed: int = 7, **kw) -> list[tuple[str, str, dict]]:
    from ..simulate import generate

    return [(e.topic, e.key, e.record) for e in generate(orders=orders, seed=seed, **kw)]


def load(source: str | Path, sort: bool = True) -> tuple[list[ReplayEvent], InputReport]:
    """A JSON Lines file, or an Olist folder (or one of its CSV files: its folder is read)."""
    path = Path(source)
    if path.is_dir() or path.suffix.lower() == ".csv":
        from ..olist import read_olist

        folder = path if path.is_dir() else path.parent
        report = InputReport(str(folder), "olist")
        raw = read_olist(folder, report)
        # Olist rows carry no arrival order: event time is the only order there is.
        return prepare(raw, report, sort=True), report
    if not path.exists():
        raise FileNotFoundError(f"no such input: {path}")
    report = InputReport(str(path), "jsonl")
    return prepare(read_jsonl(path, report), report, sort=sort), report


def load_simulated(orders: int, seed: int = 7, sort: bool = True, **kw) -> tuple[list[ReplayEvent], InputReport]:
    report = InputReport(f"simulated:{orders} orders, seed {seed}", "simulated")
    raw = simulated_raw(orders, seed, **kw)
    report.read = len(raw)
    return prepare(raw, report, sort=sort), report


def plan(events: list[ReplayEvent], tick_ms: int = 0, run_on_ms: int = 0) -> Iterator[tuple[str, object]]:
    """The replay as a sequence both paths follow: ("event", ReplayEvent) and ("tick", time).

    A live worker's timer fires every partition's due decisions as wall-clock time passes; a replay
    in event time otherwise only moves a partition's clock when an event for it arrives, so on
    sparse data a scheduled message fires late (and may be dropped as expired). With `tick_ms`,
    time ticks for every partition at each multiple of `tick_ms` between events, and on through
    `run_on_ms` past the last event (ending with a tick at last event + run_on_ms). Without it, a
    single tick at last event + run_on_ms (if given)."""
    next_tick = None
    last = None
    for e in events:
        t = e.event_time
        if tick_ms:
            if next_tick is None:
                next_tick = (t // tick_ms + 1) * tick_ms
            while next_tick < t:
                yield "tick", next_tick
                next_tick += tick_ms
        last = t if last is None else max(last, t)
        yield "event", e
    if last is None or not run_on_ms:
        return
    until = last + run_on_ms
    if tick_ms:
        while next_tick <= until:
            yield "tick", next_tick
            next_tick += tick_ms
        if next_tick - tick_ms == until:
            return
    yield "tick", until


def assume_consent(events: list[ReplayEvent], report: InputReport) -> tuple[list[ReplayEvent], dict]:
    """What-if for history that records no consent: every order's checkout says yes to marketing
    e-mail, so the timing policies (review requests, cross-sell) can be judged on it at all.

    The review answers history holds were prompted by the shop's own survey, which aftersale's
    request would replace; fed as inputs they would pre-empt the very request they answer
    ("already reviewed"). Under this what-if they are outcomes only: kept out of the replay, and
    still read by the backtest as the ground truth. Both are counted and reported."""
    out: list[ReplayEvent] = []
    consented = held_out = 0
    for e in events:
        if e.topic == "orders" and e.record.get("type") == "placed":
            contact = dict(
                e.record.get("contact")
                or {"email": True, "sms": False, "push": False, "marketing_sms": False, "locale": None}
            )
            contact["marketing_email"] = True
            record = {**e.record, "contact": contact}
            out.append(ReplayEvent(e.topic, e.key, record, e.event_time, convert(e.topic, record)))
            consented += 1
        elif e.topic == "engagement" and e.record.get("type") == "review_submitted":
            held_out += 1
        else:
            out.append(e)
    info = {"assume_consent": True, "orders_given_consent": consented, "review_answers_held_out": held_out}
    report.notes.append(
        f"what-if: marketing e-mail consent assumed for {consented} orders; {held_out} review "
        "answers kept as outcomes, not fed (they answered the shop's own survey)"
    )
    return out, info
