"""Customer stage scenarios: facts, engagement and support in, intents or audit out."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    MINUTE,
    ORDER,
    T0,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    json_roundtrip,
    placed,
    run_customer,
    run_orders,
    send,
    support,
)
from streams.core import ids
from streams.core.customers import decide_customer
from streams.core.state import SEEN_EVENTS_KEPT, CustomerState


def reachable_by_email(**channels):
    """A customer whose checkout said which channels reach them (email by default)."""
    return run_customer(fact_command("placed", T0, channels=contact(**channels), total=10.0))


# --- pass-through and de-duplication ---------------------------------------------------------


def test_candidate_for_a_reachable_customer_passes_through():
    run = reachable_by_email()
    message = intent("order_confirmation", "email", at=T0)
    now = T0 + MINUTE
    intents, audit = send(run, candidate_command(message), now=now)
    assert audit == []
    # The customer stage adds the customer's segment and a matching tone (segments.py).
    content = replace(message.content, segment="first_time", tone="welcoming")
    assert intents == [replace(message, decided_at=now, time_zone="Europe/Berlin", locale="de-DE", content=content)]
    assert run.state.channels["email"].sent == 1
    (recent,) = run.state.recent_intents
    assert {k: recent[k] for k in ("intent_id", "intent_type", "channel", "order_id", "at")} == {
        "intent_id": message.intent_id,
        "intent_type": "order_confirmation",
        "channel": "email",
        "order_id": ORDER,
        "at": now,  # when it goes out (decided after its send_at): what caps count
    }


def test_intent_keeps_its_own_locale_and_time_zone():
    run = reachable_by_email()
    message = replace(intent(), locale="en-GB", time_zone="Europe/London")
    intents, _ = send(run, candidate_command(message))
    assert (intents[0].locale, intents[0].time_zone) == ("en-GB", "Europe/London")


def test_the_same_candidate_again_yields_nothing():
    run = reachable_by_email()
    command = candidate_command(intent())
    send(run, command)
    decision = decide_customer(run.state, command, T0 + HOUR)
    assert decision.duplicate is True
    assert decision.intents == [] and decision.audit == []


def test_the_same_intent_under_a_new_command_id_yields_nothing():
    run = reachable_by_email()
    message = intent()
    send(run, candidate_command(message))
    decision = decide_customer(run.state, candidate_command(message, command_id="another-command"), T0 + HOUR)
    assert decision.duplicate is False
    assert decision.intents == [] and decision.audit == []
    assert run.state.channels["email"].sent == 1


def test_candidate_from_the_order_stage_passes_end_to_end():
    orders = run_orders(placed(T0))
    run = run_customer(*orders.commands)
    assert [(i.intent_type, i.channel) for i in run.intents] == [("order_confirmation", "email")]
    assert run.intents[0].intent_id == orders.intents[0].intent_id
    assert run.audit == []


# --- channel choice --------------------------------------------------------------------------


def test_unreachable_preferred_channel_falls_back_to_email():
    run = reachable_by_email()  # sms not reachable
    message = intent("out_for_delivery", "sms", reason_codes=["scan:out_for_delivery"])
    intents, audit = send(run, candidate_command(message))
    assert audit == []
    (out,) = intents
    assert out.channel == "email"
    assert out.intent_id == ids.rechannel(message.intent_id, "email")
    assert out.intent_id != message.intent_id
    assert out.reason_codes == ["scan:out_for_delivery", "fallback_from:sms", "unreachable:sms"]
    assert "fallback_from:sms" in out.reason_codes
    assert run.state.channels["email"].sent == 1
    assert run.state.channels["sms"].sent == 0


@pytest.mark.parametrize("redelivery", ["new_command_id", "same_command_after_seen_moved_on"])
def test_a_fallen_back_candidate_redelivered_yields_nothing(redelivery):
    """De-duplication is by the candidate's intent id; after a fallback the emitted id differs, so
    the candidate's own id must still be recognised (else the customer gets the message twice)."""
    run = reachable_by_email()
    message = intent("out_for_delivery", "sms")
    command = candidate_command(message)
    first, _ = send(run, command)
    assert [i.channel for i in first] == ["email"]
    if redelivery == "new_command_id":
        command = candidate_command(message, command_id="another-command")
    else:
        send(run, *[engagement("opened", "email", at=T0 + n) for n in range(1, SEEN_EVENTS_KEPT + 1)])
        assert command.command_id not in run.state.seen
    again, audit = send(run, command, now=T0 + HOUR)
    assert again == [] and audit == []
    assert run.state.channels["email"].sent == 1


