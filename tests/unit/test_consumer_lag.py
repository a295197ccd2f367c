"""Consumer lag is measured against committed offsets, not the fetch position (streams/ops.py): an
agent stuck on a batch whose fetcher had read to the end once showed lag 0 with 169 inputs behind."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.config import Settings
from streams.ops import consumer_lag

ORDERS, SCANS, CHANGELOG = TP("a.orders", 0), TP("a.carrier-scans", 1), TP("a-orders-changelog", 0)


class Consumer:
    """What consumer_lag asks of the worker's consumer; the fetch position is far ahead."""

    def assignment(self):
        return {ORDERS, SCANS, CHANGELOG}

    async def highwaters(self, *tps):
        return {ORDERS: 238, SCANS: 40, CHANGELOG: 900}

    def committed_offsets(self):
        return {ORDERS: 69}  # SCANS never committed

    async def earliest_offsets(self, *tps):
        return {tp: 5 for tp in tps}

    async def position(self, tp):  # must not be what lag is measured against
        return {ORDERS: 238, SCANS: 40}[tp]


def test_lag_counts_from_the_committed_offset_and_from_the_earliest_when_never_committed():
    app = SimpleNamespace(consumer=Consumer(), aftersale={"settings": Settings(app_id="a")})
    assert asyncio.run(consumer_lag(app)) == {("a.orders", 0): 169, ("a.carrier-scans", 1): 35}
