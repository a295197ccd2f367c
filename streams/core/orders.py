"""Order stage: folds order events and carrier scans into the order's state and proposes messages.

Runs on the partition that owns the order (orders and scans are co-partitioned by order id).
Its messages are candidates: the customer stage checks them against consent and reachability
before they become intents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

from . import ids
from .calendar import add_business_days, business_days_between
from .delays import (
    COLD_TRANSIT_DAYS,
    DELAY_POLICY,
    HANDOFF,
    HANDOFF_FRAC,
    RATIO,
    RATIO_SCALE,
    Assessment,
    Risk,
    assess,
    handoff_keys,
    handoff_risk,
    learned,
    shipment_lanes,
    transit_risk,
    usual_handoff_days,
)
from .lanes import MIN_SAMPLES, LaneStats, lane_keys, lane_known, pick
from .model import (
    CarrierScan,
    ContactChannels,
    ContentHints,
    CustomerCommand,
    DecisionAudit,
    Due,
    ItemHint,
    MessageIntent,
    OrderEvent,
    OrderFact,
    Schedule,
)
from .model import RETURN_TYPES
from .state import OrderState, ReturnState, Shipment
from .tracking import PROBLEMS, TERMINAL, apply_scan
from .touchpoints import SCAN_TOUCHPOINT, TOUCHPOINTS, exception_touchpoint, occasion, preferred_channel

# Stall rules, in business days (weekends would otherwise raise false alarms). The dispatch check
# and the stall of a feed that only scans the hand-off follow the shop's learned history once there
# is enough (delays.usual_handoff_days, the lane's transit); these are the fallbacks.
DISPATCH_SLA_DAYS = 2.0  # placed but not fulfilled
DISPATCH_QUANTILE = 0.9  # the shop's usual hand-off: later than 9 in 10 of its orders
PRE_TRANSIT_STALL_DAYS = 2.0  # label created but no carrier scan
IN_TRANSIT_STALL_DAYS = 3.0  # no scan while in transit
# Returns: a refund is late once it takes longer than 9 in 10 of the shop's refunds (business days
# from the return received to the refund), or than REFUND_SLA_DAYS until there are enough of them.
REFUND_SLA_DAYS = 5.0
REFUND_QUANTILE = 0.9
REFUND_KEY = "refund:shop"  # learned statistics key: received -> refunded, business days
RETURNS_KEPT = 10  # returns remembered per order (the newest)


class Trigger(NamedTuple):
    """The event a decision answers to: its id for audit and ids, its time for expiry."""

    event_id: str
    event_time: int


@dataclass(slots=True)
class OrderDecision:
    state: OrderState
    commands: list[CustomerCommand] = field(default_factory=list)  # to the customer stage
    audit: list[DecisionAudit] = field(default_factory=list)
    schedule: list[Schedule] = field(default_factory=list)  # call me back (see model.Schedule)
    lanes: dict = field(default_factory=dict)  # lane key -> updated LaneStats dict, to store
    duplicate: bool = False
    # (order id, what was assessed, at, P(late), basis) of every delay assessment: not stored, not
    # sent; a replay keeps them to draw the model's precision-recall-lead curve and its calibration.
    scores: list[tuple] = field(default_factory=list)


def decide_order(
    state: OrderState | None, event: OrderEvent | CarrierScan | Due, now: int, lanes: Mapping[str, dict] | None = None
) -> OrderDecision:
    """Fold one event (or a scheduled decision coming due) into the order. Takes ownership of
    `state` (it may be changed in place). `lanes` maps lane keys to learned transit statistics."""
    if isinstance(event, Due):
        decision = OrderDecision(state or OrderState(order_id=event.key))
        if state is not None and state.timers.get(event.kind) == event.due_at:
            del state.timers[event.kind]
            _on_due(decision, event, now, lanes or {}, max(now, event.now))
        return decision
    if state is None:
        state = OrderState(order_id=event.order_id)
    decision = OrderDecision(state)
    if not state.first_time(event.event_id):
        decision.duplicate = True
        return decision
    state.updated_at = max(state.updated_at or 0, event.event_time)
    if isinstance(event, OrderEvent):
        _on_order_event(decision, event, now, lanes or {})
    else:
        _on_scan(decision, event, now, lanes or {})
    return decision


def _set_timer(decision: OrderDecision, kind: str, due_at: int) -> None:
    decision.state.timers[kind] = due_at
    decision.schedule.append(Schedule(decision.state.order_id, kind, due_at))


# --- order events ----------------------------------------------------------------------------


def _on_order_event(decision: OrderDecision, event: OrderEvent, now: int, lanes: Mapping[str, dict]) -> None:
    state = decision.state
    state.customer_id = event.customer_id
    if event.type in RETURN_TYPES or event.type == "refunded":
        ret = _return_of(state, event)  # a refund may settle a return (and is the order's refund too)
        if ret is not None:
            _on_return(decision, event, ret, now, lanes)
        if event.type != "refunded":
            return
    if event.type == "placed":
        state.exchange_of = event.exchange_of or state.exchange_of
        repeated = state.placed_at is not None
        _record_placement(state, event)
        if repeated:
            return  # the shop re-sent the order (new event id): details refreshed, nothing new to say
        _fact(decision, event, "placed", detail=f"exchange_of:{state.exchange_of}" if state.exchange_of else None)
        if state.status == "cancelled":
            # The cancellation overtook the order: confirming it now would only confuse.
            _audit(
                decision,
                event,
                "order_confirmation",
                "skipped",
                ["order_cancelled"],
                now,
                occasion("order_confirmation"),
            )
            state.notified.append(occasion("order_confirmation"))
        elif any(s.status == "delivered" for s in state.shipments.values()):
            # The order feed lagged behind the carrier's: a confirmation after delivery is noise.
            _audit(
                decision,
                event,
                "order_confirmation",
                "dropped",
                ["stale:superseded_by_delivery"],
                now,
                occasion("order_confirmation"),
            )
            state.notified.append(occasion("order_confirmation"))
        else:
            _propose(decision, event, "order_confirmation", None, ["order_placed"], now)
        if not state.shipments and state.status == "open":
            _set_timer(decision, "dispatch", _dispatch_due(state, lanes))
        _catch_up(decision, now, lanes)
    elif event.type == "paid":
        state.paid_at = event.event_time
    elif event.type == "cancelled":
        state.status = "cancelled"
        state.cancelled_at = event.event_time
        state.cancel_reason = event.reason
        _fact(decision, event, "cancelled", detail=event.reason)
    elif event.type == "refunded":
        if state.status == "open":
            state.status = "refunded"
        state.refunded_at = event.event_time
        state.refund_reason = event.reason
        _fact(decision, event, "refunded", detail=event.reason)
    elif event.type == "fulfilled":
        f = event.fulfillment
        shipment = state.shipments.get(f.shipment_id)
        if shipment is None:
            shipment = state.shipments[f.shipment_id] = Shipment(shipment_id=f.shipment_id, carrier=f.carrier)
        shipment.carrier = f.carrier
        shipment.service_level = f.service_level or shipment.service_level
        shipment.tracking_number = f.tracking_number or shipment.tracking_number
        shipment.skus = list(f.skus) or shipment.skus
        shipment.fulfilled_at = event.event_time
        shipment.fulfilled_event_id = event.event_id
        state.timers.pop("dispatch", None)
        if shipment.status in SUPERSEDES_SHIPPED:
            # The carrier's news is ahead of the shop's: "shipped" now would be old news.
            occ = occasion("shipped", shipment.shipment_id)
            if occ not in state.notified:
                state.notified.append(occ)
                _audit(decision, event, "shipped", "dropped", [f"stale:superseded_by_{shipment.status}"], now, occ)
        else:
            _propose(decision, event, "shipped", shipment, ["order_fulfilled"], now)
        if shipment.handoff_at is None and shipment.status not in TERMINAL:
            _set_timer(
                decision,
                f"stall_pre_transit:{shipment.shipment_id}",
                add_business_days(event.event_time, PRE_TRANSIT_STALL_DAYS),
            )


def _catch_up(decision: OrderDecision, now: int, lanes: Mapping[str, dict]) -> None:
    """Scans can be processed before the order itself (topics are consumed independently). Once the
    order is known, tell the customer stage what happened, and announce only the latest news of
    each shipment, never the whole backlog."""
    state = decision.state
    # A cancellation or refund processed before the order: the customer stage still needs to know.
    for fact_type, at, reason in (
        ("cancelled", state.cancelled_at, state.cancel_reason),
        ("refunded", state.refunded_at, state.refund_reason),
    ):
        if at is not None:
            _fact(decision, Trigger(f"{state.order_id}:{fact_type}:{at}", at), fact_type, detail=reason)
    for ret in state.returns.values():
        _return_facts(decision, ret, Trigger(f"{state.order_id}:return:{ret.return_id}", ret.requested_at or 0), None)
    for shipment in state.shipments.values():
        news = CATCH_UP_NEWS.get(shipment.status) if shipment.status else None
        if news is not None and shipment.last_scan_event_id is not None:
            trigger = Trigger(shipment.last_scan_event_id, shipment.last_scan_at)
            reasons = [f"scan:{shipment.status}", "catch_up"]
        elif shipment.fulfilled_event_id is not None and shipment.status not in SUPERSEDES_SHIPPED:
            news, trigger, reasons = (
                "shipped",
                Trigger(shipment.fulfilled_event_id, shipment.fulfilled_at),
                ["order_fulfilled", "catch_up"],
            )
        else:
            news = None
        problem = next((p for p in reversed(state.problems) if p.startswith(f"{shipment.shipment_id}:")), None)
        if problem is not None and shipment.last_scan_event_id is not None:
            _fact(
                decision,
                Trigger(shipment.last_scan_event_id, shipment.last_scan_at),
                "delivery_problem",
                detail=problem.split(":", 1)[1],
            )
        if shipment.status == "delivered":
            late = _delivered_late(state, shipment.delivered_at)
            _fact(decision, trigger, "delivered", detail="late" if late else "on_time", shipment=shipment)
            if late:
                reasons.append("delivered_late")
        if news is not None:
            _propose(decision, trigger, news, shipment, reasons, now, attempt=shipment.failed_attempts)
        if shipment.status not in TERMINAL and shipment.last_scan_event_id is not None:
            _review_delay(decision, shipment, Trigger(shipment.last_scan_event_id, shipment.last_scan_at), now, lanes)


def _dispatch_due(state: OrderState, lanes: Mapping[str, dict]) -> int:
    """First dispatch check: when this shop's usual hand-off time has passed (learned), else the
    fixed hand-off promise."""
    usual = usual_handoff_days(state.region, lanes, DISPATCH_QUANTILE)
    days = usual[0] if usual is not None else DISPATCH_SLA_DAYS
    return add_business_days(state.placed_at, days)


def _delivered_late(state: OrderState, delivered_at: int | None) -> bool:
    return (
        state.promised_delivery_at is not None
        and delivered_at is not None
        and delivered_at > state.promised_delivery_at
    )


SUPERSEDES_SHIPPED = frozenset(
    {"out_for_delivery", "available_for_pickup", "delivered", "returned_to_sender", "expired"}
)

# The one message worth sending for a shipment whose scans came before its order.
CATCH_UP_NEWS = {
    "in_transit": "shipped",
    "exception": "shipped",
    "attempt_failed": "shipped",
    "available_for_pickup": "shipped",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
}


def _record_placement(state: OrderState, event: OrderEvent) -> None:
    state.placed_at = min(state.placed_at or event.event_time, event.event_time)
    state.promised_delivery_at = event.promised_delivery_at
    state.total = event.total
    state.items = [
        {"sku": li.sku, "title": li.title, "category": li.category, "quantity": li.quantity} for li in event.line_items
    ]
    if event.shipping is not None:
        state.time_zone = event.shipping.time_zone
        state.region = (
            f"{event.shipping.country}-{event.shipping.region}" if event.shipping.region else event.shipping.country
        )
    if event.contact is not None:
        state.contact = _contact_dict(event.contact)
        state.locale = event.contact.locale


def _contact_dict(contact: ContactChannels) -> dict:
    return {
        "email": contact.email,
        "sms": contact.sms,
        "push": contact.push,
        "marketing_email": contact.marketing_email,
        "marketing_sms": contact.marketing_sms,
        "locale": contact.locale,
    }


# --- carrier scans ---------------------------------------------------------------------------


def _on_scan(decision: OrderDecision, scan: CarrierScan, now: int, lanes: Mapping[str, dict]) -> None:
    state = decision.state
    if state.customer_id is None and scan.customer_id:
        state.customer_id = scan.customer_id
    returning = _return_for_scan(state, scan)
    if returning is not None:
        _on_return_scan(decision, returning, scan, now, lanes)
        return
    shipment = state.shipments.get(scan.shipment_id)
    if shipment is None:
        shipment = state.shipments[scan.shipment_id] = Shipment(
            shipment_id=scan.shipment_id,
            carrier=scan.carrier,
            service_level=scan.service_level,
            tracking_number=scan.tracking_number,
        )
    attempt = shipment.failed_attempts
    handed_before = shipment.handoff_at
    outcome = apply_scan(shipment, scan)
    if handed_before is None and shipment.handoff_at is not None:
        _learn_handoff(decision, shipment.handoff_at, lanes)
    touchpoint = SCAN_TOUCHPOINT.get(scan.status)
    if not outcome.applied:
        # Old news that arrives late is recorded as dropped, so ops can see why nothing went out.
        if touchpoint and touchpoint != "shipped":
            _audit(
                decision,
                scan,
                touchpoint,
                "dropped",
                [f"stale:{outcome.stale_reason}"],
                now,
                occasion(touchpoint, shipment.shipment_id, attempt),
            )
        return
    reason = f"scan:{scan.status}" + (f":{scan.sub_status}" if scan.sub_status else "")
    _drop_settled_timers(state, shipment)
    if scan.status in PROBLEMS:
        state.problems.append(f"{shipment.shipment_id}:{scan.status}:{scan.sub_status or ''}")
        _fact(decision, scan, "delivery_problem", detail=f"{scan.status}:{scan.sub_status or ''}")
        problem = exception_touchpoint(scan.status, scan.sub_status)
        if problem:
            _propose(decision, scan, problem, shipment, [reason], now, attempt=attempt)
    if touchpoint == "shipped":
        # A first transit scan announces the shipment when the shop never sent "fulfilled".
        _propose(decision, scan, "shipped", shipment, [reason], now)
    elif touchpoint == "out_for_delivery":
        _propose(decision, scan, "out_for_delivery", shipment, [reason], now, attempt=attempt)
    elif touchpoint == "ready_for_pickup":
        _propose(decision, scan, "ready_for_pickup", shipment, [reason], now)
    elif touchpoint == "delivered":
        reasons = [reason]
        late = _delivered_late(state, scan.event_time)
        if late:
            reasons.append("delivered_late")
        _fact(decision, scan, "delivered", detail="late" if late else "on_time", shipment=shipment)
        _propose(decision, scan, "delivered", shipment, reasons, now)
        _learn_transit(decision, shipment, lanes)
    if shipment.status not in TERMINAL:
        if shipment.handoff_at is not None:
            _set_timer(
                decision, f"stall_in_transit:{shipment.shipment_id}", _stall_due(decision, shipment, scan, lanes)
            )
        _review_delay(decision, shipment, scan, now, lanes)


class _Learned:
    """Statistics learned in this decision first, then the stored ones."""

    __slots__ = ("decision", "lanes")

    def __init__(self, decision: OrderDecision, lanes: Mapping[str, dict]):
        self.decision, self.lanes = decision, lanes

    def get(self, key: str, default=None):
        return self.decision.lanes.get(key) or self.lanes.get(key, default)


def _lane_stats(decision: OrderDecision, shipment: Shipment, lanes: Mapping[str, dict]) -> dict[str, LaneStats]:
    """The most specific lane with enough data (only that one is built; lanes.pick would take it)."""
    for key in shipment_lanes(shipment):
        data = decision.lanes.get(key) or lanes.get(key)
        if data and data["total"] >= MIN_SAMPLES:
            return {key: LaneStats.from_dict(data)}
    return {}


def _stall_due(decision: OrderDecision, shipment: Shipment, scan: CarrierScan, lanes: Mapping[str, dict]) -> int:
    """When silence since this scan becomes a stall. A carrier that has scanned the parcel en route
    is expected to keep doing so; one that only scanned the hand-off may be silent until delivery
    (some feeds have no intermediate scans), so then only a transit longer than the lane's 95th
    percentile counts."""
    due = add_business_days(scan.event_time, IN_TRANSIT_STALL_DAYS)
    if shipment.scans >= 2:
        return due
    ratio = learned(_Learned(decision, lanes), RATIO, shipment_lanes(shipment))
    window = _window(decision.state)
    if ratio is not None and window is not None:  # transit longer than 19 in 20 of the lane's, for this promise
        return max(due, shipment.handoff_at + int(ratio[1].quantile_after(0.0, 0.95) / RATIO_SCALE * window))
    chosen = pick(_lane_stats(decision, shipment, lanes), shipment_lanes(shipment))
    if chosen is None:
        return due
    return max(due, add_business_days(shipment.handoff_at, chosen[1].quantile_after(0.0, 0.95)))


def _drop_settled_timers(state: OrderState, shipment: Shipment) -> None:
    """Checks that can no longer matter are cancelled, so they do not sit in the schedule."""
    sid = shipment.shipment_id
    state.timers.pop("dispatch", None)
    if shipment.handoff_at is not None:
        state.timers.pop(f"stall_pre_transit:{sid}", None)
    if shipment.status in TERMINAL:
        state.timers.pop(f"stall_in_transit:{sid}", None)
        state.timers.pop(f"delay_check:{sid}", None)


def _learn(decision: OrderDecision, lanes: Mapping[str, dict], keys, value: float) -> None:
    for key in keys:
        stats = LaneStats.from_dict(decision.lanes.get(key) or lanes.get(key))
        stats.add(value)
        decision.lanes[key] = stats.to_dict()


def _window(state: OrderState) -> int | None:
    if state.placed_at is None or state.promised_delivery_at is None:
        return None
    window = state.promised_delivery_at - state.placed_at
    return window if window > 0 else None


def _learn_transit(decision: OrderDecision, shipment: Shipment, lanes: Mapping[str, dict]) -> None:
    """A delivered shipment teaches its lane (and every coarser one) how long transit takes, in
    business days and relative to its promise window (known now: only outcomes of the past are learned)."""
    if shipment.handoff_at is None or shipment.delivered_at is None:
        return
    _learn(decision, lanes, shipment_lanes(shipment), business_days_between(shipment.handoff_at, shipment.delivered_at))
    window = _window(decision.state)
    if window is not None:
        ratio = (shipment.delivered_at - shipment.handoff_at) / window
        _learn(decision, lanes, [RATIO + k for k in shipment_lanes(shipment)], ratio * RATIO_SCALE)


def _learn_handoff(decision: OrderDecision, handoff_at: int, lanes: Mapping[str, dict]) -> None:
    """The first hand-off of an order teaches the shop's hand-off delay (business days, and relative
    to the promise window), per destination region and shop-wide."""
    state = decision.state
    if state.placed_at is None or handoff_at < state.placed_at:
        return
    keys = handoff_keys(state.region)
    _learn(decision, lanes, [HANDOFF + k for k in keys], business_days_between(state.placed_at, handoff_at))
    window = _window(state)
    if window is not None:
        _learn(decision, lanes, [HANDOFF_FRAC + k for k in keys], (handoff_at - state.placed_at) / window * RATIO_SCALE)


# --- scheduled decisions ---------------------------------------------------------------------


def _on_due(decision: OrderDecision, due: Due, now: int, lanes: Mapping[str, dict], clock: int) -> None:
    """`now` is when the decision is taken (on the event clock: its due time); `clock` is the time
    of the fire that took it, from which any follow-up check is scheduled (a late check must not
    schedule a chain of checks that are already due)."""
    state = decision.state
    trigger = Trigger(f"due:{due.kind}:{due.due_at}", due.due_at)
    kind, _, shipment_id = due.kind.partition(":")
    if kind == "refund_due":  # a return's timer: the order may be refunded in part already
        _check_refund(decision, trigger, state.returns.get(shipment_id), now, lanes)
        return
    shipment = state.shipments.get(shipment_id) if shipment_id else None
    if state.status != "open":
        return
    if kind == "dispatch":
        if not state.shipments:
            _check_dispatch(decision, trigger, now, lanes, clock)
    elif shipment is None or shipment.status in TERMINAL:
        return
    elif kind == "stall_pre_transit":
        if shipment.handoff_at is None:
            _problem(
                decision,
                trigger,
                "stalled_pre_transit",
                shipment,
                "stall:pre_transit",
                [f"no_carrier_scan_after:{PRE_TRANSIT_STALL_DAYS:g}bd"],
                now,
            )
    elif kind == "stall_in_transit":
        _check_stall(decision, trigger, shipment, now, lanes)
    elif kind == "delay_check":
        _review_delay(decision, shipment, trigger, now, lanes, clock)


def _score(decision: OrderDecision, phase: str, now: int, p_late: float, basis: str) -> None:
    decision.scores.append((decision.state.order_id, phase, now, round(p_late, 4), basis))


def _check_dispatch(decision: OrderDecision, trigger, now: int, lanes: Mapping[str, dict], clock: int) -> None:
    """Not handed off past the shop's usual time: tell the customer only when that puts the promise
    at risk (P(late) >= the delay threshold, from the shop's hand-offs and transits); else look
    again later. Without a promise, the usual time alone decides."""
    state = decision.state
    if state.promised_delivery_at is None:
        _problem(decision, trigger, "dispatch_delayed", None, "stall:dispatch", ["no_fulfilment_after_usual_time"], now)
        return
    ratio_keys = lane_keys(None, None, None, state.region)
    risk = handoff_risk(
        state.placed_at, state.promised_delivery_at, now, state.region, _Learned(decision, lanes), ratio_keys
    )
    _score(decision, "awaiting_handoff", now, risk.p_late, risk.basis)
    if risk.p_late >= DELAY_POLICY.threshold:
        reasons = ["no_fulfilment_after_usual_time", f"p_late:{risk.p_late:.2f}", f"basis:{risk.basis}"]
        _problem(decision, trigger, "dispatch_delayed", None, "stall:dispatch", reasons, now)
    else:
        _set_timer(decision, "dispatch", clock + DELAY_POLICY.recheck_ms)


def _check_stall(decision: OrderDecision, trigger, shipment: Shipment, now: int, lanes: Mapping[str, dict]) -> None:
    """A silent parcel: an alarm only if it also puts the promise at risk, when the lane's history
    can say so; said once (a delay warning already sent covers it: audited, not sent)."""
    state = decision.state
    reasons = [f"no_scan_for:{IN_TRANSIT_STALL_DAYS:g}bd"]
    risk = None
    if state.promised_delivery_at is not None and state.placed_at is not None:
        risk = transit_risk(shipment, state.placed_at, state.promised_delivery_at, now, _Learned(decision, lanes))
        if risk is None:  # no promise-relative history yet: the lane's transit, or the days left
            a = assess(shipment, state.promised_delivery_at, now, _lane_stats(decision, shipment, lanes), 0)
            left = business_days_between(now, state.promised_delivery_at)
            risk = (
                Risk(a.p_late, a.basis)
                if a is not None
                else Risk(0.9 if left < COLD_TRANSIT_DAYS else 0.1, "cold_start")
            )
    if risk is not None:
        reasons += [f"p_late:{risk.p_late:.2f}", f"basis:{risk.basis}"]
        occ = occasion("stalled_in_transit", shipment.shipment_id)
        if occ in state.notified:
            return
        if risk.p_late < DELAY_POLICY.threshold:
            state.notified.append(occ)
            _audit(decision, trigger, "stalled_in_transit", "skipped", ["promise_not_at_risk", *reasons], now, occ)
            return
        if shipment.delay_level > 0:
            state.notified.append(occ)
            _audit(decision, trigger, "stalled_in_transit", "skipped", ["covered_by:delay_warning", *reasons], now, occ)
            return
        shipment.delay_level = 1  # it announces the delay: no separate warning after it
    _problem(decision, trigger, "stalled_in_transit", shipment, "stall:in_transit", reasons, now)


def _problem(
    decision: OrderDecision,
    trigger,
    intent_type: str,
    shipment: Shipment | None,
    detail: str,
    reasons: list[str],
    now: int,
) -> None:
    occ = occasion(intent_type, shipment.shipment_id if shipment else None)
    if occ in decision.state.notified:
        return
    decision.state.problems.append(f"{shipment.shipment_id if shipment else '-'}:{detail}")
    _fact(decision, trigger, "delivery_problem", detail=detail)
    _propose(decision, trigger, intent_type, shipment, reasons, now)


def _assess(decision: OrderDecision, shipment: Shipment, now: int, lanes: Mapping[str, dict], open_problems: int):
    """The learned, promise-relative model when the lane (or a coarser one) has history; else the
    lane's absolute transit, the carrier's estimate or a passed promise (delays.assess)."""
    state = decision.state
    risk = None
    if state.placed_at is not None:
        risk = transit_risk(
            shipment, state.placed_at, state.promised_delivery_at, now, _Learned(decision, lanes), open_problems
        )
    if risk is None:
        return assess(shipment, state.promised_delivery_at, now, _lane_stats(decision, shipment, lanes), open_problems)
    window = state.promised_delivery_at - state.placed_at
    stats = LaneStats.from_dict(_Learned(decision, lanes).get(risk.basis))
    elapsed = max(0, now - shipment.handoff_at) / window * RATIO_SCALE
    start = shipment.handoff_at + int(stats.quantile_after(elapsed, 0.1) / RATIO_SCALE * window)
    end = shipment.handoff_at + int(stats.quantile_after(elapsed, 0.9) / RATIO_SCALE * window)
    start = max(start, now)
    basis = (
        risk.basis if lane_known(shipment.origin_region, shipment.destination_region) else f"{risk.basis};lane_unknown"
    )
    return Assessment(risk.p_late, start, max(start, end), basis)


def _review_delay(
    decision: OrderDecision, shipment: Shipment, trigger, now: int, lanes: Mapping[str, dict], clock: int | None = None
) -> None:
    """Warn before the customer notices: once when a miss becomes likely, once more if it slips again."""
    state = decision.state
    if state.promised_delivery_at is None or shipment.status in TERMINAL:
        return
    open_kinds = (f"{shipment.shipment_id}:exception", f"{shipment.shipment_id}:attempt_failed")
    open_problems = sum(1 for p in state.problems if p.startswith(open_kinds))
    a = _assess(decision, shipment, now, lanes, open_problems)
    if a is not None:
        _score(decision, "in_transit", now, a.p_late, a.basis)
        shipment.p_late, shipment.window_start, shipment.window_end = round(a.p_late, 4), a.window_start, a.window_end
        reasons = [f"p_late:{a.p_late:.2f}", f"basis:{a.basis}"]
        if now > state.promised_delivery_at:
            reasons.append("promise_missed")
        if shipment.delay_level == 0 and occasion("dispatch_delayed") in state.notified:
            shipment.delay_level = 1  # the dispatch alarm told the customer already
        if shipment.delay_level == 0 and a.p_late >= DELAY_POLICY.threshold:
            shipment.delay_level, shipment.announced_window_end = 1, a.window_end
            _fact(decision, trigger, "delivery_problem", detail="delay:predicted")
            _propose(decision, trigger, "delay_warning", shipment, reasons, now)
        elif (
            shipment.delay_level == 1
            and shipment.announced_window_end is not None
            and a.window_end > add_business_days(shipment.announced_window_end, DELAY_POLICY.escalate_slip_days)
        ):
            shipment.delay_level, shipment.announced_window_end = 2, a.window_end
            _propose(decision, trigger, "delay_update", shipment, reasons + ["window_slipped"], now)
    # Time passing without a scan can make a parcel late too: look again later.
    if shipment.handoff_at is not None:
        _set_timer(
            decision,
            f"delay_check:{shipment.shipment_id}",
            max(now, trigger.event_time, clock or 0) + DELAY_POLICY.recheck_ms,
        )


# --- returns ---------------------------------------------------------------------------------

# How far a return got; it only moves forward, and a declined or closed return stays so.
RETURN_STAGE = {
    "requested": 0,
    "approved": 1,
    "label_created": 2,
    "in_transit": 3,
    "received": 4,
    "inspected": 5,
    "refunded": 6,
    "exchanged": 6,
    "declined": 7,
    "closed": 7,
}


def _advance(ret: ReturnState, status: str) -> None:
    if ret.open and RETURN_STAGE[status] > RETURN_STAGE[ret.status]:
        ret.status = status


def _return_of(state: OrderState, event: OrderEvent) -> ReturnState | None:
    """The return an event is about: named by its return_info, or, for a refund that names none,
    the order's only return still waiting for its refund."""
    info = event.return_info
    if info is None:
        waiting = [r for r in state.returns.values() if r.open and r.refunded_at is None and not _parcel_only(r)]
        return waiting[0] if len(waiting) == 1 else None
    ret = state.returns.get(info.return_id)
    if ret is None:
        ret = state.returns[info.return_id] = ReturnState(info.return_id)
        for old in sorted(state.returns.values(), key=lambda r: r.requested_at or 0)[:-RETURNS_KEPT]:
            del state.returns[old.return_id]
    return ret


def _on_return(
    decision: OrderDecision, event: OrderEvent, ret: ReturnState, now: int, lanes: Mapping[str, dict]
) -> None:
    """One step of a return: recorded whatever order it comes in; each message once per return."""
    state = decision.state
    info, at, kind = event.return_info, event.event_time, event.type
    was_open = ret.open
    first = ret.requested_at is None
    if info is not None:
        if info.items:
            ret.items = [{"sku": i.sku, "quantity": i.quantity, "reason": i.reason} for i in info.items]
        ret.resolution = info.resolution or ret.resolution
        ret.exchange_order_id = info.exchange_order_id or ret.exchange_order_id
        ret.disposition = info.disposition or ret.disposition
    ret.requested_at = min(ret.requested_at or at, at)
    if first:
        _adopt_parcel(decision, ret, None, now, lanes)
    if kind == "return_approved":
        ret.approved_at = at
        _advance(ret, "approved")
    elif kind == "return_declined":
        ret.declined_at = at
        if ret.open and ret.received_at is None and ret.refunded_at is None:
            ret.status = "declined"
            reasons = ["return_declined"] + ([f"note:{info.note[:80]}"] if info and info.note else [])
            _propose_return(decision, event, "return_declined", ret, reasons, now)
    elif kind == "return_label_created":
        _on_label(decision, ret, event, now, lanes)
    elif kind == "return_received":
        _on_received(decision, ret, event, now, lanes, "return_received")
    elif kind == "return_inspected":
        ret.inspected_at = at
        _advance(ret, "inspected")
    elif kind == "exchange_created":
        ret.resolution = ret.resolution or "exchange"
        _advance(ret, "exchanged")
        _drop_refund_timer(state, ret)
    elif kind == "refunded":
        _on_return_refund(decision, ret, event, now, lanes)
    elif kind == "return_closed":
        ret.closed_at = at
        ret.status = "closed"
        _drop_refund_timer(state, ret)
    _return_facts(decision, ret, event, was_open if not first else None)


def _return_facts(decision: OrderDecision, ret: ReturnState, trigger, was_open: bool | None) -> None:
    """Tell the customer stage a return opened (first seen) and closed (it holds reviews and
    promotions meanwhile, and starts a cool-down after). `was_open` None: first seen."""
    if was_open is None:
        _fact(decision, trigger, "return_opened", detail=ret.return_id, returned=ret.items)
        was_open = True
    if was_open and not ret.open:
        _fact(decision, trigger, "return_closed", detail=f"{ret.return_id}:{_outcome(ret)}")


def _outcome(ret: ReturnState) -> str:
    if ret.declined_at is not None and ret.received_at is None and ret.refunded_at is None:
        return "declined"
    if ret.refunded_at is not None:
        return "refunded"
    return "exchanged" if ret.exchange_order_id or ret.resolution == "exchange" else "closed"


def _on_label(decision: OrderDecision, ret: ReturnState, event: OrderEvent, now: int, lanes) -> None:
    state, label = decision.state, event.return_info.label
    _adopt_parcel(decision, ret, label.shipment_id, now, lanes)
    ret.label_at = event.event_time
    ret.label_shipment_id, ret.carrier = label.shipment_id, label.carrier or ret.carrier
    ret.tracking_number = label.tracking_number or ret.tracking_number
    _advance(ret, "label_created")
    _propose_return(decision, event, "return_label_ready", ret, ["return_label_created"], now)
    taken = state.shipments.pop(label.shipment_id, None)
    if taken is not None:  # its scans came first and were taken for a parcel of the order
        for kind in list(state.timers):
            if kind.endswith(f":{label.shipment_id}"):
                del state.timers[kind]
        if taken.status == "delivered" and taken.last_scan_event_id is not None:
            trigger = Trigger(taken.last_scan_event_id, taken.delivered_at or taken.last_scan_at)
            _on_received(decision, ret, trigger, now, lanes, "return_scan:delivered")


def _return_for_scan(state: OrderState, scan: CarrierScan) -> ReturnState | None:
    """The return a scan is about: its label's shipment; else, for a parcel said to go back
    (`direction` return) or a parcel never heard of on an order whose own parcels have all arrived,
    the open return still without a label. A parcel said to go back before any return is known is
    kept aside (`parcel:<shipment>`) for the return that comes (the topics are read independently:
    its scans can be processed before the return's events)."""
    for ret in state.returns.values():
        if ret.label_shipment_id == scan.shipment_id:
            return ret
    if scan.direction == "forward":
        return None
    if scan.direction != "return" and (
        scan.shipment_id in state.shipments
        or not state.shipments
        or any(s.status not in TERMINAL for s in state.shipments.values())
    ):
        return None
    waiting = [r for r in state.returns.values() if r.open and r.label_shipment_id is None and not _parcel_only(r)]
    if waiting:
        ret = max(waiting, key=lambda r: r.requested_at or 0)
    elif scan.direction == "return":
        ret = state.returns[PARCEL + scan.shipment_id] = ReturnState(PARCEL + scan.shipment_id)
    else:
        return None
    ret.label_shipment_id, ret.carrier, ret.tracking_number = scan.shipment_id, scan.carrier, scan.tracking_number
    return ret


PARCEL = "parcel:"  # a return parcel scanned before its return is known


def _parcel_only(ret: ReturnState) -> bool:
    return ret.return_id.startswith(PARCEL)


def _adopt_parcel(decision: OrderDecision, ret: ReturnState, shipment_id: str | None, now: int, lanes) -> None:
    """A return parcel seen before its return becomes that return's (the one its label names, or
    the first return of the order without one)."""
    state = decision.state
    kept = [r for r in state.returns.values() if _parcel_only(r) and shipment_id in (None, r.label_shipment_id)]
    if not kept or ret is kept[0]:
        return
    parcel = kept[0]
    del state.returns[parcel.return_id]
    ret.label_shipment_id, ret.carrier = parcel.label_shipment_id, ret.carrier or parcel.carrier
    ret.tracking_number = ret.tracking_number or parcel.tracking_number
    ret.shipped_at = ret.shipped_at or parcel.shipped_at
    if ret.shipped_at is not None:
        _advance(ret, "in_transit")
    if parcel.received_at is not None:
        trigger = Trigger(f"{state.order_id}:{parcel.return_id}:delivered", parcel.received_at)
        _on_received(decision, ret, trigger, now, lanes, "return_scan:delivered")


def _on_return_scan(decision: OrderDecision, ret: ReturnState, scan: CarrierScan, now: int, lanes) -> None:
    """The return parcel on its way back: no delivery messages, no transit statistics; its arrival
    at the warehouse is the return received, unless the shop said so already."""
    if _parcel_only(ret):  # no return known yet: recorded for it, said once it comes
        if scan.status == "delivered":
            ret.received_at = ret.received_at or scan.event_time
        elif scan.status in ("in_transit", "out_for_delivery", "available_for_pickup"):
            ret.shipped_at = ret.shipped_at or scan.event_time
        return
    if scan.status == "delivered":
        _on_received(decision, ret, scan, now, lanes, "return_scan:delivered")
    elif scan.status in ("in_transit", "out_for_delivery", "available_for_pickup") and ret.shipped_at is None:
        ret.shipped_at = scan.event_time
        _advance(ret, "in_transit")


def _on_received(decision: OrderDecision, ret: ReturnState, trigger, now: int, lanes, reason: str) -> None:
    if ret.received_at is not None:
        return
    ret.received_at = trigger.event_time
    _advance(ret, "received")
    _propose_return(decision, trigger, "return_received", ret, [reason], now)
    if ret.refunded_at is None and ret.resolution != "exchange" and ret.open:
        days, _basis = _usual_refund_days(decision, lanes)
        _set_timer(decision, f"refund_due:{ret.return_id}", add_business_days(ret.received_at, days))


def _on_return_refund(decision: OrderDecision, ret: ReturnState, event: OrderEvent, now: int, lanes) -> None:
    state = decision.state
    if ret.refunded_at is not None:
        return
    ret.refunded_at = event.event_time
    ret.refund_amount = event.amount
    ret.refund_method = (event.return_info.refund_method if event.return_info else None) or ret.refund_method
    _advance(ret, "refunded")
    _drop_refund_timer(state, ret)
    if ret.received_at is not None and ret.refunded_at >= ret.received_at:
        _learn(decision, lanes, [REFUND_KEY], business_days_between(ret.received_at, ret.refunded_at))
    reasons = ["refund_issued"] + (["after:refund_delayed"] if ret.refund_overdue_at is not None else [])
    _propose_return(decision, event, "refund_issued", ret, reasons, now, amount=event.amount, currency=event.currency)


def _drop_refund_timer(state: OrderState, ret: ReturnState) -> None:
    state.timers.pop(f"refund_due:{ret.return_id}", None)


def _usual_refund_days(decision: OrderDecision, lanes: Mapping[str, dict]) -> tuple[float, str]:
    stats = LaneStats.from_dict(_Learned(decision, lanes).get(REFUND_KEY))
    if stats.total >= MIN_SAMPLES:
        return max(1.0, stats.quantile_after(0.0, REFUND_QUANTILE)), "learned"
    return REFUND_SLA_DAYS, "default"


def _check_refund(decision: OrderDecision, trigger, ret: ReturnState | None, now: int, lanes) -> None:
    """Received, and no refund after the shop's usual time: say so before the customer asks."""
    if ret is None or ret.refunded_at is not None or not ret.open or ret.resolution == "exchange":
        return
    days, basis = _usual_refund_days(decision, lanes)
    ret.refund_overdue_at = now
    reasons = [f"no_refund_after:{days:.1f}bd", f"basis:{basis}"]
    _propose_return(decision, trigger, "refund_delayed", ret, reasons, now)


def _propose_return(
    decision: OrderDecision,
    event,
    intent_type: str,
    ret: ReturnState,
    reasons: list[str],
    now: int,
    amount: float | None = None,
    currency: str | None = None,
) -> None:
    state = decision.state
    by_sku = {i["sku"]: i for i in state.items}
    items = [
        ItemHint(
            i["sku"],
            by_sku.get(i["sku"], {}).get("title", i["sku"]),
            by_sku.get(i["sku"], {}).get("category", "unknown"),
            i["quantity"],
        )
        for i in ret.items
    ]
    content = ContentHints(
        items=items,
        category=items[0].category if items else None,
        carrier=ret.carrier,
        tracking_number=ret.tracking_number,
        amount=amount,
        currency=currency,
        return_id=ret.return_id,
    )
    occ = occasion(intent_type, f"return:{ret.return_id}")
    _propose(decision, event, intent_type, None, reasons, now, occ=occ, content=content)


# --- outputs ---------------------------------------------------------------------------------


def _propose(
    decision: OrderDecision,
    event,
    intent_type: str,
    shipment: Shipment | None,
    reasons: list[str],
    now: int,
    attempt: int = 0,
    occ: str | None = None,
    content: ContentHints | None = None,
) -> None:
    """Propose one message for an occasion, unless it was already decided, is moot or is stale.
    `occ` and `content` are given for messages about something else than a shipment (a return)."""
    state = decision.state
    if state.exchange_of is not None and intent_type == "shipped":
        intent_type = "exchange_shipped"  # the exchanged item on its way, not a new order
    touchpoint = TOUCHPOINTS[intent_type]
    occ = occ or occasion(intent_type, shipment.shipment_id if shipment else None, attempt)
    if occ in state.notified:
        return
    if state.exchange_of is not None and intent_type == "order_confirmation":
        # The customer ordered nothing: the shop replaces a returned item. Its shipping news follows.
        state.notified.append(occ)
        _audit(
            decision, event, intent_type, "skipped", ["exchange_order", f"exchange_of:{state.exchange_of}"], now, occ
        )
        return
    if intent_type != "order_confirmation" and state.status == "cancelled":
        _audit(decision, event, intent_type, "skipped", ["order_cancelled"], now, occ)
        state.notified.append(occ)
        return
    if state.placed_at is None:
        # A scan or fulfilment before the order itself: wait, the order brings customer and contacts.
        return
    state.notified.append(occ)
    if now - event.event_time > touchpoint.ttl_ms:
        _audit(decision, event, intent_type, "dropped", ["stale:event_too_old"], now, occ)
        return
    channel = preferred_channel(touchpoint, state.contact)
    intent = MessageIntent(
        intent_id=ids.intent_id(state.customer_id, state.order_id, intent_type, occ, channel),
        decided_at=now,
        order_id=state.order_id,
        customer_id=state.customer_id,
        intent_type=intent_type,
        kind=touchpoint.kind,
        channel=channel,
        send_at=max(now, event.event_time),
        expires_at=event.event_time + touchpoint.ttl_ms,
        priority=touchpoint.priority,
        content=content or _content(state, shipment),
        reason_codes=reasons,
        source_event_id=event.event_id,
        locale=state.locale,
        time_zone=state.time_zone,
    )
    decision.commands.append(
        CustomerCommand(
            command_id=ids.stable_id("candidate", intent.intent_id),
            event_time=event.event_time,
            customer_id=state.customer_id,
            order_id=state.order_id,
            kind="candidate_intent",
            intent=intent,
        )
    )


def _content(state: OrderState, shipment: Shipment | None) -> ContentHints:
    items = _items(state, shipment)
    hints = [ItemHint(i["sku"], i["title"], i["category"], i["quantity"]) for i in items]
    main = max(items, key=lambda i: i["quantity"], default=None)
    predicted = shipment is not None and shipment.window_end is not None and shipment.status not in TERMINAL
    return ContentHints(
        items=hints,
        category=main["category"] if main else None,
        carrier=shipment.carrier if shipment else None,
        tracking_number=shipment.tracking_number if shipment else None,
        window_start=shipment.window_start if predicted else None,
        window_end=shipment.window_end
        if predicted
        else (shipment.carrier_eta if shipment else state.promised_delivery_at),
    )


def _items(state: OrderState, shipment: Shipment | None) -> list[dict]:
    if shipment is not None and shipment.skus:
        wanted = set(shipment.skus)
        return [i for i in state.items if i["sku"] in wanted]
    return state.items


def _fact(
    decision: OrderDecision,
    event,
    fact_type: str,
    detail: str | None = None,
    shipment: Shipment | None = None,
    returned: list[dict] | None = None,
) -> None:
    state = decision.state
    if state.placed_at is None:
        return  # before the order is known: _catch_up reports it once the order arrives
    contact = None
    if fact_type == "placed" and state.contact is not None:
        contact = ContactChannels(**state.contact)
    items = _items(state, shipment) if fact_type in ("placed", "delivered") else []
    if returned:  # the items a return takes back (return_opened)
        by_sku = {i["sku"]: i for i in state.items}
        items = [
            {
                **by_sku.get(r["sku"], {"title": r["sku"], "category": "unknown"}),
                "sku": r["sku"],
                "quantity": r["quantity"],
            }
            for r in returned
        ]
    decision.commands.append(
        CustomerCommand(
            command_id=ids.stable_id("fact", event.event_id, fact_type, detail),
            event_time=event.event_time,
            customer_id=state.customer_id,
            order_id=state.order_id,
            kind="order_fact",
            fact=OrderFact(
                type=fact_type,
                total=state.total if fact_type == "placed" else None,
                categories=sorted({i["category"] for i in state.items}) if fact_type == "placed" else [],
                time_zone=state.time_zone,
                contact=contact,
                detail=detail,
                items=[ItemHint(i["sku"], i["title"], i["category"], i["quantity"]) for i in items],
                had_problem=fact_type == "delivered" and (bool(real_problems(state.problems)) or detail == "late"),
                promised_delivery_at=state.promised_delivery_at,
            ),
        )
    )


def real_problems(problems: list[str]) -> list[str]:
    """What went wrong on the way, without the alarms (stall and delay predictions): whether those
    were right is only known from the outcome (late or not), which the facts carry."""
    return [p for p in problems if not p.split(":", 1)[-1].startswith(ALARMS)]


ALARMS = ("stall:", "delay:")


def _audit(
    decision: OrderDecision, event, intent_type: str, verdict: str, reasons: list[str], now: int, occ: str
) -> None:
    state = decision.state
    decision.audit.append(
        DecisionAudit(
            audit_id=ids.audit_id(event.event_id, intent_type, verdict, occ),
            decided_at=now,
            customer_id=state.customer_id or "unknown",
            intent_type=intent_type,
            decision=verdict,
            reasons=reasons,
            source_event_id=event.event_id,
            order_id=state.order_id,
        )
    )