def test_a_candidate_redelivered_after_the_seen_memory_moved_on_yields_nothing():
    """`seen` keeps the last 64 ids; the recent intents are the second line of defence."""
    run = reachable_by_email()
    command = candidate_command(intent())
    send(run, command)
    send(run, *[engagement("opened", "email", at=T0 + n) for n in range(1, SEEN_EVENTS_KEPT + 1)])
    assert command.command_id not in run.state.seen
    again, audit = send(run, command, now=T0 + DAY)
    assert again == [] and audit == []


def test_no_allowed_channel_is_skipped_with_reasons():
    run = run_customer(fact_command("delivered", T0, detail="on_time"))  # nothing known about contacts
    message = intent("delivered", "email")
    intents, audit = send(run, candidate_command(message), now=T0 + MINUTE)
    assert intents == []
    (a,) = audit
    assert a.decision == "skipped"
    assert a.reasons[0] == "no_allowed_channel"
    assert a.reasons == ["no_allowed_channel", "unreachable:email", "unreachable:sms", "unreachable:push"]
    assert (a.intent_id, a.channel, a.intent_type) == (message.intent_id, "email", "delivered")
    assert (a.customer_id, a.order_id, a.source_event_id) == (CUSTOMER, ORDER, message.source_event_id)
    assert a.decided_at == T0 + MINUTE
    assert a.audit_id == ids.audit_id(message.intent_id, "delivered", "skipped")


def test_candidate_for_an_unknown_customer_is_skipped():
    run = run_customer(candidate_command(intent()))
    assert run.intents == []
    assert [a.reasons[0] for a in run.audit] == ["no_allowed_channel"]


# --- bounces ---------------------------------------------------------------------------------


def test_hard_bounce_blocks_email_until_a_new_order_brings_an_address():
    run = reachable_by_email()
    send(run, engagement("bounced", "email", at=T0 + HOUR))
    assert run.state.channels["email"].bounced is True

    intents, audit = send(run, candidate_command(intent("shipped", "email", at=T0 + 2 * HOUR)))
    assert intents == []
    assert [a.reasons for a in audit] == [
        ["no_allowed_channel", "bounced:email", "unreachable:sms", "unreachable:push"]
    ]

    send(run, fact_command("placed", T0 + DAY, order_id="O2", channels=contact(email=True)))
    assert run.state.channels["email"].bounced is False
    intents, audit = send(run, candidate_command(intent("order_confirmation", "email", at=T0 + DAY, order_id="O2")))
    assert [i.channel for i in intents] == ["email"] and audit == []


def test_bounced_email_falls_back_to_sms():
    run = reachable_by_email(sms=True)
    send(run, engagement("bounced", "email"))
    intents, _ = send(run, candidate_command(intent("shipped", "email", at=T0 + DAYTIME)))
    assert [i.channel for i in intents] == ["sms"]
    assert intents[0].reason_codes[-2:] == ["fallback_from:email", "bounced:email"]


def test_a_new_order_without_email_does_not_clear_the_bounce():
    run = reachable_by_email(sms=True)
    send(run, engagement("bounced", "email"))
    send(run, fact_command("placed", T0 + DAY, order_id="O2", channels=contact(email=False, sms=True)))
    assert run.state.channels["email"].bounced is True


