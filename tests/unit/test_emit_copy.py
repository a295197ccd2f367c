"""gate._emit copies the outgoing intent field by field (dataclasses.replace was too slow there):
a field added to these records must be added there too, or it would be lost on the way out."""

from __future__ import annotations

from dataclasses import fields

from streams.core.model import ContentHints, MessageIntent


def test_emit_knows_every_field_of_the_records_it_copies():
    assert [f.name for f in fields(ContentHints)] == [
        "items",
        "category",
        "carrier",
        "tracking_number",
        "window_start",
        "window_end",
        "segment",
        "tone",
        "amount",
        "currency",
        "return_id",
    ]
    assert [f.name for f in fields(MessageIntent)] == [
        "intent_id",
        "decided_at",
        "order_id",
        "customer_id",
        "intent_type",
        "kind",
        "channel",
        "send_at",
        "expires_at",
        "priority",
        "content",
        "reason_codes",
        "source_event_id",
        "locale",
        "time_zone",
        "experiment",
        "arm",
        "experiments",
    ]
