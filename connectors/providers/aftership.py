"""AfterShip tracking webhooks (tracking_update, edd_revise) -> CarrierScan.

The order comes from the tracking's own `order_id` (set when the shop or its platform integration
created the tracking): it must be the same order id the shop's order events carry. The shipment is
the tracking number, like the shop's fulfilment (connectors.shipping). Event id: aftership:<event_id>.
"""

from __future__ import annotations

from ..records import Inbound, Malformed, Mapped, Skip, first_ms, ident, items, obj, text, to_ms
from ..shipping import carrier_name, scan_record, shipment_key
from ..timezones import ZoneTable, country_code

SOURCE = "aftership"

TAG_STATUS = {
    "InfoReceived": "info_received",
    "InTransit": "in_transit",
    "OutForDelivery": "out_for_delivery",
    "AttemptFail": "attempt_failed",
    "Delivered": "delivered",
    "AvailableForPickup": "available_for_pickup",
    "Exception": "exception",
    "Expired": "expired",
}
# Subtags that say more than the tag: (status, sub_status). Status None keeps the tag's status.
SUBTAG = {
    "Exception_002": (None, "address_issue"),  # customer moved
    "Exception_003": (None, "refused"),
    "Exception_004": (None, "customs_delay"),
    "Exception_005": (None, "external_delay"),
    "Exception_006": (None, "held_for_payment"),
    "Exception_007": (None, "address_issue"),  # incorrect address
    "Exception_008": (None, "pickup_missed"),
    "Exception_009": (None, "rejected_by_carrier"),
    "Exception_010": (None, "returning_to_sender"),
    "Exception_011": ("returned_to_sender", None),
    "Exception_012": (None, "damaged"),
    "Exception_013": (None, "lost"),
    "Exception_016": (None, "processing_delay"),
    "Exception_017": (None, "weather_delay"),
    "Exception_018": (None, "missing_documents"),
    "Exception_019": (None, "transport_delay"),  # late flight
    "Exception_020": (None, "cancelled"),
    "Exception_021": (None, "disposed"),
    "AttemptFail_002": (None, "recipient_unavailable"),
    "AttemptFail_003": (None, "business_closed"),
    "Delivered_002": (None, "picked_up"),
    "Delivered_003": (None, "signed"),
    "Delivered_005": (None, "left_with_neighbour"),
    "InTransit_004": (None, "arrived_in_destination_country"),
    "InTransit_005": (None, "customs_cleared"),
    "InTransit_006": (None, "in_customs"),
    "InTransit_008": (None, "problem_resolved"),
    "OutForDelivery_004": (None, "appointment_scheduled"),
}
EVENTS = ("tracking_update", "edd_revise")


def map_webhook(payload, inbound: Inbound) -> Mapped:
    body = obj(payload, "the AfterShip webhook body")
    event_id = ident(body.get("event_id"))
    out = Mapped(delivery_id=f"aftership:{event_id}" if event_id else None)
    event = body.get("event")
    if event not in EVENTS:
        kind = "ignored" if event == "tracking_pending_time" else "unknown"
        out.skipped.append(Skip(kind, str(event), "event not handled", None if kind == "ignored" else body))
        return out
    if event_id is None:
        raise Malformed("event_id is missing")
    tracking = obj(body.get("msg"), "msg")
    tag = tracking.get("tag")
    if tag == "Pending":
        out.skipped.append(Skip("ignored", event, "tag Pending: the carrier has no news yet"))
        return out
    status = TAG_STATUS.get(tag) if isinstance(tag, str) else None
    if status is None:
        out.skipped.append(Skip("unknown", f"{event}:{tag}", "tag not handled", body))
        return out
    subtag = text(tracking.get("subtag"), 40)
    override, sub_status = SUBTAG.get(subtag, (None, None))
    order_id = ident(tracking.get("order_id"))
    if order_id is None:
        out.skipped.append(Skip("unmapped", event, "the tracking has no order_id", body))
        return out
    zones = inbound.options.zones
    checkpoint = _latest_checkpoint(tracking, zones)
    event_time = first_ms(
        _checkpoint_ms(checkpoint, tracking, zones),
        checkpoint.get("created_at"),
        tracking.get("updated_at"),
        body.get("ts"),
    )
    if event_time is None:
        raise Malformed("no checkpoint time, msg.updated_at or ts")
    tracking_number = text(tracking.get("tracking_number"), 100)
    our_id = f"aftership:{event_id}"
    out.records.append(
        scan_record(
            inbound,
            SOURCE,
            our_id,
            event_time,
            order_id,
            shipment_id=shipment_key(tracking_number, f"aftership:{ident(tracking.get('id')) or event_id}"),
            tracking_number=tracking_number,
            carrier=carrier_name(tracking.get("slug")),
            service_level=text(tracking.get("shipment_type"), 100),
            status=override or status,
            sub_status=sub_status,
            location=_location(checkpoint),
            carrier_estimated_delivery_at=_estimate(tracking),
            raw_status=subtag or tag,
        )
    )
    return out


