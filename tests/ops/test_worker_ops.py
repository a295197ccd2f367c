"""A real worker on a broker that requires SASL/SCRAM: events in and intents out over SASL, live state
over HTTP (routed between two workers), metrics, readiness, the ops page in headless Chromium, and a
clear, fast failure on a wrong password."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from deploy.broker import free_port
from deploy.topics import apply
from integration.worker import REPO, WorkerProcess
from streams.config import Settings
from streams.producer import EventProducer, make_codec, make_producer
from streams.tools.simulate import generate
from streams.tools.watch import OutputReader

from .conftest import PASSWORD, USER, sasl_env

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000
HOUR = 3_600_000
CHROMIUM = "/usr/bin/chromium"


TOKEN = "ops-test-token"  # AFTERSALE_WEB_TOKEN of these tests' workers


def get(url: str, auth: str | None = f"Bearer {TOKEN}") -> tuple[int, dict | str]:
    """GET, with the views' token unless `auth` is None (or another Authorization header)."""
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, body, kind = resp.status, resp.read().decode(), resp.headers.get_content_type()
    except urllib.error.HTTPError as err:
        status, body, kind = err.code, err.read().decode(), err.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def ready(worker: WorkerProcess) -> dict | None:
    status, body = get(f"http://127.0.0.1:{worker.port}/ready")
    return body if status == 200 else None


@pytest.fixture(scope="module")
def settings(scram_broker, tmp_path_factory):
    s = Settings(
        bootstrap_servers=scram_broker.sasl_bootstrap_servers,
        app_id=f"ops{uuid.uuid4().hex[:8]}",
        partitions=4,
        clock="event",
        data_dir=tmp_path_factory.mktemp("worker-a"),
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USER,
        sasl_password=PASSWORD,
        web_token=TOKEN,
    )
    apply(s)  # the admin client over SASL too
    return s


@pytest.fixture(scope="module")
def start_worker(settings, tmp_path_factory):
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        data_dir = settings.data_dir if not started else tmp_path_factory.mktemp(f"worker-{name}")
        with pytest.MonkeyPatch.context() as env:  # the worker process inherits these
            for key, value in {**sasl_env(), "WEB_HOST": "127.0.0.1"}.items():
                env.setenv(key, value)
            worker = WorkerProcess(settings, data_dir, data_dir / "worker.log", instance_id=name).start()
        started.append(worker)
        wait_for(lambda: ready(worker), 60, f"worker {name} ready")
        return worker

    yield start
    for worker in started:
        worker.stop()


def one_order(order_id: str, customer_id: str) -> list[tuple[str, str, dict]]:
    base = {"order_id": order_id, "customer_id": customer_id, "source": "test"}
    scan = {
        **base,
        "shipment_id": f"{order_id}-S1",
        "carrier": "dhl",
        "service_level": "standard",
        "tracking_number": "TRK1",
        "origin_region": "DE-BE",
        "destination_region": "DE-BY",
    }
    return [
        (
            "orders",
            order_id,
            {
                **base,
                "event_id": f"{order_id}-e1",
                "event_time": T0,
                "type": "placed",
                "total": 58.0,
                "promised_delivery_at": T0 + 72 * HOUR,
                "line_items": [{"sku": "TEE", "title": "Tee", "category": "fashion", "quantity": 2}],
                "shipping": {"country": "DE", "region": "BY", "time_zone": "Europe/Berlin"},
                "contact": {
                    "email": True,
                    "sms": True,
                    "push": False,
                    "marketing_email": True,
                    "marketing_sms": False,
                    "locale": "de-DE",
                },
            },
        ),
        (
            "orders",
            order_id,
            {
                **base,
                "event_id": f"{order_id}-e2",
                "event_time": T0 + 5 * HOUR,
                "type": "fulfilled",
                "fulfillment": {
                    "shipment_id": f"{order_id}-S1",
                    "carrier": "dhl",
                    "tracking_number": "TRK1",
                    "skus": ["TEE"],
                },
            },
        ),
        (
            "carrier-scans",
            order_id,
            {**scan, "event_id": f"{order_id}-s1", "event_time": T0 + 20 * HOUR, "status": "in_transit"},
        ),
        (
            "carrier-scans",
            order_id,
            {
                **scan,
                "event_id": f"{order_id}-s2",
                "event_time": T0 + 30 * HOUR,
                "status": "exception",
                "sub_status": "customs_delay",
            },
        ),
        (
            "carrier-scans",
            order_id,
            {**scan, "event_id": f"{order_id}-s3", "event_time": T0 + 60 * HOUR, "status": "delivered"},
        ),
    ]


@pytest.fixture(scope="module")
def worker_a(start_worker):
    return start_worker("w0")


