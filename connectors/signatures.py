"""Every provider's webhook signature scheme, in one place: checks for the ingest service, and
signers for tests, the benchmark and our own sender.

| provider  | header(s)                                          | signed bytes         | encoding            |
|-----------|----------------------------------------------------|----------------------|---------------------|
| Shopify   | X-Shopify-Hmac-Sha256                              | body                 | HMAC-SHA256, base64 |
| AfterShip | aftership-hmac-sha256                              | body                 | HMAC-SHA256, base64 |
| EasyPost  | X-Hmac-Signature: hmac-sha256-hex=<hex>            | body (NFKD secret)   | HMAC-SHA256, hex    |
| Klaviyo   | Klaviyo-Signature, Klaviyo-Timestamp               | body + timestamp     | HMAC-SHA256, hex    |
| Zendesk   | X-Zendesk-Webhook-Signature(-Timestamp)            | timestamp + body     | HMAC-SHA256, base64 |
| SendGrid  | X-Twilio-Email-Event-Webhook-Signature(-Timestamp) | timestamp + body     | ECDSA P-256, base64 |
| Gorgias   | X-Aftersale-Token (set in the HTTP integration)    | none: Gorgias cannot sign, a shared token is compared |

Where the provider signs a timestamp, it must be within `tolerance` seconds of now (replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import unicodedata
from functools import lru_cache
from typing import Mapping

from .records import to_ms


class SignatureError(Exception):
    """The request is not from the provider (401); the message says what did not match."""


def _hmac(secret: str, *parts: bytes) -> bytes:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing {name} header")
    return value.strip()


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{name} is not base64") from None


def _same(expected: bytes, provided: bytes, name: str) -> None:
    if not hmac.compare_digest(expected, provided):
        raise SignatureError(f"{name} does not match the body")


def _fresh(timestamp: str, now: float, tolerance: float, name: str) -> None:
    ms = to_ms(timestamp)
    if ms is None:
        raise SignatureError(f"{name} is not a time: {timestamp[:40]!r}")
    if abs(now - ms / 1000) > tolerance:
        raise SignatureError(
            f"{name} is {int(now - ms / 1000)} s off (tolerance {int(tolerance)} s): replayed or clock skew"
        )


def verify_shopify(headers, body: bytes, secret: str, now: float, tolerance: float) -> None:
    name = "X-Shopify-Hmac-Sha256"
    _same(_hmac(secret, body), _b64(_header(headers, name), name), name)


def verify_aftership(headers, body: bytes, secret: str, now: float, tolerance: float) -> None:
    name = "aftership-hmac-sha256"
    _same(_hmac(secret, body), _b64(_header(headers, name), name), name)


def _easypost_secret(secret: str) -> str:
    return unicodedata.normalize("NFKD", secret)  # as EasyPost's own client libraries do


def verify_easypost(headers, body: bytes, secret: str, now: float, tolerance: float) -> None:
    name = "X-Hmac-Signature"
    value = _header(headers, name)
    prefix = "hmac-sha256-hex="
    if not value.lower().startswith(prefix):
        raise SignatureError(f"{name} must start with {prefix}")
    expected = _hmac(_easypost_secret(secret), body).hex().encode()
    _same(expected, value[len(prefix) :].lower().encode("ascii", "replace"), name)


def verify_klaviyo(headers, body: bytes, secret: str, now: float, tolerance: float) -> None:
    timestamp = _header(headers, "Klaviyo-Timestamp")
    name = "Klaviyo-Signature"
    expected = _hmac(secret, body, timestamp.encode()).hex().encode()
    _same(expected, _header(headers, name).lower().encode("ascii", "replace"), name)
    _fresh(timestamp, now, tolerance, "Klaviyo-Timestamp")


def verify_zendesk(headers, body: bytes, secret: str, now: float, tolerance: float) -> None:
    timestamp = _header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
    name = "X-Zendesk-Webhook-Signature"
    _same(_hmac(secret, timestamp.encode(), body), _b64(_header(headers, name), name), name)
    _fresh(timestamp, now, tolerance, "X-Zendesk-Webhook-Signature-Timestamp")


@lru_cache(maxsize=8)  # parsed once, not per webhook
def _sendgrid_key(public_key: str):
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return load_pem_public_key(text.encode())
        return load_der_public_key(base64.b64decode(text))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"the SendGrid verification key is not a base64 DER or PEM public key: {exc}") from None


def verify_sendgrid(headers, body: bytes, public_key: str, now: float, tolerance: float) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    timestamp = _header(headers, "X-Twilio-Email-Event-Webhook-Timestamp")
    name = "X-Twilio-Email-Event-Webhook-Signature"
    signature = _b64(_header(headers, name), name)
    try:
        _sendgrid_key(public_key).verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(f"{name} does not match the body") from None
    _fresh(timestamp, now, tolerance, "X-Twilio-Email-Event-Webhook-Timestamp")


def verify_gorgias(headers, body: bytes, token: str, now: float, tolerance: float) -> None:
    name = "X-Aftersale-Token"
    if not hmac.compare_digest(_header(headers, name).encode(), token.encode()):
        raise SignatureError(f"{name} is wrong")


VERIFIERS = {
    "shopify": verify_shopify,
    "aftership": verify_aftership,
    "easypost": verify_easypost,
    "klaviyo": verify_klaviyo,
    "zendesk": verify_zendesk,
    "sendgrid": verify_sendgrid,
    "gorgias": verify_gorgias,
}


def check_secret(provider: str, secret: str) -> None:
    """Fail at start-up, not on the first webhook, when a configured secret cannot work."""
    if provider == "sendgrid":
        _sendgrid_key(secret)


# --- signers: what the providers do, for tests and the benchmark ------------------------------


def _iso(now: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(provider: str, body: bytes, secret, now: float) -> dict[str, str]:
    """The headers the provider would send with `body`. For SendGrid `secret` is the private key."""
    if provider == "shopify":
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode()}
    if provider == "aftership":
        return {"aftership-hmac-sha256": base64.b64encode(_hmac(secret, body)).decode()}
    if provider == "easypost":
        return {"X-Hmac-Signature": "hmac-sha256-hex=" + _hmac(_easypost_secret(secret), body).hex()}
    if provider == "klaviyo":
        timestamp = _iso(now)
        return {"Klaviyo-Timestamp": timestamp, "Klaviyo-Signature": _hmac(secret, body, timestamp.encode()).hex()}
    if provider == "zendesk":
        timestamp = _iso(now)
        return {
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "X-Zendesk-Webhook-Signature": base64.b64encode(_hmac(secret, timestamp.encode(), body)).decode(),
        }
    if provider == "sendgrid":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        timestamp = str(int(now))
        signature = secret.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        }
    if provider == "gorgias":
        return {"X-Aftersale-Token": secret}
    raise ValueError(f"unknown provider {provider!r}")


def sendgrid_keypair() -> tuple[object, str]:
    """A private key and its public key as SendGrid shows it (base64 DER), for tests and benchmarks."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


# --- our own outbound signature (the sender) --------------------------------------------------


def sign_body(secret: str, body: bytes) -> str:
    """X-Aftersale-Signature of the reference sender: base64 HMAC-SHA256 of the request body."""
    return base64.b64encode(_hmac(secret, body)).decode()


def verify_body(secret: str, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign_body(secret, body).encode(), signature.strip().encode())