def _latest_checkpoint(tracking: dict, zones: ZoneTable) -> dict:
    checkpoints = [c for c in items(tracking.get("checkpoints")) if isinstance(c, dict)]
    if not checkpoints:
        return {}
    # AfterShip lists them oldest first; sort anyway, since carriers backfill.
    return max(checkpoints, key=lambda c: first_ms(_checkpoint_ms(c, tracking, zones), c.get("created_at")) or 0)


def _checkpoint_ms(checkpoint: dict, tracking: dict, zones: ZoneTable) -> int | None:
    """`checkpoint_time` is the carrier's local time at the checkpoint, often without an offset.
    A time with an offset is taken as it is. Without one it is read in the checkpoint's zone: its
    country (country_iso3 / country_region, else country_name / country_region_name) and state,
    through connectors.timezones (AFTERSALE_TIME_ZONES included; a multi-zone country without a
    known state code gets the zone of most people). A checkpoint that names no country takes the
    tracking's destination when the shipment stays in one country (origin unknown or the same).
    When none of that gives a zone, the time is read as UTC: AfterShip sends no zone to go by."""
    return to_ms(checkpoint.get("checkpoint_time"), _checkpoint_zone(checkpoint, tracking, zones))


def _checkpoint_zone(checkpoint: dict, tracking: dict, zones: ZoneTable) -> str | None:
    keys = ("country_iso3", "country_region", "country_name", "country_region_name")
    if any(text(checkpoint.get(k)) for k in keys):  # somewhere named, known to us or not
        country = _country(checkpoint, *keys)
        return zones.known_zone(country, text(checkpoint.get("state"), 20)) if country else None
    destination = _country(tracking, "destination_country_iso3", "destination_country_region")
    origin = _country(tracking, "origin_country_iso3", "origin_country_region")
    if destination and origin in (None, destination):
        return zones.known_zone(destination, text(tracking.get("destination_state"), 20))
    return None


def _country(record: dict, *keys: str) -> str | None:
    for key in keys:
        code = country_code(record.get(key))
        if code:
            return code
    return None


def _location(checkpoint: dict) -> str | None:
    location = text(checkpoint.get("location"), 200)
    if location:
        return location
    parts = [text(checkpoint.get(k), 100) for k in ("city", "country_name")]
    return ", ".join(p for p in parts if p) or None


def _estimate(tracking: dict) -> int | None:
    """The carrier's estimate first, then AfterShip's; either a date string or an object."""
    for key in ("courier_estimated_delivery_date", "aftership_estimated_delivery_date", "expected_delivery"):
        value = tracking.get(key)
        if isinstance(value, dict):
            value = value.get("estimated_delivery_date") or value.get("estimated_delivery_date_max")
        ms = to_ms(value)
        if ms is not None:
            return ms
    return None
