"""Shopify return webhooks -> return_* OrderEvents, pure, no broker.

Fixtures follow the payloads Shopify documents for each topic (webhook reference, API 2025-01):
returns/request and /approve carry `order` {id} and return_line_items with only line item ids;
/decline a `decline` {reason, note}; /close, /cancel and /reopen just id, order_id and status;
reverse_deliveries/attach_deliverable a `return` {id} and `shipping_deliverable` {tracking, label};
reverse_fulfillment_orders/dispose only its own id and dispositions; refunds/create a `return`.
"""

from __future__ import annotations

import pytest

from connectors.providers.shopify import map_webhook
from connectors.records import Inbound, Lookups, Malformed
from streams.codec import INPUTS

from connector_helpers import load
from test_shopify_mapping import CUSTOMER_ID, ORDER_ID, KnownCustomer, mapped

RETURN_ID = "9934127105"
RECEIVED_AT = 1_772_600_000_000  # mapped()'s arrival time: return payloads carry no time of their own


class KnownReturn(KnownCustomer):
    """What earlier webhooks taught: the order's customer and the return's order."""

    def order_for_return(self, return_id):
        return {RETURN_ID: ORDER_ID}.get(return_id)


def info(record) -> dict:
    return record.value["return_info"]


def learned(out) -> list[tuple[str, str, str]]:
    return [(fact.kind, fact.key, fact.value) for fact in out.learned]


def test_return_request_lists_items_with_normalized_reasons_and_asks_for_a_refund():
    out = mapped("shopify_returns_request.json", "returns/request", lookups=KnownCustomer())
    (requested,) = out.records
    assert (requested.topic, requested.key, requested.event_id) == (
        "orders",
        ORDER_ID,
        f"shopify:return:{RETURN_ID}:requested",
    )
    v = requested.value
    assert (v["type"], v["customer_id"], v["event_time"]) == ("return_requested", CUSTOMER_ID, RECEIVED_AT)
    assert info(requested) == {
        "return_id": RETURN_ID,
        # Return line items carry no SKU, only the order's line item id: "item:<line item id>".
        "items": [
            {"sku": "item:14567890123401", "quantity": 1, "reason": "size_too_small"},
            {"sku": "item:14567890123402", "quantity": 2, "reason": "unwanted"},
        ],
        "resolution": "refund",
        "label": None,
        "exchange_order_id": None,
        "refund_method": None,
        "disposition": None,
        "note": None,
    }
    assert learned(out) == [("return_order", RETURN_ID, ORDER_ID)]


def test_a_sku_in_the_payload_is_used_and_reasons_outside_our_list_are_other():
    body = load("shopify_returns_request.json")
    first, second = body["return_line_items"]
    first["fulfillment_line_item"]["line_item"]["sku"] = "TR2-39-SLATE"
    first["return_reason"] = "SIZE_TOO_LARGE"  # GraphQL spelling
    second["return_reason"] = "Too wide"  # a shop's own reason
    inbound = Inbound.of({"X-Shopify-Topic": "returns/request"}, RECEIVED_AT, lookups=KnownCustomer())
    items = map_webhook(body, inbound).records[0].value["return_info"]["items"]
    assert [(i["sku"], i["reason"]) for i in items] == [
        ("TR2-39-SLATE", "size_too_large"),
        ("item:14567890123402", "other"),
    ]
    for value, expected in [("unknown", "unknown"), ("", None), (None, None), ("not-as-described", "not_as_described")]:
        first["return_reason"] = value
        items = map_webhook(body, inbound).records[0].value["return_info"]["items"]
        assert items[0]["reason"] == expected, value


def test_return_approve_with_exchange_line_items_asks_for_an_exchange():
    out = mapped("shopify_returns_approve.json", "returns/approve", lookups=KnownCustomer())
    (approved,) = out.records
    assert (approved.value["type"], approved.event_id) == ("return_approved", f"shopify:return:{RETURN_ID}:approved")
    assert info(approved)["resolution"] == "exchange"
    assert info(approved)["items"] == [{"sku": "item:14567890123401", "quantity": 1, "reason": "size_too_small"}]
    # Shopify's exchanges are items added to this same order, not a new order: no exchange_created.
    assert info(approved)["exchange_order_id"] is None


