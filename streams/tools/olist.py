"""The Olist public e-commerce dataset (a folder of its CSVs, any subset) as our events, in event time.

Each order row becomes its life in our topics:

  order_purchase_timestamp       -> orders: placed (promise = order_estimated_delivery_date, end of day)
  order_approved_at              -> orders: paid
  order_delivered_carrier_date   -> orders: fulfilled, and carrier-scans: in_transit (carrier "olist-carrier",
                                    lane BR-<seller state> -> BR-<customer state>)
  order_delivered_customer_date  -> carrier-scans: delivered
  order_status canceled / unavailable -> orders: cancelled (Olist has no time for it: just after the
                                    order's last recorded step)
  review_answer_timestamp        -> engagement: review_submitted with the review score

Line items come from olist_order_items joined with olist_products (category, Portuguese as in the
data); the customer is customer_unique_id when olist_customers is there (one person across orders),
else customer_id; the time zone comes from the customer's state. Olist timestamps are Brazil local
time (Sao Paulo) and are converted to UTC with zoneinfo. Missing files and rows that do not join are
counted per reason in the InputReport, never fatal. Read with the csv module (quoted ids, newlines
inside quoted review texts).
"""

from __future__ import annotations

import csv
from datetime import datetime, time as dtime
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

FILES = {
    "orders": "olist_orders_dataset.csv",
    "items": "olist_order_items_dataset.csv",
    "products": "olist_products_dataset.csv",
    "customers": "olist_customers_dataset.csv",
    "sellers": "olist_sellers_dataset.csv",
    "reviews": "olist_order_reviews_dataset.csv",
}
SOURCE = "olist"
CARRIER = "olist-carrier"
DATA_ZONE = ZoneInfo("America/Sao_Paulo")  # the zone Olist's timestamps are written in
UTC = ZoneInfo("UTC")

# IANA zone of each Brazilian state (UF). Brasilia time unless noted.
STATE_ZONES = {
    "AC": "America/Rio_Branco",
    "AM": "America/Manaus",
    "RR": "America/Boa_Vista",
    "RO": "America/Porto_Velho",
    "MT": "America/Cuiaba",
    "MS": "America/Campo_Grande",
    "PA": "America/Belem",
    "AP": "America/Belem",
    "TO": "America/Araguaina",
    "MA": "America/Fortaleza",
    "PI": "America/Fortaleza",
    "CE": "America/Fortaleza",
    "RN": "America/Fortaleza",
    "PB": "America/Fortaleza",
    "PE": "America/Recife",
    "AL": "America/Maceio",
    "SE": "America/Maceio",
    "BA": "America/Bahia",
    "GO": "America/Sao_Paulo",
    "DF": "America/Sao_Paulo",
    "MG": "America/Sao_Paulo",
    "ES": "America/Sao_Paulo",
    "RJ": "America/Sao_Paulo",
    "SP": "America/Sao_Paulo",
    "PR": "America/Sao_Paulo",
    "SC": "America/Sao_Paulo",
    "RS": "America/Sao_Paulo",
}
DEFAULT_ZONE = "America/Sao_Paulo"
CANCELLED_STATUSES = {"canceled": "canceled", "unavailable": "unavailable"}
CONTACT = {
    "email": True,
    "sms": False,
    "push": False,
    "marketing_email": False,
    "marketing_sms": False,
    "locale": "pt-BR",
}  # Olist says nothing about channels: e-mail only, no marketing consent


def to_utc_ms(text: str | None) -> int | None:
    """'YYYY-MM-DD HH:MM:SS' (or a date) in Sao Paulo time -> epoch ms UTC; None when empty.
    Raises ValueError when not a timestamp."""
    text = (text or "").strip()
    if not text:
        return None
    local = datetime.fromisoformat(text)
    return int(local.replace(tzinfo=DATA_ZONE).timestamp() * 1000)


def end_of_day_utc_ms(text: str | None) -> int | None:
    """The promised date (written as midnight) -> the last millisecond of that day, Sao Paulo time."""
    text = (text or "").strip()
    if not text:
        return None
    day = datetime.fromisoformat(text).date()
    end = datetime.combine(day, dtime(23, 59, 59, 999000), tzinfo=DATA_ZONE)
    return int(end.timestamp() * 1000)


