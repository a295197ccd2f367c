"""Quiet hours in the customer's own time zone: hold (not drop) until the window ends, windows that
cross midnight, daylight-saving changes, urgent messages that bypass, re-checks at release."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    MINUTE,
    ORDER,
    CustomerRun,
    advance,
    audits,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    send,
)
from streams.core import ids
from streams.core.model import Schedule
from streams.core.policy import DEFAULT_POLICY, PolicyConfig
from streams.core.quiet_hours import in_window, quiet_until

UTC = timezone.utc


def ms(year, month, day, hour, minute=0, tz="Europe/Berlin") -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def utc(year, month, day, hour, minute=0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# --- the window ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wall, quiet",
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_a_window_that_crosses_midnight(wall, quiet):
    assert in_window(wall, time(21, 0), time(8, 0)) is quiet


@pytest.mark.parametrize(
    "wall, quiet", [(time(11, 59), False), (time(12, 0), True), (time(13, 59), True), (time(14, 0), False)]
)
def test_a_window_within_one_day(wall, quiet):
    assert in_window(wall, time(12, 0), time(14, 0)) is quiet


@pytest.mark.parametrize(
    "at, until",
    [
        (ms(2026, 1, 1, 21, 30), ms(2026, 1, 2, 8)),  # evening: the window ends tomorrow morning
        (ms(2026, 1, 2, 0, 10), ms(2026, 1, 2, 8)),  # after midnight: this morning
        (ms(2026, 1, 2, 7, 59), ms(2026, 1, 2, 8)),
        (ms(2026, 1, 2, 8, 0), None),
        (ms(2026, 1, 2, 20, 59), None),
    ],
)
def test_sms_waits_until_eight_local(at, until):
    assert quiet_until(at, "Europe/Berlin", "sms", "transactional", "high", DEFAULT_POLICY) == until


def test_it_is_the_customers_zone_that_counts():
    at = utc(2026, 1, 2, 3)  # 04:00 in Berlin, 22:00 the day before in New York, 12:00 in Tokyo
    assert quiet_until(at, "Europe/Berlin", "sms", "transactional", "high", DEFAULT_POLICY) == ms(2026, 1, 2, 8)
    assert quiet_until(at, "America/New_York", "sms", "transactional", "high", DEFAULT_POLICY) == ms(
        2026, 1, 2, 8, tz="America/New_York"
    )
    assert quiet_until(at, "Asia/Tokyo", "sms", "transactional", "high", DEFAULT_POLICY) is None


@pytest.mark.parametrize(
    "tz, at, until",
    [
        # Spring forward (Berlin, 29 March 2026): the night is an hour shorter; 08:00 CEST is 06:00 UTC.
        ("Europe/Berlin", utc(2026, 3, 28, 21), utc(2026, 3, 29, 6)),
        # Fall back (Berlin, 25 October 2026): 08:00 CET is 07:00 UTC.
        ("Europe/Berlin", utc(2026, 10, 24, 20), utc(2026, 10, 25, 7)),
        # New York springs forward on 8 March 2026: 08:00 EDT is 12:00 UTC (it was 13:00 the day before).
        ("America/New_York", utc(2026, 3, 8, 4), utc(2026, 3, 8, 12)),
        ("America/New_York", utc(2026, 3, 7, 4), utc(2026, 3, 7, 13)),
        # Sydney falls back on 5 April 2026 (southern hemisphere): 08:00 AEST is 22:00 UTC the day before.
        ("Australia/Sydney", utc(2026, 4, 4, 11), utc(2026, 4, 4, 22)),
    ],
)
def test_daylight_saving_changes(tz, at, until):
    assert quiet_until(at, tz, "push", "service", "normal", DEFAULT_POLICY) == until


def test_an_unknown_zone_is_utc():
    assert quiet_until(utc(2026, 1, 2, 22), "Mars/Olympus", "sms", "transactional", "high", DEFAULT_POLICY) == utc(
        2026, 1, 3, 8
    )
    assert quiet_until(utc(2026, 1, 2, 22), None, "sms", "transactional", "high", DEFAULT_POLICY) == utc(2026, 1, 3, 8)


@pytest.mark.parametrize(
    "channel, kind, priority, waits",
    [
        ("sms", "transactional", "high", True),
        ("push", "service", "normal", True),
        ("email", "transactional", "high", False),  # an e-mail at night wakes nobody
        ("email", "service", "normal", False),
        ("email", "marketing", "low", True),  # but promotions wait for the morning
        ("sms", "service", "urgent", False),  # urgent news bypasses
        ("sms", "transactional", "urgent", False),
        ("sms", "marketing", "urgent", True),  # marketing is never urgent enough
    ],
)
def test_which_messages_wait(channel, kind, priority, waits):
    at = ms(2026, 1, 1, 23)
    assert (quiet_until(at, "Europe/Berlin", channel, kind, priority, DEFAULT_POLICY) is not None) is waits


def test_the_window_is_configurable():
    config = PolicyConfig(quiet_start=time(22, 0), quiet_end=time(7, 0))
    assert quiet_until(ms(2026, 1, 1, 21, 30), "Europe/Berlin", "sms", "transactional", "high", config) is None
    assert quiet_until(ms(2026, 1, 1, 22, 30), "Europe/Berlin", "sms", "transactional", "high", config) == ms(
        2026, 1, 2, 7
    )


# --- held in the customer stage, released by the schedule ------------------------------------

NIGHT = ms(2026, 1, 2, 6, 30)  # 06:30 in Berlin
MORNING = ms(2026, 1, 2, 8)


def sms_customer(**channels) -> CustomerRun:
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", ms(2026, 1, 1, 12), channels=contact(sms=True, **channels), total=20.0))
    return run


def out_for_delivery(at=NIGHT, channel="sms", **kw):
    return intent(
        "out_for_delivery",
        channel,
        at=at,
        ttl=12 * HOUR,
        reason_codes=["scan:out_for_delivery"],
        source_event_id=f"scan-{at}",
        **kw,
    )


def test_an_sms_at_night_is_held_until_the_window_opens_then_sent_with_the_same_id():
    run = sms_customer()
    message = out_for_delivery()
    intents, audit = send(run, candidate_command(message))
    assert intents == []
    (held,) = audit
    assert (held.decision, held.reasons, held.intent_id, held.channel) == (
        "held",
        ["quiet_hours"],
        message.intent_id,
        "sms",
    )
    assert held.audit_id == ids.audit_id(message.intent_id, "out_for_delivery", "held", MORNING)
    kind = f"release:{message.intent_id}"
    assert run.state.timers == {**{k: v for k, v in run.state.timers.items() if k != kind}, kind: MORNING}
    assert Schedule(CUSTOMER, kind, MORNING) in run.schedule
    assert [h.candidate_id for h in run.state.held] == [message.intent_id]

    assert advance(run, MORNING - MINUTE) == ([], [])
    intents, audit = advance(run, MORNING)
    assert audit == []
    (out,) = intents
    assert (out.intent_id, out.channel, out.send_at, out.decided_at) == (message.intent_id, "sms", MORNING, MORNING)
    assert run.state.held == [] and kind not in run.state.timers


def test_a_held_message_redelivered_changes_nothing():
    run = sms_customer()
    message = out_for_delivery()
    send(run, candidate_command(message))
    assert send(run, candidate_command(message, command_id="again"), now=NIGHT + MINUTE) == ([], [])
    intents, _ = advance(run, MORNING)
    assert [i.intent_id for i in intents] == [message.intent_id]


def test_a_message_that_expires_before_the_window_opens_is_dropped():
    run = sms_customer()
    message = replace(out_for_delivery(), expires_at=NIGHT + HOUR)
    intents, audit = send(run, candidate_command(message))
    assert intents == []
    assert audits(audit) == [("out_for_delivery", "dropped", ["expired", "quiet_hours"])]
    assert run.state.held == []


def test_a_release_that_comes_too_late_drops_the_message():
    """The worker was down past the message's life: the release finds it expired."""
    run = sms_customer()
    run.fire_dues = False
    message = out_for_delivery()
    send(run, candidate_command(message))
    intents, audit = advance(run, NIGHT + 13 * HOUR, live=False)
    assert intents == []
    assert audits(audit) == [("out_for_delivery", "dropped", ["expired"])]


