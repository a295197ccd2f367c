"""Consent and reachability: may this message go out on this channel, and if not, on which?"""

from __future__ import annotations

from .model import CHANNELS
from .state import CustomerState


def blocked_reason(customer: CustomerState, channel: str, kind: str) -> str | None:
    """Why `channel` cannot carry a message of `kind` to this customer, or None if it can."""
    ch = customer.channels.get(channel)
    if ch is None or not ch.reachable:
        return f"unreachable:{channel}"
    if ch.bounced:
        return f"bounced:{channel}"
    if ch.unsubscribed_all:
        return f"unsubscribed:{channel}"
    if kind == "marketing" and not ch.marketing_consent:
        return f"no_marketing_consent:{channel}"
    return None


def choose_channel(customer: CustomerState, preferred: str, kind: str) -> tuple[str | None, list[str]]:
    """The preferred channel if allowed, else the first allowed fallback. Marketing never falls
    back to a channel the customer did not opt in to. Returns (channel or None, reasons)."""
    reasons = []
    for channel in (preferred, *[c for c in CHANNELS if c != preferred]):
        why = blocked_reason(customer, channel, kind)
        if why is None:
            return channel, reasons
        reasons.append(why)
    return None, reasons
