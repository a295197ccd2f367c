"""SendGrid, Klaviyo -> EngagementEvent; Zendesk, Gorgias -> SupportEvent. Pure, no broker."""

from __future__ import annotations

import pytest

from connectors.providers import gorgias, klaviyo, sendgrid, zendesk
from connectors.records import Inbound, Malformed
from connectors.settings import MappingOptions
from streams.codec import INPUTS

from connector_helpers import load

CUSTOMER_ID = "7382910456"


def accepted(out):
    for record in out.records:
        INPUTS[record.topic][1](dict(record.value))
    return out


def test_sendgrid_batch_maps_engagement_and_skips_the_rest_per_event():
    out = accepted(sendgrid.map_webhook(load("sendgrid_events.json"), Inbound.of()))
    got = [(r.key, r.value["type"], r.value["scope"], r.event_id) for r in out.records]
    assert got == [
        (CUSTOMER_ID, "delivered", None, "sendgrid:rWVYmVk90MjZJ9iohOBa3w=="),
        (CUSTOMER_ID, "opened", None, "sendgrid:FOTFFO0ecsBE-zxFXfs6WA=="),
        (CUSTOMER_ID, "clicked", None, "sendgrid:kCAi1KttyQdEKHhdC-nuEA=="),
        ("7382910777", "bounced", None, "sendgrid:6g4ZI7SA-xmRDv57GoPIPw=="),
        (CUSTOMER_ID, "spam_report", "marketing", "sendgrid:37nvH5QBz858KGVYCM4uOA=="),
        ("7382910999", "unsubscribed", "marketing", "sendgrid:zz_BjPgU_5pS-J8vlfB1sg=="),
        ("7382910999", "unsubscribed", "marketing", "sendgrid:ahSCB7xYcXFb-hEaawsPRw=="),
    ]
    delivered = out.records[0].value
    assert (delivered["intent_id"], delivered["order_id"], delivered["channel"], delivered["event_time"]) == (
        "c0a8f6e2-6d0b-5b8f-9e51-3f1c2a7d9e10",
        "5829381734601",
        "email",
        1_772_611_205_000,
    )
    assert sorted(s.reason for s in out.skipped) == sorted(
        [
            "not an engagement signal",
            "machine open",
            "blocked, not a hard bounce",
            "not an engagement signal",
            "no customer_id custom arg: not sent by our sender",
        ]
    )


def test_sendgrid_body_must_be_an_array_and_odd_events_are_recorded():
    with pytest.raises(Malformed, match="JSON array"):
        sendgrid.map_webhook({"event": "open"}, Inbound.of())
    out = sendgrid.map_webhook(
        [1, {"event": "teleported", "customer_id": "c"}, {"event": "open", "customer_id": "c"}], Inbound.of()
    )
    assert [s.kind for s in out.skipped] == ["unmapped", "unknown", "unmapped"]


def test_klaviyo_maps_by_profile_external_id():
    inbound = Inbound.of({"Klaviyo-Webhook-Id": "01KP4928STE8FKCWB6WDHZ4ZB7"})
    out = accepted(klaviyo.map_webhook(load("klaviyo_events.json"), inbound))
    got = [(r.key, r.value["type"], r.value["channel"], r.value["scope"], r.event_id) for r in out.records]
    assert got == [
        (CUSTOMER_ID, "opened", "email", None, "klaviyo:4Tg9wJ2Kp8Q"),
        (CUSTOMER_ID, "unsubscribed", "email", "marketing", "klaviyo:73WCCK7JKtE"),
        (CUSTOMER_ID, "review_submitted", "web", None, "klaviyo:8Xc3aN6Ot2U"),
    ]
    assert (out.records[2].value["rating"], out.records[2].value["product_id"]) == (2, "8123456789012")
    assert [(s.kind, s.what) for s in out.skipped] == [
        ("ignored", "event:klaviyo.sent_sms"),
        ("unmapped", "event:klaviyo.received_email"),
    ]


