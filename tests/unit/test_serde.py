"""Confluent framing with fastavro and the repo's local schema registry."""

from __future__ import annotations

import copy
import io
import json
import shutil
import struct

import fastavro
import pytest

from streams.codec import Codec
from streams.core import model
from streams.core.model import InvalidEvent
from streams.registry import FROZEN_DIR, REGISTRY_FILE, LocalRegistry
from streams.schemas import SCHEMA_DIR, SCHEMA_FILES, by_name, load_all, standalone_from_json
from streams.serde import AvroSerde, DecodeError
from streams.tools.simulate import generate

ORDER_EVENT = "io.aftersale.OrderEvent"
CARRIER_SCAN = "io.aftersale.CarrierScan"
APP = "aftersale"


@pytest.fixture(scope="module")
def registry() -> LocalRegistry:
    return LocalRegistry()


@pytest.fixture(scope="module")
def serde(registry) -> AvroSerde:
    return AvroSerde(registry)


@pytest.fixture(scope="module")
def codec(serde) -> Codec:
    return Codec(serde, APP)


@pytest.fixture(scope="module")
def sample():
    events = generate(orders=5, seed=3)
    order = next(e for e in events if e.topic == "orders" and e.record["type"] == "placed")
    carrier_scan = next(e for e in events if e.topic == "carrier-scans")
    return order, carrier_scan


def frame(schema_id: int, body: bytes) -> bytes:
    return struct.pack(">bI", 0, schema_id) + body


def avro_body(schema: dict, record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


# --- the registry file -----------------------------------------------------------------------


def test_every_schema_is_registered(registry):
    missing = [f"{s.name} ({s.file})" for s in registry.unregistered()]
    assert missing == [], f"run `aftersale schemas register`: {missing}"


def test_every_schema_file_is_loaded():
    on_disk = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))
    assert on_disk == sorted(SCHEMA_FILES)
    assert [s.file for s in load_all().values()] == [f"{stem}.avsc" for stem in SCHEMA_FILES]


def test_registry_entries_match_their_frozen_files():
    entries = json.loads(REGISTRY_FILE.read_text())["schemas"]
    assert len({e["id"] for e in entries}) == len(entries)
    assert len({e["fingerprint"] for e in entries}) == len(entries)
    for entry in entries:
        frozen = standalone_from_json(json.loads((FROZEN_DIR / f"{entry['id']}.avsc").read_text()))
        assert frozen.name == entry["name"]
        assert frozen.fingerprint == entry["fingerprint"], f"schemas/registry/{entry['id']}.avsc was edited"


def test_current_schemas_resolve_to_themselves(registry):
    for schema in load_all().values():
        schema_id = registry.id_for(f"{APP}.x-value", schema)
        assert registry.schema_for(schema_id).name == schema.name
        assert registry.schema_for(schema_id).canonical == schema.canonical


# --- framing ---------------------------------------------------------------------------------


def test_order_event_round_trip(serde, registry, sample):
    order, _ = sample
    data = serde.encode(f"{APP}.orders-value", ORDER_EVENT, order.record)
    schema_id = registry.id_for(f"{APP}.orders-value", by_name(ORDER_EVENT))
    assert data[0] == 0
    assert data[1:5] == schema_id.to_bytes(4, "big")
    assert data[:5] == struct.pack(">bI", 0, schema_id)
    decoded = serde.decode(data, ORDER_EVENT)
    assert model.order_event_from(decoded) == model.order_event_from(order.record)
    assert decoded["line_items"] == order.record["line_items"]
    assert model.to_ms(decoded["event_time"]) == order.record["event_time"]


def test_bytes_are_stable(serde, sample):
    order, _ = sample
    subject = f"{APP}.orders-value"
    assert serde.encode(subject, ORDER_EVENT, order.record) == serde.encode(subject, ORDER_EVENT, order.record)


