"""Is the Kafka broker there? One quick metadata request before a command starts its real work, so a
command without a broker fails in seconds with one line instead of retrying with a page of logs."""

from __future__ import annotations

import os
import time

from ..config import Settings
from ..security import librdkafka_config

DEFAULT_TIMEOUT = 5.0  # seconds; AFTERSALE_CONNECT_TIMEOUT


class BrokerUnreachable(SystemExit):
    """Raised (and so printed and exited with status 1 by the interpreter) when no broker answers, or
    one answers but the TLS handshake with it fails."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def connect_timeout() -> float:
    raw = os.environ.get("AFTERSALE_CONNECT_TIMEOUT")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise SystemExit(f"AFTERSALE_CONNECT_TIMEOUT must be a number of seconds, got {raw!r}") from None


def how_to_start() -> str:
    """What to do about a missing broker, in one sentence (mentions a local broker already running)."""
    running = _recorded_local_broker()
    if running:
        return (
            f"a local broker started by `aftersale broker start` is running at {running}: "
            f"export KAFKA_BOOTSTRAP_SERVERS={running}"
        )
    return (
        "start one with `aftersale broker start` (then export the KAFKA_BOOTSTRAP_SERVERS it prints), "
        "or set KAFKA_BOOTSTRAP_SERVERS to your cluster"
    )


def require_broker(settings: Settings, timeout: float | None = None) -> None:
    """Return once a broker at settings.bootstrap_servers answers a metadata request; raise
    BrokerUnreachable within about `timeout` seconds otherwise. librdkafka's own connection
    errors are silenced: the single line raised says it all. A failed TLS handshake (a broker
    certificate not signed by AFTERSALE_SSL_CAFILE, a missing client certificate) is raised at once,
    with librdkafka's reason: no client would get further, and "no broker answered" would mislead."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    timeout = connect_timeout() if timeout is None else timeout
    refused: list[str] = []  # the broker answered but refused our credentials
    tls_failed: list[str] = []  # the broker answered but the TLS handshake failed

    def on_error(err) -> None:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            refused.append(err.str())
        elif err.code() == KafkaError._SSL or "SSL routines" in err.str():
            tls_failed.append(err.str())

    admin = AdminClient(
        {
            "error_cb": on_error,
            "bootstrap.servers": settings.bootstrap_servers,
            "log_level": 0,  # no "Connection refused" line per retry
            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
            "reconnect.backoff.max.ms": 500,
            **librdkafka_config(settings),
        }
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(0.5, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)  # serve the error callbacks
            if refused:  # reachable: the command's own client reports the authentication failure
                return
            if tls_failed:
                raise BrokerUnreachable(
                    f"TLS with the Kafka broker at {settings.bootstrap_servers} failed [{tls_failed[0]}]; check "
                    "AFTERSALE_SSL_CAFILE (the CA that signed the broker's certificate) and, if the broker wants "
                    "client certificates, AFTERSALE_SSL_CERTFILE and AFTERSALE_SSL_KEYFILE"
                ) from None
            if time.monotonic() < deadline:
                continue
            error = exc.args[0] if exc.args else exc
            detail = error.str() if hasattr(error, "str") else str(error)
        source = (
            "KAFKA_BOOTSTRAP_SERVERS"
            if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            else "the default; KAFKA_BOOTSTRAP_SERVERS is not set"
        )
        raise BrokerUnreachable(
            f"no Kafka broker answered at {settings.bootstrap_servers} ({source}) within {timeout:g} s "
            f"[{detail}]; {how_to_start()}"
        )


def _recorded_local_broker() -> str | None:
    """The address of a broker `aftersale broker start` left running in its default data dir."""
    try:
        from deploy.broker import DEFAULT_CLI_DATA_DIR, running_broker
    except ImportError:  # an installation without deploy/
        return None
    return running_broker(DEFAULT_CLI_DATA_DIR)
