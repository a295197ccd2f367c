"""Simulated shop traffic: orders, carrier scans, engagement and support contacts, in event time.

`generate()` is pure (seeded): the same arguments give the same events, so tests, the demo, replays
and benchmarks share one realistic source. It includes what real feeds do to you: late deliveries,
failed attempts, carrier exceptions, lost parcels, cancellations, refunds, duplicated and
out-of-order scans, unsubscribes, bounces, and support contacts about late orders.

Returns after delivery (see `_Returns`): requests with per-item reasons, partial returns, declines,
labels, the return parcel's carrier scans, receipt, inspection, refunds (some late), store credit and
exchanges (a new order for the swapped size). They draw from their own random stream per order, so
the orders and events of a seed without returns are the same as before returns were simulated. The
simulator's ground truth about each return (was its refund late?) rides on the `return_requested`
event as `SimEvent.truth`, outside the record: the engine never sees it; `returns_truth()` collects it.

When customers read their e-mail (see `Habit`): each customer checks their inbox in a window of their
local day, so opens and clicks come at their next check-in, and the shipping and delivered notices are
opened more often when they land just before it. This gives a send-time optimisation something to
learn and a backtest a truth to score against (`habit()` and `habits()` recompute it). Opens draw from
their own random stream per order, so every other event of a seed is the same as before opens had times.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from ..core.experiments import Experiment, assign, unit_of
from zoneinfo import ZoneInfo

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
    truth: dict | None = None  # the simulator's ground truth (on return_requested), never produced


class _Ids:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.n = 0

    def __call__(self, kind: str) -> str:
        self.n += 1
        return f"{self.prefix}{kind}-{self.n:07d}"


def generate(
    orders: int = 200,
    start_ms: int = 1_767_225_600_000,
    span_ms: int = 2 * DAY,
    seed: int = 7,
    id_prefix: str = "",
    return_rate_scale: float = 1.0,
    planted: tuple[Planted, ...] = (),
) -> list[SimEvent]:
    """Events of `orders` orders placed over `span_ms` from `start_ms`, sorted by arrival.

    `return_rate_scale` multiplies every category's return rate (0: no returns; the exchange orders
    returns lead to come on top of `orders`). `planted`: effects of experiment arms on customers'
    behaviour (see Planted); none by default."""
    if return_rate_scale < 0:
        raise ValueError("return_rate_scale must be >= 0")
    rng = random.Random(seed)
    next_id = _Ids(id_prefix)
    returns = _Returns(seed, id_prefix, return_rate_scale) if return_rate_scale > 0 else None
    customers = [f"{id_prefix}C{n:05d}" for n in range(max(1, int(orders * 0.7)))]
    profiles = {c: _profile(rng) for c in customers}
    out: list[SimEvent] = []
    for n in range(orders):
        customer = rng.choice(customers)
        placed = start_ms + int(rng.random() * span_ms)
        order_id = f"{id_prefix}O{n:06d}"
        p = profiles[customer]
        opens = _Opens(habit(seed, customer, p["tz"]), seed, order_id, id_prefix)
        out.extend(_order_life(rng, next_id, order_id, customer, p, placed, opens, returns=returns, planted=planted))
    out.sort(key=lambda e: (e.arrives_at, e.record["event_id"]))
    return out


@dataclass(frozen=True, slots=True)
class Planted:
    """An effect planted for one arm of an experiment, for the backtest to find again: the chance
    that a late order's customer asks where it is ("wismo", 0.35 without), or that a delivered
    order is reviewed ("review", 0.3 without), moves by `lift` in that arm. The arm is the one the
    engine assigns (streams/core/experiments.py), so the effect is on everyone the arm covers,
    whether a message went out or not: what an intention-to-treat comparison measures."""

    experiment: Experiment
    arm: str
    outcome: str  # wismo | review
    lift: float


PLANTABLE = ("wismo", "review")


def planted_from(spec: str, experiments: tuple[Experiment, ...]) -> Planted:
    """`EXPERIMENT:ARM:OUTCOME=LIFT`, e.g. `delay-warning-holdout:held_out:wismo=0.2`."""
    try:
        head, lift = spec.split("=", 1)
        exp_id, arm, outcome = head.split(":")
        value = float(lift)
    except ValueError:
        raise ValueError(f"--plant {spec!r}: want EXPERIMENT:ARM:OUTCOME=LIFT") from None
    exp = next((e for e in experiments if e.id == exp_id), None)
    if exp is None or arm not in {a.name for a in exp.arms} or outcome not in PLANTABLE or exp.policy != "hash":
        raise ValueError(
            f"--plant {spec!r}: no hash-assigned experiment {exp_id!r} with arm {arm!r}, or outcome not in {PLANTABLE}"
        )
    return Planted(exp, arm, outcome, value)


def _lift(planted: tuple[Planted, ...], outcome: str, customer: str, order_id: str) -> float:
    total = 0.0
    for p in planted:
        if p.outcome == outcome and assign(p.experiment, unit_of(p.experiment, customer, order_id)).name == p.arm:
            total += p.lift
    return total


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


def _order_life(
    rng,
    next_id,
    order_id: str,
    customer: str,
    p: dict,
    placed: int,
    opens: _Opens,
    returns: _Returns | None = None,
    exchange: tuple[str, list[dict]] | None = None,  # (original order, its new line items)
    planted: tuple[Planted, ...] = (),
) -> Iterator[SimEvent]:
    if exchange is None:
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
    else:
        line_items = exchange[1]
        total = 0.0  # paid by the items sent back
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
        order_number=f"#{order_id[-6:]}" if exchange is None else f"#{exchange[0][-6:]}-X",
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
        **({"exchange_of": exchange[0]} if exchange else {}),
    )
    yield order("paid", placed + rng.randint(1, 10) * MINUTE)
    yield from _engagement(rng, next_id, customer, order_id, placed + rng.randint(2, 90) * MINUTE, opens)

    if rng.random() < 0.03 and exchange is None:  # cancelled before it ships
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
    yield from opens.notice("shipped", customer, dispatched)
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
    if delivered_at is not None:
        yield from opens.notice("delivered", customer, delivered_at)

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
    if late and rng.random() < 0.35 + _lift(planted, "wismo", customer, order_id):
        yield from _wismo(rng, next_id, customer, order_id, promised + rng.randint(2, 30) * HOUR)
    if delivered_at is not None:
        if rng.random() < 0.3 + _lift(planted, "review", customer, order_id):
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
        if rng.random() < 0.02:  # a refund without a return flow (drawn as before returns existed)
            refund = order("refunded", delivered_at + rng.randint(1, 10) * DAY, reason="return", amount=total)
            if exchange is None and (returns is None or not returns.will_return(order_id, line_items)):
                yield refund
        if returns is not None and exchange is None:
            yield from returns.journey(order_id, customer, p, line_items, delivered_at, carrier, typical_days, lane)


def _engagement(rng, next_id, customer: str, order_id: str, at: int, opens: _Opens) -> Iterator[SimEvent]:
    def eng(kind: str, t: int, channel: str = "email", scope: str | None = None) -> SimEvent:
        return SimEvent(
            "engagement",
            customer,
            _eng_record(next_id("eng"), kind, t, customer, order_id, channel, scope),
            t + rng.randint(100, 5000),
        )

    roll = rng.random()
    if roll < 0.01:
        yield eng("bounced", at)
        return
    yield eng("delivered", at)
    if rng.random() < 0.55:
        # The times come from the customer's habit (own stream); the main stream's draws for them
        # stay, unused, so every other event of the seed keeps its values.
        rng.randint(1, 240)
        opened = opens.check_in(at)
        yield eng("opened", opened)
        if rng.random() < 0.3:
            rng.randint(241, 300)
            yield eng("clicked", opened + opens.jitter.randint(1, 10) * MINUTE)
    if rng.random() < 0.02:
        yield eng("unsubscribed", at + rng.randint(1, 48) * HOUR, scope="marketing")
    if rng.random() < 0.005:
        yield eng("spam_report", at + rng.randint(1, 48) * HOUR)


def _eng_record(
    event_id: str, kind: str, t: int, customer: str, order_id: str, channel: str = "email", scope: str | None = None
) -> dict:
    return {
        "event_id": event_id,
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
    }


def _ticket(rng, next_id, customer: str, order_id: str, topic: str):
    """A new support ticket about an order: returns a maker of its events (kind, time, fields)."""
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
            "topic": topic,
            **extra,
        }
        return SimEvent("support", customer, record, t + rng.randint(100, 5000))

    return sup


def _wismo(rng, next_id, customer: str, order_id: str, at: int) -> Iterator[SimEvent]:
    sup = _ticket(rng, next_id, customer, order_id, "wismo")
    yield sup("ticket_opened", at, status="new", text=rng.choice(WISMO_TEXTS))
    solved = at + rng.randint(2, 48) * HOUR
    yield sup("solved", solved, status="solved", from_customer=False)
    if rng.random() < 0.5:
        yield sup("satisfaction_rating", solved + rng.randint(1, 24) * HOUR, rating=rng.choice([1, 2, 3, 4, 5]))


# --- when customers read their e-mail ---------------------------------------------------------

# Where customers' inbox check-ins fall in their local day: (local hours the window may start at,
# weight). The shape follows published e-mail open-time studies (GetResponse's analysis of 21 million
# messages, 2012; the send-time reports of Mailchimp, Klaviyo and Omnisend): opens peak in the
# morning, around lunch and in the evening, the evening the largest for shoppers. It is not
# calibrated on real engagement data: the Olist sample the simulator follows has none.
PEAKS = ((range(6, 10), 0.30), (range(11, 15), 0.25), (range(18, 23), 0.45))
OPEN_FLOOR = 0.35  # a buried message is still found at some later check-in: opens sink to a floor, not 0
# How fast a waiting message sinks under newer mail: most opens come within hours of landing
# (GetResponse 2012: about a quarter in the first hour, tailing off over the next few).
OPEN_TAU_HOURS = 2.5


@dataclass(frozen=True, slots=True)
class Habit:
    """When a customer reads their e-mail: a window of `spread_hours` from `peak_hour` local time."""

    peak_hour: int  # local hour (0-23) the check-in window starts
    spread_hours: int  # how long it lasts (1-3)
    base_open: float  # chance of opening a message that lands just before (or in) the window
    tz: str  # IANA time zone of the customer's local day


def habit(seed: int, customer_id: str, tz: str) -> Habit:
    """The customer's habit: the same for the same (seed, customer), from its own random stream, so
    a backtest can recompute the truth a simulated run was made from."""
    r = random.Random(zlib.crc32(f"habit:{seed}:{customer_id}".encode()))
    hours = r.choices([h for h, _ in PEAKS], weights=[w for _, w in PEAKS])[0]
    return Habit(
        peak_hour=r.choice(hours), spread_hours=r.randint(1, 3), base_open=round(r.uniform(0.25, 0.6), 3), tz=tz
    )


def habits(events, seed: int) -> dict[str, Habit]:
    """Each customer's habit in a run of `generate(seed=seed)`, their time zone from their orders."""
    tzs = {
        e.record["customer_id"]: e.record["shipping"]["time_zone"]
        for e in events
        if e.topic == "orders" and e.record.get("type") == "placed"
    }
    return {c: habit(seed, c, tz) for c, tz in sorted(tzs.items())}


