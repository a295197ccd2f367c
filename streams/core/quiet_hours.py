"""Quiet hours in the customer's own time zone: messages wait until the window ends.

Which messages wait: every kind on the channels in `quiet_all_kinds` (SMS, push), marketing only on
`quiet_marketing_only` (e-mail). Urgent transactional/service messages never wait; marketing always does.
"""

from __future__ import annotations

from datetime import time, timedelta

from .local_time import at_local, local
from .policy import PolicyConfig


def applies(channel: str, kind: str, priority: str, config: PolicyConfig) -> bool:
    """Is this message subject to quiet hours at all?"""
    if kind != "marketing" and priority == "urgent":
        return False
    if channel in config.quiet_all_kinds:
        return True
    return kind == "marketing" and channel in config.quiet_marketing_only


def in_window(wall: time, start: time, end: time) -> bool:
    """Is the local wall-clock time inside [start, end)? The window may cross midnight."""
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_until(at: int, tz: str | None, channel: str, kind: str, priority: str, config: PolicyConfig) -> int | None:
    """When the message may go out if `at` is inside the customer's quiet window, else None."""
    if not applies(channel, kind, priority, config):
        return None
    moment = local(at, tz)
    wall = moment.time().replace(tzinfo=None)
    if not in_window(wall, config.quiet_start, config.quiet_end):
        return None
    day = moment.date()
    if config.quiet_start > config.quiet_end and wall >= config.quiet_start:
        day += timedelta(days=1)  # the evening part of a window that crosses midnight ends tomorrow
    return at_local(day, config.quiet_end, tz)
