"""What the fault tests share: feeding a stream in the background, reading a run's outputs, and the
invariants that must hold whatever the interleaving of the input topics was."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from streams.tools.benchmarks import Out, Producer, read_outputs, wait_until

NOT_SENT = {"dropped", "suppressed", "skipped"}  # final decisions not to send (held = waiting)


class Feeder(threading.Thread):
    """Produces pre-encoded records to one or more apps at a fixed rate, in the background (a live
    stream), one idempotent producer; `error` is set if anything was not delivered."""

    def __init__(self, settings, streams: list[list[tuple[str, bytes, bytes]]], rate: float):
        super().__init__(daemon=True)
        self.producer = Producer(settings, **{"message.timeout.ms": 600_000})
        self.streams, self.rate = streams, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            started = time.monotonic()
            for n, records in enumerate(zip(*self.streams)):
                wait_until(self.producer.producer, started + n / self.rate)
                for topic, key, value in records:
                    self.producer.send(topic, key, value)
                self.sent = n + 1
            self.producer.flush(timeout=600)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.producer = None  # the librdkafka handle goes now, not when the test's frame does
            self.finished.set()

    def wait(self, timeout: float) -> None:
        assert self.finished.wait(timeout), f"feeder still producing after {timeout:.0f}s ({self.sent} sent)"
        if self.error:
            raise self.error


@dataclass
class RunOutputs:
    intents: list[dict] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)
    dead_letters: list[dict] = field(default_factory=list)
    raw: list[Out] = field(default_factory=list)

    @property
    def intent_ids(self) -> set[str]:
        return {i["intent_id"] for i in self.intents}

    @property
    def held_out(self) -> int:
        """Distinct messages an experiment held out (audit records of decision held_out)."""
        return len({a["audit_id"] for a in self.audit if a["decision"] == "held_out"})


def collect(settings) -> RunOutputs:
    out = RunOutputs()
    for o in read_outputs(settings, ["intents", "decision-audit", "dead-letters"]):
        {"intents": out.intents, "decision-audit": out.audit, "dead-letters": out.dead_letters}[o.topic].append(o.value)
        out.raw.append(o)
    return out


def _without(record: dict, *fields: str) -> dict:
    return {k: v for k, v in record.items() if k not in fields}


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # (order, intent type) with no decision at all
    redecided: list[str] = field(default_factory=list)  # decided differently the second time (see check_run)
    stats: Counter = field(default_factory=Counter)

    def problem(self, text: str) -> None:
        if len(self.problems) < 30:
            self.problems.append(text)
        self.stats["problems"] += 1


def check_run(events, outputs: RunOutputs, dead_letters_expected: int = 0, killed: bool = False) -> Verdict:
    """The invariants that must hold whatever order the worker saw its input topics in:

    - a duplicate intent (at least once: redelivered after a crash) has the same id and identical
      content (decided_at aside), and so has a duplicate audit record, except that after a kill an
      audit record may give another reason for the same decision (see below);
    - every placed order has an order_confirmation decision (an intent, or an audit record saying why
      not), every delivered order a `delivered` decision; never two different intents for one of them;
    - without kills, exactly one such decision: never both an intent and a decision not to send it.
      After a kill (`killed`), an input whose outputs went out but whose state was not yet written is
      decided again, and a worker reading several topics may interleave them differently the second
      time: the second decision can then be a different one not to send (an extra audit record, e.g.
      `skipped` for a cap the first interleaving had not reached). Those are counted, not failed;
    - no dead letters (unless some are expected)."""
    v = Verdict()
    by_id: dict[str, list[dict]] = defaultdict(list)
    for intent in outputs.intents:
        by_id[intent["intent_id"]].append(intent)
    for intent_id, copies in by_id.items():
        if len(copies) > 1:
            v.stats["duplicate_intent_copies"] += len(copies) - 1
            first = _without(copies[0], "decided_at")
            if any(_without(c, "decided_at") != first for c in copies[1:]):
                v.problem(f"intent {intent_id} delivered {len(copies)} times with different content: {copies}")
            elif any(c["decided_at"] != copies[0]["decided_at"] for c in copies[1:]):
                v.stats["duplicates_differing_in_decided_at_only"] += 1
    audit_by_id: dict[str, list[dict]] = defaultdict(list)
    for audit in outputs.audit:
        audit_by_id[audit["audit_id"]].append(audit)
    for audit_id, copies in audit_by_id.items():
        if len(copies) > 1:
            v.stats["duplicate_audit_copies"] += len(copies) - 1
            if any(_without(c, "decided_at") != _without(copies[0], "decided_at") for c in copies[1:]):
                same_decision = all(
                    _without(c, "decided_at", "reasons") == _without(copies[0], "decided_at", "reasons")
                    for c in copies[1:]
                )
                if killed and same_decision:
                    # Decided again after a kill from another interleaving: the same decision (e.g.
                    # dropped as stale), explained by a different superseding scan. Counted.
                    v.stats["audit:same_decision_other_reason_after_a_kill"] += 1
                    v.redecided.append(f"audit {audit_id}: {[c['reasons'] for c in copies]}")
                else:
                    v.problem(f"audit {audit_id} recorded {len(copies)} times with different content: {copies}")

    intents_of: dict[tuple, set] = defaultdict(set)
    for intent in outputs.intents:
        intents_of[(intent["order_id"], intent["intent_type"])].add(intent["intent_id"])
    audit_of: dict[tuple, dict] = defaultdict(dict)
    reason_of: dict[str, str] = {}
    for copies in audit_by_id.values():
        a = copies[0]
        audit_of[(a["order_id"], a["intent_type"])][a["audit_id"]] = a["decision"]
        reason_of[a["audit_id"]] = ",".join(a["reasons"][:1])

    placed = {  # an exchange order is no order of the customer's: it has no confirmation to check
        e.record["order_id"]
        for e in events
        if e.topic == "orders" and e.record["type"] == "placed" and not e.record.get("exchange_of")
    }
    delivered = {
        e.record["order_id"] for e in events if e.topic == "carrier-scans" and e.record["status"] == "delivered"
    }
    for intent_type, orders in (("order_confirmation", placed), ("delivered", delivered)):
        for order_id in sorted(orders):
            sent = intents_of.get((order_id, intent_type), set())
            decisions = audit_of.get((order_id, intent_type), {})
            not_sent = {a for a, d in decisions.items() if d in NOT_SENT}
            if len(sent) > 1:
                v.problem(f"{order_id}: {len(sent)} different {intent_type} intents {sorted(sent)}")
            elif (sent and not_sent) or len(not_sent) > 1:
                why = {a: f"{d}:{reason_of.get(a, '?')}" for a, d in decisions.items()}
                if not killed:
                    v.problem(f"{order_id}: {intent_type} sent {sorted(sent)} and decided not to send {why}")
                v.stats[f"{intent_type}:redecided_differently_after_a_kill"] += 1
                v.redecided.append(f"{order_id}: sent {sorted(sent)}, not sent {why}")
            elif not sent and not decisions:
                v.missing.append(f"{order_id}: no {intent_type} decision at all")
                v.stats[f"{intent_type}:MISSING"] += 1
                continue
            if sent:
                v.stats[f"{intent_type}:intent"] += 1
            else:
                why = sorted({f"{d}:{reason_of.get(a, '?')}" for a, d in decisions.items()})
                v.stats[f"{intent_type}:" + "+".join(why)] += 1
    if len(outputs.dead_letters) != dead_letters_expected:
        v.problem(
            f"{len(outputs.dead_letters)} dead letters, expected {dead_letters_expected}: "
            f"{Counter(d['reason'] for d in outputs.dead_letters)} {outputs.dead_letters[:3]}"
        )
    v.stats["placed_orders"] = len(placed)
    v.stats["delivered_orders"] = len(delivered)
    v.stats["distinct_intents"] = len(by_id)
    v.stats["intent_records"] = len(outputs.intents)
    return v


def report(title: str, lines: dict) -> None:
    """Printed (pytest -s, or -rA shows captured output of passing tests too)."""
    print(f"\n== {title}")
    for key, value in lines.items():
        print(f"   {key}: {value}")
