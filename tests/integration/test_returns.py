"""Returns end to end on a real broker and a real worker: a return from request to refund, and an
exchange from request to the delivery of the new item. The right messages in the right order, each
once; the review request waits while the return is open and is never sent for a returned order."""

from __future__ import annotations

from collections import Counter

import pytest

from streams.producer import EventProducer

from .test_engine import HOUR, T0, one_order, only, reader, settings, workers  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

DAY = 24 * HOUR


def order_event(order_id: str, customer_id: str, n: int, at: int, type_: str, **fields) -> tuple[str, str, dict]:
    return (
        "orders",
        order_id,
        {
            "event_id": f"{order_id}-r{n}",
            "event_time": at,
            "source": "test",
            "type": type_,
            "order_id": order_id,
            "customer_id": customer_id,
            **fields,
        },
    )


def return_event(order_id, customer_id, n, at, type_, return_id, **info) -> tuple[str, str, dict]:
    items = info.pop("items", [{"sku": "TEE", "quantity": 1, "reason": "size_too_small"}])
    return order_event(
        order_id, customer_id, n, at, type_, return_info={"return_id": return_id, "items": items, **info}
    )


def return_scan(order_id: str, shipment_id: str, n: int, at: int, status: str) -> tuple[str, str, dict]:
    return (
        "carrier-scans",
        order_id,
        {
            "event_id": f"{shipment_id}-s{n}",
            "event_time": at,
            "source": "test",
            "order_id": order_id,
            "shipment_id": shipment_id,
            "carrier": "dhl",
            "tracking_number": f"T-{shipment_id}",
            "status": status,
        },
    )


class Feed:
    """Sends a few events, then waits until the worker has said what they imply: the topics are read
    independently, so a step waits for the one before it, as time would in a shop."""

    def __init__(self, settings, reader):
        self.settings, self.reader = settings, reader
        self.producer = EventProducer(settings)
        self.seen: list = []

    def send(self, *events, until=None, timeout: float = 60) -> None:
        for topic, key, record in events:
            self.producer.send(topic, key, record)
        self.producer.flush()
        if until is not None:
            self.seen += self.reader.collect(lambda got: until(self.intents(self.seen + got)), timeout=timeout)
            assert until(self.intents(self.seen)), self.intents(self.seen)

    def ticks(self, start: int, end: int, until=None, timeout: float = 90) -> None:
        """Time passing on every partition, hour by hour, as a live worker's timer would say it."""
        p = self.producer
        for t in range(start, end, HOUR):
            for part in range(self.settings.partitions):
                tick = {"command_id": f"tick:{part}:{t}", "event_time": t, "kind": "tick", "due": {"now": t}}
                p.producer.produce(
                    self.settings.topic("order-commands"),
                    p.codec.encode("order-commands", {**tick, "order_id": None}),
                    partition=part,
                )
                p.producer.produce(
                    self.settings.topic("customer-commands"),
                    p.codec.encode("customer-commands", {**tick, "customer_id": "", "order_id": ""}),
                    partition=part,
                )
            p.producer.poll(0)
        p.flush()
        self.seen += self.reader.collect(
            (lambda got: until(self.intents(self.seen + got))) if until else (lambda got: False),
            timeout=timeout if until else 5,
            quiet=0 if until else 3,
        )

    @staticmethod
    def intents(outputs) -> list[dict]:
        return only(outputs, "intents")

    def of(self, order_id: str) -> list[str]:
        return [i["intent_type"] for i in self.intents(self.seen) if i["order_id"] == order_id]


def said(kind: str, order_id: str):
    return lambda intents: any(i["intent_type"] == kind and i["order_id"] == order_id for i in intents)


