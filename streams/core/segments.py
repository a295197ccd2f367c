"""Customer segments and the tone that suits them, put into every intent's content hints.

Segments, first match wins:
- lapsed: no order for `lapsed_days`;
- high_value: lifetime spend >= `high_value_total` or one order >= `high_value_order`;
- first_time: one order (or none known yet);
- occasional: repeat customers whose usual (median) gap between orders is >= `occasional_gap_days`;
- repeat: everyone else with two or more orders.

Tone follows the segment, except that a transactional/service message about an order that went
wrong (late, delivery problem) is apologetic whatever the segment.
"""

from __future__ import annotations

from statistics import median

from .policy import DAY, PolicyConfig
from .state import CustomerState

TONES = {
    "first_time": "welcoming",
    "repeat": "familiar",
    "high_value": "appreciative",
    "occasional": "friendly",
    "lapsed": "we_miss_you",
}


def usual_gap_ms(state: CustomerState) -> int | None:
    """Median time between the customer's orders, None with fewer than two orders."""
    times = sorted(state.order_times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    return int(median(gaps)) if gaps else None


def segment(state: CustomerState, now: int, config: PolicyConfig) -> str:
    if state.last_order_at is not None and now - state.last_order_at >= config.lapsed_days * DAY:
        return "lapsed"
    if state.total_spent >= config.high_value_total or state.max_order_total >= config.high_value_order:
        return "high_value"
    if state.orders_count <= 1:
        return "first_time"
    gap = usual_gap_ms(state)
    if gap is not None and gap >= config.occasional_gap_days * DAY:
        return "occasional"
    return "repeat"


def tone(state: CustomerState, seg: str, kind: str, order_id: str | None) -> str:
    order = state.orders.get(order_id) if order_id else None
    if kind != "marketing" and order is not None and (order.late or order.had_problem or order.problems):
        return "apologetic"
    return TONES[seg]