@pytest.mark.parametrize("data", [None, b"", b"\x00", b"\x00\x00\x00\x00"], ids=["none", "empty", "1", "4"])
def test_too_short_is_undecodable(serde, data):
    with pytest.raises(DecodeError) as err:
        serde.decode(data, ORDER_EVENT)
    assert err.value.reason == "undecodable"


@pytest.mark.parametrize("magic", [1, 0x7B, 0xFF])
def test_wrong_magic_is_undecodable(serde, serde_bytes_for_order, magic):
    data = bytes([magic]) + serde_bytes_for_order[1:]
    with pytest.raises(DecodeError) as err:
        serde.decode(data, ORDER_EVENT)
    assert err.value.reason == "undecodable"


def test_json_is_undecodable(serde):
    with pytest.raises(DecodeError) as err:
        serde.decode(b'{"not": "avro"}', ORDER_EVENT)
    assert err.value.reason == "undecodable"


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x02", b"\x0a" + b"x" * 3], ids=["varint", "cut", "short-string"])
def test_garbage_after_the_header_is_undecodable(serde, registry, body):
    schema_id = registry.id_for("x", by_name(ORDER_EVENT))
    with pytest.raises(DecodeError) as err:
        serde.decode(frame(schema_id, body), ORDER_EVENT)
    assert err.value.reason == "undecodable"


def test_truncated_record_is_undecodable(serde, serde_bytes_for_order):
    with pytest.raises(DecodeError) as err:
        serde.decode(serde_bytes_for_order[:-3], ORDER_EVENT)
    assert err.value.reason == "undecodable"


def test_trailing_bytes_are_undecodable(serde, serde_bytes_for_order):
    with pytest.raises(DecodeError) as err:
        serde.decode(serde_bytes_for_order + b"\x00", ORDER_EVENT)
    assert err.value.reason == "undecodable"


@pytest.mark.parametrize("schema_id", [0, 9999, 0x7F7F02])
def test_unknown_schema_id(serde, serde_bytes_for_order, schema_id):
    data = frame(schema_id, serde_bytes_for_order[5:])
    with pytest.raises(DecodeError) as err:
        serde.decode(data, ORDER_EVENT)
    assert err.value.reason == "unknown_schema"


def test_a_scan_on_the_orders_topic_is_a_schema_mismatch(serde, sample):
    _, carrier_scan = sample
    data = serde.encode(f"{APP}.carrier-scans-value", CARRIER_SCAN, carrier_scan.record)
    assert serde.decode(data, CARRIER_SCAN)["event_id"] == carrier_scan.record["event_id"]
    with pytest.raises(DecodeError) as err:
        serde.decode(data, ORDER_EVENT)
    assert err.value.reason == "schema_mismatch"
    # The mismatch is not cached as a success, nor does it poison the right pairing.
    with pytest.raises(DecodeError):
        serde.decode(data, ORDER_EVENT)
    assert serde.decode(data, CARRIER_SCAN)["status"] == carrier_scan.record["status"]


@pytest.fixture(scope="module")
def serde_bytes_for_order(serde, sample) -> bytes:
    order, _ = sample
    return serde.encode(f"{APP}.orders-value", ORDER_EVENT, order.record)


# --- codec -----------------------------------------------------------------------------------


def test_codec_decodes_into_core_records(codec, sample):
    order, carrier_scan = sample
    event = codec.decode(f"{APP}.orders", order.key.encode(), codec.encode("orders", order.record))
    assert event == model.order_event_from(order.record)
    scan = codec.decode(
        f"{APP}.carrier-scans",
        carrier_scan.record["order_id"].encode(),
        codec.encode("carrier-scans", carrier_scan.record),
    )
    assert scan == model.carrier_scan_from(carrier_scan.record)


