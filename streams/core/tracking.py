"""Tracking state per shipment that only moves forward.

Carriers and aggregators deliver scans at least once and out of order. A terminal status
(delivered, returned to sender, expired) is final: a late "out for delivery" never reopens a delivered
parcel. Among live statuses the newest scan (by carrier event time) wins; an older scan that arrives
late changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import CarrierScan
from .state import Shipment

TERMINAL = frozenset({"delivered", "returned_to_sender", "expired"})
PROBLEMS = frozenset({"attempt_failed", "exception", "returned_to_sender", "expired"})


@dataclass(slots=True, frozen=True)
class ScanOutcome:
    applied: bool  # the scan changed the shipment's status
    stale_reason: str | None = None  # why it did not: after_delivered, older_than_last_scan
    first_scan: bool = False
    new_status: str | None = None


def apply_scan(shipment: Shipment, scan: CarrierScan) -> ScanOutcome:
    """Fold one scan into the shipment; says whether it moved the tracking state."""
    if shipment.status in TERMINAL:
        return ScanOutcome(False, stale_reason=f"after_{shipment.status}")
    if shipment.last_scan_at is not None and scan.event_time < shipment.last_scan_at:
        return ScanOutcome(False, stale_reason="older_than_last_scan")
    first = shipment.first_scan_at is None
    if first:
        shipment.first_scan_at = scan.event_time
    shipment.last_scan_at = scan.event_time
    shipment.last_scan_event_id = scan.event_id
    shipment.status = scan.status
    shipment.sub_status = scan.sub_status
    shipment.raw_status = scan.raw_status
    if scan.carrier_estimated_delivery_at is not None:
        shipment.carrier_eta = scan.carrier_estimated_delivery_at
    shipment.origin_region = scan.origin_region or shipment.origin_region
    shipment.destination_region = scan.destination_region or shipment.destination_region
    if shipment.handoff_at is None and scan.status != "info_received":
        shipment.handoff_at = scan.event_time  # a label is not a parcel: transit starts at the first real scan
    if shipment.handoff_at is not None:
        shipment.scans += 1  # carrier scans since hand-off: how chatty this feed is
    if scan.status == "attempt_failed":
        shipment.failed_attempts += 1
    if scan.status == "delivered":
        shipment.delivered_at = scan.event_time
    return ScanOutcome(True, first_scan=first, new_status=scan.status)
