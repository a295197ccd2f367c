"""EasyPost tracker webhooks (tracker.created, tracker.updated) -> CarrierScan.

A Tracker has no order id. It is resolved by the sources in AFTERSALE_EASYPOST_ORDER_ID, in order
(default `header:X-Aftersale-Order-Id,index`):
- `header:<Name>`: a header a relay in front of us adds per tracker;
- `field:<dotted.path>`: a payload field where your setup puts it, e.g. `field:result.reference`;
- `index`: the order whose Shopify fulfilment or return label had this tracking number (learned here).
An event whose order cannot be resolved is accepted and recorded as unmapped (with its body on the
connector-unknown topic, so it can be replayed). Event id: easypost:<event id>.
"""

from __future__ import annotations

from ..records import Inbound, Malformed, Mapped, Skip, first_ms, ident, items, obj, opt_obj, resolve, text, to_ms
from ..shipping import carrier_name, scan_record, shipment_key

SOURCE = "easypost"

STATUS = {
    "pre_transit": "info_received",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
    "available_for_pickup": "available_for_pickup",
    "return_to_sender": "returned_to_sender",
    "failure": "exception",
    "cancelled": "exception",
}
# "unknown" and "error" say nothing about the parcel (e.g. an unknown tracking number).
NO_NEWS = frozenset({"unknown", "error"})
STATUS_DETAIL = {
    "address_correction": "address_issue",
    "arrived_at_pickup_location": "at_pickup_location",
    "awaiting_information": "awaiting_information",
    "cancelled": "cancelled",
    "damaged": "damaged",
    "delayed": "delayed",
    "delivery_exception": "delivery_exception",
    "expired": "expired",
    "held": "held",
    "lost": "lost",
    "missorted": "missorted",
    "refused": "refused",
    "return": "returning_to_sender",
    "transit_exception": "transit_exception",
    "weather_delay": "weather_delay",
}
EVENTS = ("tracker.created", "tracker.updated")


def map_webhook(payload, inbound: Inbound) -> Mapped:
    body = obj(payload, "the EasyPost event")
    event_id = ident(body.get("id"))
    out = Mapped(delivery_id=f"easypost:{event_id}" if event_id else None)
    description = body.get("description")
    if description not in EVENTS:
        out.skipped.append(Skip("unknown", str(description), "event not handled", body))
        return out
    if event_id is None:
        raise Malformed("the event id is missing")
    tracker = obj(body.get("result"), "result")
    status = tracker.get("status")
    if status in NO_NEWS:
        out.skipped.append(Skip("ignored", f"{description}:{status}", "no news about the parcel"))
        return out
    ours = STATUS.get(status) if isinstance(status, str) else None
    if ours is None:
        out.skipped.append(Skip("unknown", f"{description}:{status}", "status not handled", body))
        return out
    tracking_code = text(tracker.get("tracking_code"), 100)
    shipment = shipment_key(tracking_code, f"easypost:{ident(tracker.get('id')) or event_id}")
    order_id = resolve(
        inbound.options.easypost_order_id, body, inbound, index=lambda: inbound.lookups.order_for_shipment(shipment)
    )
    if order_id is None:
        out.skipped.append(
            Skip(
                "unmapped",
                description,
                f"no order id for tracking {shipment} (sources {','.join(inbound.options.easypost_order_id)})",
                body,
            )
        )
        return out
    detail = _latest_detail(tracker)
    event_time = first_ms(
        detail.get("datetime"), tracker.get("updated_at"), body.get("updated_at"), body.get("created_at")
    )
    if event_time is None:
        raise Malformed("no tracking_details datetime or updated_at")
    status_detail = text(tracker.get("status_detail"), 60)
    our_id = f"easypost:{event_id}"
    out.records.append(
        scan_record(
            inbound,
            SOURCE,
            our_id,
            event_time,
            order_id,
            shipment_id=shipment,
            tracking_number=tracking_code,
            carrier=carrier_name(tracker.get("carrier")),
            service_level=None,
            status=ours,
            sub_status=STATUS_DETAIL.get(status_detail) if status_detail else None,
            location=_location(detail),
            carrier_estimated_delivery_at=to_ms(tracker.get("est_delivery_date")),
            raw_status=f"{status}/{status_detail}" if status_detail else status,
            direction="return" if tracker.get("is_return") is True else None,
        )
    )
    return out


def _latest_detail(tracker: dict) -> dict:
    details = [d for d in items(tracker.get("tracking_details")) if isinstance(d, dict)]
    return max(details, key=lambda d: to_ms(d.get("datetime")) or 0) if details else {}


def _location(detail: dict) -> str | None:
    where = opt_obj(detail.get("tracking_location"))
    parts = [text(where.get(k), 100) for k in ("city", "state", "country")]
    return ", ".join(p for p in parts if p) or None
