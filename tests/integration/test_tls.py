"""TLS against a real broker: one LocalBroker with an SSL listener, a mutual-TLS listener and a
SASL_SSL listener, certificates made here (certs.py). The project's own clients (confluent-kafka from
librdkafka_config, aiokafka from the ingest sink's options and from Faust's credentials) round-trip
records over each; a client that does not trust the CA, or lacks the certificate the mutual-TLS
listener asks for, fails within seconds saying why; `aftersale topics` and a worker run over mutual TLS."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from deploy.broker import LocalBroker, TlsFiles
from integration.certs import make_certs
from integration.worker import REPO, WorkerProcess
from streams.config import Settings
from streams.producer import EventProducer, make_codec, make_producer
from streams.security import aiokafka_options, faust_credentials, librdkafka_config
from streams.tools.reach import BrokerUnreachable, require_broker
from streams.tools.simulate import generate
from streams.tools.watch import OutputReader

pytestmark = pytest.mark.integration

USER, PASSWORD = "aftersale", "tls-s3cret"
KINDS = ("ssl", "mtls", "sasl_ssl")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(certs, tmp_path_factory):
    tls = TlsFiles(certfile=certs.server_cert, keyfile=certs.server_key, cafile=certs.ca)
    broker = LocalBroker(data_dir=tmp_path_factory.mktemp("kafka-tls"), tls=tls, scram_users=[(USER, PASSWORD)])
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


def tls_env(broker: LocalBroker, certs, kind: str, cafile=None) -> dict[str, str]:
    """What an operator sets to reach `broker` over the `kind` listener (streams/security.py)."""
    env = {"AFTERSALE_SSL_CAFILE": str(cafile or certs.ca), "AFTERSALE_APP_ID": f"tls{uuid.uuid4().hex[:8]}"}
    if kind == "ssl":
        env.update(KAFKA_BOOTSTRAP_SERVERS=broker.ssl_bootstrap_servers, AFTERSALE_SECURITY_PROTOCOL="SSL")
    elif kind == "mtls":
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=broker.mtls_bootstrap_servers,
            AFTERSALE_SECURITY_PROTOCOL="SSL",
            AFTERSALE_SSL_CERTFILE=str(certs.client_cert),
            AFTERSALE_SSL_KEYFILE=str(certs.client_key),
        )
    else:
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=broker.sasl_ssl_bootstrap_servers,
            AFTERSALE_SECURITY_PROTOCOL="SASL_SSL",
            AFTERSALE_SASL_MECHANISM="SCRAM-SHA-512",
            AFTERSALE_SASL_USERNAME=USER,
            AFTERSALE_SASL_PASSWORD=PASSWORD,
        )
    return env


def settings_from(env: dict[str, str], **overrides) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        return Settings.from_env(**overrides)


def create_topic(settings: Settings) -> str:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **librdkafka_config(settings)})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    return topic


@pytest.mark.parametrize("kind", KINDS)
def test_confluent_kafka_clients_round_trip(tls_broker, certs, kind):
    settings = settings_from(tls_env(tls_broker, certs, kind))
    topic = create_topic(settings)
    producer = make_producer(settings)  # what `simulate`, the demo and the replay tools produce with
    producer.produce(topic, key=b"k", value=kind.encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"tls-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **librdkafka_config(settings),
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(30)
        assert msg is not None and msg.error() is None, msg and msg.error()
        assert (msg.key(), msg.value()) == (b"k", kind.encode())
    finally:
        consumer.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_aiokafka_clients_of_the_sink_and_of_faust_round_trip(tls_broker, certs, kind):
    settings = settings_from(tls_env(tls_broker, certs, kind))
    topic = create_topic(settings)
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all")  # the ingest service's sink
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, kind.encode(), key=b"k"), 30)
    finally:
        await producer.stop()
    # How Faust's aiokafka driver turns the worker's broker_credentials into client options.
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest", **auth
    )
    await asyncio.wait_for(consumer.start(), 30)
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
        assert (msg.key, msg.value) == (b"k", kind.encode())
    finally:
        await consumer.stop()


async def aiokafka_refused(settings: Settings, caplog) -> str:
    """Start an aiokafka producer that must not get in: fails within 15 s; returns what it logged."""
    producer = AIOKafkaProducer(**aiokafka_options(settings), request_timeout_ms=5000)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 15)
    await producer.stop()
    assert time.monotonic() - started < 15
    return caplog.text


async def test_a_client_that_does_not_trust_the_ca_fails_fast_saying_why(tls_broker, certs, caplog):
    settings = settings_from(tls_env(tls_broker, certs, "ssl", cafile=certs.other_ca))
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match="certificate verify failed.*check AFTERSALE_SSL_CAFILE"):
        require_broker(settings, timeout=10)  # every command's first step (streams/cli.py)
    assert time.monotonic() - started < 5  # at the first handshake, not when the timeout runs out
    assert "CERTIFICATE_VERIFY_FAILED" in await aiokafka_refused(settings, caplog)


async def test_mutual_tls_listener_refuses_a_client_without_a_certificate(tls_broker, certs, caplog):
    env = tls_env(tls_broker, certs, "mtls")
    del env["AFTERSALE_SSL_CERTFILE"], env["AFTERSALE_SSL_KEYFILE"]
    settings = settings_from(env)
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match="alert bad certificate.*AFTERSALE_SSL_CERTFILE"):
        require_broker(settings, timeout=10)
    assert time.monotonic() - started < 5
    await aiokafka_refused(settings, caplog)


def test_topics_command_and_a_worker_over_mutual_tls(tls_broker, certs, tmp_path):
    env = {**tls_env(tls_broker, certs, "mtls"), "AFTERSALE_PARTITIONS": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    settings = settings_from(env, clock="event", data_dir=tmp_path / "worker")
    assert f"created  {settings.topic('intents')}" in result.stdout

    with pytest.MonkeyPatch.context() as mp:  # the worker process inherits these
        for name, value in {**env, "WEB_HOST": "127.0.0.1"}.items():
            mp.setenv(name, value)
        worker = WorkerProcess(settings, settings.data_dir, tmp_path / "worker.log").start()
    try:
        worker.wait_for(worker.ready, 60, "be ready")
        producer = EventProducer(settings)
        for event in generate(orders=3, seed=7, start_ms=1_767_225_600_000, id_prefix="T"):
            producer.send(event.topic, event.key, event.record)
        producer.flush()
        reader = OutputReader(settings, make_codec(settings), ["intents"])
        try:
            intents = reader.collect(lambda seen: len(seen) > 0, timeout=60)
        finally:
            reader.close()
        assert intents, f"no intents over mutual TLS:\n{worker.log_tail()}"
    finally:
        worker.stop()
