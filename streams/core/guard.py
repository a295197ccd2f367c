"""The reputation guard: no promotions or review requests to a customer who is having a bad time.

Applies to marketing only (review requests, cross-sell, replenishment, win-back); transactional and
service messages always still go out. Two questions:

- `customer_block`: is the customer in a state where any marketing would hurt? While a delivery
  problem is open on any of their orders, a support ticket or a return is open, or during a cool-down after a
  late delivery, a negative contact (negative text, bad rating or review), a refund, a return or a
  cancellation. The answer says when it lifts (`until`), or None when that depends on an event
  (the ticket being solved, the parcel arriving).
- `order_problems`: did this very order go wrong? Then it never gets a review request.

What the caller does with it (see gate.py): *held* = kept in state and re-checked when the guard is
expected to lift (or at the next re-check for open-ended guards), as long as the message has not
expired; *suppressed* = dropped for good with the reasons (the guard outlasts the message, or the
order itself had a problem).
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import PolicyConfig
from .state import CustomerOrder, CustomerState


# Problem details that are alarms, not things that happened: a predicted delay, a dispatch or a
# stall alarm. Whether they were right shows in the outcome (a late delivery is `late`).
PREDICTIONS = ("delay:", "stall:")


@dataclass(frozen=True, slots=True)
class GuardBlock:
    reasons: list[str]
    until: int | None  # when every reason has lifted; None if one of them has no known end


def customer_block(
    state: CustomerState, now: int, config: PolicyConfig, order_id: str | None = None
) -> GuardBlock | None:
    """`order_id`: the order the message is about. An exchange order's own messages are the good end
    of the return it replaces: the cool-down after that return does not hold them."""
    reasons: list[str] = []
    ends: list[int | None] = []

    def cooldown(reason: str, since: int | None, length: int) -> None:
        if since is not None and now < since + length:
            reasons.append(reason)
            ends.append(since + length)

    open_problems = [
        o.problem_open_at
        for o in state.orders.values()
        if o.problem_open_at is not None and now < o.problem_open_at + config.problem_hold_max_ms
    ]
    if open_problems:
        reasons.append("guard:delivery_problem")
        ends.append(None)  # lifts when the parcel arrives (or the problem is too old to matter)
    late = [o.delivered_at for o in state.orders.values() if o.late and o.delivered_at is not None]
    cooldown("guard:late_delivery", max(late, default=None), config.late_delivery_cooldown_ms)
    if state.open_tickets:
        reasons.append("guard:open_ticket")
        ends.append(None)
    if any(now < opened + config.return_hold_max_ms for opened in state.open_returns.values()):
        reasons.append("guard:return_open")
        ends.append(None)  # lifts when the shop closes the return (then the return cool-down runs)
    cooldown("guard:negative_contact", state.last_negative_contact_at, config.negative_contact_cooldown_ms)
    cooldown("guard:refund", state.last_refund_at, config.refund_cooldown_ms)
    order = state.orders.get(order_id) if order_id else None
    if order is None or order.exchange_of is None:
        cooldown("guard:return", state.last_return_at, config.refund_cooldown_ms)
    cooldown("guard:cancellation", state.last_cancel_at, config.refund_cooldown_ms)
    if not reasons:
        return None
    until = None if any(e is None for e in ends) else max(ends)
    return GuardBlock(reasons, until)


def order_problems(order: CustomerOrder | None) -> list[str]:
    """What went wrong with this order, as reason codes (empty if nothing did)."""
    if order is None:
        return []
    found = []
    if order.cancelled_at is not None:
        found.append("order_cancelled")
    if order.refunded_at is not None:
        found.append("order_refunded")
    if order.returned:
        found.append("order_returned")
    if order.late:
        found.append("delivered_late")
    # An alarm that did not come true is no problem with the order (lateness is `late`).
    real = [p for p in order.problems if not p.startswith(PREDICTIONS)]
    found.extend(f"delivery_problem:{p}" for p in real[-2:])
    if order.had_problem and not (order.late or real):
        found.append("delivery_problem")
    if order.negative_contact:
        found.append("negative_contact")
    return found
