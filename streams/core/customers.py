"""Customer stage: the customer's consent, contacts and history, and the last word on each message.

Runs on the partition that owns the customer: engagement and support events, and the commands the
order stage re-keys by customer id, are co-partitioned. Candidate intents pass the guardrails here
(gate.py) and become intents, or audit records saying why not. The customer-side policies plan their
own messages with timers: post-delivery window (post_delivery.py), replenishment (replenishment.py),
win-back (winback.py); held messages are released by timers too (gate.py).

Time: every item advances the customer's clock to `now`. Timers due at or before `now` fire first,
oldest first, then the item is applied: what was due before the item happened is decided on what
was known before it. A `Due` (or a tick) only advances the clock. Timer kinds:
  "release:<candidate id>"       a held message (quiet hours, reputation guard)
  "care_tips:<order>", "onboarding_<n>:<order>", "review_request:<order>", "cross_sell:<order>"
  "replenish:<sku>", "winback"
"""

from __future__ import annotations

from . import experiments, gate, post_delivery, replenishment, send_time, winback
from .decisions import CustomerDecision, cancel_timer, shared_get, shared_put
from .model import (
    CHANNELS,
    CustomerCommand,
    Due,
    EngagementEvent,
    MessageIntent,
    OrderFact,
    SupportEvent,
)
from .policy import (
    CATEGORIES_KEPT,
    DEFAULT_POLICY,
    ENGAGEMENTS_KEPT,
    ITEMS_KEPT,
    OPEN_TICKETS_KEPT,
    OPEN_RETURNS_KEPT,
    ORDER_IDS_KEPT,
    ORDERS_KEPT,
    PROBLEMS_KEPT,
    PolicyConfig,
)
from .segments import segment
from .sentiment import is_negative
from .state import CustomerOrder, CustomerState

__all__ = ["CustomerDecision", "decide_customer"]

NEGATIVE_RATING = DEFAULT_POLICY.negative_rating  # kept for callers of the earlier module
ENROLLED_KEPT = 50  # experiments a customer is remembered as counted in
WISMO_TOPICS = frozenset({"wismo", "delivery"})  # tickets asking where the order is (connectors' topics)
MAX_FIRINGS = 200  # per decision: a safety net, timers never schedule themselves in the past


def decide_customer(
    state: CustomerState | None,
    item: CustomerCommand | EngagementEvent | SupportEvent | Due,
    now: int,
    config: PolicyConfig = DEFAULT_POLICY,
    shared=None,
) -> CustomerDecision:
    """Fold one item into the customer. Takes ownership of `state` (it may be changed in place).
    `shared`: the partition's learned statistics (send-time fallbacks, bandit counts), a mapping
    read with .get(); what the decision changes is in `decision.stats`.

    A Due, or a "tick" command, that finds nothing due returns `duplicate=True`: nothing changed,
    nothing to store."""
    if isinstance(item, Due):
        if state is None:
            return CustomerDecision(CustomerState(customer_id=item.key), duplicate=True)
        matching = state.timers.get(item.kind) == item.due_at
        return _advance(CustomerDecision(state, shared=shared), max(now, item.due_at) if matching else now, config)
    if state is None:
        state = CustomerState(customer_id=item.customer_id)
    decision = CustomerDecision(state, shared=shared)
    if isinstance(item, CustomerCommand) and item.kind == "tick":
        return _advance(decision, item.due.now if item.due is not None else now, config)
    item_id = item.command_id if isinstance(item, CustomerCommand) else item.event_id
    if not state.first_time(item_id):
        decision.duplicate = True
        return decision
    state.updated_at = max(state.updated_at or 0, item.event_time)
    if config.experiments:
        _enrol(decision, item.event_time, config)
    run_due(decision, now, config)
    if isinstance(item, CustomerCommand):
        if item.kind == "candidate_intent" and item.intent is not None:
            _on_candidate(decision, item.intent, now, config)
        elif item.kind == "order_fact" and item.fact is not None:
            _on_fact(decision, item, now, config)
    elif isinstance(item, EngagementEvent):
        _on_engagement(decision, item, now, config)
    else:
        _on_support(decision, item, now, config)
    return decision


# --- time ------------------------------------------------------------------------------------


def _advance(decision: CustomerDecision, now: int, config: PolicyConfig) -> CustomerDecision:
    if run_due(decision, now, config):
        decision.state.updated_at = max(decision.state.updated_at or 0, now)
    else:
        decision.duplicate = True
    return decision


