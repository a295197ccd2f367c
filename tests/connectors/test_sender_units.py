"""The reference sender's parts without a broker: backoff, offsets, retry policy, ordering per
customer, the customer directory, e-mail rendering and settings."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import namedtuple

import pytest
from aiokafka import TopicPartition

from connectors.directory import CustomerDirectory
from connectors.sender import PartitionProgress, Sender
from connectors.settings import SenderSettings
from connectors.transports import Permanent, Retryable, backoff, render_email
from streams.config import Settings
from streams.core.model import ContentHints, MessageIntent, to_record
from streams.producer import make_codec

Record = namedtuple("Record", "topic partition offset key value")


def intent(
    intent_id: str,
    customer_id: str = "C-1",
    send_in_ms: int = 0,
    expires_in_ms: int = 60_000,
    intent_type: str = "shipped",
) -> MessageIntent:
    now = int(time.time() * 1000)
    return MessageIntent(
        intent_id=intent_id,
        decided_at=now,
        order_id="O-1",
        customer_id=customer_id,
        intent_type=intent_type,
        kind="transactional",
        channel="push",
        send_at=now + send_in_ms,
        expires_at=now + expires_in_ms,
        priority="normal",
        content=ContentHints(),
        reason_codes=[],
        source_event_id="e-1",
    )


def sender(**overrides) -> Sender:
    config = SenderSettings(
        **{
            "http_url": "http://127.0.0.1:9/",
            "http_secret": "s",
            "backoff_base": 0.001,
            "backoff_cap": 0.002,
            "max_attempts": 4,
            **overrides,
        }
    )
    return Sender(Settings(app_id="unit"), config)


class Script:
    """A transport that answers from a script: "ok", "retry" or "reject", one per attempt."""

    name = "script"

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.delivered: list[str] = []

    async def deliver(self, intent: dict, recipient) -> None:
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "retry":
            raise Retryable("http 503")
        if answer == "reject":
            raise Permanent("http_400", "bad template")
        self.delivered.append(intent["intent_id"])


def test_backoff_is_exponential_with_full_jitter_and_capped():
    rng = random.Random(4)
    for attempt in range(8):
        delays = [backoff(attempt, 0.5, 30.0, rng) for _ in range(200)]
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread out, not synchronized


def test_offsets_commit_only_below_the_lowest_unfinished_intent():
    progress = PartitionProgress()
    for offset in (5, 6, 7):
        progress.started(offset)
    assert progress.commit_point() == 5
    progress.finished(6)
    assert progress.commit_point() == 5  # 5 may still be waiting for its send_at
    progress.finished(5)
    assert progress.commit_point() == 7
    progress.finished(7)
    assert progress.commit_point() == 8


@pytest.mark.parametrize(
    "script, outcome, attempts",
    [
        (("ok",), None, 1),
        (("retry", "retry", "ok"), None, 3),
        (("retry", "reject"), ("http_400", "bad template"), 2),
        (("retry",) * 4, ("retries_exhausted", "4 attempts; last: http 503"), 4),
    ],
)
async def test_retry_policy(script, outcome, attempts):
    transport = Script(*script)
    got = await sender()._attempts(transport, {"intent_id": "i-1"}, None, expires_at=int(time.time() * 1000) + 60_000)
    assert got == outcome
    assert len(script) - len(transport.answers) == attempts


async def test_retries_stop_at_expiry_instead_of_sending_late():
    reason, error = await sender(backoff_base=10, backoff_cap=10)._attempts(
        Script("retry", "retry"), {"intent_id": "i-1"}, None, expires_at=int(time.time() * 1000) + 50
    )
    assert reason == "expired" and "after 1 attempts" in error


async def test_a_customers_intents_go_out_in_send_at_order_and_others_are_not_held_up():
    s = sender()
    s.http = Script()
    codec = make_codec(s.settings)
    tp = TopicPartition("unit.intents", 0)
    queue = [
        intent("late", "C-1", send_in_ms=300),
        intent("now", "C-1"),
        intent("later", "C-1", send_in_ms=400),
        intent("other", "C-2"),
    ]
    for offset, item in enumerate(queue):
        s._spawn(tp, Record(tp.topic, 0, offset, item.customer_id.encode(), codec.encode("intents", to_record(item))))
    await asyncio.wait_for(asyncio.gather(*s._tasks[tp]), 5)
    delivered = s.http.delivered
    assert delivered.index("now") < delivered.index("late") < delivered.index("later")
    assert delivered.index("other") < delivered.index("late")
    assert s._progress[tp].commit_point() == 4


async def test_a_duplicate_in_flight_waits_for_the_first_and_is_not_sent_twice():
    s = sender()
    s.http = Script()
    codec = make_codec(s.settings)
    tp = TopicPartition("unit.intents", 0)
    value = codec.encode("intents", to_record(intent("same", send_in_ms=100)))
    for offset in (0, 1):
        s._spawn(tp, Record(tp.topic, 0, offset, b"C-1", value))
    await asyncio.wait_for(asyncio.gather(*s._tasks[tp]), 5)
    assert s.http.delivered == ["same"] and s._progress[tp].commit_point() == 2


def test_customer_directory_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"C-1": {"email": "a@example.com", "phone": " "}, "C-2": "not an entry"}))
    directory = CustomerDirectory(path)
    assert directory.lookup("C-1") == {"email": "a@example.com"} and directory.lookup("C-2") is None
    path.write_text(json.dumps({"C-1": {"email": "new@example.com", "phone": "+4930123456"}}))
    assert directory.lookup("C-1") == {"email": "new@example.com", "phone": "+4930123456"}
    path.write_text("{half written")
    assert directory.lookup("C-1") == {"email": "new@example.com", "phone": "+4930123456"}  # last good copy


def test_email_rendering_of_an_unknown_intent_type():
    message = render_email(
        to_record(intent("i-9", intent_type="delivery_delayed")), "shop@example.com", "a@example.com"
    )
    assert message["Subject"] == "Delivery delayed" and message["Message-ID"] == "<i-9@example.com>"


def test_email_rendering_names_the_experiments_for_attribution():
    record = to_record(intent("i-7", intent_type="review_request"))
    record.update(
        experiment="review-incentive",
        arm="voucher_10",
        experiments=[
            {"experiment": "global-control", "arm": "treated"},
            {"experiment": "review-incentive", "arm": "voucher_10"},
        ],
    )
    message = render_email(record, "shop@example.com", "a@example.com")
    assert message["X-Aftersale-Experiments"] == "global-control=treated; review-incentive=voucher_10"
    args = json.loads(message["X-SMTPAPI"])["unique_args"]
    assert (args["experiment"], args["arm"], args["intent_id"]) == ("review-incentive", "voucher_10", "i-7")
    assert "Variant: review-incentive / voucher_10" in message.get_content()
    plain = render_email(to_record(intent("i-8")), "shop@example.com", "a@example.com")
    assert (
        plain["X-Aftersale-Experiments"] is None and "experiment" not in json.loads(plain["X-SMTPAPI"])["unique_args"]
    )


def test_sender_settings_refuse_configurations_that_cannot_work(tmp_path):
    with pytest.raises(SystemExit, match="AFTERSALE_SENDER_URL and/or AFTERSALE_SMTP_HOST"):
        SenderSettings.from_env({})
    with pytest.raises(SystemExit, match="AFTERSALE_SENDER_SECRET"):
        SenderSettings.from_env({"AFTERSALE_SENDER_URL": "http://127.0.0.1:9000/intents"})
    with pytest.raises(SystemExit, match="AFTERSALE_CUSTOMER_DIRECTORY"):
        SenderSettings.from_env({"AFTERSALE_SMTP_HOST": "127.0.0.1"})
    ok = SenderSettings.from_env(
        {
            "AFTERSALE_SMTP_HOST": "mail",
            "AFTERSALE_SMTP_PORT": "2525",
            "AFTERSALE_CUSTOMER_DIRECTORY": str(tmp_path / "c.json"),
        }
    )
    assert (ok.smtp_host, ok.smtp_port, ok.http_url) == ("mail", 2525, None)


async def test_the_senders_metrics_need_the_token_and_health_does_not():
    from aiohttp.test_utils import TestClient, TestServer

    from connectors.sender import web_app

    async with TestClient(TestServer(web_app(sender(), "s3cret"))) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        response = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert response.status == 200 and "aftersale_sender" in await response.text()
        assert (await client.get("/health")).status == 200
    async with TestClient(TestServer(web_app(sender(), None))) as client:  # no token configured: closed
        assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status == 401
