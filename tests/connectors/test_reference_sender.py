"""The reference sender on a real broker, delivering to a real local HTTP server and a real SMTP
server: retries, signatures, idempotency keys, send_at/expires_at, dead letters, committed offsets."""

from __future__ import annotations

import asyncio
import email
import json
import time
from collections import Counter

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from confluent_kafka import Consumer, TopicPartition

from connectors.sender import Sender
from connectors.settings import SenderSettings
from connectors.signatures import verify_body
from deploy.broker import free_port
from streams.core.ids import intent_id
from streams.core.model import ContentHints, ItemHint, MessageIntent, to_record
from streams.producer import EventProducer, make_codec
from streams.tools.watch import OutputReader

pytestmark = pytest.mark.integration

SECRET = "sender-hmac-secret"
DIRECTORY = {
    "C-mail": {"email": "mara.lindqvist@example.com", "phone": "+4915112345678"},
    "C-later": {"email": "jonas.weber@example.com"},
    "C-gone": {"email": "gone@example.com"},
    "flaky-1": {"phone": "+4915100000001"},
}


def make_intent(
    customer_id: str,
    channel: str,
    intent_type: str = "shipped",
    send_in: float = 0.0,
    expires_in: float = 3600.0,
    order_id: str = "5829381734601",
) -> MessageIntent:
    now = int(time.time() * 1000)
    return MessageIntent(
        intent_id=intent_id(customer_id, order_id, intent_type, f"{intent_type}:1Z999", channel),
        decided_at=now,
        order_id=order_id,
        customer_id=customer_id,
        intent_type=intent_type,
        kind="transactional",
        channel=channel,
        send_at=now + int(send_in * 1000),
        expires_at=now + int(expires_in * 1000),
        priority="normal",
        content=ContentHints(
            items=[ItemHint("TR2-39-SLATE", "Trail Runner 2", "footwear", 1)],
            category="footwear",
            carrier="ups",
            tracking_number="1Z999AA10123456784",
        ),
        reason_codes=["order_fulfilled"],
        source_event_id="shopify:fulfillment:4890123456789",
        locale="de-DE",
        time_zone="Europe/Berlin",
    )


class Receiver:
    """A notification service: checks signature and idempotency key; customers named flaky-* fail
    twice with 503, broken-* always 500, reject-* get 422."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.failed: Counter = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(body)
        call = {
            "key": request.headers.get("Idempotency-Key"),
            "payload": payload,
            "signed": verify_body(SECRET, body, request.headers.get("X-Aftersale-Signature")),
        }
        call["status"] = self._answer(call, payload["intent"]["customer_id"])
        self.calls.append(call)
        return web.Response(
            status=call["status"],
            text="database on fire" if call["status"] == 500 else "unknown template" if call["status"] == 422 else "",
            headers={"Retry-After": "0"},
        )

    def _answer(self, call: dict, customer: str) -> int:
        if not call["signed"] or call["key"] != call["payload"]["intent"]["intent_id"]:
            return 401
        if customer.startswith("flaky") and self.failed[call["key"]] < 2:
            self.failed[call["key"]] += 1
            return 503
        if customer.startswith("broken"):
            return 500
        if customer.startswith("reject"):
            return 422
        return 200


class Mailbox:
    """aiosmtpd handler: keeps messages; refuses gone@ like a mail server with no such user."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message, float]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content), time.time()))
        return "250 Message accepted for delivery"