def test_return_decline_carries_the_shops_note_and_reason():
    out = mapped("shopify_returns_decline.json", "returns/decline", lookups=KnownCustomer())
    (declined,) = out.records
    assert (declined.value["type"], declined.event_id) == ("return_declined", "shopify:return:9934127199:declined")
    assert declined.value["reason"] == "final_sale"
    assert info(declined)["note"] == "Socks are final sale and cannot be returned."
    body = load("shopify_returns_decline.json")
    body["decline"] = {"reason": "RETURN_PERIOD_ENDED", "note": ""}
    (declined,) = map_webhook(
        body, Inbound.of({"X-Shopify-Topic": "returns/decline"}, RECEIVED_AT, lookups=KnownCustomer())
    ).records
    assert info(declined)["note"] == "return_period_ended"  # no note: the reason is what there is to say


def test_a_decline_without_order_finds_it_through_the_return_learned_earlier():
    body = load("shopify_returns_decline.json")
    del body["order"]  # older API versions send id, status and decline only
    body["id"] = int(RETURN_ID)
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "returns/decline"}, RECEIVED_AT, lookups=KnownReturn()))
    assert [(r.key, r.value["type"]) for r in out.records] == [(ORDER_ID, "return_declined")]
    unknown = map_webhook(
        body, Inbound.of({"X-Shopify-Topic": "returns/decline"}, RECEIVED_AT, lookups=KnownCustomer())
    )
    assert unknown.records == [] and [(s.kind, s.raw) for s in unknown.skipped] == [("unmapped", body)]


def test_return_close_and_cancel_are_both_return_closed_with_their_own_ids():
    closed = mapped("shopify_returns_close.json", "returns/close", lookups=KnownCustomer()).records[0]
    cancelled = mapped("shopify_returns_close.json", "returns/cancel", lookups=KnownCustomer()).records[0]
    assert (closed.value["type"], closed.event_id, closed.value["reason"]) == (
        "return_closed",
        f"shopify:return:{RETURN_ID}:closed",
        None,
    )
    assert (cancelled.value["type"], cancelled.event_id, cancelled.value["reason"]) == (
        "return_closed",
        f"shopify:return:{RETURN_ID}:cancelled",
        "cancelled",
    )
    assert info(closed)["return_id"] == info(cancelled)["return_id"] == RETURN_ID


def test_return_reopen_is_ignored():
    out = mapped("shopify_returns_close.json", "returns/reopen", lookups=KnownCustomer())
    assert out.records == [] and [s.kind for s in out.skipped] == ["ignored"]


def test_returns_need_the_customer_from_an_earlier_order_webhook():
    out = mapped("shopify_returns_request.json", "returns/request")
    assert out.records == []
    (skip,) = out.skipped
    assert (skip.kind, skip.what, skip.raw) == ("unmapped", "returns/request", load("shopify_returns_request.json"))
    assert learned(out) == [("return_order", RETURN_ID, ORDER_ID)]  # still learned, for the label to come


def test_return_ids_come_from_the_gid_when_the_numeric_id_is_missing():
    body = load("shopify_returns_close.json")
    del body["id"]
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "returns/close"}, RECEIVED_AT, lookups=KnownCustomer()))
    assert out.records[0].event_id == f"shopify:return:{RETURN_ID}:closed"
    del body["admin_graphql_api_id"]
    with pytest.raises(Malformed, match="return.id"):
        map_webhook(body, Inbound.of({"X-Shopify-Topic": "returns/close"}, RECEIVED_AT))


def test_a_repeated_return_webhook_is_the_same_event():
    first = mapped("shopify_returns_request.json", "returns/request", webhook_id="a", lookups=KnownCustomer())
    again = mapped("shopify_returns_request.json", "returns/request", webhook_id="b", lookups=KnownCustomer())
    assert first.delivery_id != again.delivery_id
    assert first.records[0].event_id == again.records[0].event_id


