"""The Olist dataset layout mapped to our events (fixture: tests/replay/fixtures/olist, see
make_olist_fixture.py): joins, what does not join, time zones, and a replay of it."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from streams.tools.olist import FILES, STATE_ZONES, end_of_day_utc_ms, to_utc_ms
from streams.tools.replay import load, run_events

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "olist"
DAY = 86_400_000


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def rows(name: str) -> list[dict]:
    with open(FIXTURE / FILES[name], newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def loaded():
    return load(FIXTURE)


def test_brazil_local_time_becomes_utc():
    assert to_utc_ms("2018-01-10 10:00:00") == utc("2018-01-10 12:00:00")  # summer time then: UTC-2
    assert to_utc_ms("2018-06-10 10:00:00") == utc("2018-06-10 13:00:00")  # UTC-3
    assert to_utc_ms("") is None and to_utc_ms(None) is None
    # The promised date is written as midnight and means the whole day.
    assert end_of_day_utc_ms("2018-06-10 00:00:00") == utc("2018-06-11 02:59:59.999")
    with pytest.raises(ValueError):
        to_utc_ms("10/06/2018")


def test_every_state_has_a_zone():
    assert len(STATE_ZONES) == 27 and STATE_ZONES["AM"] == "America/Manaus" and STATE_ZONES["SP"] == "America/Sao_Paulo"


def test_the_fixture_maps_to_events_and_reports_what_did_not_join(loaded):
    events, report = loaded
    assert report.missing_files == [FILES["sellers"]]
    assert dict(report.unjoined) == {
        "item_without_order": 2,
        "item_without_product": 1,
        "order_without_customer": 1,
        "order_without_items": 1,
        "review_without_order": 2,
        "review_without_answer_time": 1,
        "delivered_without_carrier_date": 1,
    }
    assert not report.rejected and report.events == len(events)
    kinds = Counter((e.topic, e.record.get("type") or e.record.get("status")) for e in events)
    orders = rows("orders")
    assert kinds[("orders", "placed")] == len(orders) == 40
    assert kinds[("orders", "paid")] == sum(1 for r in orders if r["order_approved_at"])
    assert (
        kinds[("orders", "fulfilled")]
        == kinds[("carrier-scans", "in_transit")]
        == sum(1 for r in orders if r["order_delivered_carrier_date"])
    )
    assert kinds[("carrier-scans", "delivered")] == sum(1 for r in orders if r["order_delivered_customer_date"])
    assert (
        kinds[("orders", "cancelled")]
        == sum(1 for r in orders if r["order_status"] in ("canceled", "unavailable"))
        == 3
    )
    # Reviews: every row the csv module reads (texts with newlines inside quotes included), less
    # the ones without an order or an answer.
    assert kinds[("engagement", "review_submitted")] == len(rows("reviews")) - 3
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)


def test_an_order_becomes_its_life_in_our_topics(loaded):
    events, _ = loaded
    row = next(r for r in rows("orders") if r["order_status"] == "delivered" and r["order_delivered_carrier_date"])
    mine = [e for e in events if e.record.get("order_id") == row["order_id"]]
    placed = next(e for e in mine if e.record.get("type") == "placed")
    customer = next(c for c in rows("customers") if c["customer_id"] == row["customer_id"])
    assert placed.event_time == to_utc_ms(row["order_purchase_timestamp"])
    assert placed.event.promised_delivery_at == end_of_day_utc_ms(row["order_estimated_delivery_date"])
    assert placed.event.customer_id == customer["customer_unique_id"]
    assert placed.event.shipping.region == customer["customer_state"]
    assert placed.event.shipping.time_zone == STATE_ZONES[customer["customer_state"]]
    items = [i for i in rows("items") if i["order_id"] == row["order_id"]]
    assert sum(li.quantity for li in placed.event.line_items) == len(items)
    categories = {p["product_id"]: p["product_category_name"] for p in rows("products")}
    assert {li.category for li in placed.event.line_items} == {categories[i["product_id"]] for i in items}
    assert placed.event.total == round(sum(float(i["price"]) + float(i["freight_value"]) for i in items), 2)
    scans = {e.record["status"]: e for e in mine if e.topic == "carrier-scans"}
    assert scans["in_transit"].event_time == to_utc_ms(row["order_delivered_carrier_date"])
    assert scans["delivered"].event_time == to_utc_ms(row["order_delivered_customer_date"])
    assert scans["in_transit"].record["carrier"] == "olist-carrier"
    assert scans["in_transit"].record["destination_region"] == f"BR-{customer['customer_state']}"
    assert scans["in_transit"].record["origin_region"] is None  # no sellers file


def test_repeat_customers_are_one_customer_and_missing_ones_keep_their_order_id(loaded):
    events, report = loaded
    placed = [e for e in events if e.record.get("type") == "placed"]
    by_customer = Counter(e.event.customer_id for e in placed)
    assert max(by_customer.values()) == 2  # people who ordered twice, under two customer_ids
    missing = report.examples["order_without_customer"][0]
    order = next(r for r in rows("orders") if r["order_id"] == missing)
    assert next(e for e in placed if e.event.order_id == missing).event.customer_id == order["customer_id"]


def test_cancellations_come_right_after_the_last_recorded_step(loaded):
    events, _ = loaded
    for row in (r for r in rows("orders") if r["order_status"] in ("canceled", "unavailable")):
        steps = [
            to_utc_ms(row[c])
            for c in (
                "order_purchase_timestamp",
                "order_approved_at",
                "order_delivered_carrier_date",
                "order_delivered_customer_date",
            )
            if row[c]
        ]
        cancel = next(
            e for e in events if e.record.get("order_id") == row["order_id"] and e.record.get("type") == "cancelled"
        )
        assert cancel.event_time == max(steps) + 1 and cancel.record["reason"] == row["order_status"]


def test_with_a_sellers_file_the_lane_has_an_origin(tmp_path):
    folder = tmp_path / "olist"
    shutil.copytree(FIXTURE, folder)
    sellers = sorted({i["seller_id"] for i in rows("items")})
    with open(folder / FILES["sellers"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["seller_id", "seller_zip_code_prefix", "seller_city", "seller_state"])
        for n, s in enumerate(sellers[:-1]):  # the last seller is unknown: its items do not join
            w.writerow([s, "01000", "sao paulo", ["SP", "PR", "MG"][n % 3]])
    events, report = load(folder)
    assert report.missing_files == []
    assert report.unjoined["item_without_seller"] >= 1
    origins = Counter(e.record["origin_region"] for e in events if e.topic == "carrier-scans")
    assert set(origins) - {None} <= {"BR-SP", "BR-PR", "BR-MG"} and origins["BR-SP"] > 0


def test_missing_files_are_reported_not_fatal(tmp_path):
    events, report = load(tmp_path)  # an empty folder
    assert events == [] and sorted(report.missing_files) == sorted(FILES.values())
    assert report.notes
    only_orders = tmp_path / "only"
    only_orders.mkdir()
    shutil.copy(FIXTURE / FILES["orders"], only_orders)
    events, report = load(only_orders / FILES["orders"])  # a CSV path means its folder
    assert len(report.missing_files) == 5 and not report.unjoined.get("order_without_items")
    placed = [e for e in events if e.record.get("type") == "placed"]
    assert len(placed) == 40 and all(e.event.line_items == [] for e in placed)


def test_the_fixture_replays_and_the_late_orders_get_noticed(loaded):
    events, _ = loaded
    result = run_events(events, partitions=4, run_on_ms=30 * DAY)
    assert not result.rejected
    types = Counter(i.intent_type for i in result.intents)
    assert types["order_confirmation"] == 40 and types["delivered"] == 34
    late_notices = {i.order_id for i in result.intents if i.intent_type in ("delay_warning", "delay_update")}
    late_delivered = {i.order_id for i in result.intents if "delivered_late" in i.reason_codes}
    assert late_delivered and late_notices
