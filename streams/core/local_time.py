"""The customer's wall clock: epoch ms <-> local dates and times with zoneinfo.

Local arithmetic is done on dates, never by adding 24 h, so "tomorrow at 10:00" and "when the quiet
window ends at 08:00" stay right across daylight-saving changes. A local time that does not exist (the
hour skipped in spring) resolves like zoneinfo's fold=0 does: one hour later on the wall clock; an
ambiguous one (autumn) is its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """The zone by IANA name; UTC when unknown (an unknown zone must not stop a decision)."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local(at: int, tz: str | None) -> datetime:
    return datetime.fromtimestamp(at / 1000, zone(tz))


def local_day(at: int, tz: str | None) -> date:
    return local(at, tz).date()


@lru_cache(maxsize=4096)  # the same few dates, hours and zones come up for every customer
def at_local(day: date, wall: time, tz: str | None) -> int:
    """Epoch ms of the wall-clock time `wall` on `day` in `tz`."""
    return int(datetime.combine(day, wall, tzinfo=zone(tz)).timestamp() * 1000)


def days_after_at(at: int, days: int, hour: int, tz: str | None) -> int:
    """`days` local calendar days after `at`, at `hour`:00 local time."""
    return at_local(local_day(at, tz) + timedelta(days=days), time(hour, 0), tz)


def next_local_hour(at: int, hour: int, tz: str | None) -> int:
    """The first `hour`:00 local at or after `at`."""
    today = at_local(local_day(at, tz), time(hour, 0), tz)
    return today if today >= at else days_after_at(at, 1, hour, tz)