def test_codec_rejects_a_keyless_input_but_not_a_tick(codec, sample):
    """Without a key the producer picks the partition, which may not own the order's state."""
    _, carrier_scan = sample
    with pytest.raises(InvalidEvent) as err:
        codec.decode(f"{APP}.carrier-scans", None, codec.encode("carrier-scans", carrier_scan.record))
    assert err.value.reason == "missing_key"
    tick = {
        "command_id": "tick:0:1",
        "event_time": 1,
        "customer_id": "",
        "order_id": "",
        "kind": "tick",
        "due": {"now": 1},
    }
    assert codec.decode(f"{APP}.customer-commands", None, codec.encode("customer-commands", tick)).kind == "tick"


def test_codec_rejects_a_wrong_key(codec, sample):
    _, carrier_scan = sample
    data = codec.encode("carrier-scans", carrier_scan.record)
    for wrong in (carrier_scan.record["shipment_id"].encode(), carrier_scan.record["customer_id"].encode(), b""):
        with pytest.raises(InvalidEvent) as err:
            codec.decode(f"{APP}.carrier-scans", wrong, data)
        assert err.value.reason == "wrong_key"
    assert (
        codec.decode(f"{APP}.carrier-scans", carrier_scan.record["order_id"].encode(), data).event_id
        == carrier_scan.record["event_id"]
    )


def test_codec_rejects_an_unknown_order_type(codec, sample):
    order, _ = sample
    record = {**copy.deepcopy(order.record), "type": "exchanged"}
    with pytest.raises(InvalidEvent) as err:
        codec.decode(f"{APP}.orders", order.key.encode(), codec.encode("orders", record))
    assert err.value.reason == "unknown_type"


def test_codec_rejects_an_unknown_scan_status(codec, sample):
    _, carrier_scan = sample
    record = {**carrier_scan.record, "status": "teleported"}
    with pytest.raises(InvalidEvent) as err:
        codec.decode(f"{APP}.carrier-scans", None, codec.encode("carrier-scans", record))
    assert err.value.reason == "unknown_type"


def test_codec_rejects_fulfilled_without_fulfillment(codec, sample):
    order, _ = sample
    record = {**order.record, "type": "fulfilled", "fulfillment": None}
    with pytest.raises(InvalidEvent) as err:
        codec.decode(f"{APP}.orders", None, codec.encode("orders", record))
    assert err.value.reason == "invalid_field"


def test_codec_rejects_an_empty_required_field(codec, sample):
    order, _ = sample
    record = {**order.record, "order_id": ""}
    with pytest.raises(InvalidEvent) as err:
        codec.decode(f"{APP}.orders", None, codec.encode("orders", record))
    assert err.value.reason == "invalid_field"


def test_codec_rejects_an_unknown_topic(codec, serde_bytes_for_order):
    with pytest.raises(DecodeError) as err:
        codec.decode(f"{APP}.returns", None, serde_bytes_for_order)
    assert err.value.reason == "unknown_topic"


def test_codec_encodes_with_the_topic_subject(codec, registry, sample):
    order, _ = sample
    data = codec.encode("orders", order.record)
    assert data[1:5] == registry.id_for(f"{APP}.orders-value", by_name(ORDER_EVENT)).to_bytes(4, "big")


def test_dead_letter_keeps_the_original_bytes(codec, serde):
    data = codec.dead_letter(f"{APP}.orders", 3, 42, b"O-bad", b'{"not": "avro"}', "undecodable", "x" * 5000)
    record = serde.decode(data, "io.aftersale.DeadLetter")
    assert (record["topic"], record["partition"], record["offset"]) == (f"{APP}.orders", 3, 42)
    assert (record["key"], record["value"], record["reason"]) == (b"O-bad", b'{"not": "avro"}', "undecodable")
    assert len(record["error"]) == 2000


# --- registry evolution ----------------------------------------------------------------------


