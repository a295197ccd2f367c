"""The engine end to end on a real Kafka broker: events in, intents out, dead letters, and a
worker killed with SIGKILL that recovers its tables from the changelog topics."""

from __future__ import annotations

import random
import shutil
import uuid
from collections import Counter, defaultdict

import pytest

from deploy.topics import apply
from streams.config import Settings
from streams.core import model
from streams.core.orders import decide_order
from streams.core.customers import decide_customer
from streams.producer import EventProducer, make_codec
from streams.tools.simulate import generate, malformed
from streams.tools.watch import OutputReader

from .worker import WorkerProcess

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000
HOUR = 3_600_000


@pytest.fixture
def settings(kafka_bootstrap, tmp_path):
    s = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"t{uuid.uuid4().hex[:10]}",
        partitions=4,
        clock="event",
        data_dir=tmp_path / "worker",
    )
    apply(s)
    return s


@pytest.fixture
def workers(settings, tmp_path):
    started: list[WorkerProcess] = []

    def start(data_dir=None) -> WorkerProcess:
        w = WorkerProcess(settings, data_dir or settings.data_dir, tmp_path / "worker.log").start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def reader(settings):
    r = OutputReader(settings, make_codec(settings), ["intents", "decision-audit", "dead-letters"])
    yield r
    r.close()


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
            {**scan, "event_id": f"{order_id}-s2", "event_time": T0 + 40 * HOUR, "status": "out_for_delivery"},
        ),
        (
            "carrier-scans",
            order_id,
            {**scan, "event_id": f"{order_id}-s3", "event_time": T0 + 44 * HOUR, "status": "delivered"},
        ),
    ]


def only(outputs: list, topic: str) -> list[dict]:
    return [r for t, _k, r in outputs if t == topic]


def expected_intents(events: list[tuple[str, str, dict]]) -> list[model.MessageIntent]:
    """What the pure core decides for the same events, in the same order, on the event clock."""
    orders, customers, out = {}, {}, []
    convert = {"orders": model.order_event_from, "carrier-scans": model.carrier_scan_from}
    for topic, _key, record in events:
        event = convert[topic](record)
        d = decide_order(orders.get(event.order_id), event, event.event_time)
        orders[event.order_id] = d.state
        for cmd in d.commands:
            c = decide_customer(customers.get(cmd.customer_id), cmd, cmd.event_time)
            customers[cmd.customer_id] = c.state
            out.extend(c.intents)
    return out


def batch_compressions(log_dirs, topic: str) -> set[int]:
    """The compression codec of every record batch the broker stores for `topic` (Kafka's v2 batch
    header: attributes at byte 21, codec in its low 3 bits; 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)."""
    codecs = set()
    for segment in log_dirs.glob(f"{topic}-*/*.log"):
        data, at = segment.read_bytes(), 0
        while at + 23 <= len(data):
            length = int.from_bytes(data[at + 8 : at + 12], "big")
            codecs.add(int.from_bytes(data[at + 21 : at + 23], "big") & 0x7)
            at += 12 + length
    return codecs


def test_event_in_intent_out(settings, workers, reader, kafka_log_dirs):
    workers()
    producer = EventProducer(settings)
    events = one_order("O-1", "C-1")
    got: list = []
    # One event at a time, so the order of the two input topics is fixed and the result exact.
    for n, (topic, key, record) in enumerate(events, 1):
        producer.send(topic, key, record)
        producer.flush()
        wanted = {1: 1, 2: 2, 3: 2, 4: 3, 5: 4}[n]  # the in_transit scan is no news after "fulfilled"
        have = len(only(got, "intents"))
        got += reader.collect(lambda s, have=have, wanted=wanted: have + len(only(s, "intents")) >= wanted, timeout=60)
    intents = [r for t, _k, r in got if t == "intents"]
    assert [i["intent_type"] for i in intents] == ["order_confirmation", "shipped", "out_for_delivery", "delivered"]
    assert [i["channel"] for i in intents] == ["email", "email", "sms", "email"]
    assert all(k == b"C-1" for t, k, _ in got if t == "intents")
    expected = expected_intents(events)
    assert [i["intent_id"] for i in intents] == [e.intent_id for e in expected]
    assert intents[1]["content"]["items"] == [{"sku": "TEE", "title": "Tee", "category": "fashion", "quantity": 2}]
    assert intents[1]["content"]["tracking_number"] == "TRK1"
    # A late, redelivered "out for delivery" after delivery is stale news: audited, never sent.
    producer.send("carrier-scans", "O-1", {**events[3][2], "event_id": "O-1-s2-late", "event_time": T0 + 45 * HOUR})
    producer.flush()
    audit = reader.collect(lambda s: any(t == "decision-audit" for t, _k, _r in s), timeout=60)
    assert [(r["intent_type"], r["decision"], r["reasons"]) for t, _k, r in audit if t == "decision-audit"] == [
        ("out_for_delivery", "dropped", ["stale:after_delivered"])
    ]
    assert not [r for t, _k, r in audit if t == "intents"]
    # What the worker produced is stored zstd-compressed (AFTERSALE_COMPRESSION's default).
    for topic in (settings.topic("intents"), f"{settings.app_id}-customers-changelog"):
        assert batch_compressions(kafka_log_dirs, topic) == {4}, topic


