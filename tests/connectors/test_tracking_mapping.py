"""AfterShip and EasyPost tracking webhooks -> CarrierScan, pure, no broker."""

from __future__ import annotations

import pytest

from connectors.providers import aftership, easypost
from connectors.records import Inbound, Lookups, Malformed
from connectors.settings import MappingOptions
from connectors.timezones import ZoneTable
from streams.codec import INPUTS

from connector_helpers import load

ORDER_ID = "5829381734601"


def accepted(out):
    for record in out.records:
        INPUTS[record.topic][1](dict(record.value))
    return out


def test_aftership_exception_keeps_raw_subtag_and_normalizes_it():
    out = accepted(aftership.map_webhook(load("aftership_tracking_update.json"), Inbound.of()))
    assert out.delivery_id == "aftership:6b1d0c5e-2f7a-4c1b-9d3e-8a5f4e2c1b0a"
    (scan,) = out.records
    assert (scan.topic, scan.key, scan.event_id) == ("carrier-scans", ORDER_ID, out.delivery_id)
    v = scan.value
    assert (v["status"], v["sub_status"], v["raw_status"]) == ("exception", "customs_delay", "Exception_004")
    assert (v["shipment_id"], v["carrier"], v["location"]) == ("1Z999AA10123456784", "ups", "Muenchen, DE")
    assert v["event_time"] == 1_772_692_200_000  # the newest checkpoint, 2026-03-05T07:30:00+01:00
    assert v["carrier_estimated_delivery_at"] == 1_772_927_999_000  # end of 2026-03-07 (AfterShip's EDD)


def test_aftership_edd_revise_carries_the_carriers_new_estimate():
    (scan,) = accepted(aftership.map_webhook(load("aftership_edd_revise.json"), Inbound.of())).records
    assert (scan.value["status"], scan.value["sub_status"]) == ("in_transit", "problem_resolved")
    assert scan.value["carrier_estimated_delivery_at"] == 1_773_100_799_000  # end of 2026-03-09


@pytest.mark.parametrize(
    "tag, subtag, status, sub_status",
    [
        ("InfoReceived", "InfoReceived_001", "info_received", None),
        ("OutForDelivery", "OutForDelivery_001", "out_for_delivery", None),
        ("AttemptFail", "AttemptFail_002", "attempt_failed", "recipient_unavailable"),
        ("AvailableForPickup", "AvailableForPickup_001", "available_for_pickup", None),
        ("Delivered", "Delivered_005", "delivered", "left_with_neighbour"),
        ("Exception", "Exception_011", "returned_to_sender", None),
        ("Exception", "Exception_012", "exception", "damaged"),
        ("Exception", "Exception_013", "exception", "lost"),
        ("Exception", "Exception_003", "exception", "refused"),
        ("Exception", "Exception_007", "exception", "address_issue"),
        ("Exception", "Exception_017", "exception", "weather_delay"),
        ("Expired", "Expired_001", "expired", None),
    ],
)
def test_aftership_tags_and_subtags(tag, subtag, status, sub_status):
    body = load("aftership_tracking_update.json")
    body["msg"].update(tag=tag, subtag=subtag)
    (scan,) = aftership.map_webhook(body, Inbound.of()).records
    assert (scan.value["status"], scan.value["sub_status"], scan.value["raw_status"]) == (status, sub_status, subtag)


def test_aftership_pending_unknown_and_orderless_are_accepted_not_errors():
    body = load("aftership_tracking_update.json")
    body["msg"]["tag"] = "Pending"
    assert [s.kind for s in aftership.map_webhook(body, Inbound.of()).skipped] == ["ignored"]
    body["msg"]["tag"] = "Teleported"
    assert [s.kind for s in aftership.map_webhook(body, Inbound.of()).skipped] == ["unknown"]
    body = load("aftership_tracking_update.json")
    body["msg"]["order_id"] = None
    out = aftership.map_webhook(body, Inbound.of())
    assert out.records == [] and [s.kind for s in out.skipped] == ["unmapped"]
    assert [s.kind for s in aftership.map_webhook({"event": "tracking_pending_time"}, Inbound.of()).skipped] == [
        "ignored"
    ]
    with pytest.raises(Malformed, match="msg"):
        aftership.map_webhook({"event": "tracking_update", "event_id": "e1", "msg": "x"}, Inbound.of())


class IndexedTracking(Lookups):
    def order_for_shipment(self, key):
        return {"1Z999AA10123456784": ORDER_ID}.get(key)


def test_easypost_order_from_header_then_index_else_unmapped():
    body = load("easypost_tracker_updated.json")
    by_header = accepted(easypost.map_webhook(body, Inbound.of({"X-Aftersale-Order-Id": "O-77"})))
    assert by_header.records[0].key == "O-77"
    (scan,) = accepted(easypost.map_webhook(body, Inbound.of(lookups=IndexedTracking()))).records
    assert (scan.key, scan.event_id) == (ORDER_ID, "easypost:evt_2f1b7a0c9d8e11f0b1a2c3d4e5f60718")
    v = scan.value
    assert (v["status"], v["raw_status"], v["carrier"], v["shipment_id"]) == (
        "out_for_delivery",
        "out_for_delivery/out_for_delivery",
        "ups",
        "1Z999AA10123456784",
    )
    assert v["event_time"] == 1_772_779_680_000 and v["location"] == "MUENCHEN, BY, DE"
    assert v["carrier_estimated_delivery_at"] == 1_772_820_000_000
    unmapped = easypost.map_webhook(body, Inbound.of())
    assert unmapped.records == [] and [s.kind for s in unmapped.skipped] == ["unmapped"]