def test_register_current_on_an_empty_registry(tmp_path):
    local = LocalRegistry(registry_file=tmp_path / "registry.json", frozen_dir=tmp_path / "registry")
    added = local.register_current()
    assert [i for i, _ in added] == list(range(1, len(SCHEMA_FILES) + 1))
    assert [s.file for _, s in added] == [f"{stem}.avsc" for stem in SCHEMA_FILES]
    assert local.unregistered() == []
    assert sorted(p.name for p in (tmp_path / "registry").iterdir()) == sorted(
        f"{i}.avsc" for i in range(1, len(SCHEMA_FILES) + 1)
    )
    # Every current version is in the repo's registry too (which also keeps older versions), and a
    # second run adds nothing.
    fresh = {e["fingerprint"] for e in json.loads((tmp_path / "registry.json").read_text())["schemas"]}
    assert fresh <= {e["fingerprint"] for e in json.loads(REGISTRY_FILE.read_text())["schemas"]}
    assert local.register_current() == []
    reloaded = LocalRegistry(registry_file=tmp_path / "registry.json", frozen_dir=tmp_path / "registry")
    assert reloaded.unregistered() == []
    assert reloaded.schema_for(1).name == ORDER_EVENT


def test_register_current_on_a_copy_of_the_repo_registry_adds_nothing(tmp_path):
    shutil.copy(REGISTRY_FILE, tmp_path / "registry.json")
    shutil.copytree(FROZEN_DIR, tmp_path / "registry")
    local = LocalRegistry(registry_file=tmp_path / "registry.json", frozen_dir=tmp_path / "registry")
    assert local.register_current() == []


def test_bytes_written_with_an_older_schema_version_still_decode(tmp_path, sample):
    registry_file, frozen_dir = tmp_path / "registry.json", tmp_path / "registry"
    LocalRegistry(registry_file=registry_file, frozen_dir=frozen_dir).register_current()

    # An older OrderEvent, before "amount" existed, frozen under the next free id.
    current = by_name(ORDER_EVENT)
    old = copy.deepcopy(current.standalone)
    old["fields"] = [f for f in old["fields"] if f["name"] != "amount"]
    old_schema = standalone_from_json(old)
    assert old_schema.name == ORDER_EVENT and old_schema.fingerprint != current.fingerprint
    entries = json.loads(registry_file.read_text())["schemas"]
    old_id = max(e["id"] for e in entries) + 1
    entries.append(
        {"id": old_id, "name": ORDER_EVENT, "file": "order_event.avsc", "fingerprint": old_schema.fingerprint}
    )
    registry_file.write_text(json.dumps({"schemas": entries}))
    (frozen_dir / f"{old_id}.avsc").write_text(json.dumps(old))

    order, _ = sample
    record = {k: v for k, v in order.record.items() if k != "amount"}
    data = frame(old_id, avro_body(fastavro.parse_schema(old), record))

    serde = AvroSerde(LocalRegistry(registry_file=registry_file, frozen_dir=frozen_dir))
    decoded = serde.decode(data, ORDER_EVENT)
    assert decoded["amount"] is None
    assert model.order_event_from(decoded) == model.order_event_from(order.record)
    # Current writers still use the current id.
    assert serde.encode("x", ORDER_EVENT, order.record)[1:5] == (1).to_bytes(4, "big")


def test_an_unregistered_schema_cannot_be_encoded(tmp_path, sample):
    order, _ = sample
    empty = AvroSerde(LocalRegistry(registry_file=tmp_path / "none.json", frozen_dir=tmp_path / "none"))
    with pytest.raises(LookupError):
        empty.encode("x", ORDER_EVENT, order.record)


