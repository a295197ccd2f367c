"""Which channel carries a message: consent first, then urgency and the customer's own engagement.

- Transactional/service, normal urgency: the proposed channel, else the first allowed fallback
  (consent.choose_channel, unchanged).
- Urgent transactional/service: SMS, then push, where allowed (seen soonest), else the proposed one.
- Marketing: only channels the customer opted in to; the proposed one unless another allowed channel
  has a clearly better open/click rate (enough sends to trust it, and `engagement_margin` better).
Returns the channel (or None), the reasons other channels were passed over, and reason codes to add
to the intent when the channel changed.
"""

from __future__ import annotations

from .consent import blocked_reason, choose_channel
from .model import CHANNELS, MessageIntent
from .policy import PolicyConfig
from .state import CustomerState

URGENT_ORDER = ("sms", "push")


def pick(state: CustomerState, intent: MessageIntent, config: PolicyConfig) -> tuple[str | None, list[str], list[str]]:
    if intent.kind != "marketing" and intent.priority == "urgent":
        return _urgent(state, intent)
    channel, reasons = choose_channel(state, intent.channel, intent.kind)
    if channel is None:
        return None, reasons, []
    notes = [f"fallback_from:{intent.channel}", *reasons] if channel != intent.channel else []
    if intent.kind == "marketing":
        better = _more_engaging(state, channel, intent.kind, config)
        if better is not None:
            return better, reasons, [*notes, f"engagement_channel:{better}"]
    return channel, reasons, notes


def _urgent(state: CustomerState, intent: MessageIntent) -> tuple[str | None, list[str], list[str]]:
    reasons = []
    order = [*URGENT_ORDER, intent.channel, *CHANNELS]
    for channel in dict.fromkeys(order):
        why = blocked_reason(state, channel, intent.kind)
        if why is None:
            notes = []
            if channel != intent.channel and channel in URGENT_ORDER:
                notes = [f"urgent_channel:{channel}"]
            elif channel != intent.channel:
                notes = [f"fallback_from:{intent.channel}", *reasons]
            return channel, reasons, notes
        reasons.append(why)
    return None, reasons, []


def _more_engaging(state: CustomerState, current: str, kind: str, config: PolicyConfig) -> str | None:
    base = state.channel(current).engagement_rate() if current in state.channels else 0.5
    best, best_rate = None, base + config.engagement_margin
    for name in CHANNELS:
        if name == current or blocked_reason(state, name, kind) is not None:
            continue
        ch = state.channels[name]
        if ch.sent >= config.engagement_min_sent and ch.engagement_rate() >= best_rate:
            best, best_rate = name, ch.engagement_rate()
    return best
