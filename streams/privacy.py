"""Personal data that must travel is sealed with a key per customer; erasure shreds the keys.

The engine decides on ids. Two things with personal data still travel: what a customer writes to
support (its sentiment is scored where the text arrives in the clear, the text is kept for
inspection) and raw webhook bodies the ingest could not map. Both are sealed with AES-256-GCM under a
data key of the customer, the customer id bound as associated data.

Keys live in the compacted topic <app>.customer-keys: record key ["<customer id>", "<key id>"],
value {"key", "created_at"}, sent to the partition murmur2 gives the customer id, so one partition
holds every key of a customer. Writers do not coordinate: each makes a key when it has none cached,
and every key stays (distinct record keys). Erasure tombstones all keys of the customer
(crypto-shredding): every sealed copy in every topic, dead letter and backup becomes unreadable,
whatever its retention; the log cleaner then removes the key bytes themselves.

Bodies the ingest cannot attribute are sealed under the customer id "" (unattributed) with a key
made per hour; every erasure shreds those too (nobody can tell whose they are), and they are
shredded by age once connector-unknown's retention is over.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections import OrderedDict
from typing import Mapping

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import security
from .config import Settings
from .core.sentiment import SEALED_PREFIX

log = logging.getLogger(__name__)

KEY_TOPIC = "customer-keys"
UNATTRIBUTED = ""  # the customer id of data nobody can attribute
KID_BYTES, NONCE_BYTES = 8, 12


class Unreadable(Exception):
    """A sealed value whose key is gone (erased, expired) or was never written."""


# --- sealing: pure ---------------------------------------------------------------------------


def is_sealed(value: str | bytes | None) -> bool:
    if isinstance(value, bytes):
        return value.startswith(SEALED_PREFIX.encode())
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def _aad(customer_id: str) -> bytes:
    return b"aftersale:v1:" + customer_id.encode()


def seal(customer_id: str, kid: bytes, key: bytes, plaintext: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _aad(customer_id))
    return SEALED_PREFIX + base64.urlsafe_b64encode(kid + nonce + sealed).decode()


def key_id(sealed: str | bytes) -> bytes:
    text = sealed.decode() if isinstance(sealed, bytes) else sealed
    if not is_sealed(text):
        raise ValueError("not a sealed value")
    try:
        return base64.urlsafe_b64decode(text[len(SEALED_PREFIX) :])[:KID_BYTES]
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"sealed value is not base64: {exc}") from None


def unseal(customer_id: str, keys: Mapping[bytes, bytes], sealed: str | bytes) -> bytes:
    """The plaintext, or Unreadable when the key is not among `keys` (shredded) or does not fit."""
    text = sealed.decode() if isinstance(sealed, bytes) else sealed
    raw = base64.urlsafe_b64decode(text[len(SEALED_PREFIX) :])
    kid, nonce, body = raw[:KID_BYTES], raw[KID_BYTES : KID_BYTES + NONCE_BYTES], raw[KID_BYTES + NONCE_BYTES :]
    key = keys.get(kid)
    if key is None:
        raise Unreadable(f"key {kid.hex()} of customer {customer_id!r} is not there (erased or expired)")
    try:
        return AESGCM(key).decrypt(nonce, body, _aad(customer_id))
    except InvalidTag:
        raise Unreadable(f"sealed value does not open with key {kid.hex()} for customer {customer_id!r}") from None


# --- the key topic's records -------------------------------------------------------------------


def record_key(customer_id: str, kid: bytes) -> bytes:
    return orjson.dumps([customer_id, kid.hex()])


def parse_record_key(raw: bytes) -> tuple[str, bytes]:
    customer_id, kid = orjson.loads(raw)
    return customer_id, bytes.fromhex(kid)


def record_value(key: bytes, created_at: int) -> bytes:
    return orjson.dumps({"key": base64.b64encode(key).decode(), "created_at": created_at})


def partition_for(customer_id: str, partitions: int) -> int:
    """Where the Java client, aiokafka and Faust put the key `customer_id`."""
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class KeyStore:
    """The key topic through aiokafka: a customer's current key (made on first use), all their keys,
    and shredding them. Keys made here are cached for `cache_seconds`, so a writer seals a
    customer's data under a handful of keys, not one per record."""

    def __init__(self, settings: Settings, *, cache_seconds: float = 3600, cache_size: int = 100_000, clock=time.time):
        self.settings = settings
        self.topic = settings.topic(KEY_TOPIC)
        self.cache_seconds, self.cache_size, self.clock = cache_seconds, cache_size, clock
        self._cache: OrderedDict[str, tuple[bytes, bytes, float]] = OrderedDict()
        self._making: dict[str, asyncio.Future] = {}
        self._producer: AIOKafkaProducer | None = None
        self._partitions = 0

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **security.aiokafka_options(self.settings), enable_idempotence=True, acks="all", request_timeout_ms=15_000
        )
        await self._producer.start()
        partitions = await self._producer.partitions_for(self.topic)
        if not partitions:
            await self.stop()
            raise RuntimeError(f"topic {self.topic} does not exist: create it with `aftersale topics`")
        self._partitions = len(partitions)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> "KeyStore":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "KeyStore.start() first"
        return self._producer

    def _partition(self, customer_id: str) -> int:
        return partition_for(customer_id, self._partitions)

    # --- writing ---------------------------------------------------------------------------

    async def current_key(self, customer_id: str) -> tuple[bytes, bytes]:
        """(key id, key) to seal with: a cached one, else a new one, acknowledged before it is used
        (so nothing is ever sealed under a key the topic does not hold)."""
        cached = self._cache.get(customer_id)
        if cached and self.clock() - cached[2] < self.cache_seconds:
            return cached[0], cached[1]
        making = self._making.get(customer_id)
        if making is not None:  # one new key per customer at a time
            return await asyncio.shield(making)
        future = self._making[customer_id] = asyncio.get_running_loop().create_future()
        try:
            kid, key = os.urandom(KID_BYTES), AESGCM.generate_key(bit_length=256)
            await self._send(customer_id, record_key(customer_id, kid), record_value(key, int(self.clock() * 1000)))
            self._cache[customer_id] = (kid, key, self.clock())
            self._cache.move_to_end(customer_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            future.set_result((kid, key))
            return kid, key
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            del self._making[customer_id]

    async def seal(self, customer_id: str, plaintext: str | bytes) -> str:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        kid, key = await self.current_key(customer_id)
        return seal(customer_id, kid, key, data)

    async def _send(self, customer_id: str, key: bytes, value: bytes | None) -> None:
        ack = await self.producer.send(self.topic, value, key=key, partition=self._partition(customer_id))
        await ack

    # --- reading ---------------------------------------------------------------------------

    async def keys_of(self, customer_id: str) -> dict[bytes, tuple[bytes, int]]:
        """Every live key of the customer: key id -> (key, created_at), read from their partition up
        to its current end (so every key acknowledged before the call is seen)."""
        found: dict[bytes, tuple[bytes, int]] = {}
        tp = TopicPartition(self.topic, self._partition(customer_id))
        consumer = AIOKafkaConsumer(
            **security.aiokafka_options(self.settings),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for message in batches.get(tp, ()):
                    owner, kid = parse_record_key(message.key)
                    if owner != customer_id:
                        continue
                    if message.value is None:
                        found.pop(kid, None)
                    else:
                        value = orjson.loads(message.value)
                        found[kid] = (base64.b64decode(value["key"]), int(value["created_at"]))
        finally:
            await consumer.stop()
        return found

    async def unseal(self, customer_id: str, sealed: str | bytes) -> bytes:
        keys = await self.keys_of(customer_id)
        return unseal(customer_id, {kid: key for kid, (key, _) in keys.items()}, sealed)

    # --- shredding -------------------------------------------------------------------------

    async def shred(self, customer_id: str, *, older_than_ms: int | None = None) -> int:
        """Tombstone the customer's keys (those created before `older_than_ms`, if given); returns
        how many. Acknowledged before it returns; repeating it is harmless."""
        keys = await self.keys_of(customer_id)
        doomed = [kid for kid, (_, created) in keys.items() if older_than_ms is None or created < older_than_ms]
        for kid in doomed:
            await self._send(customer_id, record_key(customer_id, kid), None)
        cached = self._cache.get(customer_id)
        if cached and cached[0] in doomed:
            del self._cache[customer_id]
        return len(doomed)

    def forget(self, customer_id: str) -> None:
        """Drop the cached key (another process shredded it)."""
        self._cache.pop(customer_id, None)


class Erasure:
    """Erasing a customer, in two named steps, each safe to repeat: a crash between them is healed by
    asking again (the endpoint and the CLI answer an error then, never half a success).

    1. `shred_keys`: tombstone every key of the customer and every unattributed key, acknowledged.
       From then on nothing sealed for them opens, in any topic, dead letter or backup.
    2. `request_state_erasure`: produce the ErasureRequest (key = customer id), acknowledged. The
       worker that owns the customer deletes their state and their orders' (tombstones in the
       changelogs), lets their schedules lapse and drops them from its recent decisions; the views
       answer 404 from then on.
    """

    def __init__(self, settings: Settings, keys: KeyStore, producer: AIOKafkaProducer, codec):
        self.settings, self.keys, self.producer, self.codec = settings, keys, producer, codec

    async def shred_keys(self, customer_id: str) -> int:
        return await self.keys.shred(customer_id) + await self.keys.shred(UNATTRIBUTED)

    async def request_state_erasure(self, customer_id: str, order_ids: list[str], source: str) -> str:
        now = int(time.time() * 1000)
        event_id = f"erasure:{customer_id}:{now}"
        value = self.codec.encode(
            "erasure-requests",
            {
                "event_id": event_id,
                "event_time": now,
                "source": source,
                "customer_id": customer_id,
                "order_ids": list(order_ids),
            },
        )
        await (await self.producer.send(self.settings.topic("erasure-requests"), value, key=customer_id.encode()))
        return event_id

    async def run(self, customer_id: str, order_ids: list[str] = (), source: str = "api") -> dict:
        if not customer_id:
            raise ValueError("customer_id must not be empty")
        shredded = await self.shred_keys(customer_id)
        event_id = await self.request_state_erasure(customer_id, list(order_ids), source)
        log.info("erasure of customer %s: %d keys shredded, request %s", customer_id, shredded, event_id)
        return {"customer_id": customer_id, "keys_shredded": shredded, "request": event_id}


async def erase(settings: Settings, customer_id: str, order_ids: list[str] = (), source: str = "api") -> dict:
    """One erasure with clients of its own (erasures are rare: a few a day)."""
    from .producer import make_codec

    async with KeyStore(settings) as keys:
        return await Erasure(settings, keys, keys.producer, make_codec(settings)).run(customer_id, order_ids, source)
