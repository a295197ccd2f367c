"""The ingest service over real HTTP into a real Kafka broker, read back from our topics."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
from aiokafka.errors import KafkaConnectionError

from connectors.settings import IngestSettings
from connectors.sink import EventSink
from streams.core import model

from connector_helpers import SECRETS, IngestHarness, load, raw, signed

pytestmark = pytest.mark.integration

ORDER_ID, CUSTOMER_ID = "5829381734601", "7382910456"


def shopify(topic: str, webhook_id: str) -> dict:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "northpeak.myshopify.com",
        "X-Shopify-API-Version": "2026-01",
    }


def post_fixture(ingest, provider, name, **headers):
    body = raw(name)
    return ingest.post(provider, body, signed(provider, body, **headers))


def test_one_order_through_every_provider_lands_on_our_topics(ingest, read_topics):
    answers = [
        post_fixture(ingest, "shopify", "shopify_orders_create.json", **shopify("orders/create", "wh-1")),
        post_fixture(ingest, "shopify", "shopify_fulfillments_create.json", **shopify("fulfillments/create", "wh-2")),
        # The same fulfilment again inside orders/updated: same event id, not produced twice.
        post_fixture(ingest, "shopify", "shopify_orders_updated_fulfilled.json", **shopify("orders/updated", "wh-3")),
        post_fixture(ingest, "shopify", "shopify_fulfillments_update.json", **shopify("fulfillments/update", "wh-4")),
        post_fixture(ingest, "shopify", "shopify_refunds_create.json", **shopify("refunds/create", "wh-5")),
        post_fixture(ingest, "aftership", "aftership_tracking_update.json"),
        # EasyPost has no order id: found through the tracking number of the Shopify fulfilment.
        post_fixture(ingest, "easypost", "easypost_tracker_updated.json"),
        post_fixture(ingest, "sendgrid", "sendgrid_events.json"),
        post_fixture(ingest, "klaviyo", "klaviyo_events.json", **{"Klaviyo-Webhook-Id": "01KP4928STE8FKCWB6WDHZ4ZB7"}),
        post_fixture(ingest, "zendesk", "zendesk_ticket_created.json"),
        post_fixture(ingest, "zendesk", "zendesk_comment_added.json"),
        post_fixture(ingest, "gorgias", "gorgias_ticket_updated.json"),
    ]
    assert [status for status, _ in answers] == [200] * len(answers), answers
    produced = [body["produced"] for _, body in answers]
    assert produced == [2, 1, 0, 1, 1, 1, 1, 7, 3, 1, 1, 3]
    assert answers[2][1]["duplicate"] == 2  # paid and fulfilled, already accepted via create/fulfillments
    expected = sum(produced) + 1  # + the Klaviyo event without a profile external id, on connector-unknown
    out = read_topics(lambda got: len(got) >= expected, quiet=0.5)
    assert len(out) == expected
    by_topic = {}
    for topic, key, record in out:
        by_topic.setdefault(topic, []).append((key.decode(), record))
    orders = by_topic["orders"]
    assert [r["type"] for _, r in orders] == ["placed", "paid", "fulfilled", "refunded"]  # one partition, in order
    assert {k for k, _ in orders} == {ORDER_ID}
    scans = by_topic["carrier-scans"]
    assert [(k, r["source"], r["status"], r["shipment_id"]) for k, r in scans] == [
        (ORDER_ID, "shopify", "out_for_delivery", "1Z999AA10123456784"),
        (ORDER_ID, "aftership", "exception", "1Z999AA10123456784"),
        (ORDER_ID, "easypost", "out_for_delivery", "1Z999AA10123456784"),
    ]
    assert all(r["customer_id"] == CUSTOMER_ID for _, r in scans)  # learned from the order webhook
    assert len(by_topic["engagement"]) == 10 and len(by_topic["support"]) == 5
    # Every record is what the engine accepts, keyed as it requires.
    for key, record in orders:
        assert model.order_event_from(record).order_id == key
    for key, record in by_topic["engagement"]:
        assert model.engagement_event_from(record).customer_id == key
    for key, record in by_topic["support"]:
        assert model.support_event_from(record).customer_id == key
    # What customers wrote travels sealed with their key, scored for sentiment before it was sealed.
    texts = [(k, r) for k, r in by_topic["support"] if r["text"]]
    assert texts and all(r["text"].startswith("sealed:v1:") for _, r in texts)
    opened = [ingest.unseal(k, r["text"]).decode() for k, r in texts]
    assert any(t.startswith("Hi, my order #1042 is stuck in customs") for t in opened), opened
    assert all(r["sentiment"] is not None for _, r in texts if r["from_customer"])
    (unknown,) = by_topic["connector-unknown"]
    assert unknown[0] == "klaviyo" and unknown[1]["reason"] == "unmapped"
    assert unknown[1]["value"].startswith(b"sealed:v1:")  # raw bodies carry e-mail addresses and names
    assert json.loads(ingest.unseal("", unknown[1]["value"]))["external_id"] == "9Yd4bO7Pu3V"


def test_a_retried_webhook_is_answered_200_without_producing_again(ingest, read_topics):
    headers = shopify("orders/create", "wh-retry")
    first = post_fixture(ingest, "shopify", "shopify_orders_create.json", **headers)
    again = post_fixture(ingest, "shopify", "shopify_orders_create.json", **headers)
    assert first == (
        200,
        {"status": "accepted", "produced": 2, "duplicate": 0, "ignored": 0, "unknown": 0, "unmapped": 0},
    )
    assert again == (200, {"status": "duplicate", "produced": 0})
    # A SendGrid batch retried with one new event: only the new one is produced.
    events = load("sendgrid_events.json")[:3]
    body = json.dumps(events).encode()
    assert ingest.post("sendgrid", body, signed("sendgrid", body))[1]["produced"] == 2
    events.append({**events[1], "event": "click", "sg_event_id": "n3w-cl1ck", "url": "https://shop.example.com/"})
    body = json.dumps(events).encode()
    status, answer = ingest.post("sendgrid", body, signed("sendgrid", body))
    assert (status, answer["produced"], answer["duplicate"]) == (200, 1, 2)
    out = read_topics(lambda got: len(got) >= 5, quiet=1.0)
    assert sorted(r["event_id"] for _t, _k, r in out) == sorted(
        [
            f"shopify:{ORDER_ID}:placed",
            f"shopify:{ORDER_ID}:paid",
            "sendgrid:rWVYmVk90MjZJ9iohOBa3w==",
            "sendgrid:FOTFFO0ecsBE-zxFXfs6WA==",
            "sendgrid:n3w-cl1ck",
        ]
    )
    metrics = ingest.get("/metrics")[1]
    assert 'aftersale_ingest_requests_total{outcome="duplicate",provider="shopify"} 1.0' in metrics
    assert 'aftersale_ingest_events_total{outcome="produced",provider="sendgrid"} 3.0' in metrics
    # /metrics needs the views' token (webhooks their signature, /health nothing).
    status, body = ingest.get("/metrics", token=False)
    assert status == 401 and "token" in body["error"]
    assert ingest.get("/health", token=False)[0] == 200


def test_a_return_lands_on_the_order_and_tracker_scans_of_its_label_find_the_order(ingest, read_topics):
    """A Shopify return from request to close; EasyPost scans of the return label's parcel are
    mapped to the original order through the tracking number the label taught the directory."""
    label_tracking = "JD0146000066381792"  # the reverse delivery's "jd01 4600 0066 3817 92", normalized
    scan = load("easypost_tracker_updated.json")
    scan["id"] = "evt_return_label_1"
    scan["result"].update(
        tracking_code=label_tracking, carrier="DHLExpress", status="in_transit", status_detail="in_transit"
    )
    scan_body = json.dumps(scan).encode()
    answers = [
        post_fixture(ingest, "shopify", "shopify_orders_create.json", **shopify("orders/create", "wr-1")),
        post_fixture(ingest, "shopify", "shopify_returns_request.json", **shopify("returns/request", "wr-2")),
        post_fixture(ingest, "shopify", "shopify_returns_approve.json", **shopify("returns/approve", "wr-3")),
        post_fixture(
            ingest,
            "shopify",
            "shopify_reverse_deliveries_attach_deliverable.json",
            **shopify("reverse_deliveries/attach_deliverable", "wr-4"),
        ),
        ingest.post("easypost", scan_body, signed("easypost", scan_body)),
        post_fixture(ingest, "shopify", "shopify_refunds_create_return.json", **shopify("refunds/create", "wr-5")),
        post_fixture(ingest, "shopify", "shopify_returns_close.json", **shopify("returns/close", "wr-6")),
        # Shopify's dispose payload names no return or order: recorded as unmapped, body kept.
        post_fixture(
            ingest,
            "shopify",
            "shopify_reverse_fulfillment_orders_dispose.json",
            **shopify("reverse_fulfillment_orders/dispose", "wr-7"),
        ),
        # The same return request delivered again under another webhook id: the same event.
        post_fixture(ingest, "shopify", "shopify_returns_request.json", **shopify("returns/request", "wr-8")),
    ]
    assert [status for status, _ in answers] == [200] * len(answers), answers
    assert [body["produced"] for _, body in answers] == [2, 1, 1, 1, 1, 1, 1, 0, 0]
    assert (answers[7][1]["unmapped"], answers[8][1]["duplicate"]) == (1, 1)
    out = read_topics(lambda got: len(got) >= 9, quiet=0.5)
    by_topic = {}
    for topic, key, record in out:
        by_topic.setdefault(topic, []).append((key.decode(), record))
    orders = by_topic["orders"]
    assert [r["type"] for _, r in orders] == [
        "placed",
        "paid",
        "return_requested",
        "return_approved",
        "return_label_created",
        "refunded",
        "return_closed",
    ]
    for key, record in orders:
        event = model.order_event_from(record)
        assert (key, event.customer_id) == (ORDER_ID, CUSTOMER_ID)
    assert {r["return_info"]["return_id"] for _, r in orders[2:]} == {"9934127105"}
    assert orders[4][1]["return_info"]["label"]["shipment_id"] == label_tracking
    assert orders[5][1]["return_info"]["refund_method"] == "store_credit"
    ((key, parcel),) = by_topic["carrier-scans"]
    assert (key, parcel["source"], parcel["shipment_id"], parcel["status"], parcel["customer_id"]) == (
        ORDER_ID,
        "easypost",
        label_tracking,
        "in_transit",
        CUSTOMER_ID,
    )
    assert model.carrier_scan_from(parcel).order_id == ORDER_ID
    ((provider, unmapped),) = by_topic["connector-unknown"]
    assert (provider, unmapped["topic"], unmapped["reason"]) == (
        "shopify",
        "shopify:reverse_fulfillment_orders/dispose",
        "unmapped",
    )


NO_TIME = b'{"id": 1, "customer": {"id": 2}}'


def test_rejected_requests_answer_with_a_reason_and_produce_nothing(ingest, read_topics):
    body = raw("shopify_orders_create.json")
    cases = [
        (
            "shopify",
            body,
            {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "bm90IGl0"},
            401,
            "does not match",
        ),
        ("shopify", body, shopify("orders/create", "w"), 401, "missing X-Shopify-Hmac-Sha256"),
        ("shopify", body[:200], signed("shopify", body[:200], **shopify("orders/create", "w")), 400, "not JSON"),
        (
            "shopify",
            NO_TIME,
            signed("shopify", NO_TIME, **shopify("orders/create", "w")),
            400,
            "order.created_at is missing",
        ),
        (
            "zendesk",
            raw("zendesk_ticket_created.json"),
            signed("zendesk", raw("zendesk_ticket_created.json"), now=1_000_000_000 + 0.0),
            401,
            "tolerance",
        ),
        ("sendgrid", b'{"event": "open"}', signed("sendgrid", b'{"event": "open"}'), 400, "JSON array"),
        ("gorgias", raw("gorgias_ticket_created.json"), {"X-Aftersale-Token": "guess"}, 401, "wrong"),
    ]
    for provider, payload, headers, status, reason in cases:
        got_status, answer = ingest.post(provider, payload, headers)
        assert (got_status, answer["error"]) == (status, {400: "malformed", 401: "bad_signature"}[status]), answer
        assert reason in answer["reason"], answer
    assert ingest.post("mailchimp", b"{}", {})[0] == 404
    assert ingest.service.sink.acknowledged == 0
    assert read_topics(lambda got: False, timeout=2.0) == []


def test_an_endpoint_without_a_secret_answers_503_and_health_says_why(kafka_settings):
    harness = IngestHarness(kafka_settings, IngestSettings(secrets={"shopify": SECRETS["shopify"]}))
    try:
        status, answer = harness.post("zendesk", raw("zendesk_ticket_created.json"), {})
        assert (status, answer["error"]) == (503, "not_configured")
        assert "AFTERSALE_ZENDESK_SECRET is not set" in answer["reason"]
        status, health = harness.get("/health")
        assert status == 200 and health["producer"] == "started"
        assert health["endpoints"]["shopify"] == "ready"
        assert health["endpoints"]["sendgrid"] == "off: AFTERSALE_SENDGRID_PUBLIC_KEY is not set"
    finally:
        harness.close()


def test_unknown_topics_are_accepted_and_recorded_with_the_raw_body_sealed(ingest, read_topics):
    body = b'{"id": 706405506930370084, "email": "bob@example.com", "accepts_marketing": true}'
    status, answer = ingest.post("shopify", body, signed("shopify", body, **shopify("customers/create", "wh-c")))
    assert (status, answer["unknown"], answer["produced"]) == (200, 1, 0)
    (record,) = [r for _t, _k, r in read_topics(lambda got: len(got) >= 1, topics=["connector-unknown"])]
    assert (record["topic"], record["reason"], record["key"]) == (
        "shopify:customers/create",
        "unknown",
        b"shopify:wh-c",
    )
    assert b"bob@example.com" not in record["value"] and ingest.unseal("", record["value"]) == body
    assert 'aftersale_ingest_events_total{outcome="unknown",provider="shopify"} 1.0' in ingest.get("/metrics")[1]


class UnreachableBroker(EventSink):
    """The real producer, whose first sends fail the way they do while the broker is unreachable."""

    def __init__(self, settings, attempts_before_recovery: int):
        super().__init__(settings)
        self.failures_left = attempts_before_recovery

    async def send_all(self, messages, timeout):
        if self.failures_left:
            self.failures_left -= 1
            raise KafkaConnectionError("broker unreachable")
        await super().send_all(messages, timeout)


def test_a_webhook_the_broker_did_not_acknowledge_is_503_and_its_retry_is_produced(kafka_settings, read_topics):
    harness = IngestHarness(kafka_settings, sink=UnreachableBroker(kafka_settings, 1))
    try:
        headers = shopify("orders/create", "wh-503")
        assert post_fixture(harness, "shopify", "shopify_orders_create.json", **headers)[0] == 503
        # Not remembered as accepted: Shopify's retry is produced, not answered as a duplicate.
        assert post_fixture(harness, "shopify", "shopify_orders_create.json", **headers)[1]["produced"] == 2
        assert len(read_topics(lambda got: len(got) >= 2, quiet=0.5)) == 2
    finally:
        harness.close()


def test_produce_timeout_answers_503(kafka_settings):
    class Slow(EventSink):
        async def send_all(self, messages, timeout):
            await asyncio.sleep(timeout + 0.2)
            raise asyncio.TimeoutError()

    harness = IngestHarness(
        kafka_settings, IngestSettings(secrets=dict(SECRETS), produce_timeout=0.1), sink=Slow(kafka_settings)
    )
    try:
        status, answer = post_fixture(harness, "aftership", "aftership_tracking_update.json")
        assert (status, answer["error"]) == (503, "broker_unavailable")
    finally:
        harness.close()


def test_undecodable_header_bytes_are_rejected_not_a_crash(ingest):
    """Raw bytes on the socket, since an HTTP client only sends valid text headers."""

    async def send(path: bytes, headers: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", ingest.port)
        writer.write(
            b"POST " + path + b" HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n" + headers + b"\r\n{}"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer.split(b"\r\n", 1)[0]

    bad = b"\xff\xfe\xc3"
    for path, headers in [
        (b"/webhooks/gorgias", b"X-Aftersale-Token: " + bad + b"\r\n"),
        (
            b"/webhooks/zendesk",
            b"X-Zendesk-Webhook-Signature: YWJj\r\nX-Zendesk-Webhook-Signature-Timestamp: " + bad + b"\r\n",
        ),
        (b"/webhooks/klaviyo", b"Klaviyo-Signature: abc\r\nKlaviyo-Timestamp: " + bad + b"\r\n"),
        (b"/webhooks/shopify", b"X-Shopify-Topic: " + bad + b"\r\nX-Shopify-Hmac-Sha256: " + bad + b"\r\n"),
    ]:
        assert ingest.thread.run(send(path, headers)) == b"HTTP/1.1 401 Unauthorized", path
    # Signed correctly, but with an undecodable topic and webhook id: recorded as an unknown topic.
    body = b"{}"
    signature = signed("shopify", body)["X-Shopify-Hmac-Sha256"].encode()
    status = ingest.thread.run(
        send(
            b"/webhooks/shopify",
            b"X-Shopify-Hmac-Sha256: "
            + signature
            + b"\r\nX-Shopify-Topic: "
            + bad
            + b"\r\nX-Shopify-Webhook-Id: "
            + bad
            + b"\r\n",
        )
    )
    assert status == b"HTTP/1.1 200 OK"


async def _raw_request(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10.0) -> tuple[bytes, dict]:
    """Sends a request head and some body, never finishing the body, and reads the answer: only a
    server that stops reading at the limit answers at all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout)
        headers = {}
        while (line := await asyncio.wait_for(reader.readline(), timeout)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        return status.strip(), json.loads(body)
    finally:
        writer.close()


def test_bodies_over_the_endpoints_limit_are_413_before_they_are_read(kafka_settings):
    limits = {**IngestSettings().body_limits, "aftership": 64 * 1024}
    harness = IngestHarness(kafka_settings, IngestSettings(secrets=dict(SECRETS), body_limits=limits))
    try:
        # A Content-Length over the limit is answered without reading (no body is ever sent here).
        head = (
            b"POST /webhooks/aftership HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000\r\n\r\n"
        )
        status, answer = harness.thread.run(_raw_request(harness.port, head, []))
        assert (status, answer["error"]) == (b"HTTP/1.1 413 Request Entity Too Large", "too_large")
        assert "65536 bytes" in answer["reason"]
        # Chunked, no Content-Length: answered once the limit is passed, the body still unfinished.
        head = (
            b"POST /webhooks/aftership HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
        status, answer = harness.thread.run(_raw_request(harness.port, head, [chunk] * 5))
        assert (status, answer["error"]) == (b"HTTP/1.1 413 Request Entity Too Large", "too_large")
        # Limits are per endpoint: the same 100 KB is read (and judged on its signature) by Shopify's.
        body = b'{"id": 1,' + b" " * 100_000 + b"}"
        assert harness.post("aftership", body, signed("aftership", body))[0] == 413
        status, answer = harness.post("shopify", body, signed("shopify", body, **shopify("orders/create", "big")))
        assert (status, answer["error"]) == (400, "malformed")
        # Compressed bodies count as aiohttp decompressed them: a small gzip of a large body is 413.
        bomb = gzip.compress(b" " * 1_000_000)
        assert len(bomb) < 64 * 1024
        status, answer = harness.post("aftership", bomb, {"Content-Encoding": "gzip", **signed("aftership", bomb)})
        assert (status, answer["error"]) == (413, "too_large")
        assert ingest_requests(harness, "aftership", "too_large") == 4.0
        assert harness.service.sink.acknowledged == 0
    finally:
        harness.close()


def ingest_requests(harness: IngestHarness, provider: str, outcome: str) -> float:
    line = f'aftersale_ingest_requests_total{{outcome="{outcome}",provider="{provider}"}} '
    found = [row for row in harness.get("/metrics")[1].splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_requests_beyond_the_in_flight_limit_are_429_at_once(kafka_settings):
    harness = IngestHarness(kafka_settings, IngestSettings(secrets=dict(SECRETS), max_in_flight=2))
    body = raw("aftership_tracking_update.json")
    head = (
        b"POST /webhooks/aftership HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    async def hold():
        """A request whose body is half sent: in flight until the rest comes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
        writer.write(head + body[:100])
        await writer.drain()
        return reader, writer

    async def finish(reader, writer):
        writer.write(body[100:])
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return status.strip()

    try:
        held = [harness.thread.run(hold()) for _ in range(2)]
        deadline = time.monotonic() + 5
        while harness.service.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "aftersale_ingest_in_flight 2.0" in harness.get("/metrics")[1]  # /metrics is not limited
        started = time.monotonic()
        status, answer = harness.post("aftership", body, signed("aftership", body))
        assert (status, answer["error"]) == (429, "overloaded") and time.monotonic() - started < 2
        assert harness.get("/health")[0] == 200  # nor is /health
        retry_after = harness.thread.run(_retry_after(harness, body))
        assert retry_after == "1"
        # Held requests go on; once one is done, the next request is taken again.
        assert harness.thread.run(finish(*held[0])) == b"HTTP/1.1 401 Unauthorized"  # unsigned, but handled
        assert harness.post("aftership", body, signed("aftership", body))[0] == 200
        assert harness.thread.run(finish(*held[1])) == b"HTTP/1.1 401 Unauthorized"
        assert ingest_requests(harness, "aftership", "overloaded") == 2.0
        assert "aftersale_ingest_in_flight 0.0" in harness.get("/metrics")[1]
    finally:
        harness.close()


def test_a_body_that_never_finishes_gives_its_slot_back_with_408(kafka_settings):
    harness = IngestHarness(kafka_settings, IngestSettings(secrets=dict(SECRETS), max_in_flight=1, read_timeout=0.5))
    body = raw("aftership_tracking_update.json")

    async def stall():
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
        writer.write(
            b"POST /webhooks/aftership HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:100]
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)  # the rest never comes
        writer.close()
        return status.strip()

    try:
        assert harness.thread.run(stall()) == b"HTTP/1.1 408 Request Timeout"
        assert harness.service.in_flight == 0
        assert harness.post("aftership", body, signed("aftership", body))[0] == 200  # the slot is free again
    finally:
        harness.close()


async def _retry_after(harness: IngestHarness, body: bytes) -> str | None:
    async with harness.session.post(
        harness.url + "/webhooks/aftership", data=body, headers=signed("aftership", body)
    ) as response:
        assert response.status == 429
        return response.headers.get("Retry-After")


def big_order(items: int) -> bytes:
    """An orders/create whose placed event is over a megabyte of Avro: thousands of long-titled items."""
    order = load("shopify_orders_create.json")
    item = order["line_items"][0]
    order["line_items"] = [{**item, "id": i, "sku": f"SKU-{i:06d}", "title": f"{i} " + "x" * 290} for i in range(items)]
    return json.dumps(order).encode()


def test_an_event_too_large_for_kafka_is_413_and_recorded_without_its_body(ingest, read_topics):
    body = big_order(3500)
    assert len(body) < ingest.service.ingest.body_limit("shopify")
    headers = signed("shopify", body, **shopify("orders/create", "wh-big"))
    status, answer = ingest.post("shopify", body, headers)
    assert (status, answer["error"]) == (413, "record_too_large"), answer
    assert "can never be accepted" in answer["reason"] and "1048576" in answer["reason"]
    # Nothing of it is produced (not even the small "paid"); one record without any body says what happened.
    out = read_topics(lambda got: len(got) >= 1, quiet=1.0)
    assert [(topic, key) for topic, key, _r in out] == [("connector-unknown", b"shopify")]
    record = out[0][2]
    assert (record["reason"], record["value"], record["key"], record["topic"]) == (
        "too_large",
        None,
        b"shopify:wh-big",
        f"shopify:{ingest.service.settings.topic('orders')}",
    )
    size = int(record["error"].split(" is ")[1].split()[0])
    assert size > 1_048_576 and "delivery shopify:wh-big" in record["error"]
    assert f"event shopify:{ORDER_ID}:placed" in record["error"]
    metrics = ingest.get("/metrics")[1]
    assert 'aftersale_ingest_requests_total{outcome="record_too_large",provider="shopify"} 1.0' in metrics
    assert 'aftersale_ingest_events_total{outcome="too_large",provider="shopify"} 1.0' in metrics
    # The same delivery again: the same permanent answer, not a duplicate 200.
    assert ingest.post("shopify", body, headers)[0] == 413


def test_a_record_the_broker_refuses_as_too_large_is_413_too(kafka_settings, read_topics):
    """The producer allows more than the broker takes (message.max.bytes, about 1 MB by default)."""
    sink = EventSink(kafka_settings, max_request_size=4 * 1024 * 1024)
    harness = IngestHarness(kafka_settings, sink=sink)
    try:
        body = big_order(3500)
        status, answer = harness.post("shopify", body, signed("shopify", body, **shopify("orders/create", "wh-b")))
        assert (status, answer["error"]) == (413, "record_too_large"), answer
        out = read_topics(lambda got: any(t == "connector-unknown" for t, _k, _r in got), quiet=1.0)
        (record,) = [r for t, _k, r in out if t == "connector-unknown"]
        assert (record["reason"], record["value"]) == ("too_large", None)
        # Records that fit were produced before the broker said no; the engine drops them if retried.
        assert [r["type"] for t, _k, r in out if t == "orders"] == ["paid"]
        # The producer goes on producing (to the same partition) after the refusal.
        status, answer = post_fixture(
            harness, "shopify", "shopify_orders_create.json", **shopify("orders/create", "ok")
        )
        assert (status, answer["produced"]) == (200, 2)  # the refused delivery was not remembered
        out = read_topics(lambda got: any(r.get("type") == "placed" for _t, _k, r in got), quiet=0.5)
        assert [r["type"] for t, _k, r in out if t == "orders"] == ["paid", "placed", "paid"]
    finally:
        harness.close()
