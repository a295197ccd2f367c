"""Deterministic ids: the same decision always gets the same id, so replays and retries de-duplicate."""
from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c1a52-2d0f-4f3e-9a59-7d2f3c1f0b11")


def stable_id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join("" if p is None else str(p) for p in parts)))


def intent_id(customer_id: str, order_id: str | None, intent_type: str, occasion: str, channel: str) -> str:
    """One id per (recipient, order, message type, occasion, channel): the sender's idempotency key."""
    return stable_id("intent", customer_id, order_id, intent_type, occasion, channel)


def rechannel(intent_id_: str, channel: str) -> str:
    """The id of the same message moved to another channel."""
    return stable_id("rechannel", intent_id_, channel)


def audit_id(source_event_id: str, intent_type: str, decision: str, *extra: object) -> str:
    return stable_id("audit", source_event_id, intent_type, decision, *extra)
