"""Per-order and per-customer state as plain typed records, stored in Faust tables as dicts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    delay_level: int = 0  # 0 none, 1 warned, 2 warned again (never more)
    announced_window_end: int | None = None
    p_late: float | None = None  # latest predicted chance of missing the promise
    window_start: int | None = None  # latest predicted delivery window
    window_end: int | None = None


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

    def first_time(self, event_id: str) -> bool:
        return _remember(self.seen_events, event_id, SEEN_EVENTS_KEPT)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OrderState":
        values = dict(data)
        values["shipments"] = {k: Shipment(**v) for k, v in (data.get("shipments") or {}).items()}
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


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    time_zone: str | None = None
    locale: str | None = None
    channels: dict[str, ChannelState] = field(default_factory=dict)
    orders_count: int = 0
    first_order_at: int | None = None
    last_order_at: int | None = None
    total_spent: float = 0.0
    categories: list[str] = field(default_factory=list)
    open_tickets: list[str] = field(default_factory=list)
    last_negative_contact_at: int | None = None
    last_problem_at: int | None = None
    last_refund_at: int | None = None
    last_cancel_at: int | None = None
    reviews: list[dict] = field(default_factory=list)  # order_id, product_id, rating, at
    recent_intents: list[dict] = field(default_factory=list)  # intent_id, type, channel, order_id, at
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CustomerState":
        values = dict(data)
        values["channels"] = {k: ChannelState(**v) for k, v in (data.get("channels") or {}).items()}
        return cls(**values)

