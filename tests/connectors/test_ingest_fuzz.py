"""Fuzzing every endpoint over real HTTP: random, truncated and mutated bodies, with valid, wrong and
missing signatures. Never a 500 or a crash; a rejected request never produces anything."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connectors.signatures import sendgrid_keypair, sign
from deploy.topics import apply
from streams.config import Settings
from streams.producer import make_codec
from streams.tools.watch import OutputReader

from connector_helpers import PROVIDERS, IngestHarness, load, raw, signed

pytestmark = pytest.mark.integration

FIXTURE = {
    "shopify": "shopify_orders_create.json",
    "aftership": "aftership_tracking_update.json",
    "easypost": "easypost_tracker_updated.json",
    "sendgrid": "sendgrid_events.json",
    "klaviyo": "klaviyo_events.json",
    "zendesk": "zendesk_comment_added.json",
    "gorgias": "gorgias_ticket_updated.json",
}
SHOPIFY_TOPICS = [
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "fulfillments/create",
    "fulfillments/update",
    "refunds/create",
    "app/uninstalled",
]
OUR_TOPICS = ["orders", "carrier-scans", "engagement", "support", "connector-unknown"]
WRONG_SENDGRID_KEY, _ = sendgrid_keypair()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["2026-03-02T09:14:27+01:00", "paid", "Exception_004", "delivered"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def paths(value, prefix=(), depth=4):
    """Every key/index path into a JSON value, to replace one part of a real payload."""
    found = [prefix] if prefix else []
    if depth and isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, prefix + (k,), depth - 1)
    elif depth and isinstance(value, list):
        for i, v in enumerate(value[:3]):
            found += paths(v, prefix + (i,), depth - 1)
    return found


def replaced(document, path, new):
    copy = orjson.loads(orjson.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copy


def bodies(provider: str):
    document, original = load(FIXTURE[provider]), raw(FIXTURE[provider])
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(orjson.dumps),
        st.integers(0, len(original) - 1).map(lambda n: original[:n]),
        st.tuples(st.sampled_from(paths(document)), json_values).map(lambda pv: orjson.dumps(replaced(document, *pv))),
        st.just(original),
    )


# Header values an HTTP client can send: any text without control characters.
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


def headers_for(provider: str, body: bytes, mode: str, garbage: str) -> dict:
    if mode == "valid":
        return signed(provider, body)
    if mode == "missing":
        return {"Content-Type": "application/json"}
    key = WRONG_SENDGRID_KEY if provider == "sendgrid" else "not-the-secret"
    headers = {"Content-Type": "application/json", **sign(provider, body, key, time.time())}
    if mode == "garbage":  # every signature header (timestamps too) replaced by random text
        headers = {name: garbage if name != "Content-Type" else value for name, value in headers.items()}
    return headers


@pytest.fixture(scope="module")
def fuzz_target(kafka_bootstrap):
    kafka = Settings(bootstrap_servers=kafka_bootstrap, app_id=f"f{uuid.uuid4().hex[:10]}", partitions=2)
    apply(kafka)
    harness = IngestHarness(kafka)
    yield kafka, harness
    harness.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fuzzed_requests_never_fail_and_rejected_ones_produce_nothing(fuzz_target, provider):
    _kafka, harness = fuzz_target

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=bodies(provider),
        mode=st.sampled_from(["valid", "wrong", "missing", "garbage"]),
        topic=st.one_of(st.sampled_from(SHOPIFY_TOPICS), header_text),
        garbage=header_text,
    )
    def one_request(body, mode, topic, garbage):
        headers = headers_for(provider, body, mode, garbage)
        if provider == "shopify":
            headers.update({"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": str(uuid.uuid4())})
        before = harness.service.sink.acknowledged
        status, answer = harness.post(provider, body, headers)
        assert status in ({200, 400} if mode == "valid" else {401}), (status, answer)
        assert isinstance(answer, dict) and (status == 200 or answer["reason"]), answer
        if status != 200:
            assert harness.service.sink.acknowledged == before, "a rejected request produced records"

    one_request()
    assert harness.get("/health")[0] == 200  # still serving


def test_topics_hold_exactly_what_accepted_requests_produced(fuzz_target):
    kafka, harness = fuzz_target
    acknowledged = harness.service.sink.acknowledged
    reader = OutputReader(kafka, make_codec(kafka), OUR_TOPICS)
    try:
        got = reader.collect(lambda seen: len(seen) >= acknowledged, timeout=30, quiet=1.0)
    finally:
        reader.close()
    assert len(got) == acknowledged