# --- consent ---------------------------------------------------------------------------------

# 11:00 in Berlin: outside quiet hours (21:00-08:00 for SMS/push, and for marketing e-mail).
DAYTIME = 10 * HOUR


def marketing(channel: str = "email", at: int = T0 + 2 * DAY + DAYTIME, occasion: str = "m1"):
    return candidate_command(
        intent("cross_sell", channel, kind="marketing", at=at, order_id=None, occasion=occasion, reason_codes=["test"])
    )


def transactional(channel: str = "email", at: int = T0 + 2 * DAY + DAYTIME, occasion: str = "t1"):
    return candidate_command(intent("delivered", channel, at=at, occasion=occasion))


def test_marketing_needs_checkout_consent():
    without = reachable_by_email(marketing_email=False)
    intents, audit = send(without, marketing())
    assert intents == []
    assert audit[0].reasons == [
        "no_allowed_channel",
        "no_marketing_consent:email",
        "unreachable:sms",
        "unreachable:push",
    ]

    with_consent = reachable_by_email(marketing_email=True)
    intents, audit = send(with_consent, marketing())
    assert [(i.channel, i.kind) for i in intents] == [("email", "marketing")] and audit == []


def test_marketing_never_falls_back_to_a_channel_without_consent():
    run = reachable_by_email(sms=True, marketing_email=False, marketing_sms=False)
    intents, audit = send(run, marketing("email"))
    assert intents == []
    assert audit[0].reasons == [
        "no_allowed_channel",
        "no_marketing_consent:email",
        "no_marketing_consent:sms",
        "unreachable:push",
    ]
    opted_in_sms = reachable_by_email(sms=True, marketing_email=False, marketing_sms=True)
    intents, _ = send(opted_in_sms, marketing("email"))
    assert [i.channel for i in intents] == ["sms"]


def test_unsubscribe_from_marketing_blocks_marketing_but_not_transactional():
    run = reachable_by_email(marketing_email=True)
    send(run, engagement("unsubscribed", "email", at=T0 + DAY, scope="marketing"))
    intents, audit = send(run, marketing())
    assert intents == []
    assert audit[0].reasons[:2] == ["no_allowed_channel", "no_marketing_consent:email"]
    intents, audit = send(run, transactional())
    assert [(i.channel, i.kind) for i in intents] == [("email", "transactional")] and audit == []


def test_unsubscribe_from_all_blocks_transactional_on_that_channel():
    run = reachable_by_email(marketing_email=True)
    send(run, engagement("unsubscribed", "email", at=T0 + DAY, scope="all"))
    intents, audit = send(run, transactional())
    assert intents == []
    assert audit[0].reasons == ["no_allowed_channel", "unsubscribed:email", "unreachable:sms", "unreachable:push"]


def test_unsubscribe_from_all_on_email_leaves_sms():
    run = reachable_by_email(sms=True)
    send(run, engagement("unsubscribed", "email", at=T0 + DAY, scope="all"))
    intents, _ = send(run, transactional("email"))
    assert [i.channel for i in intents] == ["sms"]
    # Other news (another order): "delivered" twice for one order from one event would be the same
    # news, skipped as a duplicate (gate.py), so the second message is about order O2.
    other = intent("delivered", "sms", at=T0 + 2 * DAY + DAYTIME, order_id="O2", occasion="t2", source_event_id="ev-2")
    intents, _ = send(run, candidate_command(other))
    assert [i.channel for i in intents] == ["sms"]


def test_spam_report_blocks_marketing():
    run = reachable_by_email(marketing_email=True)
    send(run, engagement("spam_report", "email", at=T0 + DAY))
    intents, audit = send(run, marketing())
    assert intents == []
    assert audit[0].reasons[1] == "no_marketing_consent:email"
    intents, _ = send(run, transactional())
    assert [i.channel for i in intents] == ["email"]


