"""Gorgias HTTP integration (ticket-created, ticket-updated, ticket-status-updated,
ticket-message-created) -> SupportEvent.

Gorgias sends what the shop's HTTP integration template says, so the template must be:

    {"event": "ticket-created", "ticket": {{ticket}}}

with "event" set to the trigger of that integration (one integration per trigger, or a `?event=`
query parameter on the URL). The customer is the Shopify customer id from the ticket customer's
Shopify integration (the id our order events use), else the customer's `external_id`.

Gorgias sends no event ids, so ids are built from the ticket's own:
    opened   gorgias:<ticket>:opened           message   gorgias:message:<message id>
    status   gorgias:<ticket>:status:<status>:<time>    rating  gorgias:<ticket>:satisfaction:<time>
A ticket-updated repeats every message; the repeats have the same ids and are dropped.
"""

from __future__ import annotations

from ..records import (
    Inbound,
    Malformed,
    Mapped,
    OutRecord,
    Skip,
    first_ms,
    ident,
    items,
    need_ms,
    obj,
    opt_obj,
    support_topic,
    text,
)

SOURCE = "gorgias"
EVENTS = ("ticket-created", "ticket-updated", "ticket-status-updated", "ticket-message-created")


def map_webhook(payload, inbound: Inbound) -> Mapped:
    body = obj(payload, "the Gorgias request body")
    event = body.get("event") or inbound.query.get("event")
    out = Mapped()
    if event not in EVENTS:
        out.skipped.append(Skip("unknown", str(event), "event not handled (set it in the integration template)", body))
        return out
    ticket = obj(body.get("ticket"), "ticket")
    if ticket.get("spam") is True:
        out.skipped.append(Skip("ignored", event, "spam ticket"))
        return out
    ticket_id = ident(ticket.get("id"))
    customer_id = _customer_id(opt_obj(ticket.get("customer")))
    if ticket_id is None or customer_id is None:
        missing = "ticket.id" if ticket_id is None else "a Shopify customer id or external_id"
        out.skipped.append(Skip("unmapped", event, f"no {missing}", body))
        return out
    status = text(ticket.get("status"), 20)
    base = {
        "source": SOURCE,
        "customer_id": customer_id,
        "order_id": None,
        "ticket_id": ticket_id,
        "status": status.lower() if status else None,
        "rating": None,
        "topic": support_topic(ticket.get("tags")),
    }

    def emit(event_id: str, event_type: str, at: int, **fields) -> None:
        out.records.append(
            OutRecord(
                "support",
                customer_id,
                {
                    **base,
                    "from_customer": True,
                    "text": None,
                    **fields,
                    "event_id": event_id,
                    "event_time": at,
                    "type": event_type,
                },
                event_id,
            )
        )

    messages = [m for m in items(ticket.get("messages")) if isinstance(m, dict) and m.get("public") is not False]
    if event == "ticket-created":
        first = next((m for m in messages if m.get("from_agent") is not True), {})
        emit(
            f"gorgias:{ticket_id}:opened",
            "ticket_opened",
            need_ms(ticket.get("created_datetime"), "ticket.created_datetime"),
            text=text(first.get("body_text")),
        )
    elif event == "ticket-status-updated":
        closed = base["status"] == "closed"
        at = first_ms(
            ticket.get("closed_datetime") if closed else None,
            ticket.get("updated_datetime"),
            ticket.get("last_message_datetime"),
        )
        if at is None:
            raise Malformed("ticket.updated_datetime is missing")
        kind = "solved" if closed else "status_changed"
        emit(f"gorgias:{ticket_id}:status:{base['status']}:{at}", kind, at, from_customer=False)
    else:
        for message in messages:
            message_id = ident(message.get("id"))
            at = first_ms(message.get("sent_datetime"), message.get("created_datetime"))
            if message_id and at:
                emit(
                    f"gorgias:message:{message_id}",
                    "message",
                    at,
                    text=text(message.get("body_text")),
                    from_customer=message.get("from_agent") is not True,
                )
        survey = opt_obj(ticket.get("satisfaction_survey"))
        score, scored_at = survey.get("score"), first_ms(survey.get("scored_datetime"))
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5 and scored_at:
            emit(
                f"gorgias:{ticket_id}:satisfaction:{scored_at}",
                "satisfaction_rating",
                scored_at,
                rating=score,
                text=text(survey.get("body_text")),
            )
    if not out.records:
        out.skipped.append(Skip("ignored", event, "no message or rating in the ticket"))
    return out


def _customer_id(customer: dict) -> str | None:
    integrations = customer.get("integrations")
    for key, integration in integrations.items() if isinstance(integrations, dict) else ():
        integration = opt_obj(integration)
        if key == "shopify" or integration.get("__integration_type__") == "shopify":
            found = ident(opt_obj(integration.get("customer")).get("id"))
            if found:
                return found
    return ident(customer.get("external_id"))
