"""Replenishment reminders for consumables: remind before the customer runs out, not after.

When it runs out:
- the customer's own rhythm when known: the median interval between their orders of that sku (two
  purchases or more; intervals shorter than `replenish_min_interval_days` are double orders, not a
  rhythm), counted from their latest purchase;
- else the pack size: delivered quantity x `days_per_unit[category]` days from delivery
  (consumables 30, beauty 45, pet_supplies 30, household 45; other categories are not replenished).
The reminder ("replenishment", marketing) is planned `replenish_lead_days` before that, at
`send_hour` local. A new order of the sku cancels it (skipped, "reordered"); its delivery plans the
next one. Timer kind "replenish:<sku>"; intent occasion "replenish:<sku>:<order>".
"""

from __future__ import annotations

from statistics import median

from . import ids
from .decisions import CustomerDecision, audit, cancel_timer, plan
from .gate import Proposal, consider, news_key
from .local_time import days_after_at, local_day
from .model import ContentHints, ItemHint, MessageIntent
from .policy import DAY, REPLENISH_KEPT, SKU_PURCHASES_KEPT, PolicyConfig
from .state import CustomerOrder, CustomerState, ReplenishPlan

PREFIX = "replenish:"


def replenishable(item: dict, config: PolicyConfig) -> bool:
    return item["category"] in config.days_per_unit and item.get("quantity", 0) > 0


def own_interval_ms(state: CustomerState, sku: str, config: PolicyConfig) -> int | None:
    times = sorted(state.sku_purchases.get(sku, ()))
    gaps = [b - a for a, b in zip(times, times[1:]) if b - a >= config.replenish_min_interval_days * DAY]
    return int(median(gaps)) if gaps else None


def on_placed(
    decision: CustomerDecision, order: CustomerOrder, items: list[dict], now: int, config: PolicyConfig
) -> None:
    """Remember the purchase; a reorder before the reminder makes the reminder moot."""
    state = decision.state
    at = order.placed_at
    for item in items:
        if not replenishable(item, config):
            continue
        sku = item["sku"]
        times = state.sku_purchases.setdefault(sku, [])
        if at not in times:
            times.append(at)
            times.sort()
            del times[:-SKU_PURCHASES_KEPT]
        pending = state.replenish.get(sku)
        if pending is not None and pending.order_id != order.order_id and _older(state, pending.order_id, order):
            del state.replenish[sku]
            due = state.timers.get(PREFIX + sku)
            if cancel_timer(state, PREFIX + sku):
                audit(decision, _build(state, pending, due, config), "skipped", ["reordered"], now)
    while len(state.sku_purchases) > REPLENISH_KEPT:
        oldest = min(state.sku_purchases, key=lambda k: (max(state.sku_purchases[k]), k))
        del state.sku_purchases[oldest]


def on_delivered(
    decision: CustomerDecision,
    order: CustomerOrder,
    items: list[dict],
    source_event_id: str,
    now: int,
    config: PolicyConfig,
) -> None:
    """Plan a reminder for each consumable of the delivered parcel."""
    state = decision.state
    delivered = order.delivered_at
    for item in items:
        if not replenishable(item, config):
            continue
        sku = item["sku"]
        current = state.replenish.get(sku)
        if current is not None and current.order_id != order.order_id and not _older(state, current.order_id, order):
            continue  # an older order delivered late: the newer purchase's plan stands
        own = own_interval_ms(state, sku, config)
        if own is not None:
            runout = max(state.sku_purchases[sku]) + own
        else:
            runout = delivered + item["quantity"] * config.days_per_unit[item["category"]] * DAY
        state.replenish[sku] = ReplenishPlan(
            sku=sku,
            title=item["title"],
            category=item["category"],
            quantity=item["quantity"],
            order_id=order.order_id,
            source_event_id=source_event_id,
            runout_at=runout,
        )
        plan(
            decision,
            PREFIX + sku,
            days_after_at(runout - config.replenish_lead_days * DAY, 0, config.send_hour, state.time_zone),
            now,
        )
    while len(state.replenish) > REPLENISH_KEPT:
        oldest = min(state.replenish.values(), key=lambda p: (p.runout_at, p.sku))
        del state.replenish[oldest.sku]
        cancel_timer(state, PREFIX + oldest.sku)


def fire(decision: CustomerDecision, sku: str, due_at: int, now: int, config: PolicyConfig) -> None:
    pending = decision.state.replenish.pop(sku, None)
    if pending is None:
        return
    intent = _build(decision.state, pending, due_at, config, now)
    consider(
        decision,
        Proposal(intent, intent.intent_id, news_key(pending.order_id, "replenishment", _occasion(pending))),
        now,
        config,
    )


def _older(state: CustomerState, order_id: str, than: CustomerOrder) -> bool:
    """Was `order_id` bought before `than`? By placement time (delivery time if the placement is not
    known), then order id: a strict order, so the newest purchase wins whatever arrives first."""
    other = state.orders.get(order_id)
    return other is None or _purchase_key(other) < _purchase_key(than)


def _purchase_key(order: CustomerOrder) -> tuple[int, str]:
    return (order.placed_at if order.placed_at is not None else order.delivered_at or 0, order.order_id)


def _occasion(plan: ReplenishPlan) -> str:
    return f"replenish:{plan.sku}:{plan.order_id}"


def _build(
    state: CustomerState, plan: ReplenishPlan, due_at: int, config: PolicyConfig, now: int | None = None
) -> MessageIntent:
    basis = "own_interval" if own_interval_ms(state, plan.sku, config) is not None else "pack_size"
    return MessageIntent(
        intent_id=ids.intent_id(state.customer_id, plan.order_id, "replenishment", _occasion(plan), "email"),
        decided_at=now if now is not None else due_at,
        order_id=plan.order_id,
        customer_id=state.customer_id,
        intent_type="replenishment",
        kind="marketing",
        channel="email",
        send_at=max(due_at, now) if now is not None else due_at,
        expires_at=max(due_at, plan.runout_at) + config.ttl("replenishment"),
        priority="low",
        content=ContentHints(
            items=[ItemHint(plan.sku, plan.title, plan.category, plan.quantity)], category=plan.category
        ),
        reason_codes=[
            "replenish",
            f"basis:{basis}",
            f"runs_out_on:{local_day(plan.runout_at, state.time_zone).isoformat()}",
        ],
        source_event_id=plan.source_event_id,
        locale=state.locale,
        time_zone=state.time_zone,
    )
