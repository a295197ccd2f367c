"""Business time: carriers do not move parcels at weekends, so transit and stalls are measured in
business days (Mon-Fri, UTC). Holidays are not modelled.

Computed in closed form on a business-time axis (business milliseconds since a Monday), not by
walking day by day: the delay model asks for these on every scan and every re-check.
tests/unit/test_calendar.py checks them against the day-by-day definitions."""

from __future__ import annotations

DAY = 86_400_000
HOUR = 3_600_000
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Mon=0)


def _weekday(day_index: int) -> int:
    return (day_index + _EPOCH_WEEKDAY) % 7


def is_business_day(ms: int) -> bool:
    return _weekday(ms // DAY) < 5


def _business_ms_before(t: int) -> int:
    """Business milliseconds from Monday 1969-12-29 00:00 UTC to `t` (negative before it)."""
    day, into = divmod(t, DAY)
    monday_day = day + _EPOCH_WEEKDAY  # days since that Monday
    weeks, weekday = divmod(monday_day, 7)
    return (weeks * 5 + min(weekday, 5)) * DAY + (into if weekday < 5 else 0)


def _instant_at(business_ms: int) -> int:
    """The earliest instant whose _business_ms_before is `business_ms` (the end of a business day,
    not the next Monday, when it falls on a day boundary)."""
    days, into = divmod(business_ms, DAY)
    if into == 0:  # the end of the previous business day
        days -= 1
        into = DAY
    weeks, weekday = divmod(days, 5)
    return (weeks * 7 + weekday - _EPOCH_WEEKDAY) * DAY + into


def business_ms_between(start: int, end: int) -> int:
    """Milliseconds of business days between two instants (negative if end < start)."""
    return _business_ms_before(end) - _business_ms_before(start)


def business_days_between(start: int, end: int) -> float:
    return business_ms_between(start, end) / DAY


def _next_business_instant(t: int) -> int:
    """`t`, or the start of the next business day if `t` falls on a weekend."""
    weekday = _weekday(t // DAY)
    return t if weekday < 5 else (t // DAY + 7 - weekday) * DAY


def add_business_ms(start: int, amount: int) -> int:
    """The instant `amount` business milliseconds after `start` (weekends skipped). From a weekend,
    counting starts on Monday 00:00; a span that ends exactly at a day's end ends there (not on the
    next Monday); a negative amount is subtracted plainly (as it always was)."""
    t = _next_business_instant(start)
    if amount <= 0:
        return t + amount
    return _instant_at(_business_ms_before(t) + amount)


def add_business_days(start: int, days: float) -> int:
    return add_business_ms(start, int(days * DAY))
