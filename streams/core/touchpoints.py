"""The messages the order stage can propose: what kind each is, how urgent, and how long it stays
worth sending. Each fires once per occasion (the order, or one shipment of it)."""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Touchpoint:
    intent_type: str
    kind: str  # transactional | service
    priority: str  # urgent | high | normal | low
    ttl_ms: int  # news older than this is dropped, never sent late
    urgent: bool  # prefers SMS/push where the customer can be reached there


def _t(intent_type: str, kind: str, priority: str, ttl_hours: int, urgent: bool = False) -> Touchpoint:
    return Touchpoint(intent_type, kind, priority, ttl_hours * HOUR, urgent)


TOUCHPOINTS = {
    t.intent_type: t
    for t in [
        # The transactional path of every order.
        _t("order_confirmation", "transactional", "high", 24),
        _t("shipped", "transactional", "normal", 48),
        _t("out_for_delivery", "transactional", "high", 12, urgent=True),
        _t("ready_for_pickup", "transactional", "high", 72, urgent=True),
        _t("delivered", "transactional", "normal", 72),
        # Service messages: the customer hears about a problem from us before they have to ask.
        _t("delay_warning", "service", "high", 48),
        _t("delay_update", "service", "high", 48),
        _t("delivery_attempt_failed", "service", "high", 24, urgent=True),
        _t("address_problem", "service", "urgent", 48, urgent=True),
        _t("customs_delay", "service", "normal", 48),
        _t("weather_delay", "service", "normal", 48),
        _t("carrier_exception", "service", "normal", 48),
        _t("delivery_refused", "service", "high", 72),
        _t("parcel_damaged", "service", "high", 72),
        _t("parcel_lost", "service", "high", 72),
        _t("returning_to_sender", "service", "high", 72),
        _t("stalled_pre_transit", "service", "normal", 48),
        _t("stalled_in_transit", "service", "normal", 48),
        _t("dispatch_delayed", "service", "normal", 48),
        # The return journey (one of each per return): what the customer is waiting for.
        _t("return_label_ready", "transactional", "normal", 72),
        _t("return_declined", "transactional", "normal", 72),
        _t("return_received", "transactional", "normal", 72),
        _t("refund_issued", "transactional", "normal", 72),
        _t("refund_delayed", "service", "high", 72),  # received, no refund after the shop's usual time
        _t("exchange_shipped", "transactional", "normal", 48),  # an exchange order's "shipped"
    ]
}
# Each fires once per return: the return id is its occasion.
RETURN_TOUCHPOINTS = frozenset(
    {"return_label_ready", "return_declined", "return_received", "refund_issued", "refund_delayed"}
)

# Which touchpoint a tracking status announces.
SCAN_TOUCHPOINT = {
    "in_transit": "shipped",  # only when the shop did not announce the fulfilment itself
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "ready_for_pickup",
    "delivered": "delivered",
}

# Carrier exceptions: each its own message, keyed by normalized status and sub-status.
EXCEPTION_TOUCHPOINT = {
    ("attempt_failed", None): "delivery_attempt_failed",
    ("exception", "address_issue"): "address_problem",
    ("exception", "customs_delay"): "customs_delay",
    ("exception", "weather_delay"): "weather_delay",
    ("exception", "damaged"): "parcel_damaged",
    ("exception", "lost"): "parcel_lost",
    ("exception", "refused"): "delivery_refused",
    ("exception", None): "carrier_exception",
    ("returned_to_sender", None): "returning_to_sender",
}


# The customer stage's service messages about the time after delivery (care tips, onboarding_<n>).
POST_DELIVERY_SERVICE = ("care_tips", "onboarding_")


def after_sale(kind: str, intent_type: str) -> bool:
    """Marketing, or service about the time after delivery: messages that can wait for the
    customer's best hour, and that a cancelled, refunded or returned order no longer gets."""
    return kind == "marketing" or intent_type.startswith(POST_DELIVERY_SERVICE)


def exception_touchpoint(status: str, sub_status: str | None) -> str | None:
    return EXCEPTION_TOUCHPOINT.get((status, sub_status)) or EXCEPTION_TOUCHPOINT.get((status, None))


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
    """What makes a message distinct: one per order or shipment, and a new out-for-delivery notice
    (or failed-attempt notice) for each delivery attempt."""
    if shipment_id is None:
        return intent_type
    if intent_type in ("out_for_delivery", "delivery_attempt_failed"):
        return f"{intent_type}:{shipment_id}:{attempt}"
    return f"{intent_type}:{shipment_id}"
