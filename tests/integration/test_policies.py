"""A simulated stretch of shop traffic through a real worker on a real broker: delay alerts go out
before the promised dates, and review requests only to orders that had no problem."""

from __future__ import annotations

import pytest

from streams.producer import EventProducer
from streams.tools.simulate import DAY, HOUR, generate

from .test_engine import T0, only, reader, settings, workers  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

PROBLEM_SCANS = {"attempt_failed", "exception", "returned_to_sender", "expired"}


def ground_truth(events):
    """Promised dates, and when each order first went wrong (a review request after that is wrong)."""
    promised, delivered, troubled = {}, {}, {}

    def trouble(order_id: str, at: int) -> None:
        troubled[order_id] = min(troubled.get(order_id, at), at)

    for e in events:
        r = e.record
        if e.topic == "orders" and r["type"] == "placed":
            promised[r["order_id"]] = r["promised_delivery_at"]
        elif e.topic == "orders" and r["type"] in ("cancelled", "refunded") and not r.get("return_info"):
            trouble(r["order_id"], r["event_time"])
        elif e.topic == "carrier-scans" and r["status"] in PROBLEM_SCANS:
            trouble(r["order_id"], r["event_time"])
        elif e.topic == "carrier-scans" and r["status"] == "delivered" and r.get("direction") != "return":
            delivered[r["order_id"]] = min(delivered.get(r["order_id"], r["event_time"]), r["event_time"])
        elif e.topic == "support" and r.get("order_id"):
            trouble(r["order_id"], r["event_time"])
    for o, t in delivered.items():
        if t > promised[o]:
            trouble(o, t)
    return promised, troubled


def test_delay_alerts_before_the_promise_and_reviews_only_without_problems(settings, workers, reader):  # noqa: F811
    events = generate(orders=120, seed=21, start_ms=T0, id_prefix="P")
    producer = EventProducer(settings)
    for e in events:
        producer.send(e.topic, e.key, e.record)
    producer.flush()
    workers()
    seen = reader.collect(lambda s: len(only(s, "intents")) > 300, timeout=120, quiet=4)
    # Then let two more weeks pass, as a live worker's timer would: hourly ticks to every partition.
    end = max(e.record["event_time"] for e in events)
    for t in range(T0, end + 14 * DAY, HOUR):
        for p in range(settings.partitions):
            tick = {"command_id": f"tick:{p}:{t}", "event_time": t, "kind": "tick", "due": {"now": t}}
            producer.producer.produce(
                settings.topic("order-commands"),
                producer.codec.encode("order-commands", {**tick, "order_id": None}),
                partition=p,
            )
            producer.producer.produce(
                settings.topic("customer-commands"),
                producer.codec.encode("customer-commands", {**tick, "customer_id": "", "order_id": ""}),
                partition=p,
            )
        producer.producer.poll(0)
    producer.flush()
    seen += reader.collect(
        lambda s: any(r["intent_type"] == "review_request" for r in only(s, "intents")), timeout=120, quiet=4
    )
    intents = only(seen, "intents")
    promised, troubled = ground_truth(events)

    warnings = [i for i in intents if i["intent_type"] == "delay_warning"]
    assert warnings, "no delay alert at all"
    proactive = [w for w in warnings if "promise_missed" not in w["reason_codes"]]
    assert proactive, "every alert came after the promise"
    for w in proactive:
        assert int(w["send_at"].timestamp() * 1000) < promised[w["order_id"]], w

    reviews = [i for i in intents if i["intent_type"] == "review_request"]
    assert reviews, "no review request at all"
    late = [
        r["order_id"] for r in reviews if int(r["send_at"].timestamp() * 1000) >= troubled.get(r["order_id"], 2**62)
    ]
    assert not late  # never after the order went wrong (a later return or complaint is another matter)
    assert all(r["kind"] == "marketing" for r in reviews)
    # The guard said why it held back: some audit records name a problem.
    assert any(a["reasons"][0].startswith("guard:") for a in only(seen, "decision-audit"))
    assert not only(seen, "dead-letters")
