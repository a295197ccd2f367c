"""The transactional touchpoints: order confirmation, shipped, out for delivery, delivered.

Each fires once per occasion (the order, or one shipment of it), on the channel that suits its
urgency, and expires when the news is no longer worth sending.
"""
from __future__ import annotations

from dataclasses import dataclass

HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Touchpoint:
    intent_type: str
    priority: str
    ttl_ms: int  # news older than this is dropped, never sent late
    urgent: bool  # prefers SMS/push where the customer can be reached there


TOUCHPOINTS = {
    "order_confirmation": Touchpoint("order_confirmation", "high", 24 * HOUR, urgent=False),
    "shipped": Touchpoint("shipped", "normal", 48 * HOUR, urgent=False),
    "out_for_delivery": Touchpoint("out_for_delivery", "high", 12 * HOUR, urgent=True),
    "delivered": Touchpoint("delivered", "normal", 72 * HOUR, urgent=False),
}

# Which touchpoint a tracking status announces (other statuses are handled by later policies).
SCAN_TOUCHPOINT = {
    "in_transit": "shipped",  # only when the shop did not announce the fulfilment itself
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
}


def preferred_channel(touchpoint: Touchpoint, contact: dict | None) -> str:
    """Urgent news goes where it is seen soonest; everything else by e-mail."""
    contact = contact or {}
    if touchpoint.urgent:
        if contact.get("sms"):
            return "sms"
        if contact.get("push"):
            return "push"
    if contact.get("email", True):
        return "email"
    for channel in ("sms", "push"):
        if contact.get(channel):
            return channel
    return "email"


def occasion(intent_type: str, shipment_id: str | None = None, attempt: int = 0) -> str:
    """What makes a message distinct: one confirmation per order, one per shipment milestone,
    and a new out-for-delivery notice for each delivery attempt."""
    if shipment_id is None:
        return intent_type
    if intent_type == "out_for_delivery":
        return f"{intent_type}:{shipment_id}:{attempt}"
    return f"{intent_type}:{shipment_id}"
