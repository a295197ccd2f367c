"""Simulated shop traffic: orders, carrier scans, engagement and support contacts, in event time.

`generate()` is pure (seeded): the same arguments give the same events, so tests, the demo, replays
and benchmarks share one realistic source. It includes what real feeds do to you: late deliveries,
failed attempts, carrier exceptions, lost parcels, cancellations, refunds, duplicated and
out-of-order scans, unsubscribes, bounces, and support contacts about late orders.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Iterator

HOUR = 3_600_000
DAY = 24 * HOUR
MINUTE = 60_000

TIME_ZONES = [
    ("DE", "BE", "Europe/Berlin"),
    ("DE", "BY", "Europe/Berlin"),
    ("GB", "ENG", "Europe/London"),
    ("US", "NY", "America/New_York"),
    ("US", "CA", "America/Los_Angeles"),
    ("BR", "SP", "America/Sao_Paulo"),
    ("JP", "13", "Asia/Tokyo"),
    ("AU", "NSW", "Australia/Sydney"),
]
CATALOG = [
    ("TEE-BLK-M", "Organic cotton tee", "fashion", 29.0),
    ("SNK-WHT-42", "Canvas sneakers", "fashion", 79.0),
    ("HDP-NC700", "Noise-cancelling headphones", "electronics", 249.0),
    ("ESP-PRO-1", "Espresso machine", "appliances", 499.0),
    ("COF-BEAN-1KG", "Single-origin coffee beans 1 kg", "consumables", 24.0),
    ("VIT-D3-90", "Vitamin D3, 90 capsules", "consumables", 14.0),
    ("LMP-OAK", "Oak desk lamp", "home", 89.0),
    ("SRM-HYAL", "Hyaluronic serum", "beauty", 32.0),
]
CARRIERS = [("dhl", "standard", 2.5), ("dhl", "express", 1.0), ("ups", "ground", 3.0), ("usps", "priority", 2.5)]
ORIGINS = ["DE-BE", "NL-NH", "US-NJ"]
EXCEPTIONS = [  # sub-status, then what happens: delivered late, or never (lost / returned)
    ("customs_delay", "late"),
    ("weather_delay", "late"),
    ("address_issue", "late"),
    ("damaged", "returned"),
    ("lost", "lost"),
]
WISMO_TEXTS = [
    "Where is my order? It was supposed to arrive days ago and tracking has not moved.",
    "My parcel is late again, this is really frustrating. I want a refund.",
    "Hi, could you tell me when my order will arrive? Thanks!",
]


@dataclass(slots=True)
class SimEvent:
    topic: str  # topic suffix: orders, carrier-scans, engagement, support
    key: str
    record: dict
    arrives_at: int  # when it reaches Kafka: event time plus feed lag (late feeds are out of order)


class _Ids:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.n = 0

    def __call__(self, kind: str) -> str:
        self.n += 1
        return f"{self.prefix}{kind}-{self.n:07d}"


def generate(
    orders: int = 200, start_ms: int = 1_767_225_600_000, span_ms: int = 2 * DAY, seed: int = 7, id_prefix: str = ""
) -> list[SimEvent]:
    """Events of `orders` orders placed over `span_ms` from `start_ms`, sorted by arrival."""
    rng = random.Random(seed)
    next_id = _Ids(id_prefix)
    customers = [f"{id_prefix}C{n:05d}" for n in range(max(1, int(orders * 0.7)))]
    profiles = {c: _profile(rng) for c in customers}
    out: list[SimEvent] = []
    for n in range(orders):
        customer = rng.choice(customers)
        placed = start_ms + int(rng.random() * span_ms)
        out.extend(_order_life(rng, next_id, f"{id_prefix}O{n:06d}", customer, profiles[customer], placed))
    out.sort(key=lambda e: (e.arrives_at, e.record["event_id"]))
    return out


def _profile(rng: random.Random) -> dict:
    country, region, tz = rng.choice(TIME_ZONES)
    return {
        "country": country,
        "region": region,
        "tz": tz,
        "sms": rng.random() < 0.45,
        "push": rng.random() < 0.25,
        "marketing_email": rng.random() < 0.6,
        "marketing_sms": rng.random() < 0.2,
        "locale": {"DE": "de-DE", "GB": "en-GB", "US": "en-US", "BR": "pt-BR", "JP": "ja-JP", "AU": "en-AU"}[country],
    }


def _order_life(rng, next_id, order_id: str, customer: str, p: dict, placed: int) -> Iterator[SimEvent]:
    items = rng.sample(CATALOG, k=rng.choice([1, 1, 1, 2, 2, 3]))
    line_items = [
        {
            "sku": s,
            "product_id": s.split("-")[0],
            "title": t,
            "category": c,
            "quantity": rng.choice([1, 1, 2]),
            "price": price,
        }
        for s, t, c, price in items
    ]
    total = round(sum(li["price"] * li["quantity"] for li in line_items), 2)
    carrier, service, typical_days = rng.choice(CARRIERS)
    promised_days = int(typical_days) + 3  # shops pad the promise: about 8-10% still arrive late
    promised = placed + promised_days * DAY
    base = {"order_id": order_id, "customer_id": customer}

    def order(kind: str, at: int, **extra) -> SimEvent:
        record = {"event_id": next_id("ord"), "event_time": at, "source": "simulator", "type": kind, **base, **extra}
        return SimEvent("orders", order_id, record, at + rng.randint(50, 2000))

    yield order(
        "placed",
        placed,
        order_number=f"#{order_id[-6:]}",
        currency="EUR",
        total=total,
        line_items=line_items,
        promised_delivery_at=promised,
        shipping={"country": p["country"], "region": p["region"], "postal_prefix": None, "time_zone": p["tz"]},
        contact={
            "email": True,
            "sms": p["sms"],
            "push": p["push"],
            "marketing_email": p["marketing_email"],
            "marketing_sms": p["marketing_sms"],
            "locale": p["locale"],
        },
    )
    yield order("paid", placed + rng.randint(1, 10) * MINUTE)
    yield from _engagement(rng, next_id, customer, order_id, placed + rng.randint(2, 90) * MINUTE)

    if rng.random() < 0.03:  # cancelled before it ships
        yield order("cancelled", placed + rng.randint(1, 12) * HOUR, reason="customer")
        return

    dispatched = placed + rng.randint(2, 30) * HOUR
    shipment = f"{order_id}-S1"
    tracking = f"TRK{zlib.crc32(order_id.encode()):010d}"
    yield order(
        "fulfilled",
        dispatched,
        fulfillment={
            "shipment_id": shipment,
            "carrier": carrier,
            "service_level": service,
            "tracking_number": tracking,
            "skus": [li["sku"] for li in line_items],
        },
    )
    lane = {"origin_region": rng.choice(ORIGINS), "destination_region": f"{p['country']}-{p['region']}"}
    transit = max(0.5, rng.lognormvariate(0, 0.45) * typical_days)
    if rng.random() < 0.04:
        transit += rng.uniform(2, 5)  # a slow lane: arrives well after the promise
    scans: list[tuple[int, str, str | None, str]] = []  # (time, status, sub_status, raw)
    t = dispatched + rng.randint(1, 6) * HOUR
    scans.append((t, "info_received", None, "InfoReceived_001"))
    t += rng.randint(3, 12) * HOUR
    scans.append((t, "in_transit", None, "InTransit_002"))
    outcome = "delivered"
    if rng.random() < 0.05:
        sub, outcome = rng.choice(EXCEPTIONS)
        t += rng.randint(6, 30) * HOUR
        scans.append(
            (
                t,
                "exception",
                sub,
                {
                    "customs_delay": "Exception_004",
                    "weather_delay": "Exception_017",
                    "address_issue": "Exception_007",
                    "damaged": "Exception_012",
                    "lost": "Exception_013",
                }[sub],
            )
        )
        if outcome == "late":
            transit += rng.uniform(1.5, 4)
    arrive = dispatched + int(transit * DAY)
    delivery_day = max(arrive, t + 2 * HOUR)
    if outcome == "returned":
        scans.append((delivery_day, "returned_to_sender", "return", "Exception_010"))
    elif outcome == "delivered" or outcome == "late":
        ofd = delivery_day - rng.randint(3, 6) * HOUR
        if ofd <= t:
            ofd = t + HOUR
            delivery_day = ofd + 3 * HOUR
        scans.append((ofd, "out_for_delivery", None, "OutForDelivery_001"))
        if rng.random() < 0.06:  # nobody home: a failed attempt, then a new round next day
            scans.append((ofd + 4 * HOUR, "attempt_failed", "recipient_unavailable", "AttemptFail_002"))
            ofd += DAY
            delivery_day += DAY
            scans.append((ofd, "out_for_delivery", None, "OutForDelivery_001"))
        scans.append((delivery_day, "delivered", None, "Delivered_001"))
    delivered_at = delivery_day if outcome in ("delivered", "late") else None

    for at, status, sub, raw in scans:
        record = {
            "event_id": next_id("scan"),
            "event_time": at,
            "source": "simulator",
            **base,
            "shipment_id": shipment,
            "tracking_number": tracking,
            "carrier": carrier,
            "service_level": service,
            "status": status,
            "sub_status": sub,
            **lane,
            "location": None,
            "carrier_estimated_delivery_at": arrive if status in ("in_transit", "exception") else None,
            "raw_status": raw,
        }
        lag = rng.randint(1, 60) * 1000
        if rng.random() < 0.03:
            lag += rng.randint(6, 30) * HOUR  # a feed that catches up late: arrives out of order
        yield SimEvent("carrier-scans", order_id, record, at + lag)
        if rng.random() < 0.04:  # at-least-once feeds redeliver
            yield SimEvent("carrier-scans", order_id, dict(record), at + lag + rng.randint(1, 600) * 1000)

    late = delivered_at is None or delivered_at > promised
    if late and rng.random() < 0.35:
        yield from _wismo(rng, next_id, customer, order_id, promised + rng.randint(2, 30) * HOUR)
    if delivered_at is not None:
        if rng.random() < 0.3:
            rating = rng.choice([1, 2, 3]) if late else rng.choice([3, 4, 5, 5, 5])
            at = delivered_at + rng.randint(2, 12) * DAY
            yield SimEvent(
                "engagement",
                customer,
                {
                    "event_id": next_id("eng"),
                    "event_time": at,
                    "source": "simulator",
                    "type": "review_submitted",
                    "customer_id": customer,
                    "order_id": order_id,
                    "intent_id": None,
                    "channel": "web",
                    "scope": None,
                    "rating": rating,
                    "product_id": line_items[0]["product_id"],
                },
                at + 1000,
            )
        if rng.random() < 0.02:
            yield order("refunded", delivered_at + rng.randint(1, 10) * DAY, reason="return", amount=total)


def _engagement(rng, next_id, customer: str, order_id: str, at: int) -> Iterator[SimEvent]:
    def eng(kind: str, t: int, channel: str = "email", scope: str | None = None) -> SimEvent:
        return SimEvent(
            "engagement",
            customer,
            {
                "event_id": next_id("eng"),
                "event_time": t,
                "source": "simulator",
                "type": kind,
                "customer_id": customer,
                "order_id": order_id,
                "intent_id": None,
                "channel": channel,
                "scope": scope,
                "rating": None,
                "product_id": None,
            },
            t + rng.randint(100, 5000),
        )

    roll = rng.random()
    if roll < 0.01:
        yield eng("bounced", at)
        return
    yield eng("delivered", at)
    if rng.random() < 0.55:
        yield eng("opened", at + rng.randint(1, 240) * MINUTE)
        if rng.random() < 0.3:
            yield eng("clicked", at + rng.randint(241, 300) * MINUTE)
    if rng.random() < 0.02:
        yield eng("unsubscribed", at + rng.randint(1, 48) * HOUR, scope="marketing")
    if rng.random() < 0.005:
        yield eng("spam_report", at + rng.randint(1, 48) * HOUR)


def _wismo(rng, next_id, customer: str, order_id: str, at: int) -> Iterator[SimEvent]:
    ticket = next_id("tkt")

    def sup(kind: str, t: int, **extra) -> SimEvent:
        record = {
            "event_id": next_id("sup"),
            "event_time": t,
            "source": "simulator",
            "type": kind,
            "customer_id": customer,
            "order_id": order_id,
            "ticket_id": ticket,
            "status": None,
            "from_customer": True,
            "text": None,
            "rating": None,
            "topic": "wismo",
            **extra,
        }
        return SimEvent("support", customer, record, t + rng.randint(100, 5000))

    yield sup("ticket_opened", at, status="new", text=rng.choice(WISMO_TEXTS))
    solved = at + rng.randint(2, 48) * HOUR
    yield sup("solved", solved, status="solved", from_customer=False)
    if rng.random() < 0.5:
        yield sup("satisfaction_rating", solved + rng.randint(1, 24) * HOUR, rating=rng.choice([1, 2, 3, 4, 5]))


def malformed(rng: random.Random, n: int) -> list[tuple[str, bytes, bytes | dict]]:
    """Bad input as real feeds produce it: JSON where Avro is expected, truncated Avro, an unknown
    schema id, random bytes, and well-formed Avro naming an event type nobody knows. A dict value
    is valid Avro to be encoded with the topic's schema."""
    out: list[tuple[str, bytes, bytes | dict]] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            out.append(("orders", b"O-bad", b'{"not": "avro"}'))
        elif kind == 1:
            out.append(("carrier-scans", b"O-bad", bytes([0, 0, 0, 0, 2]) + rng.randbytes(rng.randint(0, 12))))
        elif kind == 2:
            out.append(("engagement", b"C-bad", bytes([0, 0, 0, 0x7F, 0x7F]) + b"\x02"))
        elif kind == 3:
            out.append(("support", b"C-bad", rng.randbytes(rng.randint(1, 40))))
        else:
            out.append(
                (
                    "orders",
                    b"O-bad",
                    {
                        "event_id": f"bad-{i}",
                        "event_time": 1_767_225_600_000,
                        "source": "simulator",
                        "type": "exchanged",
                        "order_id": "O-bad",
                        "customer_id": "C-bad",
                    },
                )
            )
    return out