def run_due(decision: CustomerDecision, now: int, config: PolicyConfig) -> int:
    """Fire every timer due at or before `now`, oldest first. Returns how many fired."""
    timers = decision.state.timers
    if not timers or min(timers.values()) > now:  # the common case, checked without building a list
        return 0
    fired = 0
    while fired < MAX_FIRINGS:
        due = [(at, kind) for kind, at in timers.items() if at <= now]
        if not due:
            break
        at, kind = min(due)
        del timers[kind]
        _fire(decision, kind, at, now, config)
        fired += 1
    return fired


def _fire(decision: CustomerDecision, kind: str, due_at: int, now: int, config: PolicyConfig) -> None:
    name, _, key = kind.partition(":")
    if kind.startswith(gate.RELEASE):
        gate.release(decision, key, now, config)
    elif name in post_delivery.TYPES:
        post_delivery.fire(decision, kind, due_at, now, config)
    elif kind.startswith(replenishment.PREFIX):
        replenishment.fire(decision, key, due_at, now, config)
    elif kind == winback.KIND:
        winback.fire(decision, due_at, now, config)


# --- experiments: outcomes and rewards ---------------------------------------------------------


def _outcome(
    decision: CustomerDecision, config: PolicyConfig, at: int, order_id: str | None, *pairs, unit: str | None = None
) -> None:
    if config.experiments:
        experiments.count(decision.outcomes, config.experiments, at, decision.state.customer_id, order_id, pairs, unit)


def _enrol(decision: CustomerDecision, at: int, config: PolicyConfig) -> None:
    """A customer counts once as a unit of each running customer experiment, from the first input
    about them while it runs (their arm's denominator for unsubscribes and repeat purchases)."""
    state = decision.state
    for exp in config.experiments:
        if exp.unit == "customer" and exp.policy == "hash" and exp.id not in state.enrolled and exp.active(at):
            state.enrolled.append(exp.id)
            del state.enrolled[:-ENROLLED_KEPT]
            experiments.count(decision.outcomes, (exp,), at, state.customer_id, None, (("units", 1),))


def _reward(decision: CustomerDecision, config: PolicyConfig, reward: str, at: int) -> None:
    """A review, click or order: a success for the bandit arm last sent within its reward window."""
    state = decision.state
    for exp in config.experiments:
        exposure = state.exposures.get(exp.id)
        if exp.policy != "thompson" or exposure is None:
            continue
        if at - exposure["at"] > exp.reward_days * 86_400_000:
            del state.exposures[exp.id]  # its window passed without a reward
        elif exp.reward == reward and at >= exposure["at"]:
            del state.exposures[exp.id]
            key = experiments.bandit_key(exp)
            counts = shared_get(decision, key) or {}
            trials, wins = counts.get(exposure["arm"], (0, 0))
            shared_put(decision, key, {**counts, exposure["arm"]: [trials, wins + 1]})
            decision.outcomes.append((exp.id, exposure["arm"], "rewarded", 1))


# --- candidates from the order stage ---------------------------------------------------------


def _on_candidate(decision: CustomerDecision, intent: MessageIntent, now: int, config: PolicyConfig) -> None:
    if gate.already_decided(decision.state, intent.intent_id):
        return  # a redelivered command (possibly sent on a fallback channel, or waiting in `held`)
    if intent.order_id:
        _order(decision.state, intent.order_id, intent.decided_at)
    gate.note_progress(decision.state, intent)
    gate.consider(decision, gate.Proposal(intent, intent.intent_id, gate.candidate_news(intent)), now, config)


# --- facts from the order stage --------------------------------------------------------------


def _order(state: CustomerState, order_id: str, at: int) -> CustomerOrder:
    """The customer's memory of an order; the oldest is forgotten beyond ORDERS_KEPT."""
    order = state.orders.get(order_id)
    if order is None:
        order = state.orders[order_id] = CustomerOrder(order_id=order_id)
    order.last_fact_at = max(order.last_fact_at, at)
    while len(state.orders) > ORDERS_KEPT:
        # Stubs (an order only heard of through engagement or a candidate) go first, then the oldest.
        oldest = min(
            state.orders.values(), key=lambda o: (o.placed_at is not None, o.placed_at or o.last_fact_at, o.order_id)
        )
        del state.orders[oldest.order_id]
        for kind in post_delivery.timer_kinds(oldest.order_id):
            cancel_timer(state, kind)
    return order


def _items(fact: OrderFact) -> list[dict]:
    return [
        {"sku": i.sku, "title": i.title, "category": i.category, "quantity": i.quantity}
        for i in fact.items[:ITEMS_KEPT]
    ]


