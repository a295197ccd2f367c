"""Zendesk ticket event webhooks -> SupportEvent.

Handled: ticket.created (ticket_opened, with the description as text), ticket.comment_added
(message; internal notes are ignored, they are not the customer talking), ticket.status_changed
(status_changed, or solved for solved/closed). The customer id is resolved by
AFTERSALE_ZENDESK_CUSTOMER_ID (default `field:detail.external_id`), since Zendesk events carry only
Zendesk user ids. Event id: zendesk:<event id>.
"""

from __future__ import annotations

from ..records import (
    Inbound,
    Malformed,
    Mapped,
    OutRecord,
    Skip,
    ident,
    need_ms,
    obj,
    opt_obj,
    resolve,
    support_topic,
    text,
)

SOURCE = "zendesk"
PREFIX = "zen:event-type:ticket."
SOLVED = frozenset({"solved", "closed"})


def map_webhook(payload, inbound: Inbound) -> Mapped:
    body = obj(payload, "the Zendesk event")
    event_id = ident(body.get("id"))
    out = Mapped(delivery_id=f"zendesk:{event_id}" if event_id else None)
    kind = body.get("type")
    name = kind.removeprefix(PREFIX) if isinstance(kind, str) and kind.startswith(PREFIX) else None
    if name not in ("created", "comment_added", "status_changed"):
        out.skipped.append(Skip("unknown", str(kind), "event type not handled", body))
        return out
    if event_id is None:
        raise Malformed("the event id is missing")
    detail = obj(body.get("detail"), "detail")
    ticket_id = ident(detail.get("id"))
    if ticket_id is None:
        raise Malformed("detail.id (the ticket) is missing")
    customer_id = resolve(inbound.options.zendesk_customer_id, body, inbound)
    if customer_id is None:
        out.skipped.append(
            Skip("unmapped", kind, f"no customer id (sources {','.join(inbound.options.zendesk_customer_id)})", body)
        )
        return out
    change = opt_obj(body.get("event"))
    status = _lower(detail.get("status"))
    values = {"from_customer": True, "text": None, "status": status}
    if name == "created":
        our_type = "ticket_opened"
        # An agent opening a ticket for the customer is not the customer reaching out.
        submitter, requester = ident(detail.get("submitter_id")), ident(detail.get("requester_id"))
        values.update(text=text(detail.get("description")), from_customer=submitter is None or submitter == requester)
    elif name == "comment_added":
        comment = obj(change.get("comment"), "event.comment")
        if comment.get("is_public") is False:
            out.skipped.append(Skip("ignored", kind, "internal note"))
            return out
        our_type = "message"
        values.update(
            text=text(comment.get("body")), from_customer=opt_obj(comment.get("author")).get("is_staff") is not True
        )
    else:
        status = _lower(change.get("current")) or status
        our_type = "solved" if status in SOLVED else "status_changed"
        values.update(status=status, from_customer=False)
    our_id = f"zendesk:{event_id}"
    out.records.append(
        OutRecord(
            "support",
            customer_id,
            {
                "event_id": our_id,
                "event_time": need_ms(body.get("time"), "time"),
                "source": SOURCE,
                "type": our_type,
                "customer_id": customer_id,
                "order_id": None,
                "ticket_id": ticket_id,
                "rating": None,
                "topic": support_topic(detail.get("tags")),
                **values,
            },
            our_id,
        )
    )
    return out


def _lower(value) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().lower()[:20] or None
