"""Klaviyo system webhooks -> EngagementEvent.

Body: {"data": [{"topic", "external_id" (the event id), "payload" (as the Get Event API)}], "meta"}.
The customer is the profile's `external_id` (Klaviyo profiles of a shop carry the shop's customer
id there), read from the payload's included profile. Events of profiles without one are unmapped.
Event id: klaviyo:<external_id>.
"""

from __future__ import annotations

from ..records import (
    Inbound,
    Malformed,
    Mapped,
    OutRecord,
    Skip,
    dig,
    first_ms,
    ident,
    items,
    obj,
    opt_obj,
    text,
)

SOURCE = "klaviyo"

# Topic (without "event:klaviyo.") -> (our type, channel, scope). Klaviyo names some metrics two ways.
TOPICS = {
    "received_email": ("delivered", "email", None),
    "email_delivered": ("delivered", "email", None),
    "opened_email": ("opened", "email", None),
    "clicked_email": ("clicked", "email", None),
    "bounced_email": ("bounced", "email", None),
    "marked_email_as_spam": ("spam_report", "email", "marketing"),
    "unsubscribed_from_email_marketing": ("unsubscribed", "email", "marketing"),
    "unsubscribed": ("unsubscribed", "email", "marketing"),
    "subscribed_to_email_marketing": ("resubscribed", "email", "marketing"),
    "received_sms": ("delivered", "sms", None),
    "clicked_sms": ("clicked", "sms", None),
    "failed_to_deliver_sms": ("bounced", "sms", None),
    "unsubscribed_from_sms_marketing": ("unsubscribed", "sms", "marketing"),
    "unsubscribed_from_sms": ("unsubscribed", "sms", "marketing"),
    "subscribed_to_sms_marketing": ("resubscribed", "sms", "marketing"),
    "received_push": ("delivered", "push", None),
    "opened_push": ("opened", "push", None),
    "bounced_push": ("bounced", "push", None),
    "submitted_review": ("review_submitted", "web", None),
}
# Known, and nothing the engine acts on (our own sends are known to us already).
IGNORED = frozenset({"sent_sms", "dropped_email", "ready_to_review", "received_sms_reply"})


def map_webhook(payload, inbound: Inbound) -> Mapped:
    body = obj(payload, "the Klaviyo webhook body")
    data = body.get("data")
    if not isinstance(data, list):
        raise Malformed("data must be an array of events")
    # Klaviyo: a meta.klaviyo_webhook_id that differs from the header is not Klaviyo's request.
    header_id = inbound.header("Klaviyo-Webhook-Id")
    meta_id = opt_obj(body.get("meta")).get("klaviyo_webhook_id")
    if header_id and meta_id and header_id != meta_id:
        raise Malformed("meta.klaviyo_webhook_id does not match the Klaviyo-Webhook-Id header")
    out = Mapped()
    for item in data:
        _one(item, out)
    return out


def _one(item, out: Mapped) -> None:
    if not isinstance(item, dict):
        out.skipped.append(Skip("unmapped", "?", "an event that is not an object", item))
        return
    topic = item.get("topic")
    name = topic.removeprefix("event:klaviyo.") if isinstance(topic, str) else None
    if name in IGNORED:
        out.skipped.append(Skip("ignored", str(topic), "not an engagement signal"))
        return
    if name not in TOPICS:
        out.skipped.append(Skip("unknown", str(topic), "topic not handled", item))
        return
    event = opt_obj(dig(item, "payload.data"))
    attributes = opt_obj(event.get("attributes"))
    external_id = ident(item.get("external_id")) or ident(event.get("id"))
    customer_id = _profile_external_id(item, event)
    at = first_ms(attributes.get("datetime"), attributes.get("timestamp"))
    missing = [
        what
        for what, value in (("external_id", external_id), ("profile external_id", customer_id), ("event time", at))
        if value is None
    ]
    if missing:
        out.skipped.append(Skip("unmapped", str(topic), f"no {', '.join(missing)}", item))
        return
    our_type, channel, scope = TOPICS[name]
    properties = opt_obj(attributes.get("event_properties"))
    rating = properties.get("rating") if our_type == "review_submitted" else None
    event_id = f"klaviyo:{external_id}"
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
                "order_id": ident(properties.get("order_id")),
                "intent_id": text(properties.get("intent_id"), 100),
                "channel": channel,
                "scope": scope,
                "rating": rating
                if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5
                else None,
                "product_id": ident(properties.get("product_id")),
            },
            event_id,
        )
    )


def _profile_external_id(item: dict, event: dict) -> str | None:
    profile_id = dig(event, "relationships.profile.data.id")
    included = items(dig(item, "payload.included"))
    for entry in included:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "profile"
            and (profile_id is None or entry.get("id") == profile_id)
        ):
            found = ident(dig(entry, "attributes.external_id"))
            if found:
                return found
    # Some payload versions inline the profile.
    return ident(dig(event, "attributes.profile.external_id"))