def test_return_label_is_label_created_and_teaches_its_tracking_number():
    out = mapped(
        "shopify_reverse_deliveries_attach_deliverable.json",
        "reverse_deliveries/attach_deliverable",
        lookups=KnownReturn(),
    )
    (label,) = out.records
    shipment = "JD0146000066381792"  # upper-cased, spaces removed: as for forward shipments
    assert (label.key, label.value["type"], label.event_id) == (
        ORDER_ID,
        "return_label_created",
        f"shopify:reverse_delivery:2098340417:label:{shipment}",
    )
    assert label.value["event_time"] == 1_772_960_531_000  # the label's created_at
    assert info(label)["return_id"] == RETURN_ID
    assert info(label)["label"] == {
        "shipment_id": shipment,
        "carrier": "dhl",
        "tracking_number": "jd01 4600 0066 3817 92",
    }
    assert ("tracking_order", shipment, ORDER_ID) in learned(out)


def test_return_label_needs_the_returns_order_from_an_earlier_webhook():
    out = mapped(
        "shopify_reverse_deliveries_attach_deliverable.json",
        "reverse_deliveries/attach_deliverable",
        lookups=KnownCustomer(),
    )
    assert out.records == [] and out.learned == []
    assert [s.kind for s in out.skipped] == ["unmapped"]
    assert "order of return 9934127105" in out.skipped[0].reason


def test_return_label_without_tracking_or_label_file():
    body = load("shopify_reverse_deliveries_attach_deliverable.json")
    body["shipping_deliverable"]["tracking"] = {"carrier_name": None, "tracking_number": None, "tracking_url": None}
    inbound = Inbound.of(
        {"X-Shopify-Topic": "reverse_deliveries/attach_deliverable"}, RECEIVED_AT, lookups=KnownReturn()
    )
    (label,) = map_webhook(body, inbound).records
    assert info(label)["label"] == {
        "shipment_id": "shopify:reverse_delivery:2098340417",
        "carrier": None,
        "tracking_number": None,
    }
    assert label.event_id == "shopify:reverse_delivery:2098340417:label:no-tracking"
    body["shipping_deliverable"]["label"] = {"public_file_url": None, "created_at": None}
    out = map_webhook(body, inbound)
    assert out.records == [] and [s.kind for s in out.skipped] == ["ignored"]


def test_dispose_names_no_return_so_it_is_unmapped_with_its_body():
    out = mapped(
        "shopify_reverse_fulfillment_orders_dispose.json", "reverse_fulfillment_orders/dispose", lookups=KnownReturn()
    )
    assert out.records == []
    (skip,) = out.skipped
    assert (skip.kind, skip.raw) == ("unmapped", load("shopify_reverse_fulfillment_orders_dispose.json"))
    assert "names no return" in skip.reason


def dispose(types: list[str], lookups: Lookups | None = None):
    body = load("shopify_reverse_fulfillment_orders_dispose.json")
    body["return"] = {"id": int(RETURN_ID), "admin_graphql_api_id": f"gid://shopify/Return/{RETURN_ID}"}
    template = body["dispositions"][0]
    body["dispositions"] = [
        {**template, "type": t, "reverse_fulfillment_order_line_item": {"id": 10359540833 + n}}
        for n, t in enumerate(types)
    ]
    inbound = Inbound.of(
        {"X-Shopify-Topic": "reverse_fulfillment_orders/dispose"}, RECEIVED_AT, lookups=lookups or KnownReturn()
    )
    out = map_webhook(body, inbound)
    for record in out.records:
        INPUTS[record.topic][1](dict(record.value))
    return out


def test_dispositions_of_a_known_return_are_inspected_or_received():
    got = {}
    for types in (["restocked"], ["RESTOCKED", "not_restocked"], ["restocked", "missing"], ["processing_required"]):
        (record,) = dispose(types).records
        got[tuple(types)] = (record.value["type"], info(record)["disposition"])
    assert got == {
        ("restocked",): ("return_inspected", "restocked"),
        ("RESTOCKED", "not_restocked"): ("return_inspected", "not_restocked"),
        ("restocked", "missing"): ("return_inspected", "missing"),
        ("processing_required",): ("return_received", None),
    }
    first, again, more = dispose(["restocked"]), dispose(["restocked"]), dispose(["restocked", "restocked"])
    assert first.records[0].event_id == again.records[0].event_id != more.records[0].event_id
    assert first.records[0].event_id.startswith("shopify:reverse_fulfillment_order:7725137985:inspected:")
    assert [s.kind for s in dispose(["shredded"]).skipped] == ["ignored"]