def test_a_return_from_request_to_refund(settings, workers, reader):  # noqa: F811
    workers()
    feed = Feed(settings, reader)
    o, c = "O-R", "C-R"
    feed.send(*one_order(o, c), until=said("delivered", o))  # delivered at T0 + 44 h
    feed.send(
        return_event(o, c, 1, T0 + 3 * DAY, "return_requested", "R-1", resolution="refund"),
        return_event(o, c, 2, T0 + 3 * DAY + HOUR, "return_approved", "R-1"),
        return_event(
            o,
            c,
            3,
            T0 + 3 * DAY + 2 * HOUR,
            "return_label_created",
            "R-1",
            label={"shipment_id": "RS-1", "carrier": "dhl"},
        ),
        until=said("return_label_ready", o),
    )
    feed.send(
        return_scan(o, "RS-1", 1, T0 + 4 * DAY, "in_transit"),
        return_scan(o, "RS-1", 2, T0 + 6 * DAY, "delivered"),
        until=said("return_received", o),
    )
    # Days pass: the review request (7 days after delivery) waits for the open return; the refund
    # does not come within the shop's usual 5 business days: the customer hears before asking.
    feed.ticks(T0 + 6 * DAY, T0 + 15 * DAY, until=said("refund_delayed", o))
    feed.send(
        order_event(o, c, 4, T0 + 15 * DAY, "refunded", amount=29.0, currency="EUR", return_info={"return_id": "R-1"}),
        return_event(o, c, 5, T0 + 15 * DAY + HOUR, "return_closed", "R-1"),
        until=said("refund_issued", o),
    )
    feed.ticks(T0 + 15 * DAY, T0 + 20 * DAY)

    journey = [t for t in feed.of(o) if t.startswith(("return_", "refund_"))]
    assert journey == ["return_label_ready", "return_received", "refund_delayed", "refund_issued"]
    counts = Counter(feed.of(o))
    assert all(n == 1 for n in counts.values()), counts  # each once
    assert counts["delivered"] == 1 and "review_request" not in counts  # the parcel back is no delivery
    refund = next(i for i in feed.intents(feed.seen) if i["intent_type"] == "refund_issued")
    assert (refund["content"]["amount"], refund["content"]["currency"]) == (29.0, "EUR")
    held = [a for a in only(feed.seen, "decision-audit") if a["intent_type"] == "review_request" and a["order_id"] == o]
    assert any("guard:return_open" in a["reasons"] for a in held), held
    assert not only(feed.seen, "dead-letters")


def test_an_exchange_from_request_to_the_delivery_of_the_new_item(settings, workers, reader):  # noqa: F811
    workers()
    feed = Feed(settings, reader)
    o, c, new = "O-X", "C-X", "O-N"
    feed.send(*one_order(o, c), until=said("delivered", o))
    feed.send(
        return_event(o, c, 1, T0 + 3 * DAY, "return_requested", "R-2", resolution="exchange"),
        return_event(
            o,
            c,
            2,
            T0 + 3 * DAY + 2 * HOUR,
            "return_label_created",
            "R-2",
            label={"shipment_id": "RS-2", "carrier": "dhl"},
        ),
        until=said("return_label_ready", o),
    )
    feed.send(
        return_scan(o, "RS-2", 1, T0 + 4 * DAY, "in_transit"),
        return_scan(o, "RS-2", 2, T0 + 5 * DAY, "delivered"),
        until=said("return_received", o),
    )
    placed = {
        "total": 29.0,
        "exchange_of": o,
        "line_items": [{"sku": "TEE-M", "title": "Tee, size M", "category": "fashion", "quantity": 1}],
        "shipping": {"country": "DE", "region": "BY", "time_zone": "Europe/Berlin"},
        "contact": {"email": True, "marketing_email": True, "locale": "de-DE"},
    }
    feed.send(
        return_event(o, c, 3, T0 + 5 * DAY + 2 * HOUR, "exchange_created", "R-2", exchange_order_id=new),
        return_event(o, c, 4, T0 + 5 * DAY + 3 * HOUR, "return_closed", "R-2"),
        order_event(new, c, 1, T0 + 5 * DAY + 2 * HOUR, "placed", **placed),
        order_event(
            new,
            c,
            2,
            T0 + 5 * DAY + 6 * HOUR,
            "fulfilled",
            fulfillment={"shipment_id": "NS-1", "carrier": "dhl", "tracking_number": "T-NS-1", "skus": ["TEE-M"]},
        ),
        until=said("exchange_shipped", new),
    )
    scans = [
        (1, T0 + 6 * DAY, "in_transit"),
        (2, T0 + 7 * DAY, "out_for_delivery"),
        (3, T0 + 7 * DAY + 4 * HOUR, "delivered"),
    ]
    feed.send(*[return_scan(new, "NS-1", n, at, status) for n, at, status in scans], until=said("delivered", new))
    # The new item's review request, after the return's cool-down (14 days from its close).
    feed.ticks(T0 + 7 * DAY, T0 + 22 * DAY, until=said("review_request", new), timeout=120)

    assert [t for t in feed.of(o) if t.startswith(("return_", "refund_"))] == ["return_label_ready", "return_received"]
    assert feed.of(new)[:3] == ["exchange_shipped", "out_for_delivery", "delivered"]
    assert "order_confirmation" not in feed.of(new) and "refund_delayed" not in feed.of(o)
    assert all(n == 1 for n in Counter(feed.of(new)).values()), feed.of(new)
    review = next(i for i in feed.intents(feed.seen) if i["intent_type"] == "review_request")
    assert review["order_id"] == new and [i["sku"] for i in review["content"]["items"]] == ["TEE-M"]
    assert "review_request" not in feed.of(o)  # the returned order is not reviewed
    skipped = [a for a in only(feed.seen, "decision-audit") if a["order_id"] == new]
    assert any(a["intent_type"] == "order_confirmation" and "exchange_order" in a["reasons"] for a in skipped)
