"""Predicted delays: will this parcel miss its promised date, and when will it really come?

From the lane's transit distribution and the time already spent in transit, the chance of missing
the promise is P(T > promised | T > elapsed) = S(promised) / S(elapsed), and the new window is the
10th..90th percentile of T given T > elapsed. Every open carrier problem on the shipment adds a
business day. Without lane data the carrier's own estimate is used; with neither, a passed promise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .calendar import DAY, add_business_days, business_days_between
from .lanes import BUCKET_DAYS, MIN_SAMPLES, LaneStats, lane_keys, pick
from .state import Shipment


@dataclass(frozen=True, slots=True)
class DelayPolicy:
    threshold: float = 0.6  # chance of missing the promise that triggers a proactive warning
    escalate_slip_days: float = 1.0  # business days the window must slip again for a second notice
    recheck_ms: int = 12 * 3_600_000  # re-assess a parcel in transit this often without a scan
    problem_penalty_days: float = 1.0  # business days each open carrier problem adds


DELAY_POLICY = DelayPolicy()


@dataclass(frozen=True, slots=True)
class Assessment:
    p_late: float
    window_start: int
    window_end: int
    basis: str  # lane key used, "carrier_eta" or "promise_passed"


def shipment_lanes(shipment: Shipment) -> tuple[str, ...]:
    return lane_keys(shipment.carrier, shipment.service_level, shipment.origin_region, shipment.destination_region)


def assess(
    shipment: Shipment,
    promised_at: int,
    now: int,
    lanes: dict[str, LaneStats],
    open_problems: int,
    policy: DelayPolicy = DELAY_POLICY,
) -> Assessment | None:
    if shipment.handoff_at is None:
        return None  # not with the carrier yet: the stall policy watches this phase
    penalty = open_problems * policy.problem_penalty_days
    chosen = pick(lanes, shipment_lanes(shipment))
    if chosen is not None:
        key, lane = chosen
        # A parcel with open problems behaves as if it were `penalty` business days further behind.
        elapsed = max(0.0, business_days_between(shipment.handoff_at, now)) + penalty
        to_promise = business_days_between(now, promised_at)
        s_elapsed = lane.survival(elapsed)
        if now > promised_at or s_elapsed <= 0:
            p_late = 1.0
        else:
            p_late = min(1.0, lane.survival(elapsed + to_promise) / s_elapsed)
        start = add_business_days(now, lane.quantile_after(elapsed, 0.1) - elapsed)
        end = add_business_days(now, lane.quantile_after(elapsed, 0.9) - elapsed)
        return Assessment(p_late, start, max(end, start), f"lane:{key}")
    if shipment.carrier_eta is not None:
        eta = add_business_days(shipment.carrier_eta, penalty) if penalty else shipment.carrier_eta
        return Assessment(0.9 if eta > promised_at else 0.1, eta - DAY // 2, eta + DAY // 2, "carrier_eta")
    if now > promised_at:
        return Assessment(1.0, now, add_business_days(now, 2), "promise_passed")
    return None


# --- the shop's own history: promise-relative transit and hand-off ----------------------------
#
# A shop's promised dates already encode the route (a far destination gets a later promise), so
# transit is learned relative to the promise window W = promise - placement: R = transit / W, and
# the hand-off as h = (hand-off - placement) / W. A parcel is late when h + R > 1. Scale-free, so one
# distribution serves short and long routes; it is learned per lane with fallbacks (lanes.pick).
RATIO_SCALE = 10.0  # R and h are stored x10 in LaneStats (0.025 resolution, 0..2 of the window)
RATIO = "ratio:"  # + lane key: R of delivered parcels
HANDOFF = "handoff:"  # + region key: hand-off delay, business days (dispatch thresholds)
HANDOFF_FRAC = "handoff_frac:"  # + region key: h of handed-off parcels
COLD_TRANSIT_DAYS = 3.0  # no history at all: a parcel needs at least this (business days) after hand-off


@dataclass(frozen=True, slots=True)
class Risk:
    p_late: float
    basis: str  # what it was computed from, e.g. "ratio:olist-carrier|?|*|*", "cold_start"


def handoff_keys(region: str | None) -> tuple[str, ...]:
    """Hand-off statistics per destination region of the shop, then shop-wide."""
    return (f"{region}", "*") if region else ("*",)


def learned(lanes, prefix: str, keys: tuple[str, ...]) -> tuple[str, LaneStats] | None:
    """The most specific learned statistics with enough samples (MIN_SAMPLES), or None."""
    for key in keys:
        data = lanes.get(prefix + key)
        if data and data["total"] >= MIN_SAMPLES:
            return prefix + key, LaneStats.from_dict(data)
    return None


def _smoothed(stats: LaneStats, above: float, given: float) -> float:
    """P(X > above | X > given) from a histogram, pulled a little towards 1/2 when samples are few."""
    n = stats.total
    num, den = stats.survival(above * RATIO_SCALE) * n, stats.survival(given * RATIO_SCALE) * n
    return min(1.0, (num + 0.5) / (den + 1.0))


def transit_risk(
    shipment: Shipment,
    placed_at: int,
    promised_at: int,
    now: int,
    lanes,
    open_problems: int = 0,
    policy: DelayPolicy = DELAY_POLICY,
) -> Risk | None:
    """P(late) of a parcel with the carrier, from the lane's promise-relative transit (None: no history)."""
    chosen = learned(lanes, RATIO, shipment_lanes(shipment))
    if chosen is None or shipment.handoff_at is None:
        return None
    key, stats = chosen
    window = promised_at - placed_at
    if window <= 0 or now > promised_at:
        return Risk(1.0, key)
    elapsed = max(0, now - shipment.handoff_at) + open_problems * policy.problem_penalty_days * DAY
    need = (promised_at - shipment.handoff_at) / window  # R above this is late
    if elapsed >= promised_at - shipment.handoff_at:
        return Risk(1.0, key)
    return Risk(_smoothed(stats, need, elapsed / window), key)