def test_a_refund_of_a_return_carries_the_return_its_items_and_the_refund_method():
    out = mapped("shopify_refunds_create_return.json", "refunds/create", lookups=KnownCustomer())
    (refund,) = out.records
    assert (refund.value["type"], refund.event_id, refund.value["amount"]) == (
        "refunded",
        "shopify:refund:929361977",
        99.9,
    )
    assert info(refund) == {
        "return_id": RETURN_ID,
        "items": [{"sku": "TR2-39-SLATE", "quantity": 1, "reason": None}],
        "resolution": None,
        "label": None,
        "exchange_order_id": None,
        "refund_method": "store_credit",
        "disposition": None,
        "note": None,
    }
    assert ("return_order", RETURN_ID, ORDER_ID) in learned(out)
    # A refund that is not for a return keeps its old shape.
    (plain,) = mapped("shopify_refunds_create.json", "refunds/create", lookups=KnownCustomer()).records
    assert plain.value.get("return_info") is None


def test_refund_method_follows_the_gateway_of_the_largest_refund_transaction():
    body = load("shopify_refunds_create_return.json")
    inbound = Inbound.of({"X-Shopify-Topic": "refunds/create"}, RECEIVED_AT, lookups=KnownCustomer())
    tx = body["transactions"][0]
    got = {}
    for gateway in ("shopify_payments", "gift_card", "manual", "shopify_store_credit", "paypal"):
        body["transactions"] = [{**tx, "gateway": gateway}]
        got[gateway] = map_webhook(body, inbound).records[0].value["return_info"]["refund_method"]
    assert got == {
        "shopify_payments": "original_payment",
        "gift_card": "gift_card",
        "manual": "other",
        "shopify_store_credit": "store_credit",
        "paypal": "original_payment",
    }
    body["transactions"] = [{**tx, "gateway": "gift_card", "amount": "10.00"}, {**tx, "gateway": "shopify_payments"}]
    assert map_webhook(body, inbound).records[0].value["return_info"]["refund_method"] == "original_payment"
    body["transactions"] = [{**tx, "status": "failure"}]
    assert map_webhook(body, inbound).records[0].value["return_info"]["refund_method"] is None


def test_a_return_refund_inside_orders_updated_is_the_same_event():
    order = load("shopify_orders_updated_fulfilled.json")
    order["refunds"] = [load("shopify_refunds_create_return.json")]
    out = map_webhook(order, Inbound.of({"X-Shopify-Topic": "orders/updated"}, RECEIVED_AT))
    (refund,) = [r for r in out.records if r.value["type"] == "refunded"]
    direct = mapped("shopify_refunds_create_return.json", "refunds/create", lookups=KnownCustomer()).records[0]
    assert (refund.event_id, refund.value["return_info"]) == (direct.event_id, direct.value["return_info"])


def test_unknown_return_topics_stay_unknown():
    for topic in ("returns/process", "returns/update", "reverse_deliveries/update"):
        out = map_webhook({"id": 1}, Inbound.of({"X-Shopify-Topic": topic}, RECEIVED_AT))
        assert [(s.kind, s.what) for s in out.skipped] == [("unknown", topic)]


def test_return_items_get_the_sku_the_order_webhook_gave_their_line_item():
    from connectors.memory import Directory

    directory = Directory(100)
    order = load("shopify_orders_create.json")
    order["line_items"][1]["id"] = 1  # not the line item the return names
    placed = map_webhook(order, Inbound.of({"X-Shopify-Topic": "orders/create"}, RECEIVED_AT))
    directory.learn(placed.learned)
    sku = placed.records[0].value["line_items"][0]["sku"]
    assert ("line_item_sku", str(order["line_items"][0]["id"]), sku) in learned(placed)
    body = load("shopify_returns_request.json")
    out = map_webhook(body, Inbound.of({"X-Shopify-Topic": "returns/request"}, RECEIVED_AT, lookups=directory))
    (requested,) = out.records
    assert [i["sku"] for i in info(requested)["items"]] == [sku, "item:14567890123402"]  # the other: never seen