@pytest.fixture(scope="module")
def fed(settings, worker_a):
    """Simulated shop traffic and one known order with a customs delay, over SASL; returns the intents
    read back from the intents topic over SASL."""
    producer = EventProducer(settings)
    # Partition like Java clients and Faust do (murmur2), as live-state routing expects (streams/web.py);
    # librdkafka's default hash (CRC32) would put some orders on another worker than the router says.
    producer.producer = make_producer(settings, partitioner="murmur2_random")
    sim = generate(orders=20, seed=7, start_ms=T0, id_prefix="S")
    for event in sim:
        producer.send(event.topic, event.key, event.record)
    reader = OutputReader(settings, make_codec(settings), ["intents"])

    def send_and_read(events, last_intent_type: str, quiet: float = 0) -> list[dict]:
        for topic, key, record in events:
            producer.send(topic, key, record)
        producer.flush()
        out = reader.collect(
            lambda s: any(r["order_id"] == "O-1" and r["intent_type"] == last_intent_type for _t, _k, r in s),
            timeout=60,
            quiet=quiet,
        )
        return [r for _t, _k, r in out]

    try:
        # Orders and scans are separate topics: O-1's scans go once its order is in, so its story is fixed.
        events = one_order("O-1", "C-1")
        intents = send_and_read(events[:2], "order_confirmation")
        intents += send_and_read(events[2:], "delivered", quiet=2)
    finally:
        reader.close()
    return {
        "intents": intents,
        "orders": {e.key for e in sim if e.topic == "orders"} | {"O-1"},
        "customers": {e.record["customer_id"] for e in sim if e.topic == "orders"} | {"C-1"},
    }


def test_worker_on_a_sasl_broker_turns_events_into_intents(fed):
    mine = [i["intent_type"] for i in fed["intents"] if i["order_id"] == "O-1"]
    assert mine[0] == "order_confirmation" and mine[-1] == "delivered" and "customs_delay" in mine, mine
    assert {i["customer_id"] for i in fed["intents"] if i["order_id"] == "O-1"} == {"C-1"}


def test_order_state_over_http(worker_a, fed):
    status, order = get(f"http://127.0.0.1:{worker_a.port}/orders/O-1")
    assert status == 200, order
    assert order["order_id"] == "O-1" and order["state"]["customer_id"] == "C-1"
    assert order["derived"]["tracking"]["O-1-S1"]["status"] == "delivered"
    assert order["derived"]["promised_delivery"] == "2026-01-04T00:00:00Z"
    assert order["derived"]["tracking"]["O-1-S1"]["delivered"] == "2026-01-03T12:00:00Z"
    assert order["derived"]["late"] is False
    assert "order_confirmation" in order["derived"]["notified"]
    assert [e["what"] for e in order["derived"]["timeline"]][:2] == ["placed", "fulfilled"]
    sent = {i["intent_id"] for i in fed["intents"] if i["order_id"] == "O-1"}
    assert {i["intent_id"] for i in order["recent"]["intents"]} == sent  # the same intents as on the topic
    assert order["served_by"] == f"http://127.0.0.1:{worker_a.port}"


def test_customer_state_over_http(worker_a, fed):
    status, customer = get(f"http://127.0.0.1:{worker_a.port}/customers/C-1")
    assert status == 200, customer
    derived = customer["derived"]
    assert derived["channels"]["email"] == {
        "consent": "marketing_and_transactional",
        "reachable": True,
        "bounced": False,
    }
    assert derived["orders_count"] == 1 and derived["open_tickets"] == []
    assert "email" in derived["reachable_channels"]
    sent = {i["intent_id"] for i in fed["intents"] if i["customer_id"] == "C-1"}
    assert {i["intent_id"] for i in customer["recent"]["intents"]} == sent


def test_unknown_keys_are_404_json(worker_a, fed):
    assert get(f"http://127.0.0.1:{worker_a.port}/orders/nope")[0] == 404
    status, body = get(f"http://127.0.0.1:{worker_a.port}/customers/nobody")
    assert status == 404 and body["error"] == "unknown customer"


