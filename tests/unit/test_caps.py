"""Frequency caps per channel per local calendar day, smart sending, the 30-day e-mail limit, and
channel choice by engagement. Transactional messages count but are never blocked."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from helpers import (
    DAY,
    CustomerRun,
    audits,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    promotion,
    send,
)
from streams.core import ids

LA = "America/Los_Angeles"


def ms(year, month, day, hour, minute=0, tz=LA) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def customer(tz=LA, **channels) -> CustomerRun:
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", ms(2026, 1, 1, 9, tz=tz), channels=contact(**channels), total=20.0, time_zone=tz))
    return run


promo = promotion


def news(at, channel="email", n=1, intent_type="shipped"):
    return candidate_command(
        intent(
            intent_type,
            channel,
            at=at,
            order_id=f"O{n}",
            occasion=f"t{n}",
            source_event_id=f"ship-{n}",
            reason_codes=["order_fulfilled"],
        )
    )


def test_marketing_is_skipped_once_the_days_email_cap_is_reached_transactional_never():
    run = customer(marketing_email=True)
    send(run, news(ms(2026, 1, 2, 10), n=1), news(ms(2026, 1, 2, 12), n=2))
    intents, audit = send(run, promo(ms(2026, 1, 2, 15)))
    assert intents == []
    assert audits(audit) == [("promotion", "skipped", ["cap:email:marketing"])]
    intents, audit = send(run, news(ms(2026, 1, 2, 16), n=3))  # a third transactional e-mail still goes
    assert [i.intent_type for i in intents] == ["shipped"] and audit == []


def test_the_day_is_the_customers_calendar_day():
    run = customer(marketing_email=True)
    # 10:00 and 15:00 in Los Angeles on 2 January; 20:30 is already 3 January in UTC, but not for them.
    send(run, news(ms(2026, 1, 2, 10), n=1), news(ms(2026, 1, 2, 15), n=2))
    intents, audit = send(run, promo(ms(2026, 1, 2, 20, 30)))
    assert intents == [] and audits(audit) == [("promotion", "skipped", ["cap:email:marketing"])]
    intents, audit = send(run, promo(ms(2026, 1, 3, 9), n=2))  # their next morning: a new day
    assert [i.intent_type for i in intents] == ["promotion"] and audit == []


def test_sms_allows_one_message_a_day():
    run = customer(sms=True, marketing_sms=True)
    send(run, news(ms(2026, 1, 2, 10), channel="sms", n=1, intent_type="out_for_delivery"))
    intents, audit = send(run, promo(ms(2026, 1, 2, 15), channel="sms"))
    assert intents == [] and audits(audit) == [("promotion", "skipped", ["cap:sms:marketing"])]


def test_smart_sending_skips_marketing_sent_lately_on_that_channel():
    run = customer(marketing_email=True)
    first, _ = send(run, promo(ms(2026, 1, 2, 9)))
    assert len(first) == 1
    intents, audit = send(run, promo(ms(2026, 1, 2, 20), n=2))  # 11 h later: within 16 h
    assert intents == [] and audits(audit) == [("promotion", "skipped", ["smart_sending"])]
    intents, _ = send(run, promo(ms(2026, 1, 3, 9, 30), n=3))  # 24.5 h later
    assert len(intents) == 1


def test_smart_sending_on_sms_spans_24_hours_across_days():
    run = customer(sms=True, marketing_sms=True)
    send(run, promo(ms(2026, 1, 2, 12), channel="sms"))
    intents, audit = send(run, promo(ms(2026, 1, 3, 10), channel="sms", n=2))  # a new day, but 22 h later
    assert intents == [] and audits(audit) == [("promotion", "skipped", ["smart_sending"])]


def test_at_most_five_marketing_emails_in_thirty_days():
    run = customer(marketing_email=True)
    sent = []
    for n in range(6):
        intents, audit = send(run, promo(ms(2026, 1, 2, 10) + n * 2 * DAY, n=n))
        sent.append((len(intents), [a.reasons for a in audit]))
    assert sent == [(1, [])] * 5 + [(0, [["cap:email:30d"]])]
    intents, _ = send(run, promo(ms(2026, 2, 1, 11), n=9))  # 30 days after the first
    assert len(intents) == 1


def test_a_capped_message_is_not_postponed():
    run = customer(marketing_email=True)
    send(run, news(ms(2026, 1, 2, 10), n=1), news(ms(2026, 1, 2, 12), n=2), promo(ms(2026, 1, 2, 15)))
    assert run.state.held == []
    assert not [k for k in run.state.timers if k.startswith("release:")]


def test_marketing_goes_where_the_customer_engages():
    run = customer(sms=True, marketing_email=True, marketing_sms=True)
    # E-mails are ignored, SMS links are clicked.
    for n in range(4):
        send(run, news(ms(2026, 1, 2, 9) + n * DAY, channel="email", n=10 + n))
        send(run, news(ms(2026, 1, 2, 12) + n * DAY, channel="sms", n=20 + n, intent_type="out_for_delivery"))
        send(run, engagement("clicked", "sms", at=ms(2026, 1, 2, 13) + n * DAY, order_id=f"O{20 + n}"))
    message = promo(ms(2026, 1, 8, 12)).intent
    intents, audit = send(run, candidate_command(message))
    assert audit == []
    (out,) = intents
    assert out.channel == "sms"
    assert out.intent_id == ids.rechannel(message.intent_id, "sms")
    assert out.reason_codes == ["campaign", "engagement_channel:sms"]


def test_without_enough_engagement_data_marketing_stays_on_its_channel():
    run = customer(sms=True, marketing_email=True, marketing_sms=True)
    send(run, engagement("clicked", "sms", at=ms(2026, 1, 2, 13)))
    intents, _ = send(run, promo(ms(2026, 1, 3, 12)))
    assert [i.channel for i in intents] == ["email"]


def test_caps_count_per_channel():
    run = customer(sms=True, marketing_email=True)
    send(
        run,
        news(ms(2026, 1, 2, 10), channel="sms", n=1, intent_type="out_for_delivery"),
        news(ms(2026, 1, 2, 11), channel="sms", n=2, intent_type="out_for_delivery"),
    )
    intents, _ = send(run, promo(ms(2026, 1, 2, 15)))
    assert [i.channel for i in intents] == ["email"]
