"""Predicted delays, carrier exceptions and stalls in the order stage."""

from dataclasses import replace

from helpers import T0, fulfilled, placed, run_orders, types
from helpers import scan as plain_scan
from streams.core.calendar import DAY, HOUR, add_business_days, business_days_between
import pytest

from streams.core.delays import HANDOFF, HANDOFF_FRAC, RATIO, RATIO_SCALE
from streams.core.lanes import MIN_SAMPLES, LaneStats, lane_keys
from streams.core.model import Due
from streams.core.orders import decide_order


def scan(status, at, origin="DE-BE", destination="DE-BY", **kw):
    return replace(plain_scan(status, at, **kw), origin_region=origin, destination_region=destination)


MONDAY = 1_767_571_200_000  # 2026-01-05 00:00 UTC


def test_business_days_skip_weekends():
    friday_noon = MONDAY + 4 * DAY + 12 * HOUR
    assert business_days_between(friday_noon, friday_noon + 3 * DAY) == 1.0  # Fri 12:00 -> Mon 12:00
    assert add_business_days(friday_noon, 1) == friday_noon + 3 * DAY


def lane_with(days: list[float]) -> LaneStats:
    stats = LaneStats.empty()
    for d in days:
        stats.add(d)
    return stats


def test_lane_quantiles_and_conditional_survival():
    stats = lane_with([2.0] * 50 + [5.0] * 50)
    assert 0.45 < stats.survival(3.0) < 0.55
    # Once a parcel has taken longer than the fast half, it belongs to the slow half.
    assert 4.9 < stats.quantile_after(3.0, 0.5) < 5.3


def test_delivered_shipments_teach_every_lane_level():
    _, decisions = feed(
        [
            placed(T0),
            fulfilled(T0 + HOUR),
            scan("in_transit", T0 + 2 * HOUR),
            scan("delivered", T0 + 2 * HOUR + 2 * DAY),
        ],
        {},
    )
    learned = decisions[-1].lanes
    keys = lane_keys("dhl", "standard", "DE-BE", "DE-BY")
    # Transit in business days, and relative to the promise window (2 of 3 days: 0.667 x RATIO_SCALE).
    assert set(learned) == set(keys) | {RATIO + k for k in keys}
    assert all(v["total"] == 1 for v in learned.values())
    assert LaneStats.from_dict(learned[RATIO + keys[0]]).quantile_after(0, 0.5) / RATIO_SCALE == pytest.approx(
        0.667, abs=0.03
    )
    # The hand-off (the first carrier scan) taught the shop's hand-off delay, per region and shop-wide.
    assert set(decisions[2].lanes) == {HANDOFF + "DE-BY", HANDOFF + "*", HANDOFF_FRAC + "DE-BY", HANDOFF_FRAC + "*"}


def learned_lanes(days: float, n: int = MIN_SAMPLES * 2) -> dict:
    stats = lane_with([days] * n)
    return {k: stats.to_dict() for k in lane_keys("dhl", "standard", "DE-BE", "DE-BY")}


def feed(events, lanes, now=None):
    state, out = None, []
    for e in events:
        d = decide_order(state, e, now or e.event_time, lanes)
        state = d.state
        out.append(d)
    return state, out


def test_a_slow_lane_warns_before_the_promised_date_once():
    lanes = learned_lanes(6.0)  # this lane takes six business days; the promise is three days
    start = MONDAY
    events = [
        placed(start, promised=start + 3 * DAY),
        fulfilled(start + HOUR),
        scan("in_transit", start + 2 * HOUR, origin="DE-BE", destination="DE-BY"),
        scan("in_transit", start + 20 * HOUR, origin="DE-BE", destination="DE-BY"),
    ]
    state, decisions = feed(events, lanes)
    warnings = [c.intent for d in decisions for c in d.commands if c.intent and c.intent.intent_type == "delay_warning"]
    assert len(warnings) == 1
    w = warnings[0]
    assert w.send_at < start + 3 * DAY  # proactive: before the promise
    assert w.kind == "service" and "basis:lane:dhl|standard|DE-BE|DE-BY" in w.reason_codes
    assert w.content.window_start > start + 3 * DAY  # the new window is after the promise
    assert state.shipments["S1"].delay_level == 1


def test_a_fast_lane_does_not_warn():
    lanes = learned_lanes(1.0)
    start = MONDAY
    _, decisions = feed(
        [
            placed(start, promised=start + 3 * DAY),
            fulfilled(start + HOUR),
            scan("in_transit", start + 2 * HOUR, origin="DE-BE", destination="DE-BY"),
        ],
        lanes,
    )
    assert not [c for d in decisions for c in d.commands if c.intent and "delay" in c.intent.intent_type]