def test_klaviyo_rejects_a_body_from_another_webhook():
    with pytest.raises(Malformed, match="does not match"):
        klaviyo.map_webhook(load("klaviyo_events.json"), Inbound.of({"Klaviyo-Webhook-Id": "01OTHER"}))


def test_zendesk_ticket_created_comment_and_solved():
    created, comment, solved = (
        accepted(zendesk.map_webhook(load(f"zendesk_{n}.json"), Inbound.of())).records[0]
        for n in ("ticket_created", "comment_added", "status_changed")
    )
    assert (
        created.key,
        created.value["type"],
        created.value["ticket_id"],
        created.value["status"],
        created.value["topic"],
        created.value["from_customer"],
    ) == (CUSTOMER_ID, "ticket_opened", "35436", "new", "wismo", True)
    assert created.value["text"].startswith("Hi, my order #1042 is stuck in customs")
    assert created.event_id == "zendesk:cbe4028c-7239-495d-b020-f22348516046"
    assert created.value["event_time"] == 1_772_698_327_123  # nanoseconds in Zendesk's time, cut to ms
    assert (comment.value["type"], comment.value["from_customer"]) == ("message", True)
    assert "I want a refund" in comment.value["text"]
    assert (solved.value["type"], solved.value["status"], solved.value["from_customer"]) == ("solved", "solved", False)


def test_zendesk_internal_notes_other_events_and_missing_customer():
    body = load("zendesk_comment_added.json")
    body["event"]["comment"]["is_public"] = False
    assert [s.kind for s in zendesk.map_webhook(body, Inbound.of()).skipped] == ["ignored"]
    body = load("zendesk_status_changed.json")
    body["event"] = {"current": "PENDING", "previous": "OPEN"}
    (pending,) = zendesk.map_webhook(body, Inbound.of()).records
    assert (pending.value["type"], pending.value["status"]) == ("status_changed", "pending")
    body["type"] = "zen:event-type:ticket.priority_changed"
    assert [s.kind for s in zendesk.map_webhook(body, Inbound.of()).skipped] == ["unknown"]
    body = load("zendesk_ticket_created.json")
    del body["detail"]["external_id"]
    assert [s.kind for s in zendesk.map_webhook(body, Inbound.of()).skipped] == ["unmapped"]
    options = MappingOptions(zendesk_customer_id=("field:detail.external_id", "header:X-Customer"))
    (found,) = zendesk.map_webhook(body, Inbound.of({"X-Customer": "C-9"}, options=options)).records
    assert found.key == "C-9"


def test_gorgias_created_and_updated():
    (opened,) = accepted(gorgias.map_webhook(load("gorgias_ticket_created.json"), Inbound.of())).records
    assert (opened.key, opened.value["type"], opened.value["ticket_id"], opened.value["topic"]) == (
        CUSTOMER_ID,
        "ticket_opened",
        "158392011",
        "damaged",
    )
    assert opened.value["text"].startswith("The box was crushed")
    out = accepted(gorgias.map_webhook(load("gorgias_ticket_updated.json"), Inbound.of()))
    got = [(r.value["type"], r.value["from_customer"], r.value["rating"], r.event_id) for r in out.records]
    assert got == [  # the internal note is not a message
        ("message", True, None, "gorgias:message:402918833"),
        ("message", False, None, "gorgias:message:402918901"),
        ("satisfaction_rating", True, 4, "gorgias:158392011:satisfaction:1773134940000"),
    ]


def test_gorgias_status_event_from_query_and_unknown_event():
    body = load("gorgias_ticket_updated.json")
    del body["event"]
    (closed,) = gorgias.map_webhook(body, Inbound.of(query={"event": "ticket-status-updated"})).records
    assert (closed.value["type"], closed.value["status"], closed.value["event_time"]) == (
        "solved",
        "closed",
        1_773_078_300_000,
    )
    assert [s.kind for s in gorgias.map_webhook(body, Inbound.of()).skipped] == ["unknown"]
