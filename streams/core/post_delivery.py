"""The post-delivery window, planned from the "delivered" fact of an order.

- care_tips (service): the day after delivery at `send_hour` local, about the main category of the
  delivered items that have a care topic (`care_topics`).
- onboarding_1/2/3 (service): for complex products (`complex_categories`), +1/+4/+10 days.
- review_request (marketing): after the time to value of the delivered categories (the longest of
  them, `review_after_days`), brought forward to `review_pull_in_fraction` of it (at least
  `review_min_days`) when the customer opened or clicked a message about the order within 48 h of
  delivery. Never for an order that went wrong (suppressed as soon as that is known: at delivery,
  or when the problem, refund or complaint comes in; checked again when it comes due); held by the
  reputation guard; one per product per year (reviews.py).
- cross_sell (marketing): `cross_sell_after_days` after delivery, with the complementary category.

One of each per order (split orders: planned when the first parcel that calls for it arrives, later
parcels add their items; the review waits for the slowest category to prove itself). Timer
kinds: "care_tips:<order>", "onboarding_<n>:<order>", "review_request:<order>", "cross_sell:<order>".
Intent ids: ids.intent_id(customer, order, type, "<type>:<order>", "email").
"""

from __future__ import annotations

import math
from collections import Counter

from . import ids
from .decisions import CustomerDecision, audit, cancel_timer, plan
from .gate import Proposal, consider, news_key
from .guard import order_problems
from .local_time import days_after_at
from .model import ContentHints, ItemHint, MessageIntent
from .policy import PolicyConfig
from .state import CustomerOrder

TYPES = ("care_tips", "onboarding_1", "onboarding_2", "onboarding_3", "review_request", "cross_sell")


def timer_kinds(order_id: str) -> list[str]:
    return [f"{t}:{order_id}" for t in TYPES]


def on_delivered(decision: CustomerDecision, order: CustomerOrder, at: int, now: int, config: PolicyConfig) -> None:
    """Plan each post-delivery message of the order once, when the first parcel that calls for it
    arrives (at `at`); a later parcel adds its items and may move the review request later."""
    state = decision.state
    tz = state.time_zone
    planned = order.planned
    if "onboarding" not in planned and _complex(order, config):
        planned.append("onboarding")
        for n, days in enumerate(config.onboarding_after_days, 1):
            plan(decision, f"onboarding_{n}:{order.order_id}", days_after_at(at, days, config.send_hour, tz), now)
    if "care_tips" not in planned and _care_items(order, config):
        planned.append("care_tips")
        plan(
            decision,
            f"care_tips:{order.order_id}",
            days_after_at(at, config.care_tips_after_days, config.send_hour, tz),
            now,
        )
    if "cross_sell" not in planned:
        planned.append("cross_sell")
        plan(
            decision,
            f"cross_sell:{order.order_id}",
            days_after_at(order.delivered_at, config.cross_sell_after_days, config.send_hour, tz),
            now,
        )
    kind = f"review_request:{order.order_id}"
    first = "review_request" not in planned
    if first:
        planned.append("review_request")
    if order_problems(order):
        if cancel_timer(state, kind) or first:
            _suppress_review(decision, order, now, config)
        return
    if first or kind in state.timers:
        plan(decision, kind, review_due(order, tz, config), now)


def on_problem(decision: CustomerDecision, order: CustomerOrder, now: int, config: PolicyConfig) -> None:
    """Something went wrong with the order after it was delivered (refund, complaint, damage): its
    review request is suppressed now rather than when it comes due."""
    if order_problems(order) and cancel_timer(decision.state, f"review_request:{order.order_id}"):
        _suppress_review(decision, order, now, config)


def _suppress_review(decision: CustomerDecision, order: CustomerOrder, now: int, config: PolicyConfig) -> None:
    audit(
        decision,
        _build(decision, order, "review_request", order.delivered_at, config),
        "suppressed",
        ["guard:order_had_problem", *order_problems(order)],
        now,
    )


def on_engagement(decision: CustomerDecision, order: CustomerOrder, now: int, config: PolicyConfig) -> None:
    """An open or click about the order: if soon after delivery, the review request comes sooner."""
    kind = f"review_request:{order.order_id}"
    due = decision.state.timers.get(kind)
    if due is not None:
        wanted = max(review_due(order, decision.state.time_zone, config), now + 1)
        if wanted < due:
            plan(decision, kind, wanted, now)


