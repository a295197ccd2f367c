"""Sealing with per-customer keys and the erasure protocol (streams/privacy.py): what opens, what
does not once a key is gone, and that an erasure interrupted between its steps is finished by
asking again. The key topic on a real broker: tests/integration/test_privacy.py."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.config import Settings
from streams.live_state import forget_customer
from streams.privacy import (
    UNATTRIBUTED,
    Erasure,
    Unreadable,
    is_sealed,
    key_id,
    parse_record_key,
    partition_for,
    record_key,
    seal,
    unseal,
)
from streams.producer import make_codec

KID, KEY = os.urandom(8), os.urandom(32)


def test_a_sealed_text_opens_with_its_customers_key_only():
    sealed = seal("C-1", KID, KEY, "Call me on +49 151 98765432".encode())
    assert is_sealed(sealed) and is_sealed(sealed.encode()) and "98765432" not in sealed
    assert key_id(sealed) == KID
    assert unseal("C-1", {KID: KEY}, sealed) == b"Call me on +49 151 98765432"
    with pytest.raises(Unreadable):  # shredded: the key is gone
        unseal("C-1", {}, sealed)
    with pytest.raises(Unreadable):  # bound to the customer: another customer's record cannot borrow it
        unseal("C-2", {KID: KEY}, sealed)
    tampered = sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(Unreadable):
        unseal("C-1", {KID: KEY}, tampered)
    assert seal("C-1", KID, KEY, b"x") != seal("C-1", KID, KEY, b"x")  # a fresh nonce each time


def test_record_keys_round_trip_and_land_where_the_java_partitioner_puts_the_customer():
    assert parse_record_key(record_key('C "1"/x', KID)) == ('C "1"/x', KID)
    for customer in ["C-1", "7382910456", "", "ü-42"]:
        expected = DefaultPartitioner()(customer.encode(), list(range(12)), list(range(12)))
        assert partition_for(customer, 12) == expected


class Keys:
    """The key store's contract in memory: keys per customer, shred tombstones them all."""

    def __init__(self):
        self.keys = {"C-1": {b"k1": KEY, b"k2": KEY}, UNATTRIBUTED: {b"u1": KEY}, "C-2": {b"k3": KEY}}

    async def shred(self, customer_id):
        return len(self.keys.pop(customer_id, {}))


class Producer:
    """Acknowledges sends, or fails the first `failures` of them like an unreachable broker."""

    def __init__(self, failures=0):
        self.failures, self.sent = failures, []

    async def send(self, topic, value, key=None):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_an_erasure_shreds_keys_before_it_asks_for_the_state_and_a_retry_finishes_it():
    settings = Settings(app_id="p")
    keys, producer = Keys(), Producer(failures=1)
    erasure = Erasure(settings, keys, producer, make_codec(settings))
    with pytest.raises(ConnectionError):  # crashed between the steps
        await erasure.run("C-1")
    assert "C-1" not in keys.keys and UNATTRIBUTED not in keys.keys  # step 1 done: nothing opens any more
    assert keys.keys == {"C-2": {b"k3": KEY}} and producer.sent == []  # ... and nobody else's keys went
    done = await erasure.run("C-1", ["O-9"], source="test")  # asked again: harmless, and finished
    assert done["keys_shredded"] == 0
    ((topic, key, value),) = producer.sent
    assert (topic, key) == ("p.erasure-requests", b"C-1")
    record = make_codec(settings).decode("p.erasure-requests", key, value)
    assert (record.customer_id, record.order_ids, record.source) == ("C-1", ["O-9"], "test")
    with pytest.raises(ValueError):
        await erasure.run("")


def test_forgetting_a_customer_clears_the_workers_recent_decisions_and_dead_letters():
    recent = {
        "intents": [{"customer_id": "C-1", "intent_id": "i1"}, {"customer_id": "C-2", "intent_id": "i2"}],
        "audit": [{"customer_id": "C-1", "audit_id": "a1"}],
        "dead_letters": [{"error": "support must be keyed by customer_id ('C-1')"}, {"error": "undecodable"}],
    }
    assert forget_customer(recent, "C-1") == 3
    assert recent == {
        "intents": [{"customer_id": "C-2", "intent_id": "i2"}],
        "audit": [],
        "dead_letters": [{"error": "undecodable"}],
    }
