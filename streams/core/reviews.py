"""Review-request rules that hold whenever a review request is about to go out (first time or at release).

- Never for an order that went wrong (late, delivery problem, cancelled, refunded, returned, a
  complaint about it): *suppressed* with the reasons.
- Not if the customer already reviewed that order.
- At most one request per product per `review_per_product_ms` (Yotpo/Okendo: 12 months): products
  asked about lately are left out; if none is left the request is *skipped*
  ("review_once_per_product").
"""

from __future__ import annotations

from dataclasses import replace

from .guard import order_problems
from .model import MessageIntent
from .policy import REVIEW_ASKED_KEPT, PolicyConfig
from .state import CustomerState


def check(
    state: CustomerState, intent: MessageIntent, now: int, config: PolicyConfig
) -> tuple[MessageIntent | None, str, list[str]]:
    """(the request to send, possibly with fewer items, or None; verdict; reasons)."""
    order = state.orders.get(intent.order_id) if intent.order_id else None
    problems = order_problems(order)
    if problems:
        return None, "suppressed", ["guard:order_had_problem", *problems]
    if (order is not None and order.reviewed) or any(r.get("order_id") == intent.order_id for r in state.reviews):
        return None, "skipped", ["already_reviewed"]
    if not intent.content.items:
        return intent, "", []  # about the order as a whole (no line items known): nothing to filter
    reviewed = {r.get("product_id") for r in state.reviews}
    items = [i for i in intent.content.items if i.sku not in reviewed and not _asked_lately(state, i.sku, now, config)]
    if not items:
        return None, "skipped", ["review_once_per_product"]
    if len(items) < len(intent.content.items):
        intent = replace(
            intent,
            content=replace(intent.content, items=items),
            reason_codes=[*intent.reason_codes, "some_products_asked_recently"],
        )
    return intent, "", []


def _asked_lately(state: CustomerState, sku: str, now: int, config: PolicyConfig) -> bool:
    asked = state.review_asked.get(sku)
    return asked is not None and abs(now - asked) < config.review_per_product_ms


def record_asked(state: CustomerState, intent: MessageIntent, at: int, config: PolicyConfig) -> None:
    for item in intent.content.items:
        state.review_asked[item.sku] = max(state.review_asked.get(item.sku, at), at)
    fresh = {k: v for k, v in state.review_asked.items() if at - v < config.review_per_product_ms}
    newest = sorted(fresh.items(), key=lambda kv: (kv[1], kv[0]))[-REVIEW_ASKED_KEPT:]
    state.review_asked = dict(newest)
