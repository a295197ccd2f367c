"""Predicted delays: will this parcel miss its promised date, and when will it really come?

From the lane's transit distribution and the time already spent in transit, the chance of missing
the promise is P(T > promised | T > elapsed) = S(promised) / S(elapsed), and the new window is the
10th..90th percentile of T given T > elapsed. Every open carrier problem on the shipment adds a
business day. Without lane data the carrier's own estimate is used; with neither, a passed promise.
"""
from __future__ import annotations

from dataclasses import dataclass

from .calendar import DAY, add_business_days, business_days_between
from .lanes import LaneStats, lane_keys, pick
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


def assess(shipment: Shipment, promised_at: int, now: int, lanes: dict[str, LaneStats], open_problems: int,
           policy: DelayPolicy = DELAY_POLICY) -> Assessment | None:
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
