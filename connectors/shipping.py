"""Carrier names and shipment ids that agree across providers.

The shop's fulfilment (Shopify) and the tracker's scans (AfterShip, EasyPost) must land on the same
shipment in the engine, which matches scans to a shipment by `shipment_id`. The one id they all
share is the tracking number, so it is the shipment id (upper-cased, spaces removed); only a
shipment without a tracking number falls back to the provider's own id.
"""

from __future__ import annotations

from .records import Inbound, OutRecord, slug

# Provider spellings of the same carrier -> one name (content hints, per-carrier statistics).
_CARRIER_ALIASES = {
    "dhl-express": "dhl",
    "dhlexpress": "dhl",
    "dhl-global-mail": "dhl",
    "dhl-ecommerce": "dhl",
    "fedex": "fedex",
    "fed-ex": "fedex",
    "federal-express": "fedex",
    "fedexdefault": "fedex",
    "ups": "ups",
    "united-parcel-service": "ups",
    "usps": "usps",
    "united-states-postal-service": "usps",
    "royal-mail": "royal-mail",
    "royalmail": "royal-mail",
    "canada-post": "canada-post",
    "canadapost": "canada-post",
    "australia-post": "australia-post",
    "auspost": "australia-post",
    "deutsche-post": "deutsche-post",
    "dpd": "dpd",
    "dpd-de": "dpd",
    "dpd-uk": "dpd",
    "gls": "gls",
    "hermes": "evri",
    "evri": "evri",
    "hermes-de": "hermes",
    "postnl": "postnl",
    "post-nl": "postnl",
    "la-poste": "la-poste",
    "colissimo": "la-poste",
}


def carrier_name(value) -> str:
    name = slug(value)
    if name is None:
        return "unknown"
    return _CARRIER_ALIASES.get(name, name)


def shipment_key(tracking_number, fallback: str) -> str:
    tracking = "".join(tracking_number.split()).upper() if isinstance(tracking_number, str) else ""
    return tracking or fallback


def scan_record(inbound: Inbound, source: str, event_id: str, event_time: int, order_id: str, **scan) -> OutRecord:
    """A carrier-scans record: the fields every provider fills alike (ids, time, the order's customer
    from the lookups), plus what it read from its own payload (`scan`: shipment, carrier, status...)."""
    return OutRecord(
        "carrier-scans",
        order_id,
        {
            "event_id": event_id,
            "event_time": event_time,
            "source": source,
            "order_id": order_id,
            "customer_id": inbound.lookups.customer_for_order(order_id),
            **scan,
            # A return label's parcel (the shop's return webhook taught it), or the tracker says so.
            "direction": scan.get("direction")
            or ("return" if inbound.lookups.is_return_shipment(scan["shipment_id"]) else None),
        },
        event_id,
    )