def _rows(folder: Path, name: str, report) -> Iterator[dict] | None:
    path = folder / FILES[name]
    if not path.exists():
        report.missing_files.append(FILES[name])
        return None

    def gen():
        with open(path, newline="", encoding="utf-8-sig") as fh:
            n = 0
            for row in csv.DictReader(fh):
                n += 1
                yield {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
            report.files[FILES[name]] = n

    return gen()


def _stamp(row: dict, column: str, report, ident: str) -> int | None:
    try:
        return to_utc_ms(row.get(column))
    except ValueError:
        report.unjoin(f"bad_timestamp:{column}", ident)
        return None


def read_olist(folder: str | Path, report) -> list[tuple[str, str, dict]]:
    """(topic, key, record) for every event the folder's files give, in file order (the caller
    sorts by event time). Fills `report` (streams.tools.replay.events.InputReport)."""
    folder = Path(folder)
    products: dict[str, str] = {}
    rows = _rows(folder, "products", report)
    if rows is not None:
        for r in rows:
            if r.get("product_id"):
                products[r["product_id"]] = r.get("product_category_name") or ""
    have_products = "olist_products_dataset.csv" not in report.missing_files

    sellers: dict[str, str] = {}
    rows = _rows(folder, "sellers", report)
    if rows is not None:
        for r in rows:
            if r.get("seller_id"):
                sellers[r["seller_id"]] = (r.get("seller_state") or "").upper()
    have_sellers = FILES["sellers"] not in report.missing_files

    customers: dict[str, dict] = {}
    rows = _rows(folder, "customers", report)
    if rows is not None:
        for r in rows:
            if r.get("customer_id"):
                customers[r["customer_id"]] = r
    have_customers = FILES["customers"] not in report.missing_files

    items: dict[str, list[dict]] = {}
    rows = _rows(folder, "items", report)
    if rows is not None:
        for r in rows:
            items.setdefault(r.get("order_id") or "", []).append(r)
    have_items = FILES["items"] not in report.missing_files

    out: list[tuple[str, str, dict]] = []
    order_customer: dict[str, tuple[str, str | None]] = {}  # order id -> (customer, first product id)
    skipped: set[str] = set()  # orders that could not be used (their items are not "without order")
    rows = _rows(folder, "orders", report)
    if rows is None:
        report.notes.append("without olist_orders_dataset.csv there are no orders: nothing to replay")
    else:
        for row in rows:
            report.read += 1
            _order(
                row,
                out,
                report,
                products,
                have_products,
                sellers,
                have_sellers,
                customers,
                have_customers,
                items,
                have_items,
                order_customer,
                skipped,
            )
        for order_id in sorted(set(items) - set(order_customer) - skipped):
            for _ in items[order_id]:
                report.unjoin("item_without_order", order_id)

    rows = _rows(folder, "reviews", report)
    if rows is not None:
        for row in rows:
            report.read += 1
            _review(row, out, report, order_customer)
    return out


def _order(
    row,
    out,
    report,
    products,
    have_products,
    sellers,
    have_sellers,
    customers,
    have_customers,
    items,
    have_items,
    order_customer,
    skipped,
) -> None:
    order_id = row.get("order_id") or ""
    if not order_id or not row.get("customer_id"):
        report.unjoin("order_without_ids", order_id or "?")
        skipped.add(order_id)
        return
    placed = _stamp(row, "order_purchase_timestamp", report, order_id)
    if placed is None:
        report.unjoin("order_without_purchase_time", order_id)
        skipped.add(order_id)
        return
    customer_row = customers.get(row["customer_id"])
    if customer_row is None and have_customers:
        report.unjoin("order_without_customer", order_id)
    customer = (customer_row or {}).get("customer_unique_id") or row["customer_id"]
    state = ((customer_row or {}).get("customer_state") or "").upper() or None
    zone = STATE_ZONES.get(state or "", DEFAULT_ZONE)

    lines = sorted(items.get(order_id, []), key=lambda r: _int(r.get("order_item_id")))
    if have_items and not lines:
        report.unjoin("order_without_items", order_id)
    line_items: dict[str, dict] = {}
    total = 0.0
    seller_state = None
    for li in lines:
        product_id = li.get("product_id") or "unknown"
        category = products.get(product_id)
        if category is None and have_products:
            report.unjoin("item_without_product", f"{order_id}/{product_id}")
        if seller_state is None:
            seller_state = sellers.get(li.get("seller_id") or "")
            if seller_state is None and have_sellers:
                report.unjoin("item_without_seller", f"{order_id}/{li.get('seller_id')}")
        price, freight = _float(li.get("price")), _float(li.get("freight_value"))
        total += (price or 0.0) + (freight or 0.0)
        if product_id in line_items:
            line_items[product_id]["quantity"] += 1
        else:
            line_items[product_id] = {
                "sku": product_id,
                "product_id": product_id,
                "title": (category or "produto").replace("_", " "),
                "category": category or "unknown",
                "quantity": 1,
                "price": price,
            }
    order_customer[order_id] = (customer, next(iter(line_items), None))
    base = {"source": SOURCE, "order_id": order_id, "customer_id": customer}
    eid = f"olist:{order_id}"
    promised = None
    try:
        promised = end_of_day_utc_ms(row.get("order_estimated_delivery_date"))
    except ValueError:
        report.unjoin("bad_timestamp:order_estimated_delivery_date", order_id)
    if promised is None:
        report.unjoin("order_without_promise", order_id)
    shipping = {
        "country": "BR",
        "region": state,
        "postal_prefix": (customer_row or {}).get("customer_zip_code_prefix") or None,
        "time_zone": zone,
    }
    out.append(
        (
            "orders",
            order_id,
            {
                **base,
                "event_id": f"{eid}:placed",
                "event_time": placed,
                "type": "placed",
                "order_number": order_id[:8],
                "currency": "BRL",
                "total": round(total, 2) if lines else None,
                "line_items": list(line_items.values()),
                "promised_delivery_at": promised,
                "shipping": shipping,
                "contact": dict(CONTACT),
                "fulfillment": None,
                "reason": None,
                "amount": None,
            },
        )
    )
    times = [placed]
    approved = _stamp(row, "order_approved_at", report, order_id)
    if approved is not None:
        times.append(approved)
        out.append(("orders", order_id, {**base, "event_id": f"{eid}:paid", "event_time": approved, "type": "paid"}))
    shipment = f"{order_id}-1"
    lane = {
        "origin_region": f"BR-{seller_state}" if seller_state else None,
        "destination_region": f"BR-{state}" if state else None,
    }
    scan = {
        **base,
        "shipment_id": shipment,
        "tracking_number": None,
        "carrier": CARRIER,
        "service_level": None,
        "sub_status": None,
        **lane,
        "location": None,
        "carrier_estimated_delivery_at": None,
    }
    handed = _stamp(row, "order_delivered_carrier_date", report, order_id)
    if handed is not None:
        times.append(handed)
        out.append(
            (
                "orders",
                order_id,
                {
                    **base,
                    "event_id": f"{eid}:fulfilled",
                    "event_time": handed,
                    "type": "fulfilled",
                    "fulfillment": {
                        "shipment_id": shipment,
                        "carrier": CARRIER,
                        "service_level": None,
                        "tracking_number": None,
                        "skus": list(line_items),
                    },
                },
            )
        )
        out.append(
            (
                "carrier-scans",
                order_id,
                {
                    **scan,
                    "event_id": f"{eid}:scan:in_transit",
                    "event_time": handed,
                    "status": "in_transit",
                    "raw_status": "order_delivered_carrier_date",
                },
            )
        )
    delivered = _stamp(row, "order_delivered_customer_date", report, order_id)
    if delivered is not None:
        if handed is None:
            report.unjoin("delivered_without_carrier_date", order_id)
        times.append(delivered)
        out.append(
            (
                "carrier-scans",
                order_id,
                {
                    **scan,
                    "event_id": f"{eid}:scan:delivered",
                    "event_time": delivered,
                    "status": "delivered",
                    "raw_status": "order_delivered_customer_date",
                },
            )
        )
    status = (row.get("order_status") or "").lower()
    if status in CANCELLED_STATUSES:
        at = max(times) + 1  # Olist has no cancellation time: right after the last step it records
        out.append(
            (
                "orders",
                order_id,
                {
                    **base,
                    "event_id": f"{eid}:cancelled",
                    "event_time": at,
                    "type": "cancelled",
                    "reason": CANCELLED_STATUSES[status],
                },
            )
        )


def _review(row, out, report, order_customer) -> None:
    order_id = row.get("order_id") or ""
    review_id = row.get("review_id") or "?"
    known = order_customer.get(order_id)
    if known is None:
        report.unjoin("review_without_order", review_id)
        return
    at = _stamp(row, "review_answer_timestamp", report, review_id)
    if at is None:
        report.unjoin("review_without_answer_time", review_id)
        return
    score = _int(row.get("review_score"))
    if not 1 <= score <= 5:
        report.unjoin("review_without_score", review_id)
        return
    customer, product = known
    out.append(
        (
            "engagement",
            customer,
            {
                "event_id": f"olist:review:{review_id}:{order_id}",
                "event_time": at,
                "source": SOURCE,
                "type": "review_submitted",
                "customer_id": customer,
                "order_id": order_id,
                "intent_id": None,
                "channel": "web",
                "scope": None,
                "rating": score,
                "product_id": product,
            },
        )
    )


def _int(text) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return 0


def _float(text) -> float | None:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        return None
