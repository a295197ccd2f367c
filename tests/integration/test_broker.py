"""Real-broker tests for deploy/broker.py (needs java; mvn the first time to fetch jars)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.broker import BrokerStartError, LocalBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    b = LocalBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    b.start()
    yield b
    b.stop()


def _create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list[object] = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert not errors


def _read_all(bootstrap: str, topic: str, timeout: float = 30) -> list[tuple[bytes, bytes]]:
    """Read partition 0 from the beginning up to the current end (no consumer group needed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[bytes, bytes]] = []
        while len(out) < high:
            msg = consumer.poll(timeout)
            assert msg is not None, f"timed out after {len(out)} of {high} messages"
            assert msg.error() is None, msg.error()
            out.append((msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def test_roundtrip_survives_restart_and_crash(broker: LocalBroker) -> None:
    assert broker.is_running()
    assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    topic = "orders"
    _create_topic(broker.bootstrap_servers, topic)
    _produce(broker.bootstrap_servers, topic, b"k1", b"before-restart")
    assert _read_all(broker.bootstrap_servers, topic) == [(b"k1", b"before-restart")]

    port = broker.port
    broker.restart()
    assert broker.port == port and broker.is_running()
    assert _read_all(broker.bootstrap_servers, topic) == [(b"k1", b"before-restart")]

    # A crash (SIGKILL) must not lose acknowledged data either.
    _produce(broker.bootstrap_servers, topic, b"k2", b"before-crash")
    broker.kill()
    assert not broker.is_running()
    broker.start()
    assert _read_all(broker.bootstrap_servers, topic) == [(b"k1", b"before-restart"), (b"k2", b"before-crash")]


def test_occupied_port_fails_with_log_tail(broker: LocalBroker, tmp_path: Path) -> None:
    second = LocalBroker(data_dir=tmp_path / "second", port=broker.port)
    with pytest.raises(BrokerStartError) as info:
        second.start(timeout=30)
    message = str(info.value)
    assert "exited with code" in message
    assert "Address already in use" in message  # comes from the log tail
    assert f"lines of {second.log_file}" in message
    assert not second.is_running()
    assert broker.is_running()  # the first broker is untouched


def test_bad_config_fails_with_log_tail(tmp_path: Path) -> None:
    bad = LocalBroker(data_dir=tmp_path / "bad", extra_config={"num.io.threads": "lots"})
    with pytest.raises(BrokerStartError) as info:
        bad.start(timeout=30)
    message = str(info.value)
    assert "num.io.threads" in message
    assert f"lines of {bad.log_file}" in message
    assert not bad.is_running()


def test_scram_users_authenticate(tmp_path: Path) -> None:
    with LocalBroker(data_dir=tmp_path / "scram", scram_users=[("alice", "alice-secret")]) as b:
        assert b.sasl_bootstrap_servers

        errors: list[KafkaError] = []

        def sasl_admin(password: str, mechanism: str) -> AdminClient:
            return AdminClient(
                {
                    "bootstrap.servers": b.sasl_bootstrap_servers,
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": mechanism,
                    "sasl.username": "alice",
                    "sasl.password": password,
                    "error_cb": errors.append,
                    "log_level": 0,
                }
            )

        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            assert 1 in sasl_admin("alice-secret", mechanism).list_topics(timeout=20).brokers
        assert not errors
        intruder = sasl_admin("wrong", "SCRAM-SHA-256")
        with pytest.raises(KafkaException):
            intruder.list_topics(timeout=1)
        intruder.poll(1)  # serves error_cb
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