def test_time_passing_without_scans_escalates_once_then_never_again():
    lanes = learned_lanes(2.0)
    start = MONDAY
    state, _ = feed(
        [
            placed(start, promised=start + 3 * DAY),
            fulfilled(start + HOUR),
            scan("in_transit", start + 2 * HOUR, origin="DE-BE", destination="DE-BY"),
        ],
        lanes,
    )
    intents = []
    t = start + 2 * HOUR
    for _ in range(40):  # twenty days of 12-hourly checks, no scan at all
        kind = "delay_check:S1"
        due_at = state.timers.get(kind)
        if due_at is None:
            break
        t = due_at
        d = decide_order(state, Due("O1", kind, due_at, t), t, lanes)
        state = d.state
        intents += [c.intent.intent_type for c in d.commands if c.intent]
    assert intents.count("delay_warning") == 1
    assert intents.count("delay_update") == 1
    assert "stalled_in_transit" not in intents  # that timer is separate; see below


def test_carrier_exceptions_each_get_their_own_message_and_mark_a_problem():
    run = run_orders(
        placed(T0),
        fulfilled(T0 + HOUR),
        scan("in_transit", T0 + 2 * HOUR),
        scan("exception", T0 + 10 * HOUR, sub_status="customs_delay"),
        scan("exception", T0 + 20 * HOUR, sub_status="address_issue"),
    )
    assert [t for t in types(run.intents) if t not in ("order_confirmation", "shipped", "delay_warning")] == [
        "customs_delay",
        "address_problem",
    ]
    assert [f.detail for f in run.facts if f.type == "delivery_problem"][:2] == [
        "exception:customs_delay",
        "exception:address_issue",
    ]
    address = [i for i in run.intents if i.intent_type == "address_problem"][0]
    assert address.priority == "urgent"


def test_stall_in_transit_fires_after_three_business_days_without_a_scan():
    start = MONDAY  # no history: a silent parcel is a stall when the promise (Saturday) is then close
    state, _ = feed(
        [placed(start, promised=start + 5 * DAY), fulfilled(start + HOUR), scan("in_transit", start + 2 * HOUR)], {}
    )
    due_at = state.timers["stall_in_transit:S1"]
    assert due_at == add_business_days(start + 2 * HOUR, 3)
    d = decide_order(state, Due("O1", "stall_in_transit:S1", due_at, due_at), due_at)
    assert [c.intent.intent_type for c in d.commands if c.intent] == ["stalled_in_transit"]
    assert [c.fact.detail for c in d.commands if c.fact] == ["stall:in_transit"]
    # A Due that no longer matches (the timer moved on) does nothing.
    again = decide_order(d.state, Due("O1", "stall_in_transit:S1", due_at, due_at + DAY), due_at + DAY)
    assert again.commands == []


def test_a_new_scan_moves_the_stall_check():
    start = MONDAY
    state, _ = feed([placed(start), fulfilled(start + HOUR), scan("in_transit", start + 2 * HOUR)], {})
    first = state.timers["stall_in_transit:S1"]
    d = decide_order(state, scan("in_transit", start + 30 * HOUR, event_id="s-later"), start + 30 * HOUR)
    assert d.state.timers["stall_in_transit:S1"] > first
    stale = decide_order(d.state, Due("O1", "stall_in_transit:S1", first, first), first)
    assert stale.commands == []


def test_label_without_carrier_scan_is_a_pre_transit_stall():
    start = MONDAY
    state, _ = feed([placed(start), fulfilled(start + HOUR), scan("info_received", start + 2 * HOUR)], {})
    due_at = state.timers["stall_pre_transit:S1"]
    d = decide_order(state, Due("O1", "stall_pre_transit:S1", due_at, due_at), due_at)
    assert [c.intent.intent_type for c in d.commands if c.intent] == ["stalled_pre_transit"]


def test_not_fulfilled_by_the_dispatch_promise():
    start = MONDAY
    state, _ = feed([placed(start)], {})
    due_at = state.timers["dispatch"]
    d = decide_order(state, Due("O1", "dispatch", due_at, due_at), due_at)
    assert [c.intent.intent_type for c in d.commands if c.intent] == ["dispatch_delayed"]
    # Fulfilled in time: the check is cancelled.
    state, _ = feed([placed(start, event_id="p2"), fulfilled(start + HOUR)], {})
    assert "dispatch" not in state.timers


def test_a_feed_that_only_scans_the_handoff_stalls_only_past_the_lanes_95th_percentile():
    lanes = learned_lanes(6.0)  # deliveries on this lane take six business days
    start = MONDAY
    state, _ = feed(
        [placed(start, promised=start + 10 * DAY), fulfilled(start + HOUR), scan("in_transit", start + 2 * HOUR)], lanes
    )
    assert state.timers["stall_in_transit:S1"] >= add_business_days(start + 2 * HOUR, 6)
    # Once the carrier has scanned en route, three silent business days are a stall again.
    d = decide_order(state, scan("in_transit", start + 26 * HOUR, event_id="s2"), start + 26 * HOUR, lanes)
    assert d.state.timers["stall_in_transit:S1"] == add_business_days(start + 26 * HOUR, 3)


