"""Per-order and per-customer state as plain typed records, stored in Faust tables as dicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import to_record

# Bounded memories: enough to absorb redeliveries and retries, small enough to keep state compact.
SEEN_EVENTS_KEPT = 64
RECENT_INTENTS_KEPT = 50


def _remember(seen: list[str], item: str, keep: int) -> bool:
    """Record `item`; False if it was already there (a duplicate)."""
    if item in seen:
        return False
    seen.append(item)
    if len(seen) > keep:
        del seen[: len(seen) - keep]
    return True


@dataclass(slots=True)
class Shipment:
    shipment_id: str
    carrier: str
    service_level: str | None = None
    tracking_number: str | None = None
    skus: list[str] = field(default_factory=list)
    fulfilled_at: int | None = None
    fulfilled_event_id: str | None = None
    status: str | None = None  # normalized tracking status, only moves forward
    sub_status: str | None = None
    raw_status: str | None = None
    first_scan_at: int | None = None
    last_scan_at: int | None = None
    last_scan_event_id: str | None = None
    delivered_at: int | None = None
    carrier_eta: int | None = None
    failed_attempts: int = 0
    origin_region: str | None = None
    destination_region: str | None = None
    handoff_at: int | None = None  # first scan that shows the carrier has the parcel
    scans: int = 0  # carrier scans since hand-off
    delay_level: int = 0  # 0 none, 1 warned, 2 warned again (never more)
    announced_window_end: int | None = None
    p_late: float | None = None  # latest predicted chance of missing the promise
    window_start: int | None = None  # latest predicted delivery window
    window_end: int | None = None


@dataclass(slots=True)
class ReturnState:
    """One return of (some items of) an order, as far as it got. Times are event times."""

    return_id: str
    status: str = "requested"  # requested | approved | declined | label_created | in_transit | received |
    #                            inspected | refunded | exchanged | closed (only moves forward)
    items: list[dict] = field(default_factory=list)  # sku, quantity, reason
    resolution: str | None = None  # refund | exchange | store_credit
    label_shipment_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    requested_at: int | None = None
    approved_at: int | None = None
    declined_at: int | None = None
    label_at: int | None = None
    shipped_at: int | None = None  # the return parcel's first carrier scan
    received_at: int | None = None
    inspected_at: int | None = None
    refunded_at: int | None = None
    closed_at: int | None = None
    refund_amount: float | None = None
    refund_method: str | None = None
    disposition: str | None = None
    exchange_order_id: str | None = None
    refund_overdue_at: int | None = None  # when the refund was found later than the shop's usual time

    @property
    def open(self) -> bool:
        return self.status not in ("declined", "closed")


@dataclass(slots=True)
class OrderState:
    order_id: str
    customer_id: str | None = None
    status: str = "open"  # open | cancelled | refunded
    placed_at: int | None = None
    paid_at: int | None = None
    cancelled_at: int | None = None
    refunded_at: int | None = None
    cancel_reason: str | None = None
    refund_reason: str | None = None
    promised_delivery_at: int | None = None
    time_zone: str | None = None
    region: str | None = None
    locale: str | None = None
    contact: dict | None = None  # ContactChannels as a dict
    total: float | None = None
    items: list[dict] = field(default_factory=list)  # sku, title, category, quantity
    shipments: dict[str, Shipment] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # e.g. "S1:exception:customs_delay"
    notified: list[str] = field(default_factory=list)  # occasions already decided (sent or dropped)
    timers: dict[str, int] = field(default_factory=dict)  # scheduled decision kind -> due time
    seen_events: list[str] = field(default_factory=list)
    updated_at: int | None = None
    returns: dict[str, ReturnState] = field(default_factory=dict)  # return id -> its journey (the newest few)
    exchange_of: str | None = None  # this order replaces items returned from that one

    def first_time(self, event_id: str) -> bool:
        return _remember(self.seen_events, event_id, SEEN_EVENTS_KEPT)

    def to_dict(self) -> dict:
        return to_record(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OrderState":
        values = dict(data)
        values["shipments"] = {k: Shipment(**v) for k, v in (data.get("shipments") or {}).items()}
        values["returns"] = {k: ReturnState(**v) for k, v in (data.get("returns") or {}).items()}
        return cls(**values)


@dataclass(slots=True)
class ChannelState:
    reachable: bool = False  # the shop has an address/number/token for it
    bounced: bool = False  # hard bounce: unreachable until a new order brings a fresh address
    unsubscribed_all: bool = False  # no messages at all on this channel, transactional included
    marketing_consent: bool = False
    consent_at: int | None = None  # event time of the last consent change (newest wins)
    sent: int = 0
    opened: int = 0
    clicked: int = 0

    def engagement_rate(self) -> float:
        """Opens and clicks per message sent, smoothed towards 0.5 while there is little data."""
        return (self.opened + self.clicked + 1) / (self.sent + 2)


@dataclass(slots=True)
class CustomerOrder:
    """What the customer stage remembers of one order (from the order stage's facts)."""

    order_id: str
    placed_at: int | None = None
    total: float | None = None
    items: list[dict] = field(default_factory=list)  # sku, title, category, quantity (the whole order)
    delivered_at: int | None = None  # first delivery of any parcel of the order
    delivered_items: list[dict] = field(default_factory=list)  # what has been delivered so far
    delivered_source: str | None = None  # command id of the first "delivered" fact
    late: bool = False
    had_problem: bool = False  # the order stage says the order had a delivery problem or was late
    problems: list[str] = field(default_factory=list)  # delivery problem details, newest last (capped)
    problem_open_at: int | None = None  # an unresolved delivery problem, since
    cancelled_at: int | None = None
    refunded_at: int | None = None
    returned: bool = False
    returning: list[str] = field(default_factory=list)  # open returns that take back every item delivered
    negative_contact: bool = False  # a complaint, negative message or bad rating about this order
    wismo: bool = False  # the customer asked where it is (a "where is my order" ticket)
    reviewed: bool = False  # the customer reviewed something of this order already
    engaged: list[int] = field(default_factory=list)  # times of opens/clicks about this order (newest few)
    parcels: dict[str, int] = field(default_factory=dict)  # tracking number -> furthest stage proposed (1-3)
    planned: list[str] = field(default_factory=list)  # post-delivery messages planned (each once per order)
    last_fact_at: int = 0  # event time of the newest fact (for eviction)
    exchange_of: str | None = None  # this order replaces items returned from that one


@dataclass(slots=True)
class HeldIntent:
    """A message waiting for quiet hours to end or a guard to lift; re-checked in full at release."""

    intent: dict  # the MessageIntent as a record, on the preferred channel it was proposed on
    candidate_id: str  # the id it was proposed under (recognises a redelivered candidate)
    news: str  # order | intent type | occasion: the same news is never sent twice
    reasons: list[str]
    held_at: int
    release_at: int
    parcel_stage: int = 0  # how far its parcel's news had got when it started waiting (gate.superseded)


@dataclass(slots=True)
class ReplenishPlan:
    """A consumable the customer will run out of: remind before they do."""

    sku: str
    title: str
    category: str
    quantity: int
    order_id: str
    source_event_id: str
    runout_at: int


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    time_zone: str | None = None
    locale: str | None = None
    channels: dict[str, ChannelState] = field(default_factory=dict)
    orders_count: int = 0
    order_ids: list[str] = field(default_factory=list)  # all orders (the newest ORDER_IDS_KEPT), for erasure
    first_order_at: int | None = None
    last_order_at: int | None = None
    total_spent: float = 0.0
    max_order_total: float = 0.0
    order_times: list[int] = field(default_factory=list)  # placement times, sorted, the newest few
    categories: list[str] = field(default_factory=list)
    orders: dict[str, CustomerOrder] = field(default_factory=dict)  # the newest few orders
    open_tickets: list[str] = field(default_factory=list)
    last_negative_contact_at: int | None = None
    last_problem_at: int | None = None
    last_refund_at: int | None = None
    last_cancel_at: int | None = None
    last_return_at: int | None = None  # a return closed (or a parcel went back): cool-down from here
    open_returns: dict[str, int] = field(default_factory=dict)  # "order:return" -> opened at
    reviews: list[dict] = field(default_factory=list)  # order_id, product_id, rating, at
    review_asked: dict[str, int] = field(default_factory=dict)  # sku -> when a review of it was last requested
    recent_intents: list[dict] = field(
        default_factory=list
    )  # intent_id, candidate_id, intent_type, kind, channel, order_id, news, at
    marketing_log: list[dict] = field(default_factory=list)  # at, channel, intent_type of marketing sent (30 days)
    held: list[HeldIntent] = field(default_factory=list)
    replenish: dict[str, ReplenishPlan] = field(default_factory=dict)  # sku -> plan
    sku_purchases: dict[str, list[int]] = field(default_factory=dict)  # replenishable sku -> placement times
    timers: dict[str, int] = field(default_factory=dict)  # scheduled decision kind -> due time (see model.Schedule)
    # When they engage: decayed opens and clicks per local hour and weekday (send_time.py).
    send_time: dict | None = None  # hours: 24 floats, days: 7 floats, at: as of (event time)
    # Thompson-sampled experiments: the last arm sent, until its reward came or its window passed.
    exposures: dict[str, dict] = field(default_factory=dict)  # experiment -> arm, at, order_id
    enrolled: list[str] = field(default_factory=list)  # customer experiments they were counted in (units)
    seen: list[str] = field(default_factory=list)  # event and command ids
    updated_at: int | None = None

    def first_time(self, item_id: str) -> bool:
        return _remember(self.seen, item_id, SEEN_EVENTS_KEPT)

    def channel(self, name: str) -> ChannelState:
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[name] = ChannelState()
        return ch

    def to_dict(self) -> dict:
        return to_record(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CustomerState":
        values = dict(data)
        values["channels"] = {k: ChannelState(**v) for k, v in (data.get("channels") or {}).items()}
        values["orders"] = {k: CustomerOrder(**v) for k, v in (data.get("orders") or {}).items()}
        values["held"] = [HeldIntent(**h) for h in data.get("held") or ()]
        values["replenish"] = {k: ReplenishPlan(**v) for k, v in (data.get("replenish") or {}).items()}
        return cls(**values)