@pytest.fixture
async def receiver():
    handler = Receiver()
    app = web.Application()
    app.router.add_post("/intents", handler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    handler.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/intents"
    yield handler
    await runner.cleanup()


@pytest.fixture
def mailbox():
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "customers.json"
    path.write_text(json.dumps(DIRECTORY))
    return path


def produce(settings, items) -> list[bytes]:
    """Intents (or raw bytes) to <app>.intents, keyed by customer id as the engine does."""
    producer, codec, sent = EventProducer(settings), make_codec(settings), []
    for item in items:
        value = item if isinstance(item, bytes) else codec.encode("intents", item)
        producer.send("intents", item.customer_id if isinstance(item, MessageIntent) else "?", value)
        sent.append(value)
    producer.flush()
    return sent


async def run_sender(settings, config: SenderSettings, done, timeout: float = 30.0) -> Sender:
    """Run a sender until done() holds, then stop it the way a shutdown does."""
    sender = Sender(settings, config)
    await sender.start()
    task = asyncio.create_task(sender.run())
    deadline = time.monotonic() + timeout
    try:
        while not done(sender) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        while sender.in_flight and time.monotonic() < deadline:  # let offsets catch up
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # one more loop turn commits
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sender.stop()
    return sender


async def dead_letters(settings, count: int) -> list[tuple[bytes, dict]]:
    reader = OutputReader(settings, make_codec(settings), ["sender-dead-letters"])
    try:
        got = await asyncio.to_thread(reader.collect, lambda seen: len(seen) >= count, 30.0, 0.5)
    finally:
        reader.close()
    return [(key, record) for _topic, key, record in got]


def committed(settings) -> int:
    """Sum of the sender group's committed offsets over the intents partitions."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.app_id}-sender"})
    try:
        tps = consumer.committed(
            [TopicPartition(settings.topic("intents"), p) for p in range(settings.partitions)], timeout=10
        )
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def metric(sender: Sender, name: str, **labels) -> float:
    """A counter of the sender, summed over the labels not given."""
    return sum(
        sample.value
        for family in sender.metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def fast(**overrides) -> SenderSettings:
    return SenderSettings(
        **{"http_secret": SECRET, "backoff_base": 0.01, "backoff_cap": 0.05, "max_attempts": 4, **overrides}
    )


async def test_http_retries_until_delivered_with_signature_and_idempotency_key(kafka_settings, receiver, directory):
    sms, push = make_intent("flaky-1", "sms", "out_for_delivery"), make_intent("flaky-2", "push", "delivered")
    produce(kafka_settings, [sms, push, sms])  # the second copy of the sms intent is a redelivery
    sender = await run_sender(
        kafka_settings,
        fast(http_url=receiver.url, directory=directory),
        lambda s: sum(receiver.failed.values()) >= 4 and len(receiver.calls) >= 6,
    )
    assert all(call["signed"] for call in receiver.calls)
    assert Counter(call["key"] for call in receiver.calls) == {sms.intent_id: 3, push.intent_id: 3}  # 2 x 503, then 200
    delivered = {call["key"]: call["payload"] for call in receiver.calls if call["status"] == 200}
    assert delivered[sms.intent_id]["intent"] == to_record(sms)
    assert delivered[sms.intent_id]["recipient"] == {"phone": "+4915100000001"}
    assert delivered[push.intent_id]["recipient"] is None  # push tokens live with the endpoint
    assert metric(sender, "aftersale_sender_intents_total", channel="sms", outcome="delivered") == 1
    assert metric(sender, "aftersale_sender_intents_total", channel="sms", outcome="duplicate") == 1
    assert metric(sender, "aftersale_sender_attempts_total", transport="http", result="retryable") == 4
    assert committed(kafka_settings) == 3


async def test_email_over_smtp_with_directory_send_at_expiry_and_dead_letters(kafka_settings, mailbox, directory):
    now_mail = make_intent("C-mail", "email", "shipped")
    later = make_intent("C-later", "email", "out_for_delivery", send_in=1.5)
    no_address = make_intent("C-unknown", "email", "shipped")
    expired = make_intent("C-mail", "email", "delivered", expires_in=-1)
    refused = make_intent("C-gone", "email", "shipped")
    sent = produce(kafka_settings, [now_mail, later, no_address, expired, refused, b"\x00\x00\x00\x00\x05garbage"])
    started = time.time()
    await run_sender(
        kafka_settings,
        fast(smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_from="orders@northpeak.example", directory=directory),
        lambda s: len(mailbox.messages) >= 2 and metric(s, "aftersale_sender_dead_letters_total") >= 4,
    )
    assert [rcpt for rcpt, _m, _t in mailbox.messages] == [["mara.lindqvist@example.com"], ["jonas.weber@example.com"]]
    first, second = mailbox.messages[0][1], mailbox.messages[1][1]
    assert (first["Subject"], first["From"], first["Message-ID"]) == (
        "Your order is on its way",
        "orders@northpeak.example",
        f"<{now_mail.intent_id}@northpeak.example>",
    )
    assert first["X-Aftersale-Intent-Id"] == now_mail.intent_id
    assert json.loads(first["X-SMTPAPI"])["unique_args"] == {
        "customer_id": "C-mail",
        "intent_id": now_mail.intent_id,
        "order_id": "5829381734601",
    }
    assert "Tracking: ups 1Z999AA10123456784" in first.get_payload()
    assert second["Subject"] == "Your parcel arrives today"
    assert mailbox.messages[1][2] >= later.send_at / 1000 >= started  # not before send_at
    letters = await dead_letters(kafka_settings, 4)
    reasons = {record["reason"]: (key, record) for key, record in letters}
    assert set(reasons) == {"no_address", "expired", "smtp_rejected", "undecodable"}
    assert reasons["no_address"][1]["value"] == sent[2] and reasons["no_address"][0] == b"C-unknown"
    assert reasons["expired"][1]["value"] == sent[3]
    assert "User unknown" in reasons["smtp_rejected"][1]["error"]
    assert all(r["topic"] == kafka_settings.topic("intents") and r["offset"] >= 0 for _k, r in letters)
    assert committed(kafka_settings) == 6


async def test_a_permanently_failing_endpoint_ends_in_the_dead_letter_topic(kafka_settings, receiver):
    broken, rejected = make_intent("broken-1", "sms"), make_intent("reject-1", "push")
    sent = produce(kafka_settings, [broken, rejected])
    await run_sender(kafka_settings, fast(http_url=receiver.url, max_attempts=3), lambda s: len(receiver.calls) >= 4)
    assert Counter(call["key"] for call in receiver.calls) == {broken.intent_id: 3, rejected.intent_id: 1}
    letters = {record["reason"]: record for _key, record in await dead_letters(kafka_settings, 2)}
    assert set(letters) == {"retries_exhausted", "http_422"}
    assert letters["retries_exhausted"]["value"] == sent[0]
    assert "3 attempts; last: http 500: database on fire" in letters["retries_exhausted"]["error"]
    assert letters["http_422"]["error"] == "unknown template"
    assert committed(kafka_settings) == 2
