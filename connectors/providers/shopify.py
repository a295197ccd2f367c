"""Shopify order, fulfilment and return webhooks -> OrderEvent (and CarrierScan for shipment status updates).

The topic comes from the X-Shopify-Topic header. Event ids are built from Shopify's ids of the fact,
not of the delivery, because one fact reaches us through several topics: an order's fulfilments and
refunds are also listed in every later orders/updated, and "paid" is in every update after payment.
So the same fact always has the same id and the engine's event-id de-duplication drops the repeats:

    placed      shopify:<order id>:placed         paid       shopify:<order id>:paid
    cancelled   shopify:<order id>:cancelled      fulfilled  shopify:fulfillment:<fulfillment id>
    refunded    shopify:refund:<refund id>        scan       shopify:fulfillment:<id>:<shipment status>:<updated_at>
    return_requested|approved|declined  shopify:return:<return id>:requested|approved|declined
    return_closed            shopify:return:<return id>:closed (returns/close), :cancelled (returns/cancel)
    return_label_created     shopify:reverse_delivery:<id>:label:<shipment key>
    return_inspected|received  shopify:reverse_fulfillment_order:<id>:inspected|received:<dispositions hash>

fulfillments/* and refunds/create carry no customer, which every OrderEvent needs: the customer is
taken from an earlier order webhook of the same order (Directory). When it is unknown the event is
recorded as unmapped; it is not lost, since the same fulfilment or refund comes again, with the
customer, in the orders/updated that Shopify sends when an order is fulfilled or refunded. Return
webhooks carry no customer either and are not repeated in orders/updated: when the customer is
unknown they are recorded as unmapped, their body on connector-unknown to replay (see "returns").
"""

from __future__ import annotations

import hashlib
import json
import re

from ..records import (
    Inbound,
    Learned,
    Malformed,
    Mapped,
    OutRecord,
    Skip,
    first_ms,
    ident,
    items,
    need_id,
    need_ms,
    number,
    obj,
    opt_obj,
    slug,
    text,
)
from ..shipping import carrier_name, scan_record, shipment_key

SOURCE = "shopify"

# Shopify fulfilment shipment_status -> our scan status.
SHIPMENT_STATUS = {
    "label_printed": "info_received",
    "label_purchased": "info_received",
    "confirmed": "info_received",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "attempted_delivery": "attempt_failed",
    "ready_for_pickup": "available_for_pickup",
    "delivered": "delivered",
    "failure": "exception",
}
# Fulfilment `status`: only `success` means the parcel left the warehouse. `pending` and `open` (and
# `scheduled`, a fulfilment order's state some apps copy here) are not shipped yet: announcing them
# would tell the customer "shipped" before the warehouse accepted the order. The fulfilment comes
# again with `success` in the orders/updated Shopify sends when it ships.
SHIPPED_FULFILLMENT = frozenset({"success"})
NOT_YET_SHIPPED = frozenset({"pending", "open", "scheduled"})
# Fulfilments in these states never left (or were withdrawn): nothing to announce.
DEAD_FULFILLMENT = frozenset({"cancelled", "error", "failure"})

# Return steps -> the last part of the event id (and of the return_* type where they match).
RETURN_STEPS = {"request": "requested", "approve": "approved", "close": "closed", "cancel": "cancelled"}
RETURN_REASONS = frozenset(
    {
        "size_too_small",
        "size_too_large",
        "defective",
        "not_as_described",
        "wrong_item",
        "unwanted",
        "style",
        "color",
        "other",
        "unknown",
    }
)
# Reverse fulfillment order disposition type -> ours; processing_required is not an outcome yet.
DISPOSITIONS = {"restocked": "restocked", "not_restocked": "not_restocked", "missing": "missing"}
DISPOSITION_ORDER = ("missing", "damaged", "not_restocked", "restocked")
# Refund transaction gateway (slug) -> refund method; any other gateway refunds the original payment.
REFUND_GATEWAYS = {
    "shopify-store-credit": "store_credit",
    "store-credit": "store_credit",
    "gift-card": "gift_card",
    "manual": "other",
    "cash": "other",
}


def map_webhook(payload, inbound: Inbound) -> Mapped:
    topic = inbound.header("X-Shopify-Topic")
    if not topic:
        raise Malformed("missing X-Shopify-Topic header")
    body = obj(payload, "the Shopify webhook body")
    webhook_id = inbound.header("X-Shopify-Webhook-Id")
    out = Mapped(delivery_id=f"shopify:{webhook_id}" if webhook_id else None)
    handler = _HANDLERS.get(topic)
    if handler is None:
        out.skipped.append(Skip("unknown", topic, "topic not handled", body))
        return out
    handler(body, inbound, out, topic)
    return out


