"""Typed records for the events the core reads and the outputs it writes.

Field names match the Avro schemas in schemas/, so records convert to and from the wire dicts
without renaming. Times are epoch milliseconds UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

RETURN_TYPES = frozenset(
    {
        "return_requested",
        "return_approved",
        "return_declined",
        "return_label_created",
        "return_received",
        "return_inspected",
        "return_closed",
        "exchange_created",
    }
)
ORDER_TYPES = frozenset({"placed", "paid", "cancelled", "refunded", "fulfilled"}) | RETURN_TYPES
SCAN_STATUSES = frozenset(
    {
        "info_received",
        "in_transit",
        "out_for_delivery",
        "available_for_pickup",
        "attempt_failed",
        "exception",
        "delivered",
        "returned_to_sender",
        "expired",
    }
)
ENGAGEMENT_TYPES = frozenset(
    {
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "unsubscribed",
        "resubscribed",
        "spam_report",
        "review_submitted",
    }
)
SUPPORT_TYPES = frozenset({"ticket_opened", "message", "status_changed", "solved", "satisfaction_rating"})
CHANNELS = ("email", "sms", "push")
ENGAGEMENT_CHANNELS = frozenset(CHANNELS) | {"web"}


class InvalidEvent(ValueError):
    """A decoded record the core cannot accept. `reason` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_ms(value: Any) -> int | None:
    """fastavro gives aware datetimes for timestamp-millis; the core works in epoch ms."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    raise InvalidEvent("invalid_field", f"not a timestamp: {value!r}")


@dataclass(slots=True)
class LineItem:
    sku: str
    title: str
    category: str
    quantity: int
    product_id: str | None = None
    price: float | None = None


@dataclass(slots=True)
class ShippingAddress:
    country: str
    time_zone: str
    region: str | None = None
    postal_prefix: str | None = None


@dataclass(slots=True)
class ContactChannels:
    email: bool = True
    sms: bool = False
    push: bool = False
    marketing_email: bool = False
    marketing_sms: bool = False
    locale: str | None = None


@dataclass(slots=True)
class Fulfillment:
    shipment_id: str
    carrier: str
    service_level: str | None = None
    tracking_number: str | None = None
    skus: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReturnItem:
    sku: str
    quantity: int = 1
    reason: str | None = None  # size_too_small | defective | not_as_described | wrong_item | unwanted | ...


@dataclass(slots=True)
class ReturnLabel:
    shipment_id: str  # the return parcel's scans come with this shipment id
    carrier: str | None = None
    tracking_number: str | None = None


@dataclass(slots=True)
class ReturnInfo:
    return_id: str
    items: list[ReturnItem] = field(default_factory=list)
    resolution: str | None = None  # refund | exchange | store_credit
    label: ReturnLabel | None = None
    exchange_order_id: str | None = None
    refund_method: str | None = None
    disposition: str | None = None
    note: str | None = None


@dataclass(slots=True)
class OrderEvent:
    event_id: str
    event_time: int
    source: str
    type: str
    order_id: str
    customer_id: str
    order_number: str | None = None
    currency: str | None = None
    total: float | None = None
    line_items: list[LineItem] = field(default_factory=list)
    promised_delivery_at: int | None = None
    shipping: ShippingAddress | None = None
    contact: ContactChannels | None = None
    fulfillment: Fulfillment | None = None
    reason: str | None = None
    amount: float | None = None
    return_info: ReturnInfo | None = None
    exchange_of: str | None = None  # placed: the order whose return this exchange order replaces


@dataclass(slots=True)
class CarrierScan:
    event_id: str
    event_time: int
    source: str
    order_id: str
    shipment_id: str
    carrier: str
    status: str
    customer_id: str | None = None
    tracking_number: str | None = None
    service_level: str | None = None
    sub_status: str | None = None
    origin_region: str | None = None
    destination_region: str | None = None
    location: str | None = None
    carrier_estimated_delivery_at: int | None = None
    raw_status: str | None = None
    direction: str | None = None  # forward | return (a return parcel); None: not known


@dataclass(slots=True)
class EngagementEvent:
    event_id: str
    event_time: int
    source: str
    type: str
    customer_id: str
    channel: str
    order_id: str | None = None
    intent_id: str | None = None
    scope: str | None = None
    rating: int | None = None
    product_id: str | None = None


@dataclass(slots=True)
class SupportEvent:
    event_id: str
    event_time: int
    source: str
    type: str
    customer_id: str
    ticket_id: str
    order_id: str | None = None
    status: str | None = None
    from_customer: bool = True
    text: str | None = None  # may be sealed (streams/privacy.py): then `sentiment` is its score
    rating: int | None = None
    topic: str | None = None
    sentiment: float | None = None


@dataclass(slots=True)
class ItemHint:
    sku: str
    title: str
    category: str
    quantity: int


@dataclass(slots=True)
class ContentHints:
    items: list[ItemHint] = field(default_factory=list)
    category: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    window_start: int | None = None
    window_end: int | None = None
    segment: str | None = None  # first_time | repeat | high_value | occasional | lapsed
    tone: str | None = None  # how the template should sound, e.g. welcoming, appreciative, apologetic
    amount: float | None = None  # refund_issued
    currency: str | None = None
    return_id: str | None = None  # what a return_*, refund_* or exchange_* message is about


@dataclass(slots=True)
class ExperimentArm:
    experiment: str
    arm: str


@dataclass(slots=True)
class MessageIntent:
    intent_id: str
    decided_at: int
    order_id: str | None
    customer_id: str
    intent_type: str
    kind: str  # transactional | service | marketing
    channel: str
    send_at: int
    expires_at: int
    priority: str
    content: ContentHints
    reason_codes: list[str]
    source_event_id: str
    locale: str | None = None
    time_zone: str | None = None
    experiment: str | None = None  # the experiment that chose the variant to render, else the first one
    arm: str | None = None
    experiments: list[ExperimentArm] = field(default_factory=list)  # every experiment it is in


@dataclass(slots=True)
class DecisionAudit:
    audit_id: str
    decided_at: int
    customer_id: str
    intent_type: str
    decision: str  # suppressed | held | skipped | dropped
    reasons: list[str]
    source_event_id: str
    order_id: str | None = None
    channel: str | None = None
    intent_id: str | None = None
    experiment: str | None = None  # held_out: the experiment that held it back, and the arm
    arm: str | None = None


@dataclass(slots=True)
class OrderFact:
    """What the customer stage needs to know about an order (placed, delivered, problem...)."""

    type: str
    total: float | None = None
    categories: list[str] = field(default_factory=list)
    time_zone: str | None = None
    contact: ContactChannels | None = None
    detail: str | None = None
    items: list[ItemHint] = field(default_factory=list)
    had_problem: bool = False
    promised_delivery_at: int | None = None


@dataclass(slots=True)
class CustomerCommand:
    """Order stage -> customer stage, re-keyed by customer id."""

    command_id: str
    event_time: int
    customer_id: str
    order_id: str
    kind: str  # candidate_intent | order_fact | tick
    intent: MessageIntent | None = None
    fact: OrderFact | None = None
    due: DueTick | None = None


@dataclass(slots=True)
class DueTick:
    now: int


@dataclass(slots=True)
class OrderCommand:
    """For the order stage; today only ticks (wall-clock time for the partition's schedule)."""

    command_id: str
    event_time: int
    kind: str  # tick | erase
    order_id: str | None = None
    due: DueTick | None = None


@dataclass(slots=True)
class ErasureRequest:
    event_id: str
    event_time: int
    source: str
    customer_id: str
    order_ids: list[str] = field(default_factory=list)


def erasure_request_from(record: dict) -> ErasureRequest:
    _require(record, "ErasureRequest", "event_id", "customer_id")
    return ErasureRequest(
        **{**record, "event_time": to_ms(record["event_time"]), "order_ids": list(record.get("order_ids") or [])}
    )


@dataclass(slots=True, frozen=True)
class Schedule:
    """Ask to be called back: `decide_*` gets a Due for (key, kind) once `due_at` has passed.
    The state remembers the wanted time in its `timers`; an older schedule entry that no longer
    matches is ignored, so rescheduling or cancelling needs no index clean-up."""

    key: str  # order id or customer id: the partition that owns it fires it
    kind: str
    due_at: int


@dataclass(slots=True, frozen=True)
class Due:
    """A scheduled decision coming due (see Schedule)."""

    key: str
    kind: str
    due_at: int
    now: int


def to_record(obj) -> dict:
    """A dataclass as the dict the Avro writer expects (orjson walks dataclasses in C, about
    seven times faster than dataclasses.asdict)."""
    return orjson.loads(orjson.dumps(obj))


# --- from wire dicts -------------------------------------------------------------------------


def _require(record: dict, name: str, *fields: str) -> None:
    for f in fields:
        if record.get(f) in (None, ""):
            raise InvalidEvent("invalid_field", f"{name}.{f} is empty")


def order_event_from(record: dict) -> OrderEvent:
    _require(record, "OrderEvent", "event_id", "type", "order_id", "customer_id")
    if record["type"] not in ORDER_TYPES:
        raise InvalidEvent("unknown_type", f"order event type {record['type']!r}; known: {sorted(ORDER_TYPES)}")
    shipping = record.get("shipping")
    contact = record.get("contact")
    fulfillment = record.get("fulfillment")
    if record["type"] == "fulfilled" and not fulfillment:
        raise InvalidEvent("invalid_field", "OrderEvent type=fulfilled needs a fulfillment")
    info = record.get("return_info")
    if record["type"] in RETURN_TYPES and not info:
        raise InvalidEvent("invalid_field", f"OrderEvent type={record['type']} needs a return_info")
    if record["type"] == "return_label_created" and not info.get("label"):
        raise InvalidEvent("invalid_field", "OrderEvent type=return_label_created needs return_info.label")
    if record["type"] == "exchange_created" and not info.get("exchange_order_id"):
        raise InvalidEvent("invalid_field", "OrderEvent type=exchange_created needs return_info.exchange_order_id")
    return OrderEvent(
        event_id=record["event_id"],
        event_time=to_ms(record["event_time"]),
        source=record["source"],
        type=record["type"],
        order_id=record["order_id"],
        customer_id=record["customer_id"],
        order_number=record.get("order_number"),
        currency=record.get("currency"),
        total=record.get("total"),
        line_items=[LineItem(**li) for li in record.get("line_items") or ()],
        promised_delivery_at=to_ms(record.get("promised_delivery_at")),
        shipping=ShippingAddress(**shipping) if shipping else None,
        contact=ContactChannels(**contact) if contact else None,
        fulfillment=Fulfillment(**fulfillment) if fulfillment else None,
        reason=record.get("reason"),
        amount=record.get("amount"),
        return_info=_return_info(info) if info else None,
        exchange_of=record.get("exchange_of"),
    )


def _return_info(info: dict) -> ReturnInfo:
    label = info.get("label")
    return ReturnInfo(
        **{
            **info,
            "items": [ReturnItem(**i) for i in info.get("items") or ()],
            "label": ReturnLabel(**label) if label else None,
        }
    )


def carrier_scan_from(record: dict) -> CarrierScan:
    _require(record, "CarrierScan", "event_id", "order_id", "shipment_id", "status")
    if record["status"] not in SCAN_STATUSES:
        raise InvalidEvent("unknown_type", f"scan status {record['status']!r}; known: {sorted(SCAN_STATUSES)}")
    values = dict(record)
    values["event_time"] = to_ms(values["event_time"])
    values["carrier_estimated_delivery_at"] = to_ms(values.get("carrier_estimated_delivery_at"))
    return CarrierScan(**values)


def engagement_event_from(record: dict) -> EngagementEvent:
    _require(record, "EngagementEvent", "event_id", "type", "customer_id", "channel")
    if record["type"] not in ENGAGEMENT_TYPES:
        raise InvalidEvent("unknown_type", f"engagement type {record['type']!r}; known: {sorted(ENGAGEMENT_TYPES)}")
    if record["channel"] not in ENGAGEMENT_CHANNELS:
        raise InvalidEvent("invalid_field", f"engagement channel {record['channel']!r}")
    return EngagementEvent(**{**record, "event_time": to_ms(record["event_time"])})


def support_event_from(record: dict) -> SupportEvent:
    _require(record, "SupportEvent", "event_id", "type", "customer_id", "ticket_id")
    if record["type"] not in SUPPORT_TYPES:
        raise InvalidEvent("unknown_type", f"support event type {record['type']!r}; known: {sorted(SUPPORT_TYPES)}")
    return SupportEvent(**{**record, "event_time": to_ms(record["event_time"])})


def _intent_from(record: dict) -> MessageIntent:
    content = dict(record["content"])
    content["items"] = [ItemHint(**i) for i in content.get("items") or ()]
    content["window_start"] = to_ms(content.get("window_start"))
    content["window_end"] = to_ms(content.get("window_end"))
    return MessageIntent(
        **{
            **record,
            "decided_at": to_ms(record["decided_at"]),
            "send_at": to_ms(record["send_at"]),
            "expires_at": to_ms(record["expires_at"]),
            "content": ContentHints(**content),
            "experiments": [ExperimentArm(**e) for e in record.get("experiments") or ()],
        }
    )


def customer_command_from(record: dict) -> CustomerCommand:
    intent = record.get("intent")
    fact = record.get("fact")
    if fact:
        fact = dict(fact)
        fact["contact"] = ContactChannels(**fact["contact"]) if fact.get("contact") else None
        fact["items"] = [ItemHint(**i) for i in fact.get("items") or ()]
        fact["promised_delivery_at"] = to_ms(fact.get("promised_delivery_at"))
    due = record.get("due")
    return CustomerCommand(
        command_id=record["command_id"],
        event_time=to_ms(record["event_time"]),
        customer_id=record["customer_id"],
        order_id=record["order_id"],
        kind=record["kind"],
        intent=_intent_from(intent) if intent else None,
        fact=OrderFact(**fact) if fact else None,
        due=DueTick(now=to_ms(due["now"])) if due else None,
    )


def order_command_from(record: dict) -> OrderCommand:
    kind = record["kind"]
    if kind == "tick" and record.get("due"):
        return OrderCommand(
            command_id=record["command_id"],
            event_time=to_ms(record["event_time"]),
            kind="tick",
            order_id=record.get("order_id"),
            due=DueTick(now=to_ms(record["due"]["now"])),
        )
    if kind == "erase" and record.get("order_id"):
        return OrderCommand(
            command_id=record["command_id"],
            event_time=to_ms(record["event_time"]),
            kind="erase",
            order_id=record["order_id"],
        )
    raise InvalidEvent("unknown_type", f"order command kind {kind!r} (or its fields); known: tick, erase")


def message_intent_from(record: dict) -> MessageIntent:
    return _intent_from(record)