def test_consent_is_checked_again_at_release():
    run = sms_customer()
    message = out_for_delivery()
    send(run, candidate_command(message))
    send(run, engagement("unsubscribed", "sms", at=NIGHT + HOUR, scope="all"))
    intents, audit = advance(run, MORNING)
    (out,) = intents
    assert out.channel == "email"  # an e-mail is not held by quiet hours
    assert out.intent_id == ids.rechannel(message.intent_id, "email")
    assert out.reason_codes == ["scan:out_for_delivery", "fallback_from:sms", "unsubscribed:sms"]


def test_a_held_message_wakes_up_with_any_later_event_too():
    """Without the schedule (e.g. replaying a feed), any later item of the customer releases it first."""
    run = sms_customer()
    run.fire_dues = False
    message = out_for_delivery()
    send(run, candidate_command(message))
    intents, _ = send(run, engagement("opened", "email", at=MORNING + HOUR))
    assert [(i.intent_id, i.send_at) for i in intents] == [(message.intent_id, MORNING + HOUR)]


def test_urgent_service_bypasses_quiet_hours_and_goes_to_sms():
    run = sms_customer()
    message = intent(
        "address_problem",
        "email",
        kind="service",
        at=NIGHT,
        priority="urgent",
        reason_codes=["scan:exception:address_issue"],
        source_event_id="scan-x",
    )
    intents, audit = send(run, candidate_command(message))
    assert audit == []
    (out,) = intents
    assert (out.channel, out.send_at) == ("sms", NIGHT)
    assert out.intent_id == ids.rechannel(message.intent_id, "sms")
    assert out.reason_codes == ["scan:exception:address_issue", "urgent_channel:sms"]


