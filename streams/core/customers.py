"""Customer stage: the customer's consent, contacts and history, and the last word on each message.

Runs on the partition that owns the customer: engagement and support events, and the commands the
order stage re-keys by customer id, are co-partitioned. Candidate intents pass the guardrails here
and become intents, or audit records saying why not.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import ids
from .consent import choose_channel
from .model import (
    CHANNELS, CustomerCommand, DecisionAudit, EngagementEvent, MessageIntent, OrderFact, Schedule, SupportEvent,
)
from .state import RECENT_INTENTS_KEPT, CustomerState

NEGATIVE_RATING = 2  # satisfaction or review rating at or below this is a negative contact


@dataclass(slots=True)
class CustomerDecision:
    state: CustomerState
    intents: list[MessageIntent] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    schedule: list[Schedule] = field(default_factory=list)  # call me back (see model.Schedule)
    duplicate: bool = False


def decide_customer(state: CustomerState | None, item: CustomerCommand | EngagementEvent | SupportEvent,
                    now: int) -> CustomerDecision:
    """Fold one item into the customer. Takes ownership of `state` (it may be changed in place)."""
    if state is None:
        state = CustomerState(customer_id=item.customer_id)
    decision = CustomerDecision(state)
    item_id = item.command_id if isinstance(item, CustomerCommand) else item.event_id
    if not state.first_time(item_id):
        decision.duplicate = True
        return decision
    state.updated_at = max(state.updated_at or 0, item.event_time)
    if isinstance(item, CustomerCommand):
        if item.kind == "candidate_intent":
            _on_candidate(decision, item.intent, now)
        else:
            _on_fact(state, item.fact, item.event_time)
    elif isinstance(item, EngagementEvent):
        _on_engagement(state, item)
    else:
        _on_support(state, item)
    return decision


def _on_candidate(decision: CustomerDecision, intent: MessageIntent, now: int) -> None:
    state = decision.state
    if any(intent.intent_id in (r["intent_id"], r.get("candidate_id")) for r in state.recent_intents):
        return  # already decided: a redelivered command (possibly sent on a fallback channel)
    candidate_id = intent.intent_id
    channel, reasons = choose_channel(state, intent.channel, intent.kind)
    if channel is None:
        decision.audit.append(DecisionAudit(
            audit_id=ids.audit_id(intent.intent_id, intent.intent_type, "skipped"),
            decided_at=now, customer_id=state.customer_id, intent_type=intent.intent_type,
            decision="skipped", reasons=["no_allowed_channel", *reasons],
            source_event_id=intent.source_event_id, order_id=intent.order_id,
            channel=intent.channel, intent_id=intent.intent_id,
        ))
        return
    if channel != intent.channel:
        intent = replace(
            intent, channel=channel, intent_id=ids.rechannel(intent.intent_id, channel),
            reason_codes=[*intent.reason_codes, f"fallback_from:{intent.channel}", *reasons],
        )
    intent = replace(intent, decided_at=now, time_zone=intent.time_zone or state.time_zone,
                     locale=intent.locale or state.locale)
    decision.intents.append(intent)
    state.channel(channel).sent += 1
    state.recent_intents.append({
        "intent_id": intent.intent_id, "candidate_id": candidate_id, "intent_type": intent.intent_type, "channel": channel,
        "order_id": intent.order_id, "at": intent.send_at,
    })
    if len(state.recent_intents) > RECENT_INTENTS_KEPT:
        del state.recent_intents[: len(state.recent_intents) - RECENT_INTENTS_KEPT]


def _on_fact(state: CustomerState, fact: OrderFact, at: int) -> None:
    if fact.time_zone:
        state.time_zone = fact.time_zone
    if fact.type == "placed":
        state.orders_count += 1
        state.first_order_at = min(state.first_order_at or at, at)
        state.last_order_at = max(state.last_order_at or at, at)
        state.total_spent += fact.total or 0.0
        state.categories = sorted(set(state.categories) | set(fact.categories))
        if fact.contact is not None:
            _apply_checkout_contact(state, fact, at)
    elif fact.type == "cancelled":
        state.last_cancel_at = at
    elif fact.type == "refunded":
        state.last_refund_at = at
    elif fact.type == "delivery_problem" or (fact.type == "delivered" and fact.detail == "late"):
        state.last_problem_at = max(state.last_problem_at or at, at)


def _apply_checkout_contact(state: CustomerState, fact: OrderFact, at: int) -> None:
    contact = fact.contact
    if contact.locale:
        state.locale = contact.locale
    marketing = {"email": contact.marketing_email, "sms": contact.marketing_sms, "push": False}
    for name in CHANNELS:
        ch = state.channel(name)
        reachable = getattr(contact, name)
        if reachable:
            ch.reachable = True
            ch.bounced = False  # a new order brings a confirmed address/number
        # Consent follows the newest statement: a checkout box ticked after an unsubscribe counts,
        # an order replayed from before the unsubscribe does not.
        if ch.consent_at is None or at >= ch.consent_at:
            if marketing[name] or ch.consent_at is None:
                ch.marketing_consent = marketing[name]
                ch.consent_at = at


def _on_engagement(state: CustomerState, event: EngagementEvent) -> None:
    if event.channel not in CHANNELS:
        if event.type == "review_submitted":
            _record_review(state, event)
        return
    ch = state.channel(event.channel)
    kind = event.type
    if kind == "opened":
        ch.opened += 1
    elif kind == "clicked":
        ch.clicked += 1
    elif kind == "bounced":
        ch.bounced = True
    elif kind in ("unsubscribed", "spam_report"):
        # An unsubscribe or spam report takes effect at once, whatever its event time.
        ch.marketing_consent = False
        ch.consent_at = max(ch.consent_at or event.event_time, event.event_time)
        if event.scope == "all":
            ch.unsubscribed_all = True
    elif kind == "resubscribed":
        if ch.consent_at is None or event.event_time >= ch.consent_at:
            ch.marketing_consent = True
            ch.unsubscribed_all = False
            ch.consent_at = event.event_time
    elif kind == "review_submitted":
        _record_review(state, event)


def _record_review(state: CustomerState, event: EngagementEvent) -> None:
    state.reviews.append({
        "order_id": event.order_id, "product_id": event.product_id, "rating": event.rating,
        "at": event.event_time,
    })
    del state.reviews[:-20]
    if event.rating is not None and event.rating <= NEGATIVE_RATING:
        state.last_negative_contact_at = max(state.last_negative_contact_at or 0, event.event_time)


def _on_support(state: CustomerState, event: SupportEvent) -> None:
    closing = event.type == "solved" or (event.type == "status_changed" and event.status in ("solved", "closed"))
    opening = (
        event.type == "ticket_opened"
        or (event.type == "message" and event.from_customer)  # a customer reply reopens the ticket
        or (event.type == "status_changed" and event.status in ("new", "open", "pending", "hold"))
    )
    if closing and event.ticket_id in state.open_tickets:
        state.open_tickets.remove(event.ticket_id)
    elif opening and event.ticket_id not in state.open_tickets:
        state.open_tickets.append(event.ticket_id)
    if event.type == "satisfaction_rating" and event.rating is not None and event.rating <= NEGATIVE_RATING:
        state.last_negative_contact_at = max(state.last_negative_contact_at or 0, event.event_time)
