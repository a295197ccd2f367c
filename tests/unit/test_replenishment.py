"""Replenishment: remind before the customer runs out, from the pack size or their own rhythm, and
not at all if they reorder first."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from helpers import CUSTOMER, CustomerRun, advance, audits, contact, fact_command, item
from streams.core import ids


def berlin(month, day, hour, minute=0) -> int:
    return int(datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).timestamp() * 1000)


COFFEE = item("COF", "consumables", 2, "Coffee beans 1 kg")


def order(run: CustomerRun, order_id: str, placed: int, *items, delivered_after_days: int = 2) -> CustomerRun:
    run.advance(placed)  # time passes until the order: what was due went out on time
    return run.feed(
        fact_command(
            "placed", placed, order_id=order_id, channels=contact(marketing_email=True), total=48.0, items=items
        ),
        fact_command(
            "delivered",
            placed + delivered_after_days * 86_400_000 + 4 * 3_600_000,
            order_id=order_id,
            detail="on_time",
            items=items,
        ),
    )


def test_pack_size_reminder_five_days_before_it_runs_out():
    run = order(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11), COFFEE)
    # Delivered 3 January 15:00; 2 x 30 days of coffee -> runs out 4 March; remind 27 February at 10:00.
    assert run.state.timers["replenish:COF"] == berlin(2, 27, 10)
    intents, audit = advance(run, berlin(3, 1, 0))
    (reminder,) = [i for i in intents if i.intent_type == "replenishment"]
    assert reminder.intent_id == ids.intent_id(CUSTOMER, "O1", "replenishment", "replenish:COF:O1", "email")
    assert (reminder.kind, reminder.channel, reminder.send_at) == ("marketing", "email", berlin(2, 27, 10))
    assert reminder.reason_codes == ["replenish", "basis:pack_size", "runs_out_on:2026-03-04"]
    assert [(i.sku, i.quantity) for i in reminder.content.items] == [("COF", 2)]
    assert "replenish:COF" not in run.state.timers and run.state.replenish == {}


def test_the_customers_own_rhythm_wins_over_the_pack_size():
    run = CustomerRun(fire_dues=True)
    for n, placed in enumerate([berlin(1, 1, 11), berlin(1, 21, 11), berlin(2, 10, 11)], 1):
        order(run, f"O{n}", placed, COFFEE)
    reminders = [i for i in run.intents if i.intent_type == "replenishment"]
    # After the second order: every 20 days -> runs out 10 February, reminded 5 February (before O3).
    assert [(i.order_id, i.send_at, i.reason_codes[1]) for i in reminders] == [
        ("O2", berlin(2, 5, 10), "basis:own_interval")
    ]
    # After the third: the same rhythm from 10 February -> remind 25 February.
    assert run.state.timers["replenish:COF"] == berlin(2, 25, 10)


def test_a_reorder_before_the_reminder_cancels_it():
    run = order(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11), COFFEE)
    order(run, "O2", berlin(1, 11, 11), COFFEE)  # ordered again after 10 days
    assert [a for a in audits(run.audit) if a[0] == "replenishment"] == [("replenishment", "skipped", ["reordered"])]
    assert run.audit[-1].intent_id == ids.intent_id(CUSTOMER, "O1", "replenishment", "replenish:COF:O1", "email")
    plan = run.state.replenish["COF"]
    assert plan.order_id == "O2"
    # 10 days is their rhythm now: 11 January + 10 days = 21 January; remind 16 January.
    assert run.state.timers["replenish:COF"] == berlin(1, 16, 10)


def test_double_orders_are_not_a_rhythm():
    run = order(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11), COFFEE)
    order(run, "O2", berlin(1, 2, 9), COFFEE)  # the next morning: a forgotten item, not a habit
    # Pack size from the second delivery (4 January 13:00): 60 days -> 5 March; remind 28 February.
    assert run.state.timers["replenish:COF"] == berlin(2, 28, 10)


def test_only_consumable_categories_are_replenished():
    run = order(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11), item("TEE", "fashion"), item("SRM", "beauty"))
    assert sorted(k for k in run.state.timers if k.startswith("replenish:")) == ["replenish:SRM"]
    assert run.state.timers["replenish:SRM"] == berlin(2, 12, 10)  # 45 days from 3 January, less 5


def test_an_older_order_delivered_late_does_not_replace_the_newer_plan():
    run = CustomerRun(fire_dues=True)
    run.feed(
        fact_command("placed", berlin(1, 1, 11), order_id="O1", channels=contact(marketing_email=True), items=[COFFEE]),
        fact_command("placed", berlin(1, 20, 11), order_id="O2", items=[COFFEE]),
        fact_command("delivered", berlin(1, 22, 15), order_id="O2", detail="on_time", items=[COFFEE]),
        fact_command("delivered", berlin(1, 23, 15), order_id="O1", detail="late", items=[COFFEE]),
    )
    assert run.state.replenish["COF"].order_id == "O2"
