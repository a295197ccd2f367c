"""The scheduling contract of the customer stage (model.Schedule): timers in the state, a Schedule
entry per timer set, Dues acted on only when they match, ticks and later items advancing time."""

from __future__ import annotations

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    ORDER,
    T0,
    candidate_command,
    contact,
    fact_command,
    intent,
    item,
    run_customer,
    send,
    support,
    tick,
)
from streams.core.customers import decide_customer
from streams.core.model import Due, Schedule

DELIVERED = T0 + 2 * DAY + 14 * HOUR  # 15:00 in Berlin
CARE = T0 + 3 * DAY + 9 * HOUR  # the next day, 10:00 in Berlin


def delivered_customer():
    return run_customer(
        fact_command(
            "placed", T0 + 10 * HOUR, channels=contact(marketing_email=True), total=30.0, items=[item("TEE", "fashion")]
        ),
        fact_command("delivered", DELIVERED, detail="on_time", items=[item("TEE", "fashion")]),
    )


def test_every_timer_set_is_scheduled_and_in_the_future():
    run = delivered_customer()
    first = decide_customer(
        None, fact_command("placed", T0 + 10 * HOUR, channels=contact(), total=30.0), T0 + 10 * HOUR
    )
    assert first.schedule == [Schedule(CUSTOMER, "winback", first.state.timers["winback"])]
    decision = decide_customer(
        run.state,
        fact_command("delivered", DELIVERED + HOUR, detail="on_time", order_id="O2", items=[item("CAP", "fashion")]),
        DELIVERED + HOUR,
    )
    assert decision.schedule and all(s.due_at > DELIVERED + HOUR for s in decision.schedule)
    assert all(decision.state.timers[s.kind] == s.due_at for s in decision.schedule)
    assert {s.kind for s in decision.schedule} == {"care_tips:O2", "review_request:O2", "cross_sell:O2"}


def test_a_matching_due_fires_once():
    run = delivered_customer()
    assert run.state.timers[f"care_tips:{ORDER}"] == CARE
    decision = decide_customer(run.state, Due(CUSTOMER, f"care_tips:{ORDER}", CARE, CARE), CARE)
    assert [i.intent_type for i in decision.intents] == ["care_tips"]
    assert decision.duplicate is False and f"care_tips:{ORDER}" not in decision.state.timers
    again = decide_customer(decision.state, Due(CUSTOMER, f"care_tips:{ORDER}", CARE, CARE + 1), CARE + 1)
    assert (again.intents, again.audit, again.duplicate) == ([], [], True)


def test_a_due_that_no_longer_matches_is_ignored():
    run = delivered_customer()
    kind = f"review_request:{ORDER}"
    stale = Due(CUSTOMER, kind, CARE - HOUR, CARE - HOUR)  # planned then, moved since
    decision = decide_customer(run.state, stale, stale.now)
    assert decision.duplicate is True and decision.intents == [] and kind in decision.state.timers


def test_a_due_for_a_customer_without_state_does_nothing():
    decision = decide_customer(None, Due(CUSTOMER, "winback", T0, T0), T0)
    assert decision.duplicate is True and decision.intents == [] and decision.schedule == []


def test_a_tick_advances_time_and_is_not_remembered_as_an_event():
    run = delivered_customer()
    seen = list(run.state.seen)
    nothing = decide_customer(run.state, tick(CARE - 1), CARE - 1)
    assert nothing.duplicate is True
    decision = decide_customer(run.state, tick(CARE), CARE)
    assert [i.intent_type for i in decision.intents] == ["care_tips"] and decision.duplicate is False
    assert decision.state.seen == seen


def test_timers_due_before_an_item_fire_before_it_is_applied():
    """The review was due before the ticket was opened: it went out on what was known then."""
    run = delivered_customer()
    review_at = run.state.timers[f"review_request:{ORDER}"]
    intents, audit = send(run, support("ticket_opened", at=review_at + HOUR, text="Where is my other parcel?"))
    assert [i.intent_type for i in intents] == ["review_request"]
    # Nothing fired the care tips in time (no schedule in this run): days late, they are stale.
    assert [(a.intent_type, a.decision, a.reasons) for a in audit] == [("care_tips", "dropped", ["expired"])]
    assert run.state.open_tickets == ["T1"]


def test_an_item_processed_late_does_not_fire_inside_its_own_decision():
    """A candidate held for quiet hours asks to be called back later, never at `now`."""
    run = delivered_customer()
    night = T0 + 5 * DAY + 22 * HOUR  # 23:00 in Berlin
    run.feed(fact_command("placed", night - HOUR, order_id="O2", channels=contact(sms=True), total=30.0))
    decision = decide_customer(
        run.state, candidate_command(intent("shipped", "sms", at=night, order_id="O2", source_event_id="f2")), night
    )
    assert decision.intents == [] and [a.decision for a in decision.audit] == ["held"]
    assert all(s.due_at > night for s in decision.schedule)