def _core_outputs(orders: int = 150):
    """Commands, intents and audit records the core decides on simulated traffic."""
    from streams.core.model import CarrierScan, OrderEvent
    from streams.engine import CustomerStage, OrderStage
    from streams.tools.replay.events import InputReport, prepare, simulated_raw

    order_stage = OrderStage({}, {}, {}, objects=True, event_clock=True)
    customer_stage = CustomerStage({}, {}, objects=True, event_clock=True)
    commands, intents, audit = [], [], []
    for replayed in prepare(simulated_raw(orders, seed=3), InputReport("test", "jsonl")):
        event = replayed.event
        items = [event]
        if isinstance(event, (OrderEvent, CarrierScan)):
            out = order_stage.handle(0, event, event.event_time)
            commands += out.commands
            audit += out.audit
            items = out.commands
        for item in items:
            out = customer_stage.handle(0, item, item.event_time)
            intents += out.intents
            audit += out.audit
    return commands, intents, audit


def test_optional_records_are_written_with_their_branch_named_and_the_same_bytes(serde):
    from streams.serde import union_tagger

    commands, intents, audit = _core_outputs()
    assert commands and intents and audit
    facts_with_contact = [c for c in commands if c.fact is not None and c.fact.contact is not None]
    assert facts_with_contact and any(c.intent is not None for c in commands)
    for name, records in (
        ("io.aftersale.CustomerCommand", commands),
        ("io.aftersale.MessageIntent", intents),
        ("io.aftersale.DecisionAudit", audit),
    ):
        parsed = by_name(name).parsed
        tag = union_tagger(parsed)
        for record in map(model.to_record, records):
            plain, tagged = io.BytesIO(), io.BytesIO()
            fastavro.schemaless_writer(plain, parsed, record)
            fastavro.schemaless_writer(tagged, parsed, tag(record) if tag else record)
            assert tagged.getvalue() == plain.getvalue()
    # The command's optional intent and fact (and the fact's contact) are the records it names.
    tagged = union_tagger(by_name("io.aftersale.CustomerCommand").parsed)(model.to_record(facts_with_contact[0]))
    assert tagged["intent"] is None and tagged["fact"][0] == "io.aftersale.OrderFact"
    assert tagged["fact"][1]["contact"][0] == "io.aftersale.ContactChannels"


def test_a_record_missing_a_required_field_still_fails_to_encode(serde):
    commands, _, _ = _core_outputs(30)
    record = model.to_record(next(c for c in commands if c.intent is not None))
    del record["intent"]["channel"]
    with pytest.raises((TypeError, ValueError, AttributeError)):
        serde.encode("aftersale.customer-commands-value", "io.aftersale.CustomerCommand", record)


@pytest.mark.parametrize("old_id, name", [(17, "io.aftersale.MessageIntent"), (6, "io.aftersale.DecisionAudit")])
def test_intents_and_audit_written_before_experiments_still_decode(serde, old_id, name):
    """Bytes of the intent (id 17) and audit (id 6) versions before `experiment`, `arm` and
    `experiments` existed read as records outside any experiment."""
    old = json.loads((FROZEN_DIR / f"{old_id}.avsc").read_text())
    assert "experiment" not in {f["name"] for f in old["fields"]}
    intent = model.MessageIntent(
        intent_id="i1",
        decided_at=1_767_225_600_000,
        order_id="O1",
        customer_id="C1",
        intent_type="review_request",
        kind="marketing",
        channel="email",
        send_at=1_767_225_600_000,
        expires_at=1_767_312_000_000,
        priority="low",
        content=model.ContentHints(),
        reason_codes=["review_due"],
        source_event_id="e1",
    )
    audit = model.DecisionAudit("a1", 1_767_225_600_000, "C1", "review_request", "held", ["quiet_hours"], "e1")
    record = model.to_record(intent if old_id == 17 else audit)
    for extra in ("experiment", "arm", "experiments"):
        record.pop(extra, None)
    decoded = serde.decode(frame(old_id, avro_body(fastavro.parse_schema(old), record)), name)
    assert decoded["experiment"] is None and decoded["arm"] is None
    if old_id == 17:
        assert decoded["experiments"] == []
        assert model.message_intent_from(decoded).experiments == []
