"""Business-time arithmetic (closed form) against its day-by-day definition."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from streams.core.calendar import DAY, _weekday, add_business_ms, business_ms_between

T0 = 1_767_225_600_000  # 2026-01-01 (a Thursday)
instants = st.one_of(
    st.integers(T0 - 30 * DAY, T0 + 60 * DAY),
    st.integers(-20, 60).map(lambda d: T0 + d * DAY),  # day boundaries
    st.integers(-10 * DAY, 10 * DAY),
)  # around the epoch
amounts = st.one_of(
    st.integers(-3 * DAY, 25 * DAY), st.integers(-2, 20).map(lambda d: d * DAY), st.sampled_from([0, 1, -1])
)


def walk_between(start: int, end: int) -> int:
    if end < start:
        return -walk_between(end, start)
    total, day = 0, start // DAY
    while day <= end // DAY:
        if _weekday(day) < 5:
            total += max(0, min(end, (day + 1) * DAY) - max(start, day * DAY))
        day += 1
    return total


def walk_add(start: int, amount: int) -> int:
    t, remaining = start, amount
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


@settings(max_examples=2000)
@given(instants, instants)
def test_business_ms_between_is_the_day_by_day_sum(start, end):
    assert business_ms_between(start, end) == walk_between(start, end)


@settings(max_examples=2000)
@given(instants, amounts)
def test_add_business_ms_is_the_day_by_day_walk(start, amount):
    assert add_business_ms(start, amount) == walk_add(start, amount)
