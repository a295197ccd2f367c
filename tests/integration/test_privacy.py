"""Erasure reaches everything: after a customer's data came in through the real ingest service and
the real worker decided on it, one erasure request (POST /api/erasure) leaves none of their contact
details or free text readable in any topic (inputs, outputs, dead letters, connector-unknown,
changelogs, keys), in RocksDB or in any view, and no state of them (streams/privacy.py)."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams import webauth
from streams.privacy import Unreadable
from streams.producer import EventProducer, make_codec
from streams.tools.worker_process import http_get

from .test_engine import reader, settings, workers  # noqa: F401  (fixtures)

sys.path.insert(0, str(Path(__file__).parents[1] / "connectors"))
from connector_helpers import IngestHarness, raw, signed  # noqa: E402

pytestmark = pytest.mark.integration

CUSTOMER, ORDER = "7382910456", "5829381734601"  # the customer and order of the connector fixtures
PRIVATE_MAIL, PRIVATE_PHONE = "mara.private@example.org", "+49 151 98765432"
FREE_TEXT = "leave it with my neighbour Jonas Berg at number 23"
# What the fixtures carry about the customer, and what they write to support.
PERSONAL = [
    "mara.lindqvist@example.com",
    "+4915112345678",
    "Lindqvist",
    "Leopoldstrasse 21",
    PRIVATE_MAIL,
    PRIVATE_PHONE,
    FREE_TEXT,
    "stuck in customs",
]
SEALED = re.compile(rb"sealed:v1:[A-Za-z0-9_=-]+")


def shopify(topic: str, webhook_id: str) -> dict:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "northpeak.myshopify.com",
    }


def everything(settings) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every record of every topic of the app (prefix `<app>.` and changelogs `<app>-`), decompressed."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    topics = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith(f"{settings.app_id}.") or t.startswith(f"{settings.app_id}-")
    ]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"scan-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    out, parts, ends = [], [], {}
    for topic in topics:
        for p in admin.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                parts.append(TopicPartition(topic, p, low))
                ends[(topic, p)] = high
    consumer.assign(parts)
    done: set = set()
    deadline = time.monotonic() + 60
    while len(done) < len(parts) and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.5):
            if msg.error():
                continue
            out.append((msg.topic(), msg.key(), msg.value()))
            if msg.offset() + 1 >= ends[(msg.topic(), msg.partition())]:
                done.add((msg.topic(), msg.partition()))
    consumer.close()
    assert len(done) == len(parts), "not every topic could be read to its end"
    assert len(topics) >= 15
    return out


def post_json(url: str, body: dict, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **webauth.headers(token)}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_after_erasure_nothing_of_the_customer_is_readable_anywhere(settings, workers, reader, tmp_path):  # noqa: F811
    worker = workers()
    ingest = IngestHarness(settings)
    try:
        ticket = json.loads(raw("zendesk_ticket_created.json"))
        ticket["detail"]["description"] += f" Call me on {PRIVATE_PHONE} or {PRIVATE_MAIL}, or {FREE_TEXT}."
        unknown = json.dumps({"id": 1, "email": "mara.lindqvist@example.com", "phone": "+4915112345678"}).encode()
        for provider, body, headers in [
            ("shopify", raw("shopify_orders_create.json"), shopify("orders/create", "wh-1")),
            ("zendesk", json.dumps(ticket).encode(), {}),
            ("shopify", unknown, shopify("customers/create", "wh-2")),  # kept raw in connector-unknown
        ]:
            status, answer = ingest.post(provider, body, signed(provider, body, **headers))
            assert status == 200, answer
        # A producer writing to the input topics itself seals text the same way; this one is keyed
        # wrongly, so the worker dead-letters it with its original bytes.
        sealed_by_producer = ingest.thread.run(ingest.service.keys.seal(CUSTOMER, f"write to {PRIVATE_MAIL}"))
        producer = EventProducer(settings)
        producer.send(
            "support",
            "not-the-customer",
            {
                "event_id": "direct-1",
                "event_time": 1_772_698_400_000,
                "source": "helpdesk",
                "type": "message",
                "customer_id": CUSTOMER,
                "ticket_id": "T-9",
                "from_customer": True,
                "text": sealed_by_producer,
            },
        )
        producer.flush()
        reader.collect(lambda got: any(t == "dead-letters" for t, _k, _r in got), timeout=60)
        worker.wait_for(
            lambda: http_get(worker.url(f"/customers/{CUSTOMER}"), token=worker.token)[0] == 200, 60, "customer state"
        )

        before = everything(settings)
        sealed = [(t, token) for t, k, v in before for token in SEALED.findall((k or b"") + b"\0" + (v or b""))]
        # Sealed in the support input, in connector-unknown and in the dead letter; openable before erasure.
        assert {t.removeprefix(f"{settings.app_id}.") for t, _ in sealed} >= {
            "support",
            "connector-unknown",
            "dead-letters",
        }
        opened = [ingest.unseal("" if "connector-unknown" in t else CUSTOMER, token) for t, token in sealed]
        assert any(FREE_TEXT.encode() in text for text in opened)
        assert any(b"mara.lindqvist@example.com" in text for text in opened)
        assert_nothing_in_the_clear(before)  # contact details and text never travel in the clear

        status, done = post_json(worker.url("/api/erasure"), {"customer_id": CUSTOMER}, worker.token)
        assert status == 202 and done["keys_shredded"] >= 2, done  # the customer's key and the unattributed one
        assert post_json(worker.url("/api/erasure"), {"customer_id": CUSTOMER}, "wrong")[0] == 401
        assert post_json(worker.url("/api/erasure"), {"customer_id": " "}, worker.token)[0] == 400
        assert post_json(worker.url("/api/erasure"), {"order_ids": ["O-1"]}, worker.token)[0] == 400

        for path in (f"/customers/{CUSTOMER}", f"/orders/{ORDER}"):
            worker.wait_for(lambda p=path: http_get(worker.url(p), token=worker.token)[0] == 404, 60, f"{path} 404")
        ops = http_get(worker.url("/api/ops"), timeout=5, token=worker.token)[1]
        assert CUSTOMER.encode() not in ops and ORDER.encode() not in ops

        after = everything(settings)
        assert_nothing_in_the_clear(after)
        tokens = {(t, token) for t, k, v in after for token in SEALED.findall((k or b"") + b"\0" + (v or b""))}
        assert tokens >= set(sealed)  # the copies are still there: only their keys are gone
        for _topic, token in tokens:
            for owner in (CUSTOMER, ""):
                with pytest.raises(Unreadable):
                    ingest.unseal(owner, token)
        # Nor in the worker's RocksDB files (never written there).
        for path in Path(settings.data_dir).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not [p for p in PERSONAL if p.encode() in data], path
    finally:
        ingest.close()


def assert_nothing_in_the_clear(records) -> None:
    found = [
        (topic, p) for topic, key, value in records for p in PERSONAL if p.encode() in (key or b"") + (value or b"")
    ]
    assert not found, found


def test_the_erase_command_shreds_the_keys_and_requests_the_state_erasure(settings, tmp_path):  # noqa: F811
    import asyncio
    import os
    import subprocess

    from streams.privacy import KeyStore
    from streams.tools.watch import OutputReader

    from .worker import REPO

    async def make_keys() -> tuple[str, str]:
        async with KeyStore(settings) as keys:
            return await keys.seal("C-Z", "my address is Hauptstrasse 1"), await keys.seal("C-Y", "keep me")

    erased, kept = asyncio.run(make_keys())
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AFTERSALE_APP_ID": settings.app_id,
        "AFTERSALE_PARTITIONS": str(settings.partitions),
    }
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "erase", "C-Z", "--order", "O-Z"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["keys_shredded"] == 1

    async def open_both():
        async with KeyStore(settings) as keys:
            with pytest.raises(Unreadable):
                await keys.unseal("C-Z", erased)
            return await keys.unseal("C-Y", kept)

    assert asyncio.run(open_both()) == b"keep me"  # another customer's key is untouched
    reader = OutputReader(settings, make_codec(settings), ["erasure-requests"])
    try:
        ((_topic, key, request),) = reader.collect(lambda got: len(got) >= 1, timeout=30)
    finally:
        reader.close()
    assert key == b"C-Z" and (request["customer_id"], request["order_ids"], request["source"]) == (
        "C-Z",
        ["O-Z"],
        "cli",
    )
