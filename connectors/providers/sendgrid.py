"""SendGrid event webhook (a JSON array of events) -> EngagementEvent.

Only mail our sender sent can be attributed: it sets the custom args `customer_id`, `intent_id` and
`order_id` (SMTP: the X-SMTPAPI header), which SendGrid copies into every event. Events without a
customer_id are someone else's mail and are ignored. Event id: sendgrid:<sg_event_id>; each event is
de-duplicated on its own, so a batch that SendGrid retries produces only what was not yet accepted.
"""

from __future__ import annotations

from ..records import Inbound, Malformed, Mapped, OutRecord, Skip, ident, need_ms, text

SOURCE = "sendgrid"

# SendGrid event -> (our type, scope for consent changes)
EVENTS = {
    "delivered": ("delivered", None),
    "open": ("opened", None),
    "click": ("clicked", None),
    "bounce": ("bounced", None),
    "spamreport": ("spam_report", "marketing"),
    "unsubscribe": ("unsubscribed", "marketing"),
    "group_unsubscribe": ("unsubscribed", "marketing"),
    "group_resubscribe": ("resubscribed", "marketing"),
}
# Known, and nothing the engine acts on.
IGNORED = frozenset({"processed", "deferred", "dropped", "account_status_change"})


def map_webhook(payload, inbound: Inbound) -> Mapped:
    if not isinstance(payload, list):
        raise Malformed(f"the SendGrid event webhook sends a JSON array, got {type(payload).__name__}")
    out = Mapped()
    for event in payload:
        _one(event, out)
    return out


def _one(event, out: Mapped) -> None:
    if not isinstance(event, dict):
        out.skipped.append(Skip("unmapped", "?", "an event that is not an object", event))
        return
    kind = event.get("event")
    what = str(kind)
    if kind in IGNORED:
        out.skipped.append(Skip("ignored", what, "not an engagement signal"))
        return
    if kind not in EVENTS:
        out.skipped.append(Skip("unknown", what, "event not handled", event))
        return
    customer_id = ident(event.get("customer_id"))
    if customer_id is None:
        out.skipped.append(Skip("ignored", what, "no customer_id custom arg: not sent by our sender"))
        return
    sg_event_id = ident(event.get("sg_event_id"))
    if sg_event_id is None:
        out.skipped.append(Skip("unmapped", what, "no sg_event_id", event))
        return
    if kind == "open" and event.get("sg_machine_open") is True:
        # Mail privacy proxies open every message: not the customer engaging.
        out.skipped.append(Skip("ignored", what, "machine open"))
        return
    if kind == "bounce" and event.get("type") == "blocked":
        # A block is the receiving server refusing us for now, not a dead address.
        out.skipped.append(Skip("ignored", what, "blocked, not a hard bounce"))
        return
    try:
        at = need_ms(event.get("timestamp"), "timestamp")
    except Malformed as exc:
        out.skipped.append(Skip("unmapped", what, str(exc), event))
        return
    our_type, scope = EVENTS[kind]
    event_id = f"sendgrid:{sg_event_id}"
    out.records.append(
        OutRecord(
            "engagement",
            customer_id,
            {
                "event_id": event_id,
                "event_time": at,
                "source": SOURCE,
                "type": our_type,
                "customer_id": customer_id,
                "order_id": ident(event.get("order_id")),
                "intent_id": text(event.get("intent_id"), 100),
                "channel": "email",
                "scope": scope,
                "rating": None,
                "product_id": None,
            },
            event_id,
        )
    )