def handoff_risk(
    placed_at: int, promised_at: int, now: int, region: str | None, lanes, ratio_keys: tuple[str, ...]
) -> Risk:
    """P(late) of an order not yet handed off at `now`: over the shop's later hand-offs (h > now's),
    the chance that transit then needs more than what is left of the window."""
    window = promised_at - placed_at
    if window <= 0 or now >= promised_at:
        return Risk(1.0, "promise_passed")
    h0 = (now - placed_at) / window
    fractions = learned(lanes, HANDOFF_FRAC, handoff_keys(region))
    ratio = learned(lanes, RATIO, ratio_keys)
    if fractions is None or ratio is None:
        left = business_days_between(now, promised_at)
        return Risk(0.9 if left < COLD_TRANSIT_DAYS else 0.1, "cold_start")
    (_, hs), (key, rs) = fractions, ratio
    width = BUCKET_DAYS / RATIO_SCALE
    weight = total = 0.0
    for i, c in enumerate(hs.counts):
        h = (i + 0.5) * width
        if c <= 0 or h <= h0:
            continue
        weight += c
        total += c * (1.0 if h >= 1 else rs.survival((1 - h) * RATIO_SCALE))
    if weight <= 0:  # later than every hand-off seen: at best it leaves now
        return Risk(_smoothed(rs, 1 - h0, 0.0), key)
    return Risk(min(1.0, (total + 0.5) / (weight + 1.0)), key)


def usual_handoff_days(region: str | None, lanes, q: float = 0.9) -> tuple[float, str] | None:
    """The q-quantile of this shop's hand-off delay (business days), or None without history."""
    chosen = learned(lanes, HANDOFF, handoff_keys(region))
    if chosen is None:
        return None
    key, stats = chosen
    return stats.quantile_after(0.0, q), key