def _on_fact(decision: CustomerDecision, command: CustomerCommand, now: int, config: PolicyConfig) -> None:
    state = decision.state
    fact, at = command.fact, command.event_time
    if fact.time_zone:
        state.time_zone = fact.time_zone
    order = _order(state, command.order_id, at)
    if fact.type == "placed":
        _on_placed(decision, order, fact, at, now, config)
    elif fact.type == "delivered":
        first = order.delivered_at is None
        if first:
            _outcome(decision, config, at, order.order_id, ("delivered", 1))
        order.delivered_at = min(order.delivered_at or at, at)
        delivered = _items(fact) or list(order.items)  # no items given: the whole order
        known = {i["sku"] for i in order.delivered_items}
        order.delivered_items.extend(i for i in delivered if i["sku"] not in known)
        del order.delivered_items[ITEMS_KEPT:]
        if first:
            order.delivered_source = command.command_id
        order.late = order.late or fact.detail == "late"
        order.had_problem = order.had_problem or fact.had_problem
        order.problem_open_at = None  # the parcel arrived: what was wrong on the way is over
        if fact.detail == "late":
            state.last_problem_at = max(state.last_problem_at or at, at)
        post_delivery.on_delivered(decision, order, at, now, config)
        replenishment.on_delivered(decision, order, delivered, command.command_id, now, config)
    elif fact.type == "delivery_problem":
        state.last_problem_at = max(state.last_problem_at or at, at)
        order.problems.append(fact.detail or "unknown")
        del order.problems[:-PROBLEMS_KEPT]
        if order.delivered_at is None or at > order.delivered_at:
            order.problem_open_at = max(order.problem_open_at or at, at)
        if (fact.detail or "").startswith("returned_to_sender"):
            order.returned = True
            state.last_return_at = max(state.last_return_at or at, at)
        post_delivery.on_problem(decision, order, now, config)
    elif fact.type == "cancelled":
        state.last_cancel_at = max(state.last_cancel_at or at, at)
        order.cancelled_at = at
        order.problem_open_at = None
        post_delivery.on_problem(decision, order, now, config)
    elif fact.type == "return_opened":
        key = f"{command.order_id}:{fact.detail}"
        state.open_returns.setdefault(key, at)
        for old in sorted(state.open_returns, key=state.open_returns.get)[:-OPEN_RETURNS_KEPT]:
            del state.open_returns[old]
        taken: dict[str, int] = {}
        for i in fact.items:
            taken[i.sku] = taken.get(i.sku, 0) + i.quantity
        delivered = order.delivered_items or order.items
        whole = bool(taken and delivered) and all(taken.get(i["sku"], 0) >= i["quantity"] for i in delivered)
        if whole and fact.detail not in order.returning:
            # All of it goes back: care tips and onboarding for it would be noise (gate: order_returned).
            order.returning.append(fact.detail)
    elif fact.type == "return_closed":
        return_id, _, outcome = (fact.detail or "").rpartition(":")
        state.open_returns.pop(f"{command.order_id}:{return_id}", None)
        if return_id in order.returning:
            order.returning.remove(return_id)
        if outcome != "declined":  # returned (refunded or exchanged): no review of it, and a cool-down
            order.returned = True
            state.last_return_at = max(state.last_return_at or at, at)
            post_delivery.on_problem(decision, order, now, config)
    elif fact.type == "refunded":
        state.last_refund_at = max(state.last_refund_at or at, at)
        order.refunded_at = at
        order.problem_open_at = None
        if fact.detail and "return" in fact.detail:
            order.returned = True
            state.last_return_at = max(state.last_return_at or at, at)
        post_delivery.on_problem(decision, order, now, config)


def _on_placed(
    decision: CustomerDecision, order: CustomerOrder, fact: OrderFact, at: int, now: int, config: PolicyConfig
) -> None:
    state = decision.state
    state.orders_count += 1
    if config.experiments:
        _placed_outcomes(decision, order, at, config)
    if order.order_id not in state.order_ids:
        state.order_ids.append(order.order_id)  # every order, so an erasure request reaches them all
        del state.order_ids[:-ORDER_IDS_KEPT]
    state.first_order_at = min(state.first_order_at or at, at)
    state.last_order_at = max(state.last_order_at or at, at)
    state.total_spent += fact.total or 0.0
    state.max_order_total = max(state.max_order_total, fact.total or 0.0)
    state.categories = sorted(set(state.categories) | set(fact.categories))[:CATEGORIES_KEPT]
    order.placed_at = at
    if (fact.detail or "").startswith("exchange_of:"):
        order.exchange_of = fact.detail.removeprefix("exchange_of:")
    order.total = fact.total
    order.items = _items(fact) or order.items
    if fact.contact is not None:
        _apply_checkout_contact(state, fact, at)
    replenishment.on_placed(decision, order, order.items, now, config)
    winback.on_placed(decision, at, now, config)