def review_due(order: CustomerOrder, tz: str | None, config: PolicyConfig) -> int:
    days = review_days(order, config)
    if positive_signal(order, config):
        days = max(config.review_min_days, math.ceil(days * config.review_pull_in_fraction))
    return days_after_at(order.delivered_at, days, config.send_hour, tz)


def review_days(order: CustomerOrder, config: PolicyConfig) -> int:
    categories = {i["category"] for i in order.delivered_items} or {None}
    return max(config.review_after_days.get(c, config.review_default_days) for c in categories)


def positive_signal(order: CustomerOrder, config: PolicyConfig) -> bool:
    """Did the customer open or click something about the order within 48 h after delivery?"""
    if order.delivered_at is None:
        return False
    return any(order.delivered_at <= t <= order.delivered_at + config.review_signal_window_ms for t in order.engaged)


def fire(decision: CustomerDecision, kind: str, due_at: int, now: int, config: PolicyConfig) -> None:
    """A planned post-delivery message comes due: build it and pass it through the guardrails."""
    intent_type, _, order_id = kind.partition(":")
    order = decision.state.orders.get(order_id)
    if order is None or order.delivered_at is None:
        return  # forgotten (evicted) order: nothing to say any more
    intent = _build(decision, order, intent_type, due_at, config, now)
    if not intent.content.items and intent_type != "review_request":
        # Nothing to say about (no line items known): decided, and said so. A review request is
        # about the order itself, so it goes on without items.
        audit(decision, intent, "skipped", ["no_line_items"], now)
        return
    news = news_key(order_id, intent_type, _occasion(intent_type, order_id))
    consider(decision, Proposal(intent, intent.intent_id, news), now, config)


# --- building the messages -------------------------------------------------------------------


def _occasion(intent_type: str, order_id: str) -> str:
    return f"{intent_type}:{order_id}"


def _build(
    decision: CustomerDecision,
    order: CustomerOrder,
    intent_type: str,
    due_at: int,
    config: PolicyConfig,
    now: int | None = None,
) -> MessageIntent:
    state = decision.state
    items = order.delivered_items
    category = _main_category(items)
    reasons = ["post_delivery"]
    kind, priority = "marketing", "low"
    if intent_type == "care_tips":
        items = _care_items(order, config)
        category = _main_category(items)
        kind, priority = "service", "normal"
        reasons.append(f"care_topic:{config.care_topics.get(category)}")
    elif intent_type.startswith("onboarding_"):
        items = _complex(order, config)
        category = _main_category(items)
        kind, priority = "service", "normal"
        reasons.append(f"onboarding:{intent_type.rsplit('_', 1)[1]}/{len(config.onboarding_after_days)}")
    elif intent_type == "review_request":
        reasons.append(f"time_to_value_days:{review_days(order, config)}")
        if positive_signal(order, config):
            reasons.append("positive_signal")
    elif intent_type == "cross_sell":
        reasons.append(f"complements:{category}")
        category = config.complementary.get(category, category)
    occasion = _occasion(intent_type, order.order_id)
    send_at = max(due_at, now) if now is not None else due_at
    return MessageIntent(
        intent_id=ids.intent_id(state.customer_id, order.order_id, intent_type, occasion, "email"),
        decided_at=now if now is not None else due_at,
        order_id=order.order_id,
        customer_id=state.customer_id,
        intent_type=intent_type,
        kind=kind,
        channel="email",
        send_at=send_at,
        expires_at=due_at + config.ttl(intent_type),
        priority=priority,
        content=ContentHints(
            items=[ItemHint(i["sku"], i["title"], i["category"], i["quantity"]) for i in items], category=category
        ),
        reason_codes=reasons,
        source_event_id=order.delivered_source or f"order:{order.order_id}",
        locale=state.locale,
        time_zone=state.time_zone,
    )


def _main_category(items: list[dict]) -> str | None:
    if not items:
        return None
    counts = Counter()
    for i in items:
        counts[i["category"]] += i["quantity"]
    return max(sorted(counts), key=lambda c: counts[c])


def _complex(order: CustomerOrder, config: PolicyConfig) -> list[dict]:
    return [i for i in order.delivered_items if i["category"] in config.complex_categories]


def _care_items(order: CustomerOrder, config: PolicyConfig) -> list[dict]:
    return [
        i
        for i in order.delivered_items
        if i["category"] in config.care_topics and i["category"] not in config.complex_categories
    ]