def test_malformed_input_is_dead_lettered_and_good_input_still_processed(settings, workers, reader):
    worker = workers()
    producer = EventProducer(settings)
    bad = malformed(random.Random(1), 10)
    codec = make_codec(settings)
    sent_bytes = [v if isinstance(v, bytes) else codec.encode(t, v) for t, _k, v in bad]
    for (topic, key, _value), raw in zip(bad, sent_bytes):
        producer.send(topic, key, raw)
    for topic, key, record in one_order("O-2", "C-2")[:1]:
        producer.send(topic, key, record)
    producer.flush()
    out = reader.collect(
        lambda s: len([x for x in s if x[0] == "dead-letters"]) >= 10 and any(x[0] == "intents" for x in s), timeout=90
    )
    dead = [r for t, _k, r in out if t == "dead-letters"]
    assert len(dead) == 10
    assert sorted(r["value"] for r in dead) == sorted(sent_bytes)  # the original bytes, untouched
    reasons = Counter(r["reason"] for r in dead)
    assert set(reasons) <= {"undecodable", "unknown_schema", "unknown_type", "schema_mismatch"}
    assert reasons["unknown_type"] == 2 and reasons["unknown_schema"] == 2
    assert all(r["topic"].startswith(settings.app_id + ".") and r["offset"] >= 0 and r["error"] for r in dead)
    intents = [r for t, _k, r in out if t == "intents"]
    assert [(i["order_id"], i["intent_type"]) for i in intents] == [("O-2", "order_confirmation")]
    assert worker.alive()
    assert 'aftersale_dead_letters_total{reason="unknown_type",topic="orders"} 2.0' in worker.metrics()


def test_sigkilled_worker_recovers_tables_from_changelog(settings, workers, reader, tmp_path):
    events = generate(orders=80, seed=11, start_ms=T0, id_prefix="K")
    events = [e for e in events if e.topic in ("orders", "carrier-scans")]
    cut = len(events) // 2
    producer = EventProducer(settings)
    first = workers()
    for e in events[:cut]:
        producer.send(e.topic, e.key, e.record)
    producer.flush()
    placed_before = {e.record["order_id"] for e in events[:cut] if e.topic == "orders" and e.record["type"] == "placed"}
    seen = reader.collect(
        lambda s: (
            len({r["order_id"] for t, _k, r in s if t == "intents" and r["intent_type"] == "order_confirmation"})
            >= len(placed_before)
        ),
        timeout=120,
    )
    first.kill()
    # A new machine: the local RocksDB is gone, so the tables can only come back from the changelogs.
    shutil.rmtree(settings.data_dir)
    # Redelivered events from before the crash must still be recognised as duplicates.
    replayed = [e for e in events[:cut] if e.topic == "carrier-scans"][:20]
    for e in events[cut:] + replayed:
        producer.send(e.topic, e.key, e.record)
    producer.flush()
    first.start()
    delivered = {
        e.record["order_id"] for e in events if e.topic == "carrier-scans" and e.record["status"] == "delivered"
    }
    seen += reader.collect(
        lambda s: (
            {r["order_id"] for t, _k, r in s + seen if t == "intents" and r["intent_type"] == "delivered"} >= delivered
        ),
        timeout=180,
        quiet=3,
    )
    intents = [r for t, _k, r in seen if t == "intents"]
    by_id = defaultdict(list)
    for r in intents:
        by_id[r["intent_id"]].append({k: v for k, v in r.items() if k != "decided_at"})
    # At least once: a duplicate is the same intent with the same id, never a different message.
    assert all(all(copy == copies[0] for copy in copies) for copies in by_id.values())
    distinct = [copies[0] for copies in by_id.values()]
    per_order = defaultdict(Counter)
    for r in distinct:
        per_order[r["order_id"]][r["intent_type"]] += 1
    placed = {  # exchange orders get no confirmation (an audit record says exchange_order)
        e.record["order_id"]
        for e in events
        if e.topic == "orders" and e.record["type"] == "placed" and not e.record.get("exchange_of")
    }
    # A confirmation is sent once, or dropped when the backlog showed the parcel already delivered.
    superseded = {
        r["order_id"]
        for r in only(seen, "decision-audit")
        if r["intent_type"] == "order_confirmation" and r["reasons"] == ["stale:superseded_by_delivery"]
    }
    assert {o for o, c in per_order.items() if c["order_confirmation"]} | superseded == placed, only(
        seen, "decision-audit"
    )
    assert not {o for o, c in per_order.items() if c["order_confirmation"]} & superseded
    assert all(c["order_confirmation"] == (o in placed and o not in superseded) for o, c in per_order.items())
    # Orders placed before the crash and delivered after it: their delivered message carries the
    # items that only the recovered order table knew.
    assert {o for o in delivered if per_order[o]["delivered"] == 1} == delivered
    delivered_after = {
        e.record["order_id"] for e in events[cut:] if e.topic == "carrier-scans" and e.record["status"] == "delivered"
    }
    recovered = [
        r for r in distinct if r["intent_type"] == "delivered" and r["order_id"] in placed_before & delivered_after
    ]
    assert recovered and all(r["content"]["items"] for r in recovered)
    assert not [r for t, _k, r in seen if t == "dead-letters"]


