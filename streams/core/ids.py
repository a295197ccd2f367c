"""Deterministic ids: the same decision always gets the same id, so replays and retries de-duplicate."""
from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1c1a52-2d0f-4f3e-9a59-7d2f3c1f0b11")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def stable_id(*parts: object) -> str:
    """uuid5(namespace, parts joined by "|"), computed directly: the same ids, without uuid's
    object overhead on the hot path."""
    name = "|".join("" if p is None else str(p) for p in parts)
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def intent_id(customer_id: str, order_id: str | None, intent_type: str, occasion: str, channel: str) -> str:
    """One id per (recipient, order, message type, occasion, channel): the sender's idempotency key."""
    return stable_id("intent", customer_id, order_id, intent_type, occasion, channel)


def rechannel(intent_id_: str, channel: str) -> str:
    """The id of the same message moved to another channel."""
    return stable_id("rechannel", intent_id_, channel)


def audit_id(source_event_id: str, intent_type: str, decision: str, *extra: object) -> str:
    return stable_id("audit", source_event_id, intent_type, decision, *extra)
