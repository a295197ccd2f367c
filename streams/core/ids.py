"""Deterministic ids: the same decision always gets the same id, so replays and retries de-duplicate."""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1c1a52-2d0f-4f3e-9a59-7d2f3c1f0b11")


_NAMESPACE_BYTES = _NAMESPACE.bytes
_sha1 = hashlib.sha1
# The 17th hex digit with the RFC 4122 variant bits (10xx) set: its low two bits are kept.
_VARIANT_DIGIT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def stable_id(*parts: object) -> str:
    """uuid5(namespace, parts joined by "|"), computed directly on the hex digest: the same ids,
    without uuid's object overhead on the hot path (tests/unit/test_ids.py compares with uuid5)."""
    name = "|".join(["" if p is None else str(p) for p in parts])
    h = _sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"  # version 5


def intent_id(customer_id: str, order_id: str | None, intent_type: str, occasion: str, channel: str) -> str:
    """One id per (recipient, order, message type, occasion, channel): the sender's idempotency key."""
    return stable_id("intent", customer_id, order_id, intent_type, occasion, channel)


def rechannel(intent_id_: str, channel: str) -> str:
    """The id of the same message moved to another channel."""
    return stable_id("rechannel", intent_id_, channel)


def audit_id(source_event_id: str, intent_type: str, decision: str, *extra: object) -> str:
    return stable_id("audit", source_event_id, intent_type, decision, *extra)