def test_a_stall_is_said_once_a_delay_warning_covers_it_and_a_safe_promise_is_no_alarm():
    start = MONDAY
    # The promise passed already: the delay warning went out at the scan; the stall is audited, not sent.
    state, _ = feed(
        [placed(start, promised=start - DAY), fulfilled(start + HOUR), scan("in_transit", start + 2 * HOUR)], {}
    )
    due_at = state.timers["stall_in_transit:S1"]
    d = decide_order(state, Due("O1", "stall_in_transit:S1", due_at, due_at), due_at)
    assert [c for c in d.commands if c.intent] == []
    assert [(a.intent_type, a.decision, a.reasons[0]) for a in d.audit] == [
        ("stalled_in_transit", "skipped", "covered_by:delay_warning")
    ]
    # A promise weeks away, no history: silence alone is no alarm (audited as such).
    state, _ = feed(
        [
            placed(start, promised=start + 30 * DAY, event_id="p2"),
            fulfilled(start + HOUR),
            scan("in_transit", start + 2 * HOUR),
        ],
        {},
    )
    due_at = state.timers["stall_in_transit:S1"]
    d = decide_order(state, Due("O1", "stall_in_transit:S1", due_at, due_at), due_at)
    assert [c for c in d.commands if c.intent] == []
    assert [a.reasons[0] for a in d.audit] == ["promise_not_at_risk"]


def ratio_history(ratio: float, handoff_frac: float, n: int = MIN_SAMPLES * 2) -> dict:
    """A shop whose parcels take `ratio` of the promise window in transit, handed off after `handoff_frac`."""
    r, h = lane_with([ratio * RATIO_SCALE] * n), lane_with([handoff_frac * RATIO_SCALE] * n)
    lanes = {RATIO + k: r.to_dict() for k in lane_keys("dhl", "standard", None, "DE-BY")}
    lanes.update({RATIO + k: r.to_dict() for k in lane_keys(None, None, None, "DE-BY")})
    lanes.update({HANDOFF_FRAC + k: h.to_dict() for k in ("DE-BY", "*")})
    lanes.update({HANDOFF + k: lane_with([1.0] * n).to_dict() for k in ("DE-BY", "*")})
    return lanes


def test_dispatch_alarm_follows_the_shops_hand_off_and_the_chance_of_missing_the_promise():
    start = MONDAY
    lanes = ratio_history(0.5, 0.1)  # hand-off after a tenth of the window, transit half of it
    state, _ = feed([placed(start, promised=start + 20 * DAY)], lanes)
    # The first check is at the shop's usual hand-off time (9 in 10 within a business day), not a constant.
    assert state.timers["dispatch"] == add_business_days(
        start, lanes[HANDOFF + "*"] and LaneStats.from_dict(lanes[HANDOFF + "*"]).quantile_after(0, 0.9)
    )
    due_at = state.timers["dispatch"]
    d = decide_order(state, Due("O1", "dispatch", due_at, due_at), due_at, lanes)
    assert [c for c in d.commands if c.intent] == []  # late for this shop, but the promise is safe: look again
    assert d.scores and d.scores[0][1] == "awaiting_handoff" and d.scores[0][3] < 0.5
    # Re-checked every 12 h: it fires once less than half the window is left (transit needs half).
    state, fired = d.state, []
    for _ in range(60):
        due_at = state.timers.get("dispatch")
        if due_at is None:
            break
        d = decide_order(state, Due("O1", "dispatch", due_at, due_at), due_at, lanes)
        state = d.state
        fired += [(c.intent.intent_type, due_at) for c in d.commands if c.intent]
    assert [t for t, _ in fired] == ["dispatch_delayed"]
    assert start + 9 * DAY < fired[0][1] <= start + 11 * DAY


def test_a_late_check_schedules_the_next_from_the_fire_time_not_its_own_due_time():
    lanes = learned_lanes(2.0)
    start = MONDAY
    state, _ = feed(
        [placed(start, promised=start + 10 * DAY), fulfilled(start + HOUR), scan("in_transit", start + 2 * HOUR)], lanes
    )
    due_at = state.timers["delay_check:S1"]
    late_fire = due_at + 5 * DAY  # the partition's clock jumped: decided at its due time, fired much later
    d = decide_order(state, Due("O1", "delay_check:S1", due_at, late_fire), due_at, lanes)
    assert d.state.timers["delay_check:S1"] == late_fire + 12 * HOUR


def test_an_unknown_destination_is_no_lane_of_its_own():
    assert lane_keys("c", None, None, None) == ("c|?|*|*", "c|*|*|*", "*|*|*|*")
    assert lane_keys("c", "s", None, "BR-SP")[0] == "c|s|*|BR-SP"