def _window(h: Habit, at_ms: int) -> tuple[int, int]:
    """The first check-in window (start, end) in epoch ms that ends after `at_ms`."""
    zone = ZoneInfo(h.tz)
    day = datetime.fromtimestamp(at_ms / 1000, timezone.utc).astimezone(zone).date()
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):  # yesterday's may run past midnight
        start = int(datetime(d.year, d.month, d.day, h.peak_hour, tzinfo=zone).timestamp() * 1000)
        end = start + h.spread_hours * HOUR
        if end > at_ms:
            return start, end
    raise AssertionError("a window starts every local day")  # pragma: no cover


def open_probability(h: Habit, landed_at_ms: int) -> float:
    """The chance the customer opens a message that lands in the inbox at `landed_at_ms`: they read
    it at their next check-in, and the longer it waits the more it is buried."""
    start, _ = _window(h, landed_at_ms)
    gap_hours = max(0, start - landed_at_ms) / HOUR
    return h.base_open * (OPEN_FLOOR + (1 - OPEN_FLOOR) * math.exp(-gap_hours / OPEN_TAU_HOURS))


def next_check_in(h: Habit, after_ms: int, jitter: random.Random) -> int:
    """When the customer next looks at or after `after_ms`: a random minute of their next window."""
    start, end = _window(h, after_ms)
    start = max(start, after_ms)
    return start + jitter.randrange(max(1, (end - start) // MINUTE)) * MINUTE


class _Opens:
    """When one order's e-mails are opened, from the customer's habit and the order's own stream."""

    def __init__(self, h: Habit, seed: int, order_id: str, id_prefix: str):
        self.habit = h
        self.order_id = order_id
        self.id_prefix = id_prefix
        self.jitter = random.Random(f"opens:{seed}:{order_id}")

    def check_in(self, after_ms: int) -> int:
        return next_check_in(self.habit, after_ms, self.jitter)

    def notice(self, kind: str, customer: str, sent_at: int) -> Iterator[SimEvent]:
        """The customer opens the shop's `kind` notice (sent at `sent_at`), or not."""
        if self.jitter.random() >= open_probability(self.habit, sent_at):
            return
        at = self.check_in(sent_at)
        event_id = f"{self.id_prefix}eng-{self.order_id}-open-{kind}"  # its own: never renumbers the others
        record = _eng_record(event_id, "opened", at, customer, self.order_id)
        yield SimEvent("engagement", customer, record, at + self.jitter.randint(1, 5) * 1000)


# --- returns, exchanges and refunds ----------------------------------------------------------

# Share of delivered line items sent back, per category. Olist has no returns data, so these are
# not calibrated on it: they follow public industry figures for online orders (NRF and Appriss
# Retail, "Consumer Returns in the Retail Industry", 2023: about 17-18% of online sales returned
# overall; apparel and shoes highest at 20-30%, Coresight Research 2023; consumer electronics about
# 8-10%; home goods about 8%; food, supplements and opened cosmetics rarely, 2-5%).
RETURN_RATES = {
    "fashion": 0.25,
    "electronics": 0.09,
    "appliances": 0.07,
    "home": 0.08,
    "consumables": 0.02,
    "beauty": 0.04,
}
DEFAULT_RETURN_RATE = 0.05
# Why an item comes back, per category (weights): apparel for fit and looks, devices for faults.
RETURN_REASONS = {
    "fashion": {
        "size_too_small": 30,
        "size_too_large": 25,
        "style": 15,
        "color": 8,
        "not_as_described": 10,
        "defective": 5,
        "unwanted": 7,
    },
    "electronics": {"defective": 40, "not_as_described": 25, "unwanted": 20, "wrong_item": 5, "other": 10},
    "appliances": {"defective": 45, "not_as_described": 20, "unwanted": 20, "wrong_item": 5, "other": 10},
    "home": {"not_as_described": 30, "style": 20, "defective": 20, "unwanted": 25, "other": 5},
    "consumables": {"wrong_item": 35, "defective": 25, "unwanted": 30, "other": 10},
    "beauty": {"unwanted": 35, "not_as_described": 25, "defective": 20, "wrong_item": 10, "other": 10},
}
SIZE_REASONS = ("size_too_small", "size_too_large")
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
RETURN_DECLINED = 0.06  # requests the shop turns down (window passed, opened hygiene items, final sale)
DECLINE_NOTES = [
    "The 30-day return window for this order has passed.",
    "Opened hygiene and food items cannot be returned.",
    "Items bought on final sale cannot be returned.",
]
EXCHANGE_FOR_SIZE = 0.5  # a size problem: half ask for the other size (fashion: ~27% of returns)
STORE_CREDIT = 0.04
# Receipt at the warehouse to refund: most within 2-5 days, a late tail (a backlog, a lost slip).
REFUND_LATE_SHARE = 0.10
REFUND_DAYS = (1.5, 6.0, 3.0)  # triangular (low, high, mode) of an on-time refund
REFUND_LATE_DAYS = (8.0, 20.0)  # uniform range of a late one
REFUND_ASK_SHARE = 0.5  # customers with a late refund who write to support about it
REFUND_TEXTS = [
    "I sent my return back two weeks ago and still have not received my refund.",
    "Where is my refund? The tracking says you received the parcel days ago.",
    "Hello, could you check on the refund for my return? Thanks.",
]


def _swap_size(sku: str, reason: str) -> str:
    """The other size of a fashion SKU (TEE-BLK-M -> TEE-BLK-L, SNK-WHT-42 -> SNK-WHT-41)."""
    head, _, size = sku.rpartition("-")
    step = 1 if reason == "size_too_small" else -1
    if size.isdigit():
        return f"{head}-{int(size) + step}"
    if size in SIZES:
        return f"{head}-{SIZES[max(0, min(len(SIZES) - 1, SIZES.index(size) + step))]}"
    return sku


class _Returns:
    """The return journeys of delivered orders, each from its own random stream (seed, order id)."""

    def __init__(self, seed: int, id_prefix: str, scale: float):
        self.seed = seed
        self.id_prefix = id_prefix
        self.scale = scale
        self.next_id = _Ids(f"{id_prefix}r")  # r...: never the same ids as the orders' own events

    def _rng(self, order_id: str) -> random.Random:
        return random.Random(f"returns:{self.seed}:{order_id}")

    def _picked(self, rng: random.Random, line_items: list[dict]) -> list[dict]:
        picked = []
        for li in line_items:
            if rng.random() < min(1.0, RETURN_RATES.get(li["category"], DEFAULT_RETURN_RATE) * self.scale):
                reasons = RETURN_REASONS.get(li["category"], {"unwanted": 1, "other": 1})
                reason = rng.choices(list(reasons), weights=list(reasons.values()))[0]
                picked.append({"sku": li["sku"], "quantity": rng.randint(1, li["quantity"]), "reason": reason})
        return picked

    def will_return(self, order_id: str, line_items: list[dict]) -> bool:
        return bool(self._picked(self._rng(order_id), line_items))

    def journey(
        self,
        order_id: str,
        customer: str,
        p: dict,
        line_items: list[dict],
        delivered_at: int,
        carrier: str,
        typical_days: float,
        lane: dict,
    ) -> Iterator[SimEvent]:
        rng = self._rng(order_id)
        items = self._picked(rng, line_items)
        if not items:
            return
        next_id = self.next_id
        return_id = f"{order_id}-R1"
        if any(i["reason"] in SIZE_REASONS for i in items) and rng.random() < EXCHANGE_FOR_SIZE:
            resolution = "exchange"
        elif rng.random() < STORE_CREDIT:
            resolution = "store_credit"
        else:
            resolution = "refund"
        base = {"order_id": order_id, "customer_id": customer}

        def info(**extra) -> dict:
            return {
                "return_id": return_id,
                "items": [dict(i) for i in items],
                "resolution": resolution,
                "label": None,
                "exchange_order_id": None,
                "refund_method": None,
                "disposition": None,
                "note": None,
                **extra,
            }

        def order(kind: str, at: int, truth: dict | None = None, **extra) -> SimEvent:
            record = {
                "event_id": next_id("ord"),
                "event_time": at,
                "source": "simulator",
                "type": kind,
                **base,
                "return_info": info(**extra.pop("info", {})),
                **extra,
            }
            return SimEvent("orders", order_id, record, at + rng.randint(50, 2000), truth)

        truth = {
            "return_id": return_id,
            "order_id": order_id,
            "customer_id": customer,
            "resolution": resolution,
            "declined": False,
            "items": len(items),
            "partial": sum(i["quantity"] for i in items) < sum(li["quantity"] for li in line_items),
            "categories": sorted({li["category"] for li in line_items if li["sku"] in {i["sku"] for i in items}}),
            "received_at": None,
            "refunded_at": None,
            "refund_days": None,
            "refund_late": None,  # the ground truth: the refund came in the late tail
            "asked_at": None,  # when the customer wrote to support about the refund
            "exchange_order_id": None,
        }
        requested = delivered_at + int(min(28.0, 0.3 + rng.expovariate(1 / 4)) * DAY)
        first = order("return_requested", requested, truth)
        if rng.random() < RETURN_DECLINED:
            truth["declined"] = True
            declined = requested + rng.randint(2, 48) * HOUR
            yield first
            yield order("return_declined", declined, info={"note": rng.choice(DECLINE_NOTES)})
            yield order("return_closed", declined + rng.randint(1, 30) * MINUTE)
            return
        approved = requested + rng.randint(5, 20 * 60) * MINUTE
        labelled = approved + max(MINUTE, int(rng.uniform(0, 2) * DAY))
        shipment = f"{return_id}-S"
        tracking = f"RTN{zlib.crc32(return_id.encode()):010d}"
        label = {"shipment_id": shipment, "carrier": carrier, "tracking_number": tracking}
        yield first
        yield order("return_approved", approved)
        yield order("return_label_created", labelled, info={"label": label})

        # The return parcel: the customer drops it off, it travels like a forward parcel.
        dropped = labelled + int(rng.uniform(0.3, 4) * DAY)
        at_warehouse = dropped + int(max(0.5, rng.lognormvariate(0, 0.45) * typical_days) * DAY)
        scans = [
            (labelled + rng.randint(1, 6) * HOUR, "info_received", "InfoReceived_001"),
            (dropped, "in_transit", "InTransit_002"),
        ]
        ofd = at_warehouse - rng.randint(2, 5) * HOUR
        if ofd > dropped:
            scans.append((ofd, "out_for_delivery", "OutForDelivery_001"))
        else:
            at_warehouse = dropped + 3 * HOUR
        scans.append((at_warehouse, "delivered", "Delivered_001"))
        back = {"origin_region": lane["destination_region"], "destination_region": lane["origin_region"]}
        for at, status, raw in scans:
            record = {
                "event_id": next_id("scan"),
                "event_time": at,
                "source": "simulator",
                **base,
                "shipment_id": shipment,
                "tracking_number": tracking,
                "carrier": carrier,
                "service_level": "return",
                "status": status,
                "sub_status": None,
                **back,
                "location": None,
                "carrier_estimated_delivery_at": None,
                "raw_status": raw,
                "direction": "return",  # the shop's tracker knows its return labels
            }
            lag = rng.randint(1, 60) * 1000
            if rng.random() < 0.03:
                lag += rng.randint(6, 30) * HOUR  # a late feed
            yield SimEvent("carrier-scans", order_id, record, at + lag)
            if rng.random() < 0.04:
                yield SimEvent("carrier-scans", order_id, dict(record), at + lag + rng.randint(1, 600) * 1000)

        received = at_warehouse + rng.randint(1, 20) * HOUR
        truth["received_at"] = received
        yield order("return_received", received)
        roll = rng.random()
        disposition = "restocked" if roll < 0.85 else ("not_restocked" if roll < 0.95 else "damaged")
        if resolution == "exchange":
            inspected = received + int(rng.uniform(0.1, 1.5) * DAY)
            yield order("return_inspected", inspected, info={"disposition": disposition})
            exchange_id = f"{order_id}-X1"
            truth["exchange_order_id"] = exchange_id
            created = inspected + rng.randint(10, 240) * MINUTE
            yield order("exchange_created", created, info={"exchange_order_id": exchange_id})
            yield order("return_closed", created + rng.randint(1, 30) * MINUTE)
            by_sku = {li["sku"]: li for li in line_items}
            new_items = [
                {
                    **by_sku[i["sku"]],
                    "sku": _swap_size(i["sku"], i["reason"]) if i["reason"] in SIZE_REASONS else i["sku"],
                    "quantity": i["quantity"],
                }
                for i in items
            ]
            yield from _order_life(
                rng,
                next_id,
                exchange_id,
                customer,
                p,
                created + rng.randint(1, 20) * MINUTE,
                _Opens(habit(self.seed, customer, p["tz"]), self.seed, exchange_id, self.id_prefix),
                exchange=(order_id, new_items),
            )
            return
        late = rng.random() < REFUND_LATE_SHARE
        days = rng.uniform(*REFUND_LATE_DAYS) if late else rng.triangular(*REFUND_DAYS)
        refunded = received + int(days * DAY)
        inspected = received + int(rng.uniform(0.1, min(2.0, days - 0.1)) * DAY)
        truth.update(refunded_at=refunded, refund_days=round(days, 3), refund_late=late)
        yield order("return_inspected", inspected, info={"disposition": disposition})
        by_sku = {li["sku"]: li for li in line_items}
        amount = round(sum(by_sku[i["sku"]]["price"] * i["quantity"] for i in items), 2)
        method = "store_credit" if resolution == "store_credit" else "original_payment"
        yield order("refunded", refunded, reason="return", amount=amount, info={"refund_method": method})
        yield order("return_closed", refunded + rng.randint(1, 60) * MINUTE)
        if late and rng.random() < REFUND_ASK_SHARE:
            asked = received + int(rng.uniform(6.0, min(12.0, days - 0.25)) * DAY)
            truth["asked_at"] = asked
            yield from _refund_ticket(rng, next_id, customer, order_id, asked, refunded)


def _refund_ticket(rng, next_id, customer: str, order_id: str, at: int, refunded: int) -> Iterator[SimEvent]:
    """The customer asks support where the refund is; solved once it came."""
    sup = _ticket(rng, next_id, customer, order_id, "return")
    yield sup("ticket_opened", at, status="new", text=rng.choice(REFUND_TEXTS))
    yield sup("solved", max(at, refunded) + rng.randint(1, 12) * HOUR, status="solved", from_customer=False)


def returns_truth(events) -> dict[str, dict]:
    """The simulator's ground truth per return id (resolution, declined, received and refund times,
    whether the refund was late, when the customer asked), from generated events."""
    return {e.truth["return_id"]: dict(e.truth) for e in events if e.truth is not None}


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