def test_readiness_metrics_and_openapi(worker_a, fed):
    assert ready(worker_a)["checks"] == {"running": True, "assigned": True, "recovered": True}

    sim = generate(orders=20, seed=7, start_ms=T0, id_prefix="S")  # what `fed` sent, and O-1
    orders = len({e.record["order_id"] for e in sim if e.topic in ("orders", "carrier-scans")}) + 1
    assert orders > 21  # exchange orders of the simulated returns are orders too

    def refreshed():  # table sizes are counted every 10 s
        text = worker_a.metrics()
        return text if f'aftersale_table_keys{{table="orders"}} {orders}.0' in text else None

    text = wait_for(refreshed, 25, "table sizes in /metrics")
    assert f'aftersale_consumer_lag{{partition="0",topic="{worker_a.settings.app_id}.orders"}} 0.0' in text
    assert "aftersale_scheduled_backlog " in text
    assert 'aftersale_intents_out_total{channel="email",intent_type="order_confirmation"}' in text
    status, document = get(f"http://127.0.0.1:{worker_a.port}/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1") and "/orders/{order_id}" in document["paths"]


def test_every_view_but_health_and_readiness_needs_the_token(worker_a, fed):
    base = f"http://127.0.0.1:{worker_a.port}"
    closed = ["/orders/O-1", "/customers/C-1", "/api/ops", "/ops", "/metrics", "/openapi.json", "/", "/table/"]
    for path in closed:
        for auth in (None, "Bearer wrong", "Basic " + base64.b64encode(b"ops:wrong").decode(), "Token " + TOKEN):
            status, body = get(base + path, auth=auth)
            assert status == 401, (path, auth, status)
            assert "token" in body["error"]
    # A browser sends the token as HTTP Basic's password, under any user name.
    assert get(base + "/api/ops", auth="Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode())[0] == 200
    for path in ("/health", "/ready"):
        assert get(base + path, auth=None)[0] == 200, path
    # Faust's own views are gone, even with the token: no raw table values, no partition map.
    for path in ("/table/customers/C-1/", "/table/orders/O-1/", "/router/", "/graph/", "/stats/"):
        assert get(base + path)[0] == 404, path


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (`make chromium`)")
def test_ops_page_renders_live_data_in_headless_chromium(worker_a, fed, tmp_path):
    from PIL import Image

    status, snapshot = get(f"http://127.0.0.1:{worker_a.port}/api/ops")
    assert status == 200 and snapshot["alerts"] and snapshot["recent_intents"]
    page = f"http://ops:{TOKEN}@127.0.0.1:{worker_a.port}/ops"  # as a browser answers the Basic prompt
    browser = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=60).stdout
    assert 'id="status">ready<' in dom  # the first poll came back and was rendered
    for intent in snapshot["recent_intents"][:25] + snapshot["alerts"][:15]:
        assert f">{intent['intent_type']}<" in dom and f">{intent['order_id']}<" in dom
    for reason in snapshot["not_sent_by_reason"]:
        assert f"{reason['decision']} · {reason['reason']}" in dom
    assert f"{int(snapshot['totals']['events_in']):,} events in" in dom

    shot = tmp_path / "ops.png"
    subprocess.run([*browser, f"--screenshot={shot}", page], capture_output=True, timeout=60, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 900)
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 200, "the page looks blank"
    counts = {rgb: n for n, rgb in colors}
    assert counts.get((0xD9, 0x82, 0x2B), 0) > 50  # the orange of the delay/exception alerts
    assert counts.get((0x1D, 0x23, 0x30), 0) > 20_000  # the header bar
    print(f"ops page screenshot: {shot}")


def test_requests_for_keys_of_another_worker_are_routed_to_it(start_worker, worker_a, fed):
    before = ready(worker_a)["input_partitions"]
    worker_b = start_worker("w1")
    split = wait_for(
        lambda: (
            (a := ready(worker_a))
            and (b := ready(worker_b))
            and a["input_partitions"] < before
            and b["input_partitions"] > 0
        ),
        60,
        "partitions split",
    )
    assert split
    urls = {f"http://127.0.0.1:{w.port}" for w in (worker_a, worker_b)}
    served_by = set()
    for kind, keys in (("orders", fed["orders"]), ("customers", fed["customers"])):
        for key in sorted(keys):
            answers = [get(f"{url}/{kind}/{key}") for url in sorted(urls)]
            assert [status for status, _ in answers] == [200, 200], (kind, key, answers)
            (_, first), (_, second) = answers
            assert first["served_by"] == second["served_by"] and first["state"] == second["state"]
            assert not first.get("recent_partial")  # the worker owning the customer answered too
            served_by.add(first["served_by"])
    assert served_by == urls  # each worker owns some keys, and the other forwarded to it


def test_wrong_password_fails_fast_naming_authentication(settings, tmp_path):
    env = {
        **sasl_env(password="wrong"),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AFTERSALE_APP_ID": settings.app_id,
        "AFTERSALE_PARTITIONS": str(settings.partitions),
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            "--data-dir",
            str(tmp_path / "w"),
            "--web-port",
            str(free_port()),
        ],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert "SaslAuthenticationFailed: Authentication failed" in result.stdout + result.stderr
