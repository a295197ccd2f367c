"""Kafka client security from Settings, in one place, so the Faust app (aiokafka) and every
confluent-kafka client (producer, admin, output reader) connect the same way.

Configured by AFTERSALE_SECURITY_PROTOCOL (PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL),
AFTERSALE_SASL_MECHANISM (SCRAM-SHA-256 | SCRAM-SHA-512), AFTERSALE_SASL_USERNAME/_PASSWORD and
AFTERSALE_SSL_CAFILE (+ _CERTFILE, _KEYFILE, _KEY_PASSWORD for mutual TLS); see streams/config.py.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def uses_sasl(settings: "Settings") -> bool:
    return settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def uses_tls(settings: "Settings") -> bool:
    return settings.security_protocol in ("SSL", "SASL_SSL")


def problems(settings: "Settings") -> list[str]:
    """What is wrong with the security settings (empty when they are usable)."""
    found = []
    if settings.security_protocol not in PROTOCOLS:
        found.append(
            f"AFTERSALE_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {settings.security_protocol!r}"
        )
    if uses_sasl(settings):
        if settings.sasl_mechanism not in MECHANISMS:
            found.append(
                f"AFTERSALE_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, got {settings.sasl_mechanism!r}"
            )
        if not settings.sasl_username or not settings.sasl_password:
            found.append(f"{settings.security_protocol} needs AFTERSALE_SASL_USERNAME and AFTERSALE_SASL_PASSWORD")
    if settings.ssl_keyfile and not settings.ssl_certfile:
        found.append("AFTERSALE_SSL_KEYFILE is set without AFTERSALE_SSL_CERTFILE")
    return found


def ssl_context(settings: "Settings") -> ssl.SSLContext | None:
    """The TLS context for aiokafka (None without TLS). Verifies the broker's certificate and name."""
    if not uses_tls(settings):
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, settings.ssl_key_password)
    return context


def aiokafka_options(settings: "Settings") -> dict:
    """aiokafka connection options (bootstrap, TLS, SASL) for a client outside Faust."""
    options: dict = {"bootstrap_servers": settings.bootstrap_servers, "security_protocol": settings.security_protocol}
    if uses_tls(settings):
        options["ssl_context"] = ssl_context(settings)
    if uses_sasl(settings):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def faust_credentials(settings: "Settings") -> Any:
    """`broker_credentials` for faust.App: None for PLAINTEXT."""
    import faust

    if uses_sasl(settings):
        # An ssl_context makes Faust speak SASL_SSL; without one, SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context(settings),
        )
    if uses_tls(settings):
        return faust.SSLCredentials(ssl_context(settings))
    return None


def librdkafka_config(settings: "Settings") -> dict[str, str]:
    """The same settings as confluent-kafka (librdkafka) config entries, to merge into a client's config."""
    config = {"security.protocol": settings.security_protocol}
    if uses_sasl(settings):
        config.update(
            {
                "sasl.mechanism": settings.sasl_mechanism,
                "sasl.username": settings.sasl_username,
                "sasl.password": settings.sasl_password,
            }
        )
    if uses_tls(settings):
        optional = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
            "ssl.key.password": settings.ssl_key_password,
        }
        config.update({k: v for k, v in optional.items() if v})
    return config