def test_transactional_email_is_not_held_at_night():
    run = sms_customer()
    intents, audit = send(run, candidate_command(intent("delivered", "email", at=NIGHT, source_event_id="d")))
    assert [i.channel for i in intents] == ["email"] and audit == []


def test_marketing_email_waits_for_the_morning():
    run = sms_customer(marketing_email=True)
    late = ms(2026, 1, 3, 22)
    message = intent(
        "cross_sell",
        "email",
        kind="marketing",
        at=late,
        order_id=None,
        ttl=2 * DAY,
        reason_codes=["test"],
        source_event_id="m",
    )
    intents, audit = send(run, candidate_command(message))
    assert intents == [] and audits(audit) == [("cross_sell", "held", ["quiet_hours"])]
    intents, _ = advance(run, ms(2026, 1, 4, 8))
    assert [(i.intent_type, i.send_at) for i in intents] == [("cross_sell", ms(2026, 1, 4, 8))]


def test_held_news_is_checked_against_the_order_at_release():
    """Held "out for delivery", then "delivered" proposed for the same parcel: the held one is stale."""
    run = sms_customer()
    ofd = out_for_delivery(tracking="TRK1")
    send(run, candidate_command(ofd))
    delivered = intent(
        "delivered", "email", at=NIGHT + 30 * MINUTE, tracking="TRK1", source_event_id="scan-d", ttl=3 * DAY
    )
    intents, _ = send(run, candidate_command(delivered))
    assert [i.intent_type for i in intents] == ["delivered"]
    intents, audit = advance(run, MORNING)
    assert intents == []
    assert audits(audit) == [("out_for_delivery", "dropped", ["stale:superseded_by_delivered"])]
    assert run.state.orders[ORDER].parcels == {"TRK1": 3}


def test_a_cancelled_order_releases_nothing():
    run = sms_customer()
    send(run, candidate_command(intent("shipped", "sms", at=NIGHT, ttl=2 * DAY, source_event_id="f")))
    send(run, fact_command("cancelled", NIGHT + HOUR, detail="customer"))
    intents, audit = advance(run, MORNING)
    assert intents == []
    assert audits(audit) == [("shipped", "skipped", ["order_cancelled"])]


def test_news_proposed_after_delivery_is_not_stale_at_release():
    """Only what happens while a message waits can make it stale: a service message about a parcel
    that was already delivered when it was proposed (e.g. damage reported) still goes out."""
    run = sms_customer()
    send(
        run,
        candidate_command(
            intent("delivered", "email", at=NIGHT - 2 * HOUR, tracking="TRK1", source_event_id="scan-d", ttl=3 * DAY)
        ),
    )
    damaged = intent(
        "parcel_damaged", "sms", kind="service", at=NIGHT, tracking="TRK1", source_event_id="scan-x", ttl=3 * DAY
    )
    _, audit = send(run, candidate_command(damaged))
    assert audits(audit) == [("parcel_damaged", "held", ["quiet_hours"])]
    intents, audit = advance(run, MORNING)
    assert [i.intent_type for i in intents] == ["parcel_damaged"] and audit == []
