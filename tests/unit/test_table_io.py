"""The worker's direct table path writes the bytes Faust itself would (streams/runtime/table_io.py): Faust's
recovery, standbys and HTTP views read that state through Faust's own serializers."""

from __future__ import annotations

import faust
import pytest

from streams.core.state import CustomerState, OrderState, Shipment
from streams.runtime.table_io import encode_key, encode_value


@pytest.fixture(scope="module")
def store():
    app = faust.App("table-io-test", store="memory://", broker="kafka://localhost:1")
    return app.Table("t", default=None).data


KEYS = ["o-1", "cust:ÿé漢字", "0|DHL|DE-BE|DE-HH", "", 'with "quotes" and \\ and \n']

VALUES = [
    OrderState(
        order_id="o-1",
        customer_id="c-é",
        total=12.5,
        items=[{"sku": "s", "title": "Tée 漢", "category": "c", "quantity": 2}],
        shipments={"S1": Shipment(shipment_id="S1", carrier="dhl", p_late=0.1234)},
        timers={"delay_check:S1": 1_700_000_000_000},
    ).to_dict(),
    CustomerState(customer_id="c-1").to_dict(),
    {"bucket": 28_000_000, "chunks": [1, 2, 3], "nested": {"x": None, "y": [True, False, 1.5e-7]}},
    {"total": 7, "hist": {"1": 2, "2.5": 5}},
]


@pytest.mark.parametrize("key", KEYS)
def test_keys_are_faust_bytes(store, key):
    assert encode_key(key) == store._encode_key(key)


@pytest.mark.parametrize("value", VALUES)
def test_values_are_faust_bytes_and_read_back(store, value):
    raw = encode_value(value)
    assert raw == store._encode_value(value)
    assert store._decode_value(raw) == value


def test_a_state_record_is_stored_as_the_bytes_of_its_dict(store):
    # The worker hands the state records themselves to the table; Faust reads them back as dicts.
    order = OrderState(
        order_id="o-2",
        customer_id="c",
        items=[{"sku": "a", "title": "é", "category": "x", "quantity": 1}],
        shipments={"S": Shipment(shipment_id="S", carrier="ups", scans=3)},
        notified=["shipped:S"],
    )
    customer = CustomerState(customer_id="c-2", orders_count=3, categories=["b", "a"])
    for state in (order, customer):
        assert encode_value(state) == store._encode_value(state.to_dict())
        assert type(state).from_dict(store._decode_value(encode_value(state))) == state
