"""Erasure through the engine: the customer and every order we know of them leave the tables."""

from helpers import HOUR, T0, placed, scan
from streams.core.model import ErasureRequest
from streams.engine import CustomerStage, OrderStage


def test_erasure_removes_the_customer_and_all_their_orders():
    orders, customers = {}, {}
    order_stage, customer_stage = OrderStage(orders, {}, {}), CustomerStage(customers, {})
    for n in range(25):  # more orders than the customer stage keeps in detail
        out = order_stage.handle(0, placed(T0 + n * HOUR, order_id=f"O{n}", event_id=f"p{n}"), T0 + n * HOUR)
        for command in out.commands:
            customer_stage.handle(0, command, command.event_time)
    order_stage.handle(0, scan("in_transit", T0 + 30 * HOUR, order_id="O3"), T0 + 30 * HOUR)
    assert "C1" in customers and len(orders) == 25

    out = customer_stage.handle(0, ErasureRequest("e1", T0 + 40 * HOUR, "test", "C1", ["O-unknown"]), T0 + 40 * HOUR)
    assert "C1" not in customers
    assert set(out.erase_orders) == {f"O{n}" for n in range(25)} | {"O-unknown"}
    for order_id in out.erase_orders:
        order_stage.erase(order_id)
    assert orders == {}
    # Scheduled checks of erased orders lapse: firing them decides nothing.
    assert not order_stage.fire(0, T0 + 400 * HOUR).commands