def test_an_unsubscribe_older_than_the_consent_still_takes_effect():
    run = run_customer(fact_command("placed", T0 + DAY, channels=contact(marketing_email=True)))
    send(run, engagement("unsubscribed", "email", at=T0, scope="marketing"))  # event time before the checkout
    assert run.state.channels["email"].marketing_consent is False
    intents, _ = send(run, marketing())
    assert intents == []


def test_resubscribe_newer_than_the_unsubscribe_restores_marketing():
    run = reachable_by_email(marketing_email=True)
    send(
        run,
        engagement("unsubscribed", "email", at=T0 + DAY, scope="all"),
        engagement("resubscribed", "email", at=T0 + DAY + HOUR),
    )
    ch = run.state.channels["email"]
    assert (ch.marketing_consent, ch.unsubscribed_all, ch.consent_at) == (True, False, T0 + DAY + HOUR)
    intents, _ = send(run, marketing())
    assert [i.channel for i in intents] == ["email"]


def test_resubscribe_older_than_the_unsubscribe_does_not_restore_marketing():
    run = reachable_by_email(marketing_email=True)
    send(
        run,
        engagement("unsubscribed", "email", at=T0 + DAY, scope="marketing"),
        engagement("resubscribed", "email", at=T0 + DAY - HOUR),
    )
    assert run.state.channels["email"].marketing_consent is False
    intents, _ = send(run, marketing())
    assert intents == []


def test_checkout_after_an_unsubscribe_can_opt_in_again_but_an_old_replayed_one_cannot():
    run = reachable_by_email(marketing_email=True)
    send(run, engagement("unsubscribed", "email", at=T0 + DAY, scope="marketing"))
    send(run, fact_command("placed", T0 + HOUR, order_id="O-old", channels=contact(marketing_email=True)))
    assert run.state.channels["email"].marketing_consent is False
    send(run, fact_command("placed", T0 + 2 * DAY, order_id="O-new", channels=contact(marketing_email=True)))
    assert run.state.channels["email"].marketing_consent is True


def test_engagement_counters():
    run = reachable_by_email()
    send(
        run,
        engagement("delivered", "email", at=T0 + 1),
        engagement("opened", "email", at=T0 + 2),
        engagement("opened", "email", at=T0 + 3),
        engagement("clicked", "email", at=T0 + 4),
    )
    ch = run.state.channels["email"]
    assert (ch.opened, ch.clicked) == (2, 1)


def test_a_redelivered_engagement_event_counts_once():
    run = reachable_by_email()
    event = engagement("opened", "email")
    send(run, event, event)
    assert run.state.channels["email"].opened == 1
    assert run.duplicates == 1


# --- support ---------------------------------------------------------------------------------


def test_tickets_open_close_and_reopen():
    run = run_customer(support("ticket_opened", "T1", at=T0, status="new"))
    assert run.state.open_tickets == ["T1"]
    send(run, support("solved", "T1", at=T0 + HOUR, status="solved", from_customer=False))
    assert run.state.open_tickets == []
    send(run, support("message", "T1", at=T0 + 2 * HOUR, from_customer=False))
    assert run.state.open_tickets == []  # an agent's message does not reopen
    send(run, support("message", "T1", at=T0 + 3 * HOUR, from_customer=True))
    assert run.state.open_tickets == ["T1"]  # the customer's reply does
    send(run, support("status_changed", "T1", at=T0 + 4 * HOUR, status="closed", from_customer=False))
    assert run.state.open_tickets == []
    send(run, support("status_changed", "T1", at=T0 + 5 * HOUR, status="open", from_customer=False))
    assert run.state.open_tickets == ["T1"]
    send(run, support("ticket_opened", "T1", at=T0 + 6 * HOUR, event_id="again"))
    assert run.state.open_tickets == ["T1"]