def test_easypost_order_from_a_configured_payload_field():
    body = load("easypost_tracker_updated.json")
    body["result"]["reference"] = "5829381734601"
    options = MappingOptions(easypost_order_id=("field:result.reference",))
    assert easypost.map_webhook(body, Inbound.of(options=options)).records[0].key == ORDER_ID


@pytest.mark.parametrize(
    "status, detail, ours, sub",
    [
        ("pre_transit", "label_created", "info_received", None),
        ("in_transit", "weather_delay", "in_transit", "weather_delay"),
        ("delivered", "arrived_at_destination", "delivered", None),
        ("available_for_pickup", "arrived_at_pickup_location", "available_for_pickup", "at_pickup_location"),
        ("return_to_sender", "return", "returned_to_sender", "returning_to_sender"),
        ("failure", "lost", "exception", "lost"),
        ("failure", "damaged", "exception", "damaged"),
    ],
)
def test_easypost_statuses(status, detail, ours, sub):
    body = load("easypost_tracker_updated.json")
    body["result"].update(status=status, status_detail=detail)
    (scan,) = easypost.map_webhook(body, Inbound.of({"X-Aftersale-Order-Id": "O-1"})).records
    assert (scan.value["status"], scan.value["sub_status"]) == (ours, sub)


def test_easypost_no_news_and_other_events():
    body = load("easypost_tracker_updated.json")
    body["result"]["status"] = "unknown"
    assert [s.kind for s in easypost.map_webhook(body, Inbound.of()).skipped] == ["ignored"]
    body["description"] = "batch.updated"
    assert [s.kind for s in easypost.map_webhook(body, Inbound.of()).skipped] == ["unknown"]


def _scan_time(checkpoint: dict, options: MappingOptions | None = None, **tracking) -> int:
    body = load("aftership_tracking_update.json")
    body["msg"].update(tracking)
    body["msg"]["checkpoints"] = [checkpoint]
    (scan,) = aftership.map_webhook(body, Inbound.of(options=options or MappingOptions())).records
    return scan.value["event_time"]


def test_aftership_checkpoint_time_without_offset_is_local_to_the_checkpoint():
    local = "2026-03-05T07:30:00"  # 06:30 UTC in Germany (CET), 15:30 UTC in California (PST)
    berlin, utc = 1_772_692_200_000, 1_772_695_800_000
    assert _scan_time({"checkpoint_time": local, "country_iso3": "DEU"}) == berlin
    assert _scan_time({"checkpoint_time": local, "country_region": "DEU"}) == berlin  # tracking API 2024+
    assert _scan_time({"checkpoint_time": local, "country_name": "Germany"}) == berlin
    assert _scan_time({"checkpoint_time": local, "country_iso3": "USA", "state": "CA"}) == utc + 8 * 3_600_000
    # AFTERSALE_TIME_ZONES applies as it does to addresses.
    options = MappingOptions(zones=ZoneTable({"US-AZ": "America/Phoenix"}))
    assert _scan_time({"checkpoint_time": local, "country_iso3": "USA", "state": "AZ"}, options) == utc + 7 * 3_600_000
    # An explicit offset is kept, wherever the checkpoint is.
    assert _scan_time({"checkpoint_time": local + "+09:00", "country_iso3": "DEU"}) == utc - 9 * 3_600_000
    assert _scan_time({"checkpoint_time": local + "Z", "country_iso3": "USA"}) == utc


def test_aftership_checkpoint_without_a_country_uses_a_domestic_destination_else_utc():
    local = "2026-03-05T07:30:00"
    berlin, utc = 1_772_692_200_000, 1_772_695_800_000
    # The fixture ships within Germany: the destination is where a country-less checkpoint is.
    assert _scan_time({"checkpoint_time": local}) == berlin
    # Shipped from abroad: the checkpoint could be in either country, so UTC.
    assert _scan_time({"checkpoint_time": local}, origin_country_iso3="CHN") == utc
    # A country the table does not know: UTC, not the destination's zone.
    assert _scan_time({"checkpoint_time": local, "country_iso3": "VNM"}) == utc
    assert _scan_time({"checkpoint_time": local}, destination_country_iso3=None) == utc


def test_aftership_latest_checkpoint_is_chosen_in_local_time():
    body = load("aftership_tracking_update.json")
    body["msg"]["checkpoints"] = [
        # 10:00 in Tokyo is 01:00 UTC: earlier than 07:30 in Berlin (06:30 UTC), although the text sorts later.
        {"checkpoint_time": "2026-03-05T10:00:00", "country_iso3": "JPN", "location": "Tokyo"},
        {"checkpoint_time": "2026-03-05T07:30:00", "country_iso3": "DEU", "location": "Muenchen"},
    ]
    (scan,) = aftership.map_webhook(body, Inbound.of()).records
    assert (scan.value["location"], scan.value["event_time"]) == ("Muenchen", 1_772_692_200_000)
