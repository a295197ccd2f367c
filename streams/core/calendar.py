"""Business time: carriers do not move parcels at weekends, so transit and stalls are measured in
business days (Mon-Fri, UTC). Holidays are not modelled."""
from __future__ import annotations

DAY = 86_400_000
HOUR = 3_600_000
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Mon=0)


def _weekday(day_index: int) -> int:
    return (day_index + _EPOCH_WEEKDAY) % 7


def is_business_day(ms: int) -> bool:
    return _weekday(ms // DAY) < 5


def business_ms_between(start: int, end: int) -> int:
    """Milliseconds of business days between two instants (negative if end < start)."""
    if end < start:
        return -business_ms_between(end, start)
    total = 0
    day = start // DAY
    last = end // DAY
    while day <= last:
        if _weekday(day) < 5:
            lo = max(start, day * DAY)
            hi = min(end, (day + 1) * DAY)
            total += max(0, hi - lo)
        day += 1
    return total


def business_days_between(start: int, end: int) -> float:
    return business_ms_between(start, end) / DAY


def add_business_ms(start: int, amount: int) -> int:
    """The instant `amount` business milliseconds after `start` (weekends skipped)."""
    t = start
    remaining = amount
    while True:
        day = t // DAY
        day_end = (day + 1) * DAY
        if _weekday(day) >= 5:
            t = day_end
            continue
        if t + remaining <= day_end:
            return t + remaining
        remaining -= day_end - t
        t = day_end


def add_business_days(start: int, days: float) -> int:
    return add_business_ms(start, int(days * DAY))
