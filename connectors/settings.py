"""Settings of the ingest service and the sender, from the environment (read once at start-up).

Kafka settings (bootstrap servers, app id, schema registry) come from streams.config.Settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .timezones import ZoneTable

# One secret per provider endpoint. SendGrid signs with ECDSA: its "secret" is the public
# verification key shown in SendGrid's mail settings (base64 DER, or PEM).
SECRET_ENV = {
    "shopify": "AFTERSALE_SHOPIFY_SECRET",
    "aftership": "AFTERSALE_AFTERSHIP_SECRET",
    "easypost": "AFTERSALE_EASYPOST_SECRET",
    "sendgrid": "AFTERSALE_SENDGRID_PUBLIC_KEY",
    "klaviyo": "AFTERSALE_KLAVIYO_SECRET",
    "zendesk": "AFTERSALE_ZENDESK_SECRET",
    "gorgias": "AFTERSALE_GORGIAS_TOKEN",
}


# Largest webhook body each endpoint reads (bytes); over it the answer is 413, and reading stops there.
# Shopify orders carry every line item (and orders/updated repeats fulfilments and refunds), so they
# get the most; Gorgias tickets carry their message thread; trackers, engagement and ticket events
# are small. AFTERSALE_INGEST_MAX_BODY sets all of them, AFTERSALE_INGEST_MAX_BODY_<PROVIDER> one.
MiB = 1024 * 1024
BODY_LIMITS = {
    "shopify": 5 * MiB,
    "aftership": 1 * MiB,
    "easypost": 1 * MiB,
    "sendgrid": 1 * MiB,  # SendGrid posts a batch at 768 KB at most
    "klaviyo": MiB // 2,
    "zendesk": MiB // 2,
    "gorgias": 2 * MiB,
}
BODY_LIMIT_ENV = {provider: f"AFTERSALE_INGEST_MAX_BODY_{provider.upper()}" for provider in SECRET_ENV}


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def _sources(env, name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name) or default
    sources = tuple(s.strip() for s in raw.split(",") if s.strip())
    bad = [s for s in sources if s.partition(":")[0] not in ("header", "field", "index")]
    if bad:
        raise SystemExit(f"{name}: sources must be header:<Name>, field:<dotted.path> or index, got {bad}")
    return sources


@dataclass(frozen=True)
class MappingOptions:
    """What the pure mappings may be configured with."""

    zones: ZoneTable = field(default_factory=ZoneTable)
    # EasyPost trackers carry no order id. Tried in order: a header a relay adds, a payload field,
    # then `index`: the order whose Shopify fulfilment had this tracking number.
    easypost_order_id: tuple[str, ...] = ("header:X-Aftersale-Order-Id", "index")
    # Zendesk ticket events carry Zendesk user ids only; the ticket's external_id is where a shop
    # that creates tickets from its backend puts the customer id.
    zendesk_customer_id: tuple[str, ...] = ("field:detail.external_id",)


@dataclass(frozen=True)
class IngestSettings:
    secrets: dict = field(default_factory=dict)  # provider -> secret (None: endpoint answers 503)
    host: str = "127.0.0.1"
    port: int = 8085
    signature_tolerance: float = 300.0  # seconds a signed timestamp may be off (Zendesk, Klaviyo, SendGrid)
    dedupe_size: int = 100_000  # recently accepted provider ids answered 200 without producing
    lookup_size: int = 200_000  # order -> customer and tracking -> order associations kept
    body_limits: dict = field(default_factory=lambda: dict(BODY_LIMITS))  # provider -> largest body, bytes
    max_in_flight: int = 64  # webhook requests handled at once; beyond it 429 at once, never queued
    read_timeout: float = 30.0  # seconds to receive a webhook body; a slower sender gets 408
    produce_timeout: float = 10.0  # seconds to wait for the broker before answering 503 (provider retries)
    record_unknown: bool = True  # unknown/unmapped events also go to <app>.connector-unknown
    mapping: MappingOptions = field(default_factory=MappingOptions)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "IngestSettings":
        env = os.environ if env is None else env
        try:
            zones = ZoneTable(
                json.loads(env.get("AFTERSALE_TIME_ZONES") or "{}"), env.get("AFTERSALE_DEFAULT_TIME_ZONE") or "UTC"
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise SystemExit(f"AFTERSALE_TIME_ZONES / AFTERSALE_DEFAULT_TIME_ZONE: {exc}") from None
        values = dict(
            secrets={name: env.get(var) or None for name, var in SECRET_ENV.items()},
            host=env.get("AFTERSALE_INGEST_HOST") or cls.host,
            port=int(_float(env, "AFTERSALE_INGEST_PORT", cls.port)),
            signature_tolerance=_float(env, "AFTERSALE_SIGNATURE_TOLERANCE", cls.signature_tolerance),
            dedupe_size=int(_float(env, "AFTERSALE_INGEST_DEDUPE_SIZE", cls.dedupe_size)),
            lookup_size=int(_float(env, "AFTERSALE_INGEST_LOOKUP_SIZE", cls.lookup_size)),
            body_limits=_body_limits(env),
            max_in_flight=_positive(env, "AFTERSALE_INGEST_MAX_IN_FLIGHT", cls.max_in_flight),
            read_timeout=_float(env, "AFTERSALE_INGEST_READ_TIMEOUT", cls.read_timeout),
            produce_timeout=_float(env, "AFTERSALE_INGEST_PRODUCE_TIMEOUT", cls.produce_timeout),
            record_unknown=(env.get("AFTERSALE_INGEST_RECORD_UNKNOWN") or "1") not in ("0", "false", "no"),
            mapping=MappingOptions(
                zones=zones,
                easypost_order_id=_sources(env, "AFTERSALE_EASYPOST_ORDER_ID", "header:X-Aftersale-Order-Id,index"),
                zendesk_customer_id=_sources(env, "AFTERSALE_ZENDESK_CUSTOMER_ID", "field:detail.external_id"),
            ),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def body_limit(self, provider: str) -> int:
        return self.body_limits.get(provider) or BODY_LIMITS[provider]


def _positive(env, name: str, default: int) -> int:
    value = int(_float(env, name, default))
    if value <= 0:
        raise SystemExit(f"{name} must be a positive number, got {env.get(name)!r}")
    return value


def _body_limits(env) -> dict:
    """The provider's own setting, else AFTERSALE_INGEST_MAX_BODY, else the provider's default."""
    limits = {}
    for provider, default in BODY_LIMITS.items():
        name = BODY_LIMIT_ENV[provider] if env.get(BODY_LIMIT_ENV[provider]) else "AFTERSALE_INGEST_MAX_BODY"
        limits[provider] = _positive(env, name, default)
    return limits


@dataclass(frozen=True)
class SenderSettings:
    http_url: str | None = None  # intents are POSTed here (all channels, or all but e-mail when SMTP is set)
    http_secret: str | None = None  # HMAC-SHA256 key of the X-Aftersale-Signature header
    http_timeout: float = 10.0
    smtp_host: str | None = None  # e-mail intents go over SMTP when set
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "aftersale@localhost"
    directory: Path | None = None  # JSON: customer_id -> {"email": ..., "phone": ...}
    max_attempts: int = 6  # deliveries tried before the intent is dead-lettered
    backoff_base: float = 0.5  # seconds; attempt n waits a random time up to base * 2**n ...
    backoff_cap: float = 30.0  # ... but never more than this
    max_in_flight: int = 1000  # intents held (waiting for send_at or retrying) before fetching pauses
    group: str | None = None  # consumer group; default "<app id>-sender"
    web_port: int | None = None  # /metrics and /health of the sender, when set

    @classmethod
    def from_env(cls, env=None, **overrides) -> "SenderSettings":
        env = os.environ if env is None else env
        values = dict(
            http_url=env.get("AFTERSALE_SENDER_URL") or None,
            http_secret=env.get("AFTERSALE_SENDER_SECRET") or None,
            http_timeout=_float(env, "AFTERSALE_SENDER_TIMEOUT", cls.http_timeout),
            smtp_host=env.get("AFTERSALE_SMTP_HOST") or None,
            smtp_port=int(_float(env, "AFTERSALE_SMTP_PORT", cls.smtp_port)),
            smtp_user=env.get("AFTERSALE_SMTP_USER") or None,
            smtp_password=env.get("AFTERSALE_SMTP_PASSWORD") or None,
            smtp_starttls=(env.get("AFTERSALE_SMTP_STARTTLS") or "0") in ("1", "true", "yes"),
            smtp_from=env.get("AFTERSALE_SMTP_FROM") or cls.smtp_from,
            directory=Path(env["AFTERSALE_CUSTOMER_DIRECTORY"]) if env.get("AFTERSALE_CUSTOMER_DIRECTORY") else None,
            max_attempts=int(_float(env, "AFTERSALE_SENDER_MAX_ATTEMPTS", cls.max_attempts)),
            backoff_base=_float(env, "AFTERSALE_SENDER_BACKOFF_BASE", cls.backoff_base),
            backoff_cap=_float(env, "AFTERSALE_SENDER_BACKOFF_CAP", cls.backoff_cap),
            max_in_flight=int(_float(env, "AFTERSALE_SENDER_MAX_IN_FLIGHT", cls.max_in_flight)),
            group=env.get("AFTERSALE_SENDER_GROUP") or None,
            web_port=int(_float(env, "AFTERSALE_SENDER_WEB_PORT", 0)) or None,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not settings.http_url and not settings.smtp_host:
            raise SystemExit("the sender needs AFTERSALE_SENDER_URL and/or AFTERSALE_SMTP_HOST")
        if settings.http_url and not settings.http_secret:
            raise SystemExit("AFTERSALE_SENDER_URL needs AFTERSALE_SENDER_SECRET (receivers verify the signature)")
        if settings.smtp_host and settings.directory is None:
            raise SystemExit("SMTP delivery needs AFTERSALE_CUSTOMER_DIRECTORY (intents carry ids, not addresses)")
        return settings
