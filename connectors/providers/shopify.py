"""Shopify order and fulfilment webhooks -> OrderEvent (and CarrierScan for shipment status updates).

The topic comes from the X-Shopify-Topic header. Event ids are built from Shopify's ids of the fact,
not of the delivery, because one fact reaches us through several topics: an order's fulfilments and
refunds are also listed in every later orders/updated, and "paid" is in every update after payment.
So the same fact always has the same id and the engine's event-id de-duplication drops the repeats:

    placed      shopify:<order id>:placed         paid       shopify:<order id>:paid
    cancelled   shopify:<order id>:cancelled      fulfilled  shopify:fulfillment:<fulfillment id>
    refunded    shopify:refund:<refund id>        scan       shopify:fulfillment:<id>:<shipment status>:<updated_at>

fulfillments/* and refunds/create carry no customer, which every OrderEvent needs: the customer is
taken from an earlier order webhook of the same order (Directory). When it is unknown the event is
recorded as unmapped; it is not lost, since the same fulfilment or refund comes again, with the
customer, in the orders/updated that Shopify sends when an order is fulfilled or refunded.
"""

from __future__ import annotations

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


def _line_item(li: dict, order: dict) -> dict:
    sku = _sku(li)
    quantity = li.get("quantity")
    return {
        "sku": sku,
        "product_id": ident(li.get("product_id")),
        "title": text(li.get("title"), 300) or text(li.get("name"), 300) or sku,
        "category": _category(li, order),
        "quantity": quantity
        if isinstance(quantity, int) and not isinstance(quantity, bool) and 0 <= quantity < 2**31
        else 1,
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
    _emit(
        out,
        base,
        f"shopify:refund:{refund_id}",
        "refunded",
        need_ms(refund.get("processed_at") or refund.get("created_at"), "refund.created_at"),
        reason=text(refund.get("note"), 200),
        amount=sum(amounts) if amounts else None,
    )


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
}
