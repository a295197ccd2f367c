"""Win-back: an incentive when a customer stays away well past their usual gap between orders.

Due when the time since the last order exceeds `winback_gap_factor` x the customer's median gap
between orders (at least `winback_min_gap_days`), or `winback_one_time_days` for one-time customers:
at the first `send_hour` local after that. Every new order moves it (timer kind "winback"); one per absence (occasion
"winback:<last order time>", no order id).
"""

from __future__ import annotations

from . import ids
from .decisions import CustomerDecision, plan
from .gate import Proposal, consider, news_key
from .local_time import next_local_hour
from .model import ContentHints, MessageIntent
from .policy import DAY, ORDER_TIMES_KEPT, PolicyConfig
from .segments import usual_gap_ms
from .state import CustomerState

KIND = "winback"


def threshold_ms(state: CustomerState, config: PolicyConfig) -> int:
    gap = usual_gap_ms(state)
    if gap is None:
        return config.winback_one_time_days * DAY
    return max(int(config.winback_gap_factor * gap), config.winback_min_gap_days * DAY)


def on_placed(decision: CustomerDecision, at: int, now: int, config: PolicyConfig) -> None:
    state = decision.state
    if at not in state.order_times:
        state.order_times.append(at)
        state.order_times.sort()
        del state.order_times[:-ORDER_TIMES_KEPT]
    last = state.order_times[-1]
    plan(decision, KIND, next_local_hour(last + threshold_ms(state, config), config.send_hour, state.time_zone), now)


def fire(decision: CustomerDecision, due_at: int, now: int, config: PolicyConfig) -> None:
    state = decision.state
    if not state.order_times:
        return
    last = state.order_times[-1]
    gap = usual_gap_ms(state)
    occasion = f"winback:{last}"
    intent = MessageIntent(
        intent_id=ids.intent_id(state.customer_id, None, KIND, occasion, "email"),
        decided_at=now,
        order_id=None,
        customer_id=state.customer_id,
        intent_type=KIND,
        kind="marketing",
        channel="email",
        send_at=max(due_at, now),
        expires_at=due_at + config.ttl(KIND),
        priority="low",
        content=ContentHints(category=_favourite_category(state)),
        reason_codes=[
            "winback",
            "incentive",
            f"days_since_order:{(due_at - last) // DAY}",
            f"usual_gap_days:{gap // DAY}" if gap is not None else "one_time_customer",
        ],
        source_event_id=ids.stable_id("winback", state.customer_id, last),
        locale=state.locale,
        time_zone=state.time_zone,
    )
    consider(decision, Proposal(intent, intent.intent_id, news_key(None, KIND, occasion)), now, config)


def _favourite_category(state: CustomerState) -> str | None:
    counts: dict[str, int] = {}
    for order in state.orders.values():
        for item in order.items:
            counts[item["category"]] = counts.get(item["category"], 0) + item["quantity"]
    if not counts:
        return state.categories[0] if state.categories else None
    return max(sorted(counts), key=lambda c: counts[c])