def _placed_outcomes(decision: CustomerDecision, order: CustomerOrder, at: int, config: PolicyConfig) -> None:
    state = decision.state
    _outcome(decision, config, at, order.order_id, ("orders", 1))
    _outcome(decision, config, at, order.order_id, ("units", 1), unit="order")
    if state.orders_count == 2 and state.first_order_at is not None:
        for exp in config.experiments:  # bought again soon after their first order
            if exp.unit == "customer" and exp.active(at) and at - state.first_order_at <= exp.repeat_days * 86_400_000:
                experiments.count(decision.outcomes, (exp,), at, state.customer_id, None, (("repeat", 1),))
    _reward(decision, config, "order", at)


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


# --- engagement ------------------------------------------------------------------------------


def _on_engagement(decision: CustomerDecision, event: EngagementEvent, now: int, config: PolicyConfig) -> None:
    state = decision.state
    if event.type in ("opened", "clicked"):
        send_time.observe(decision, event.event_time, segment(state, event.event_time, config), config)
        if event.type == "clicked" and config.experiments:
            _reward(decision, config, "click", event.event_time)
    if event.type in ("opened", "clicked") and event.order_id:
        order = _order(state, event.order_id, event.event_time)
        if event.event_time not in order.engaged:
            order.engaged = sorted([*order.engaged, event.event_time])[-ENGAGEMENTS_KEPT:]
        if order.delivered_at is not None:
            post_delivery.on_engagement(decision, order, now, config)
    if event.channel not in CHANNELS:
        if event.type == "review_submitted":
            _record_review(decision, event, now, config)
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
        if ch.marketing_consent:
            _outcome(decision, config, event.event_time, None, ("unsubscribed", 1), unit="customer")
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
        _record_review(decision, event, now, config)


def _record_review(decision: CustomerDecision, event: EngagementEvent, now: int, config: PolicyConfig) -> None:
    state = decision.state
    state.reviews.append(
        {
            "order_id": event.order_id,
            "product_id": event.product_id,
            "rating": event.rating,
            "at": event.event_time,
        }
    )
    del state.reviews[:-20]
    if config.experiments:
        if event.order_id and not (state.orders.get(event.order_id) and state.orders[event.order_id].reviewed):
            _outcome(decision, config, event.event_time, event.order_id, ("reviewed", 1))
        if event.rating is not None:
            r = event.rating
            _outcome(
                decision,
                config,
                event.event_time,
                event.order_id,
                ("ratings", 1),
                ("rating_sum", r),
                ("rating_sq", r * r),
            )
        _reward(decision, config, "review", event.event_time)
    if event.order_id:
        _order(state, event.order_id, event.event_time).reviewed = True
    if event.rating is not None and event.rating <= config.negative_rating:
        _negative_contact(decision, event.event_time, event.order_id, now, config)


# --- support ---------------------------------------------------------------------------------


def _on_support(decision: CustomerDecision, event: SupportEvent, now: int, config: PolicyConfig) -> None:
    state = decision.state
    closing = event.type == "solved" or (event.type == "status_changed" and event.status in ("solved", "closed"))
    opening = (
        event.type == "ticket_opened"
        or (event.type == "message" and event.from_customer)  # a customer reply reopens the ticket
        or (event.type == "status_changed" and event.status in ("new", "open", "pending", "hold"))
    )
    if event.type == "ticket_opened" and config.experiments:
        _outcome(decision, config, event.event_time, event.order_id, ("tickets", 1))
        if event.topic in WISMO_TOPICS and event.order_id:
            order = _order(state, event.order_id, event.event_time)
            if not order.wismo:
                order.wismo = True
                _outcome(decision, config, event.event_time, event.order_id, ("wismo_orders", 1))
    if closing and event.ticket_id in state.open_tickets:
        state.open_tickets.remove(event.ticket_id)
    elif opening and event.ticket_id not in state.open_tickets:
        state.open_tickets.append(event.ticket_id)
        del state.open_tickets[:-OPEN_TICKETS_KEPT]
    negative = (
        event.type == "satisfaction_rating" and event.rating is not None and event.rating <= config.negative_rating
    ) or (event.from_customer and is_negative(event.text, config.negative_sentiment, event.sentiment))
    if negative:
        _negative_contact(decision, event.event_time, event.order_id, now, config)


def _negative_contact(
    decision: CustomerDecision, at: int, order_id: str | None, now: int, config: PolicyConfig
) -> None:
    state = decision.state
    state.last_negative_contact_at = max(state.last_negative_contact_at or 0, at)
    if order_id:  # a complaint about an order we have not heard of yet still counts when we do
        order = _order(state, order_id, at)
        order.negative_contact = True
        post_delivery.on_problem(decision, order, now, config)
