"""Shopify webhooks -> OrderEvent / CarrierScan, pure, no broker."""

from __future__ import annotations

from connectors.providers.shopify import map_webhook
from connectors.records import Inbound, Lookups
from connectors.settings import MappingOptions
from connectors.timezones import ZoneTable
from streams.codec import INPUTS

from connector_helpers import load

ORDER_ID, CUSTOMER_ID = "5829381734601", "7382910456"


def mapped(name: str, topic: str, webhook_id: str | None = "d6f1c2e0-1", lookups: Lookups | None = None, **options):
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": "northpeak.myshopify.com"}
    if webhook_id:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    inbound = Inbound.of(headers, 1_772_600_000_000, lookups=lookups or Lookups(), options=MappingOptions(**options))
    out = map_webhook(load(name), inbound)
    for record in out.records:  # every record must be one the engine accepts
        INPUTS[record.topic][1](dict(record.value))
    return out


class KnownCustomer(Lookups):
    def customer_for_order(self, order_id):
        return {ORDER_ID: CUSTOMER_ID}.get(order_id)


def test_orders_create_is_placed_and_paid_with_items_address_and_contact():
    out = mapped("shopify_orders_create.json", "orders/create")
    assert out.delivery_id == "shopify:d6f1c2e0-1"
    placed, paid = out.records
    assert (placed.topic, placed.key, placed.event_id) == ("orders", ORDER_ID, f"shopify:{ORDER_ID}:placed")
    v = placed.value
    assert (v["type"], v["customer_id"], v["order_number"], v["currency"], v["total"]) == (
        "placed",
        CUSTOMER_ID,
        "#1042",
        "EUR",
        134.8,
    )
    assert v["event_time"] == 1_772_439_267_000  # 2026-03-02T09:14:27+01:00
    assert v["line_items"] == [
        {
            "sku": "TR2-39-SLATE",
            "product_id": "8123456789012",
            "title": "Trail Runner 2",
            "category": "footwear",
            "quantity": 1,
            "price": 99.9,
        },
        # No SKU: the variant stands in; product_type wins over the order's category tag.
        {
            "sku": "variant:44123456789555",
            "product_id": "8123456789555",
            "title": "Merino Running Socks",
            "category": "apparel-accessories",
            "quantity": 2,
            "price": 15.0,
        },
    ]
    assert v["shipping"] == {"country": "DE", "region": "BY", "postal_prefix": "808", "time_zone": "Europe/Berlin"}
    assert v["contact"] == {
        "email": True,
        "sms": True,
        "push": False,
        "marketing_email": True,
        "marketing_sms": False,
        "locale": "de-DE",
    }
    assert (paid.value["type"], paid.event_id) == ("paid", f"shopify:{ORDER_ID}:paid")
    assert [(l.kind, l.key, l.value) for l in out.learned] == [
        ("order_customer", ORDER_ID, CUSTOMER_ID),
        ("line_item_sku", "14567890123401", "TR2-39-SLATE"),  # return webhooks name line items by id only
        ("line_item_sku", "14567890123402", "variant:44123456789555"),
    ]


def test_category_falls_back_to_general_and_time_zone_to_configured_default():
    order = load("shopify_orders_create.json")
    order["tags"] = "vip"
    order["shipping_address"] = {"country_code": "XK", "zip": "10000"}
    inbound = Inbound.of(
        {"X-Shopify-Topic": "orders/create"}, 0, options=MappingOptions(zones=ZoneTable(default="Europe/Belgrade"))
    )
    placed = map_webhook(order, inbound).records[0].value
    assert placed["line_items"][0]["category"] == "general"
    assert placed["shipping"]["time_zone"] == "Europe/Belgrade"


def test_orders_updated_repeats_paid_and_fulfilments_with_the_same_event_ids():
    out = mapped("shopify_orders_updated_fulfilled.json", "orders/updated", webhook_id="other-delivery")
    assert [(r.value["type"], r.event_id) for r in out.records] == [
        ("paid", f"shopify:{ORDER_ID}:paid"),
        ("fulfilled", "shopify:fulfillment:4890123456789"),
    ]
    fulfillment = out.records[1].value["fulfillment"]
    assert fulfillment == {
        "shipment_id": "1Z999AA10123456784",
        "carrier": "ups",
        "service_level": None,
        "tracking_number": "1Z999AA10123456784",
        "skus": ["TR2-39-SLATE"],
    }
    assert ("tracking_order", "1Z999AA10123456784", ORDER_ID) in [(l.kind, l.key, l.value) for l in out.learned]


def test_orders_updated_without_news_is_ignored_not_an_error():
    order = load("shopify_orders_create.json")
    order["financial_status"] = "pending"
    out = map_webhook(order, Inbound.of({"X-Shopify-Topic": "orders/updated"}, 0))
    assert out.records == [] and [s.kind for s in out.skipped] == ["ignored"]


def test_orders_cancelled():
    out = mapped("shopify_orders_cancelled.json", "orders/cancelled")
    (cancelled,) = out.records
    assert cancelled.value["type"] == "cancelled" and cancelled.value["reason"] == "customer"
    assert cancelled.event_id == "shopify:5829381739977:cancelled"
    assert cancelled.value["event_time"] == 1_772_445_790_000