# --- orders ----------------------------------------------------------------------------------


def _on_order(order: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    order_id = need_id(order, "id", "order")
    customer_id = ident(opt_obj(order.get("customer")).get("id"))
    if customer_id is None:
        out.skipped.append(Skip("unmapped", topic, f"order {order_id} has no customer id", order))
        return
    out.learned.append(Learned("order_customer", order_id, customer_id))
    for li in items(order.get("line_items")):  # return webhooks name line items by id only
        if isinstance(li, dict) and ident(li.get("id")):
            out.learned.append(Learned("line_item_sku", ident(li.get("id")), _sku(li)))
    base = {
        "source": SOURCE,
        "order_id": order_id,
        "customer_id": customer_id,
        "order_number": text(order.get("name")) or ident(order.get("order_number")),
        "currency": text(order.get("currency"), 8),
    }
    before = len(out.records)
    if topic == "orders/create":
        _emit(
            out,
            base,
            f"shopify:{order_id}:placed",
            "placed",
            need_ms(order.get("created_at"), "order.created_at"),
            **_placement(order, inbound),
        )
    if order.get("financial_status") == "paid":
        _emit(
            out,
            base,
            f"shopify:{order_id}:paid",
            "paid",
            first_ms(order.get("processed_at"), order.get("updated_at"), order.get("created_at"), inbound.received_at),
        )
    if order.get("cancelled_at") or topic == "orders/cancelled":
        _emit(
            out,
            base,
            f"shopify:{order_id}:cancelled",
            "cancelled",
            first_ms(order.get("cancelled_at"), order.get("updated_at"), inbound.received_at),
            reason=text(order.get("cancel_reason"), 200),
        )
    for fulfillment in items(order.get("fulfillments")):
        if isinstance(fulfillment, dict):
            _fulfilled(fulfillment, base, out)
    for refund in items(order.get("refunds")):
        if isinstance(refund, dict):
            _refunded(refund, base, out)
    if len(out.records) == before:
        # orders/updated fires on every edit (notes, tags, addresses); most change nothing we act on.
        out.skipped.append(Skip("ignored", topic, f"financial_status={order.get('financial_status')}: nothing new"))


def _placement(order: dict, inbound: Inbound) -> dict:
    customer = opt_obj(order.get("customer"))
    address = opt_obj(order.get("shipping_address"))
    return {
        "total": number(order.get("total_price")),
        "line_items": [_line_item(li, order) for li in items(order.get("line_items")) if isinstance(li, dict)],
        "shipping": _shipping(address, inbound),
        "contact": _contact(order, customer, address),
    }


def _sku(li: dict) -> str:
    """Shops leave SKUs empty; the variant (or the line item) then stands in, so items stay distinct."""
    if text(li.get("sku"), 200):
        return text(li.get("sku"), 200)
    variant = ident(li.get("variant_id"))
    return f"variant:{variant}" if variant else f"item:{ident(li.get('id')) or 'unknown'}"


def _quantity(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else 1


def _line_item(li: dict, order: dict) -> dict:
    sku = _sku(li)
    return {
        "sku": sku,
        "product_id": ident(li.get("product_id")),
        "title": text(li.get("title"), 300) or text(li.get("name"), 300) or sku,
        "category": _category(li, order),
        "quantity": _quantity(li.get("quantity")),
        "price": number(li.get("price")),
    }


def _category(li: dict, order: dict) -> str:
    """product_type when the payload has it; else an order tag "category:<name>"; else "general"."""
    from_type = slug(li.get("product_type"))
    if from_type:
        return from_type
    tags = order.get("tags")
    for tag in tags.split(",") if isinstance(tags, str) else items(tags):
        if isinstance(tag, str) and tag.strip().lower().startswith("category:"):
            found = slug(tag.split(":", 1)[1])
            if found:
                return found
    return "general"


def _shipping(address: dict, inbound: Inbound) -> dict | None:
    country = text(address.get("country_code"), 2)
    if not country:
        return None
    province = text(address.get("province_code"), 10)
    zip_code = text(address.get("zip"), 20)
    return {
        "country": country.upper(),
        "region": province,
        "postal_prefix": zip_code[:3] if zip_code else None,  # enough for lanes, not an address
        "time_zone": inbound.options.zones.zone_for(country, province),
    }


def _consent(customer: dict, key: str) -> bool:
    state = opt_obj(customer.get(key)).get("state")
    return isinstance(state, str) and state.upper() == "SUBSCRIBED"


def _contact(order: dict, customer: dict, address: dict) -> dict:
    # Reachability, not addresses: the sender resolves addresses from its own directory.
    email = bool(text(order.get("email")) or text(order.get("contact_email")) or text(customer.get("email")))
    phone = bool(text(order.get("phone")) or text(customer.get("phone")) or text(address.get("phone")))
    marketing_email = _consent(customer, "email_marketing_consent")
    if "email_marketing_consent" not in customer:  # older API versions only have this flag
        marketing_email = order.get("buyer_accepts_marketing") is True
    return {
        "email": email,
        "sms": phone,
        "push": False,
        "marketing_email": marketing_email,
        "marketing_sms": _consent(customer, "sms_marketing_consent"),
        "locale": text(order.get("customer_locale"), 35),
    }


# --- fulfilments and refunds -----------------------------------------------------------------


def _fulfilled(fulfillment: dict, base: dict, out: Mapped) -> None:
    if fulfillment.get("status") not in SHIPPED_FULFILLMENT:
        return
    fulfillment_id = need_id(fulfillment, "id", "fulfillment")
    tracking = _tracking_number(fulfillment)
    shipment = shipment_key(tracking, f"shopify:{fulfillment_id}")
    out.learned.append(Learned("tracking_order", shipment, base["order_id"]))
    _emit(
        out,
        base,
        f"shopify:fulfillment:{fulfillment_id}",
        "fulfilled",
        need_ms(fulfillment.get("created_at"), "fulfillment.created_at"),
        fulfillment={
            "shipment_id": shipment,
            "carrier": carrier_name(fulfillment.get("tracking_company")),
            "service_level": None,  # Shopify's `service` is the fulfilment service ("manual"), not a speed
            "tracking_number": tracking,
            "skus": [
                s
                for s in (
                    text(li.get("sku"), 200) for li in items(fulfillment.get("line_items")) if isinstance(li, dict)
                )
                if s
            ],
        },
    )


def _refunded(refund: dict, base: dict, out: Mapped) -> None:
    refund_id = need_id(refund, "id", "refund")
    amounts = [
        number(t.get("amount"))
        for t in items(refund.get("transactions"))
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") in (None, "success")
    ]
    amounts = [a for a in amounts if a is not None]
    fields = {}
    return_id = _ref_id(refund.get("return"), "Return")
    if return_id:  # a refund issued for a return (returnProcess / returnRefund); null otherwise
        out.learned.append(Learned("return_order", return_id, base["order_id"]))
        fields["return_info"] = _return_info(
            return_id,
            items=[
                {
                    "sku": _sku(opt_obj(rli.get("line_item")) or {"id": rli.get("line_item_id")}),
                    "quantity": _quantity(rli.get("quantity")),
                    "reason": None,
                }
                for rli in items(refund.get("refund_line_items"))
                if isinstance(rli, dict)
            ],
            refund_method=_refund_method(refund.get("transactions")),
        )
    _emit(
        out,
        base,
        f"shopify:refund:{refund_id}",
        "refunded",
        need_ms(refund.get("processed_at") or refund.get("created_at"), "refund.created_at"),
        reason=text(refund.get("note"), 200),
        amount=sum(amounts) if amounts else None,
        **fields,
    )


def _refund_method(transactions) -> str | None:
    """Where the money went, from the refund transactions' gateway; with several, the largest share."""
    shares: dict[str, float] = {}
    for t in items(transactions):
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") in (None, "success"):
            method = REFUND_GATEWAYS.get(slug(t.get("gateway")) or "", "original_payment")
            shares[method] = shares.get(method, 0.0) + (number(t.get("amount")) or 0.0)
    return max(shares, key=lambda m: shares[m]) if shares else None


def _tracking_number(fulfillment: dict) -> str | None:
    tracking = text(fulfillment.get("tracking_number"), 100)
    if tracking:
        return tracking
    numbers = [t for t in items(fulfillment.get("tracking_numbers")) if isinstance(t, str) and t.strip()]
    return numbers[0].strip()[:100] if numbers else None


def _customer_of(order_id: str, inbound: Inbound, out: Mapped, topic: str, raw: dict) -> str | None:
    customer_id = inbound.lookups.customer_for_order(order_id)
    if customer_id is None:
        out.skipped.append(
            Skip(
                "unmapped",
                topic,
                f"customer of order {order_id} not known yet (it comes with the order's orders/updated)",
                raw,
            )
        )
    return customer_id


def _on_fulfillment_create(fulfillment: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    order_id = need_id(fulfillment, "order_id", "fulfillment")
    need_id(fulfillment, "id", "fulfillment")
    status = fulfillment.get("status")
    customer_id = None
    if status in SHIPPED_FULFILLMENT:
        customer_id = _customer_of(order_id, inbound, out, topic, fulfillment)
    else:
        out.skipped.append(Skip("ignored", topic, f"fulfillment status {status}: not shipped"))
    if customer_id is None:
        # Still learn the tracking number, so tracker scans find the order.
        tracking = _tracking_number(fulfillment)
        if tracking:
            out.learned.append(Learned("tracking_order", shipment_key(tracking, ""), order_id))
        return
    _fulfilled(fulfillment, {"source": SOURCE, "order_id": order_id, "customer_id": customer_id}, out)


def _on_fulfillment_update(fulfillment: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    order_id = need_id(fulfillment, "order_id", "fulfillment")
    fulfillment_id = need_id(fulfillment, "id", "fulfillment")
    customer_id = inbound.lookups.customer_for_order(order_id)
    if customer_id is not None and fulfillment.get("status") in SHIPPED_FULFILLMENT:
        # A fulfilment created pending ships here. Its "fulfilled" has the id fulfillments/create
        # and orders/updated give it, so the engine keeps one, whichever webhooks the shop sends.
        _fulfilled(fulfillment, {"source": SOURCE, "order_id": order_id, "customer_id": customer_id}, out)
    shipment_status = fulfillment.get("shipment_status")
    status = SHIPMENT_STATUS.get(shipment_status) if isinstance(shipment_status, str) else None
    if status is None or fulfillment.get("status") in DEAD_FULFILLMENT | NOT_YET_SHIPPED:
        out.skipped.append(
            Skip("ignored", topic, f"shipment_status={shipment_status}, status={fulfillment.get('status')}")
        )
        return
    tracking = _tracking_number(fulfillment)
    at = need_ms(fulfillment.get("updated_at"), "fulfillment.updated_at")
    event_id = f"shopify:fulfillment:{fulfillment_id}:{shipment_status}:{at}"
    out.records.append(
        scan_record(
            inbound,
            SOURCE,
            event_id,
            at,
            order_id,
            shipment_id=shipment_key(tracking, f"shopify:{fulfillment_id}"),
            tracking_number=tracking,
            carrier=carrier_name(fulfillment.get("tracking_company")),
            service_level=None,
            status=status,
            sub_status=None,
            raw_status=shipment_status,
        )
    )


def _on_refund(refund: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    order_id = need_id(refund, "order_id", "refund")
    need_id(refund, "id", "refund")
    customer_id = _customer_of(order_id, inbound, out, topic, refund)
    if customer_id is not None:
        _refunded(refund, {"source": SOURCE, "order_id": order_id, "customer_id": customer_id}, out)


# --- returns ---------------------------------------------------------------------------------
#
# Shopify's return payloads are small: a return names its order (`order.id` on request, approve and
# decline; `order_id` on close, cancel and reopen) but no customer and no SKUs (a return line item
# has only fulfillment_line_item.line_item.id), and no time. So: the customer comes from the
# Directory as for fulfilments; an item's sku is the line item's sku when the payload has one, else
# "item:<line item id>" (as for order line items without SKU or variant); the time is the payload's
# updated_at/created_at when present, else when the webhook arrived. A reverse delivery names only
# its return: its order is the one an earlier return or refund webhook of that return taught.


def _on_return(body: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    return_id = _ref_id(body, "Return")
    if return_id is None:
        raise Malformed("return.id is missing or not an id")
    if topic == "returns/reopen":
        # We have no type for it. A later close of the same return has the first close's event id,
        # so the engine keeps the return closed from the first close on.
        out.skipped.append(Skip("ignored", topic, f"return {return_id} reopened"))
        return
    base = _return_base(return_id, _order_ref(body), inbound, out, topic, body)
    if base is None:
        return
    at = first_ms(body.get("updated_at"), body.get("created_at"), inbound.received_at)
    kind = topic.split("/", 1)[1]
    if kind in ("request", "approve"):
        _emit(
            out,
            base,
            f"shopify:return:{return_id}:{RETURN_STEPS[kind]}",
            f"return_{RETURN_STEPS[kind]}",
            at,
            return_info=_return_info(
                return_id,
                items=[
                    _return_item(rli, inbound) for rli in items(body.get("return_line_items")) if isinstance(rli, dict)
                ],
                resolution="exchange" if items(body.get("exchange_line_items")) else "refund",
            ),
        )
    elif kind == "decline":
        decline = opt_obj(body.get("decline"))
        reason = text(decline.get("reason"), 100)
        _emit(
            out,
            base,
            f"shopify:return:{return_id}:declined",
            "return_declined",
            at,
            reason=reason.lower() if reason else None,
            return_info=_return_info(return_id, note=text(decline.get("note"), 1000) or (reason and reason.lower())),
        )
    else:  # close, cancel: the return is over either way; `reason` says which
        _emit(
            out,
            base,
            f"shopify:return:{return_id}:{RETURN_STEPS[kind]}",
            "return_closed",
            at,
            reason="cancelled" if kind == "cancel" else None,
            return_info=_return_info(return_id),
        )


def _on_reverse_delivery(body: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    """A return label (and its tracking) attached to a return: return_label_created, and the tracking
    number is taught like a forward fulfilment's, so tracker scans of the return parcel find the order."""
    delivery_id = _ref_id(body, "ReverseDelivery")
    return_id = _ref_id(body.get("return"), "Return")
    if delivery_id is None or return_id is None:
        raise Malformed("reverse delivery id or return.id is missing")
    deliverable = opt_obj(body.get("shipping_deliverable"))
    tracking = opt_obj(deliverable.get("tracking"))
    label = opt_obj(deliverable.get("label"))
    number = text(tracking.get("tracking_number"), 100)
    if not number and not text(label.get("public_file_url")):
        out.skipped.append(Skip("ignored", topic, f"reverse delivery {delivery_id}: no tracking number, no label"))
        return
    shipment = shipment_key(number, f"shopify:reverse_delivery:{delivery_id}")
    base = _return_base(return_id, _order_ref(body), inbound, out, topic, body, shipment=shipment)
    if base is None:
        return
    carrier = text(tracking.get("carrier_name"), 100)
    _emit(
        out,
        base,
        f"shopify:reverse_delivery:{delivery_id}:label:{shipment if number else 'no-tracking'}",
        "return_label_created",
        first_ms(label.get("created_at"), body.get("updated_at"), inbound.received_at),
        return_info=_return_info(
            return_id,
            label={
                "shipment_id": shipment,
                "carrier": carrier_name(carrier) if carrier else None,
                "tracking_number": number,
            },
        ),
    )


def _on_dispose(body: dict, inbound: Inbound, out: Mapped, topic: str) -> None:
    """Dispositions of a reverse fulfillment order's items: return_inspected with the outcome, or
    return_received when every item still needs processing. Shopify's payload names the reverse
    fulfillment order but neither its return nor its order, and no other webhook links them: such a
    payload is recorded as unmapped (its body on connector-unknown). A `return` or order in the body
    is used when present."""
    rfo_id = _ref_id(body, "ReverseFulfillmentOrder")
    if rfo_id is None:
        raise Malformed("reverse fulfillment order id is missing")
    return_id = _ref_id(body.get("return"), "Return")
    if return_id is None:
        out.skipped.append(
            Skip(
                "unmapped",
                topic,
                f"reverse fulfillment order {rfo_id} names no return (the payload carries none)",
                body,
            )
        )
        return
    dispositions = [d for d in items(body.get("dispositions")) if isinstance(d, dict)]
    kinds = {_word(d.get("type")) for d in dispositions}
    final = [DISPOSITIONS[k] for k in kinds if k in DISPOSITIONS]
    if not final and "processing_required" not in kinds:
        out.skipped.append(Skip("ignored", topic, f"dispositions {sorted(k or '' for k in kinds)}: none we know"))
        return
    base = _return_base(return_id, _order_ref(body), inbound, out, topic, body)
    if base is None:
        return
    # The same dispositions always give the same id (retries); a later disposition gives a new one.
    seen = sorted(
        (
            str(_ref_id(d.get("reverse_fulfillment_order_line_item"), "ReverseFulfillmentOrderLineItem")),
            str(_word(d.get("type"))),
            str(d.get("quantity")),
        )
        for d in dispositions
    )
    fingerprint = hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]
    at = first_ms(body.get("updated_at"), body.get("created_at"), inbound.received_at)
    if final:
        # Mixed outcomes: the one that matters most to the customer (missing, then not restocked).
        disposition = min(final, key=DISPOSITION_ORDER.index)
        event, event_type = "inspected", "return_inspected"
    else:
        disposition, event, event_type = None, "received", "return_received"
    _emit(
        out,
        base,
        f"shopify:reverse_fulfillment_order:{rfo_id}:{event}:{fingerprint}",
        event_type,
        at,
        return_info=_return_info(return_id, disposition=disposition),
    )


def _order_ref(body: dict) -> str | None:
    """The order a return payload names: `order` {id or gid}, or `order_id` (close, cancel, reopen)."""
    return _ref_id(body.get("order"), "Order") or ident(body.get("order_id"))


def _return_base(
    return_id: str,
    order_id: str | None,
    inbound: Inbound,
    out: Mapped,
    topic: str,
    raw: dict,
    shipment: str | None = None,
) -> dict | None:
    """The order and customer of a return event, learning the return's order (and a label's tracking
    number) even when the customer is not known yet."""
    order_id = order_id or inbound.lookups.order_for_return(return_id)
    if order_id is None:
        out.skipped.append(
            Skip("unmapped", topic, f"order of return {return_id} not known (its returns/request names it)", raw)
        )
        return None
    out.learned.append(Learned("return_order", return_id, order_id))
    if shipment is not None:
        out.learned.append(Learned("tracking_order", shipment, order_id))
        out.learned.append(Learned("return_shipment", shipment, order_id))  # its scans go back to the shop
    customer_id = _customer_of(order_id, inbound, out, topic, raw)
    if customer_id is None:
        return None
    return {"source": SOURCE, "order_id": order_id, "customer_id": customer_id}


def _return_item(rli: dict, inbound: Inbound) -> dict:
    line_item = opt_obj(opt_obj(rli.get("fulfillment_line_item")).get("line_item")) or opt_obj(rli.get("line_item"))
    known = None
    if not text(line_item.get("sku"), 200) and not ident(line_item.get("variant_id")) and ident(line_item.get("id")):
        known = inbound.lookups.sku_for_line_item(ident(line_item.get("id")))  # as the order webhook named it
    return {
        "sku": known or _sku(line_item),
        "quantity": _quantity(rli.get("quantity")),
        "reason": _return_reason(rli.get("return_reason")),
    }


def _return_reason(value) -> str | None:
    """Shopify's return_reason ("size_too_small"; SIZE_TOO_SMALL in GraphQL) -> ours; a shop's own
    reason is "other"."""
    word = _word(value)
    if word is None:
        return None
    return word if word in RETURN_REASONS else "other"


def _word(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_") or None


def _return_info(return_id: str, **fields) -> dict:
    return {
        "return_id": return_id,
        "items": [],
        "resolution": None,
        "label": None,
        "exchange_order_id": None,
        "refund_method": None,
        "disposition": None,
        "note": None,
        **fields,
    }


def _ref_id(value, kind: str) -> str | None:
    """The numeric id of a Shopify object: `id`, else the tail of its gid ("gid://shopify/Return/123")."""
    ref = opt_obj(value)
    found = ident(ref.get("id"))
    if found:
        return found
    gid = ref.get("admin_graphql_api_id")
    prefix = f"gid://shopify/{kind}/"
    if isinstance(gid, str) and gid.startswith(prefix):
        return ident(gid[len(prefix) :].split("?", 1)[0])
    return None


def _emit(out: Mapped, base: dict, event_id: str, event_type: str, event_time: int | None, **fields) -> None:
    if event_time is None:
        raise Malformed(f"no time for the {event_type} event of order {base['order_id']}")
    out.records.append(
        OutRecord(
            "orders",
            base["order_id"],
            {
                "order_number": None,
                "currency": None,
                **base,
                "event_id": event_id,
                "event_time": event_time,
                "type": event_type,
                **fields,
            },
            event_id,
        )
    )


_HANDLERS = {
    "orders/create": _on_order,
    "orders/updated": _on_order,
    "orders/cancelled": _on_order,
    "orders/paid": _on_order,
    "fulfillments/create": _on_fulfillment_create,
    "fulfillments/update": _on_fulfillment_update,
    "refunds/create": _on_refund,
    "returns/request": _on_return,
    "returns/approve": _on_return,
    "returns/decline": _on_return,
    "returns/close": _on_return,
    "returns/cancel": _on_return,
    "returns/reopen": _on_return,
    "reverse_deliveries/attach_deliverable": _on_reverse_delivery,
    "reverse_fulfillment_orders/dispose": _on_dispose,
}