@pytest.mark.parametrize("rating, negative", [(1, True), (2, True), (3, False), (5, False)])
def test_low_satisfaction_rating_is_a_negative_contact(rating, negative):
    run = run_customer(support("satisfaction_rating", at=T0 + DAY, rating=rating, from_customer=True))
    assert run.state.last_negative_contact_at == (T0 + DAY if negative else None)


@pytest.mark.parametrize("channel", ["web", "email"])
@pytest.mark.parametrize("rating, negative", [(2, True), (3, False)])
def test_low_review_is_a_negative_contact(channel, rating, negative):
    run = run_customer(engagement("review_submitted", channel, at=T0 + DAY, rating=rating))
    assert run.state.last_negative_contact_at == (T0 + DAY if negative else None)
    assert run.state.reviews == [{"order_id": ORDER, "product_id": "TEE", "rating": rating, "at": T0 + DAY}]


def test_negative_contact_keeps_the_newest_time():
    run = run_customer(
        support("satisfaction_rating", at=T0 + 2 * DAY, rating=1),
        engagement("review_submitted", "web", at=T0 + DAY, rating=1),
    )
    assert run.state.last_negative_contact_at == T0 + 2 * DAY


# --- facts -----------------------------------------------------------------------------------


def test_placed_facts_count_orders_and_spend():
    run = run_customer(
        fact_command("placed", T0 + DAY, order_id="O1", total=10.0, categories=["fashion"]),
        fact_command("placed", T0, order_id="O2", total=20.5, categories=["home", "fashion"]),
    )
    s = run.state
    assert s.orders_count == 2
    assert s.total_spent == pytest.approx(30.5)
    assert (s.first_order_at, s.last_order_at) == (T0, T0 + DAY)
    assert s.categories == ["fashion", "home"]
    assert (s.time_zone, s.locale) == ("Europe/Berlin", "de-DE")
    assert s.channels["email"].reachable is True
    assert s.channels["sms"].reachable is False


def test_a_redelivered_placed_fact_counts_once():
    command = fact_command("placed", T0, total=10.0)
    run = run_customer(command, command)
    assert run.state.orders_count == 1
    assert run.state.total_spent == 10.0


@pytest.mark.parametrize(
    "fact_type, detail, problem",
    [
        ("delivery_problem", "exception:customs_delay", True),
        ("delivered", "late", True),
        ("delivered", "on_time", False),
    ],
)
def test_problem_facts_set_last_problem_at(fact_type, detail, problem):
    run = run_customer(fact_command(fact_type, T0 + DAY, detail=detail))
    assert run.state.last_problem_at == (T0 + DAY if problem else None)


def test_cancel_and_refund_facts():
    run = run_customer(
        fact_command("cancelled", T0 + HOUR, detail="customer"),
        fact_command("refunded", T0 + 2 * HOUR, detail="return"),
    )
    assert (run.state.last_cancel_at, run.state.last_refund_at) == (T0 + HOUR, T0 + 2 * HOUR)


# --- state -----------------------------------------------------------------------------------


def test_customer_state_round_trip():
    run = reachable_by_email(sms=True, marketing_email=True)
    send(
        run,
        engagement("bounced", "push"),
        engagement("opened", "email", at=T0 + 2),
        engagement("unsubscribed", "sms", at=T0 + 3, scope="all"),
        engagement("review_submitted", "web", at=T0 + 4, rating=1),
        support("ticket_opened", "T9", at=T0 + 5),
        fact_command("delivery_problem", T0 + 6, detail="exception:lost"),
        candidate_command(intent("delivered", "sms", occasion="x")),
        candidate_command(intent("cross_sell", "email", kind="marketing", occasion="y")),
    )
    state = run.state
    assert state.channels and state.recent_intents and state.reviews and state.open_tickets and state.seen
    data = state.to_dict()
    assert CustomerState.from_dict(data) == state
    assert CustomerState.from_dict(orjson.loads(orjson.dumps(data))) == state
    assert CustomerState.from_dict(json_roundtrip(data)).to_dict() == data
