"""Bounded in-memory state of the ingest service: recently accepted ids, and what earlier webhooks
taught it (an order's customer, a tracking number's order, a return's order). Lost on restart by design: duplicates
are also caught by the engine's event-id de-duplication, and lookups only fill gaps."""

from __future__ import annotations

from collections import OrderedDict

from .records import Learned, Lookups


class LRU:
    """A dict that forgets its least recently used keys beyond `size`."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._data: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: str = "") -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self._data)


class Directory(Lookups):
    def __init__(self, size: int):
        self._customers = LRU(size)
        self._orders = LRU(size)
        self._returns = LRU(size)
        self._skus = LRU(size)
        self._return_shipments = LRU(size)

    def customer_for_order(self, order_id: str) -> str | None:
        return self._customers.get(order_id)

    def order_for_shipment(self, shipment_key: str) -> str | None:
        return self._orders.get(shipment_key)

    def order_for_return(self, return_id: str) -> str | None:
        return self._returns.get(return_id)

    def sku_for_line_item(self, line_item_id: str) -> str | None:
        return self._skus.get(line_item_id)

    def is_return_shipment(self, shipment_key: str) -> bool:
        return self._return_shipments.get(shipment_key) is not None

    def learn(self, facts: list[Learned]) -> None:
        for fact in facts:
            if not fact.key or not fact.value:
                continue
            if fact.kind == "order_customer":
                self._customers.put(fact.key, fact.value)
            elif fact.kind == "tracking_order":
                self._orders.put(fact.key, fact.value)
            elif fact.kind == "return_order":
                self._returns.put(fact.key, fact.value)
            elif fact.kind == "line_item_sku":
                self._skus.put(fact.key, fact.value)
            elif fact.kind == "return_shipment":
                self._return_shipments.put(fact.key, fact.value)
