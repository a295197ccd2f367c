"""Send-time optimisation: messages that can wait go out in the hour the customer usually engages.

Learning: every open or click adds one to the customer's histogram of local hours of the day (24
bins) and days of the week (7 bins), decayed with a half-life (`send_time_half_life_days`), so old
habits fade. The same goes into the partition's histograms for the whole shop and for each segment,
the fallback for customers with little history. State per customer: 31 numbers and a time.

Choosing: a message that can wait (marketing, and the post-delivery service messages: care tips,
onboarding; never order or delivery news, which is urgent to the customer) is held until the best
hour within `send_time_max_delay_ms` and its `expires_at`, among hours outside quiet hours and caps.
The customer's own histogram, with the fallback mixed in as `send_time_prior_weight` opens, scores
each hour by the opens that follow it, discounted by the wait (a message that lands just before the
customer looks is at the top of the inbox; one that waits hours is buried). No history anywhere: the
planned time stands.
"""

from __future__ import annotations

from . import caps
from .decisions import CustomerDecision, shared_get, shared_put
from .local_time import local
from .model import MessageIntent
from .policy import HOUR, PolicyConfig
from .quiet_hours import quiet_until
from .state import CustomerState
from .touchpoints import after_sale

SHOP = "sto:shop"
READ_HALF_HOURS = 2.0
DISCOUNT = [0.5 ** (k / READ_HALF_HOURS) for k in range(24)]
DAY_PRIOR = 3.0  # pseudo-opens per weekday
WAIT_GAIN = 1.1  # a message waits only for an hour that scores this much better than now


def can_wait(intent: MessageIntent) -> bool:
    return after_sale(intent.kind, intent.intent_type)


def segment_key(segment: str) -> str:
    return f"sto:seg:{segment}"


def _decayed(profile: dict | None, now: int, config: PolicyConfig) -> tuple[list[float], list[float]] | None:
    if not profile:
        return None
    factor = 0.5 ** (max(0, now - profile["at"]) / (config.send_time_half_life_days * 86_400_000))
    return [h * factor for h in profile["hours"]], [d * factor for d in profile["days"]]


def add(profile: dict | None, at: int, tz: str | None, config: PolicyConfig, weight: float = 1.0) -> dict:
    """The histogram with one more engagement at `at` (a new dict: stored values are never changed in
    place). An engagement older than the histogram counts for what is left of it by now."""
    moment = local(at, tz)
    if profile is None:
        profile = {"hours": [0.0] * 24, "days": [0.0] * 7, "at": at}
    half_life = config.send_time_half_life_days * 86_400_000
    as_of = max(profile["at"], at)
    old = 0.5 ** ((as_of - profile["at"]) / half_life)
    new = weight * 0.5 ** ((as_of - at) / half_life)
    hours = [round(h * old, 4) for h in profile["hours"]]
    days = [round(d * old, 4) for d in profile["days"]]
    hours[moment.hour] = round(hours[moment.hour] + new, 4)
    days[moment.weekday()] = round(days[moment.weekday()] + new, 4)
    return {"hours": hours, "days": days, "at": as_of}


def observe(decision: CustomerDecision, at: int, segment: str, config: PolicyConfig) -> None:
    """An open or click: into the customer's histogram and the partition's shop and segment ones."""
    state = decision.state
    state.send_time = add(state.send_time, at, state.time_zone, config)
    for key in (SHOP, segment_key(segment)):
        shared_put(decision, key, add(shared_get(decision, key), at, state.time_zone, config))


def top_hours(profile: dict | None, n: int = 3) -> list[int]:
    """The customer's most engaged local hours, best first (for views; no decay applied)."""
    if not profile:
        return []
    hours = profile["hours"]
    return [h for h in sorted(range(24), key=lambda h: (-hours[h], h)) if hours[h] > 0][:n]


def _weights(
    decision: CustomerDecision, segment: str, now: int, config: PolicyConfig
) -> tuple[list[float], list[float], str] | None:
    """Hour and weekday weights for this customer, and where they come from."""
    own = _decayed(decision.state.send_time, now, config)
    n = sum(own[0]) if own else 0.0
    prior, source = None, None
    for key, name in ((segment_key(segment), f"segment:{segment}"), (SHOP, "shop")):
        found = _decayed(shared_get(decision, key), now, config)
        if found and sum(found[0]) >= config.send_time_min_shop_opens:
            prior, source = found, name
            break
    if n >= config.send_time_min_opens:
        source = "customer"
    elif prior is None:
        return None
    hours, days = own or ([0.0] * 24, [0.0] * 7)
    if prior is not None:
        ph, pd = sum(prior[0]) or 1.0, sum(prior[1]) or 1.0
        hours = [h + config.send_time_prior_weight * p / ph for h, p in zip(hours, prior[0])]
        days = [d + config.send_time_prior_weight * p / pd for d, p in zip(days, prior[1])]
    return hours, days, source


def _ahead(hours: list[float]) -> list[float]:
    """Each hour's score: the opens at and after it, discounted by the wait (halving every
    READ_HALF_HOURS): a message that lands just before the customer looks is read at the top of the
    inbox. One pass round the clock, then a recurrence: ahead[h] = hours[h] + d * ahead[h + 1]
    - d ** 24 * hours[h]."""
    d, d24 = DISCOUNT[1], DISCOUNT[1] ** 24
    ahead = [0.0] * 24
    ahead[0] = sum(hours[k] * DISCOUNT[k] for k in range(24))
    for h in range(23, 0, -1):
        ahead[h] = hours[h] + d * ahead[(h + 1) % 24] - d24 * hours[h]
    return ahead


def best_time(
    decision: CustomerDecision,
    intent: MessageIntent,
    channel: str,
    when: int,
    tz: str | None,
    segment: str,
    config: PolicyConfig,
) -> tuple[int, str] | None:
    """The best moment at or after `when` to send, and a reason code; None without any history."""
    found = _weights(decision, segment, when, config)
    if found is None:
        return None
    hours, days, source = found
    ahead = _ahead(hours)
    day_weight = [7 * (d + DAY_PRIOR) / (sum(days) + 7 * DAY_PRIOR) for d in days]  # 1.0 for an even week
    limit = min(when + config.send_time_max_delay_ms, intent.expires_at - HOUR)  # an hour to deliver it
    start = local(when, tz)
    first = when - (start.minute * 60 + start.second) * 1000 - start.microsecond // 1000 + HOUR
    # Score every candidate hour, then take the best that quiet hours and caps allow (ties: earliest).
    score = {}
    for at in [when, *range(first, limit + 1, HOUR)]:
        moment = start if at == when else local(at, tz)
        score[at] = ahead[moment.hour] * day_weight[moment.weekday()]
    state: CustomerState = decision.state

    def allowed(at: int) -> bool:
        return quiet_until(at, tz, channel, intent.kind, intent.priority, config) is None and not caps.blocked_reason(
            state, channel, intent.kind, at, tz, config
        )

    best = next((at for at in sorted(score, key=lambda at: (-score[at], at)) if allowed(at)), None)
    if best is None:
        return None
    if best != when and score[best] < score[when] * WAIT_GAIN and allowed(when):
        best = when  # not worth the wait
    return best, f"send_time:{source}:h{local(best, tz).hour:02d}"