def test_fulfillment_create_needs_the_customer_from_an_earlier_order_webhook():
    unknown = mapped("shopify_fulfillments_create.json", "fulfillments/create")
    assert unknown.records == [] and [s.kind for s in unknown.skipped] == ["unmapped"]
    # The tracking number is learned anyway, so tracker scans can find the order.
    assert [(l.kind, l.key) for l in unknown.learned] == [("tracking_order", "1Z999AA10123456784")]
    known = mapped("shopify_fulfillments_create.json", "fulfillments/create", lookups=KnownCustomer())
    (fulfilled,) = known.records
    assert fulfilled.value["customer_id"] == CUSTOMER_ID
    assert fulfilled.event_id == "shopify:fulfillment:4890123456789"  # same id as via orders/updated


def test_fulfillment_update_shipment_status_is_a_carrier_scan():
    out = mapped("shopify_fulfillments_update.json", "fulfillments/update")
    (scan,) = out.records
    assert (scan.topic, scan.key) == ("carrier-scans", ORDER_ID)
    assert {k: scan.value[k] for k in ("status", "raw_status", "shipment_id", "carrier", "event_time")} == {
        "status": "out_for_delivery",
        "raw_status": "out_for_delivery",
        "shipment_id": "1Z999AA10123456784",
        "carrier": "ups",
        "event_time": 1_772_691_160_000,
    }


def test_fulfillment_update_statuses_map_to_our_vocabulary():
    body = load("shopify_fulfillments_update.json")
    got = {}
    for status in (
        "label_printed",
        "confirmed",
        "in_transit",
        "attempted_delivery",
        "ready_for_pickup",
        "delivered",
        "failure",
        None,
    ):
        body["shipment_status"] = status
        out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "fulfillments/update"}, 0))
        got[status] = out.records[0].value["status"] if out.records else None
    assert got == {
        "label_printed": "info_received",
        "confirmed": "info_received",
        "in_transit": "in_transit",
        "attempted_delivery": "attempt_failed",
        "ready_for_pickup": "available_for_pickup",
        "delivered": "delivered",
        "failure": "exception",
        None: None,
    }


def test_refund_create():
    out = mapped("shopify_refunds_create.json", "refunds/create", lookups=KnownCustomer())
    (refund,) = out.records
    assert (refund.value["type"], refund.value["amount"], refund.value["reason"]) == (
        "refunded",
        30.0,
        "Socks returned: wrong size",
    )
    assert refund.event_id == "shopify:refund:929361464"


def test_unknown_topic_is_recorded_with_its_body():
    body = {"id": 1, "email": "x@example.com"}
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "customers/create"}, 0))
    assert out.records == []
    (skip,) = out.skipped
    assert (skip.kind, skip.what, skip.raw) == ("unknown", "customers/create", body)


def test_malformed_orders_are_rejected_with_a_reason():
    import pytest

    from connectors.records import Malformed

    for body, topic, reason in [
        ([], "orders/create", "must be a JSON object"),
        ({"customer": {"id": 1}}, "orders/create", "order.id is missing"),
        ({"id": 5, "customer": {"id": 1}}, "orders/create", "order.created_at is missing"),
        ({"id": 5}, "", "missing X-Shopify-Topic"),
    ]:
        with pytest.raises(Malformed, match=reason):
            map_webhook(body, Inbound.of({"X-Shopify-Topic": topic}, 0))


def test_only_a_successful_fulfilment_is_shipped():
    """pending/open/scheduled: the warehouse has not accepted it yet, so no "fulfilled" (shipped) event."""
    headers = {"X-Shopify-Topic": "fulfillments/create"}
    for status in ("pending", "open", "scheduled", "cancelled", "error", "failure", None):
        body = load("shopify_fulfillments_create.json")
        body["status"] = status
        out = map_webhook(body, Inbound.of(headers, 0, lookups=KnownCustomer()))
        assert out.records == [], status
        assert [s.kind for s in out.skipped] == ["ignored"], status
        # The tracking number is still learned, so tracker scans find the order.
        assert [(l.kind, l.key) for l in out.learned] == [("tracking_order", "1Z999AA10123456784")]
    # Not recorded as unmapped either when the customer is unknown: it is not an event we would produce.
    body["status"] = "pending"
    assert [s.kind for s in map_webhook(body, Inbound.of(headers, 0)).skipped] == ["ignored"]
    order = load("shopify_orders_updated_fulfilled.json")
    for status in ("pending", "open", "scheduled"):
        order["fulfillments"][0]["status"] = status
        out = map_webhook(order, Inbound.of({"X-Shopify-Topic": "orders/updated"}, 0))
        assert [r.value["type"] for r in out.records] == ["paid"], status
    order["fulfillments"][0]["status"] = "success"
    out = map_webhook(order, Inbound.of({"X-Shopify-Topic": "orders/updated"}, 0))
    assert [r.value["type"] for r in out.records] == ["paid", "fulfilled"]


def test_fulfillment_update_of_an_unshipped_fulfilment_is_no_scan():
    body = load("shopify_fulfillments_update.json")
    body["shipment_status"] = "confirmed"
    for status in ("pending", "open", "scheduled"):
        body["status"] = status
        out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "fulfillments/update"}, 0))
        assert out.records == [] and [s.kind for s in out.skipped] == ["ignored"], status


def test_a_fulfilment_that_ships_after_it_was_created_pending_is_fulfilled_on_its_update():
    body = load("shopify_fulfillments_update.json")
    body["status"], body["shipment_status"] = "pending", "confirmed"
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "fulfillments/update"}, 0, lookups=KnownCustomer()))
    assert out.records == []
    body["status"] = "success"
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "fulfillments/update"}, 0, lookups=KnownCustomer()))
    fulfilled, scan = out.records
    assert (fulfilled.topic, fulfilled.value["type"], scan.topic) == ("orders", "fulfilled", "carrier-scans")
    assert fulfilled.event_id == f"shopify:fulfillment:{body['id']}"  # as fulfillments/create names it