def test_sigusr1_dumps_the_workers_state_when_enabled(settings, tmp_path):
    import re
    import signal
    import time

    from streams.tools.worker_process import WorkerRun

    dump_dir = tmp_path / "dumps"
    dump_dir.mkdir()
    worker = WorkerRun(
        settings,
        settings.data_dir,
        tmp_path / "dump-worker.log",
        clock="event",
        env={"AFTERSALE_DEBUG_DUMP_DIR": str(dump_dir), "PYTHONTRACEMALLOC": "1"},
    ).start(wait="ready")
    try:
        dump = dump_dir / f"dump-{worker.proc.pid}.txt"
        worker.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "TASK" not in (dump.read_text() if dump.exists() else ""):
            time.sleep(0.1)
        text = dump.read_text()
        assert worker.alive()
        assert f"{settings.app_id}.orders" in text and "read_offset=" in text and "committed=" in text
        assert "agent order_stage: queue=" in text and "TASK" in text
        # Memory: live objects by type, and tracemalloc's sites because the worker traces allocations.
        assert re.search(r"objects \(gc-tracked\) by type: \w+ [\d,]+, ", text)
        assert re.search(r"tracemalloc: current [\d.]+ MiB", text)
        # The worker's consumer is the strict one (the `aftersale://` transport's), its gate in place.
        assert re.search(r"offset gate: skips repaired=\{.*\} stale dropped=\d+ re-reads pending=", text), text[-3000:]
    finally:
        worker.stop()


def test_a_state_too_large_for_kafka_is_dead_lettered_and_the_partition_moves_on(settings, workers, reader):
    """Two valid orders of one customer, each with a 600 KB title (each under Kafka's 1 MB): the
    customer's state would reach 1.2 MB. The input that would make it so is dead-lettered with the
    reason, the other inputs are decided, every input is committed, and SIGTERM ends the worker
    within 30 s."""
    import signal
    import time

    from streams.tools.benchmarks import GroupLag, WORKER_INPUTS

    worker = workers()
    producer = EventProducer(settings)
    title = "t" * 600_000
    for n in (1, 2):
        placed = one_order(f"O-big{n}", "C-big")[0][2]
        placed["line_items"] = [{"sku": f"BIG{n}", "title": title, "category": "home", "quantity": 1}]
        producer.send("orders", f"O-big{n}", {**placed, "event_time": T0 + n * HOUR})
        producer.flush()
    for topic, key, record in one_order("O-small", "C-big")[:1] + one_order("O-other", "C-other")[:1]:
        producer.send(topic, key, {**record, "event_time": T0 + 3 * HOUR})
    producer.flush()
    out = reader.collect(
        lambda s: (
            any(t == "dead-letters" for t, _k, _r in s)
            and {r["order_id"] for t, _k, r in s if t == "intents"} >= {"O-small", "O-other"}
        ),
        timeout=120,
    )
    dead = only(out, "dead-letters")
    assert [d["reason"] for d in dead] == ["state_too_large"]
    assert dead[0]["topic"].endswith("customer-commands") and "over the 900,000" in dead[0]["error"]
    assert "read them at" in dead[0]["error"] and dead[0]["value"] is None  # too large to carry, pointed to
    GroupLag(settings, settings.app_id, WORKER_INPUTS).wait_zero(timeout=60, alive=worker.alive)
    start = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(timeout=60)
    assert time.monotonic() - start < 30
