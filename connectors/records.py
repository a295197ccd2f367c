"""What a provider mapping returns, and small helpers to read provider payloads defensively.

Mappings are pure: a parsed payload and the request context in, records out. Anything a mapping
cannot read raises Malformed, which the ingest service answers with 400 and the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from .settings import MappingOptions


class Malformed(ValueError):
    """The body cannot be mapped; the message is the reason returned to the provider."""


@dataclass(frozen=True)
class OutRecord:
    topic: str  # topic suffix, e.g. "orders"
    key: str
    value: dict  # in the shape of the topic's Avro schema
    event_id: str


@dataclass(frozen=True)
class Skip:
    """An event accepted but not turned into a record, so it is counted and logged, never an error."""

    kind: str  # ignored: known, nothing to act on | unknown: type/topic we do not know | unmapped: ids missing
    what: str  # the provider's event type or topic
    reason: str
    raw: Any = None  # the provider's event, kept for the connector-unknown topic


@dataclass(frozen=True)
class Learned:
    """An association seen in one webhook that a later webhook of another kind needs."""

    kind: str  # order_customer: order id -> customer id | tracking_order: shipment key -> order id
    # | return_order: return id -> order id | line_item_sku: Shopify line item id -> our sku
    # | return_shipment: shipment key of a return label -> order id
    key: str
    value: str


@dataclass
class Mapped:
    delivery_id: str | None = None  # the provider's id of this delivery (duplicate check), if it has one
    records: list[OutRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    learned: list[Learned] = field(default_factory=list)


class Lookups:
    """Read access to what earlier webhooks taught the service (see connectors.memory.Directory)."""

    def customer_for_order(self, order_id: str) -> str | None:
        return None

    def order_for_shipment(self, shipment_key: str) -> str | None:
        return None

    def order_for_return(self, return_id: str) -> str | None:
        return None

    def sku_for_line_item(self, line_item_id: str) -> str | None:
        return None

    def is_return_shipment(self, shipment_key: str) -> bool:
        return False


@dataclass(frozen=True)
class Inbound:
    """One webhook request as a mapping sees it."""

    headers: Mapping[str, str]  # keys lower-cased
    received_at: int  # epoch ms
    query: Mapping[str, str] = field(default_factory=dict)
    lookups: Lookups = field(default_factory=Lookups)
    options: MappingOptions = field(default_factory=MappingOptions)

    @classmethod
    def of(cls, headers: Mapping[str, str] | None = None, received_at: int = 0, **kw) -> "Inbound":
        """For tests and tools: headers in any case."""
        return cls({k.lower(): v for k, v in (headers or {}).items()}, received_at, **kw)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower()) or None


# --- reading payloads ------------------------------------------------------------------------


def obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def opt_obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list:
    return value if isinstance(value, list) else []


def ident(value: Any) -> str | None:
    """An id as a string; providers send ids as numbers or strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        text = str(value).strip()
        return text or None
    return None


def need_id(record: dict, key: str, what: str) -> str:
    value = ident(record.get(key))
    if value is None:
        raise Malformed(f"{what}.{key} is missing or not an id")
    return value


def text(value: Any, limit: int = 4000) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def number(value: Any) -> float | None:
    """Prices arrive as strings ("58.00") or numbers."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and abs(out) != float("inf") else None


def dig(value: Any, path: str) -> Any:
    """`a.b.c` into nested objects; None when any step is missing."""
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INTEGER = re.compile(r"^-?[0-9]+$")  # not str.isdigit(): that also accepts digits int() refuses, like "²"
# Plausible event times only: 2000-01-01 .. 2100-01-01, so a wrong unit (s vs ms) fails loudly.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000


def to_ms(value: Any, zone: str | None = None) -> int | None:
    """Provider time to epoch ms: ISO-8601 (any offset, Z, nanoseconds), HTTP dates, unix s or ms.
    A bare date means the end of that day (an estimated delivery "by" that date). A time without
    an offset is read in `zone` (an IANA name) when given, else as UTC."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)):
        ms = int(value * 1000) if abs(value) < 1e11 else int(value)
    elif isinstance(value, str):
        raw = value.strip()
        if not raw:
            return None
        if _INTEGER.match(raw):
            return to_ms(int(raw))
        if _DATE_ONLY.match(raw):
            raw += "T23:59:59+00:00"
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                parsed = parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                return None
        if parsed.tzinfo is None:
            # Most providers that omit the offset mean UTC; those that mean a local time say where.
            parsed = parsed.replace(tzinfo=ZoneInfo(zone) if zone else timezone.utc)
        ms = int(parsed.timestamp() * 1000)
    else:
        return None
    return ms if _MIN_MS <= ms <= _MAX_MS else None


def need_ms(value: Any, what: str) -> int:
    ms = to_ms(value)
    if ms is None:
        raise Malformed(f"{what} is missing or not a time: {str(value)[:60]!r}")
    return ms


def first_ms(*values: Any) -> int | None:
    for v in values:
        ms = to_ms(v)
        if ms is not None:
            return ms
    return None


def slug(value: Any) -> str | None:
    """ "Home & Garden" -> "home-garden": categories and carriers as stable lower-case words."""
    if not isinstance(value, str):
        return None
    out = re.sub(r"[^a-z0-9]+", "-", value.strip().lower()).strip("-")
    return out[:64] or None


# Ticket tags that say what a support contact is about (SupportEvent.topic).
SUPPORT_TOPICS = {
    "wismo": "wismo",
    "where-is-my-order": "wismo",
    "order-status": "wismo",
    "damaged": "damaged",
    "return": "return",
    "returns": "return",
    "refund": "refund",
    "cancellation": "cancellation",
    "cancel": "cancellation",
    "delivery": "delivery",
    "late-delivery": "delivery",
}


def support_topic(tags) -> str | None:
    """The first tag that names a known topic; tags are strings or {"name": ...} objects."""
    for tag in items(tags):
        name = slug(tag.get("name") if isinstance(tag, dict) else tag)
        if name in SUPPORT_TOPICS:
            return SUPPORT_TOPICS[name]
    return None


def resolve(
    sources: tuple[str, ...], payload: Any, inbound: Inbound, index: Callable[[], str | None] | None = None
) -> str | None:
    """The first id found by configured sources: `header:Name`, `field:dotted.path`, or `index`
    (what an earlier webhook taught the service, e.g. the order of a tracking number)."""
    for source in sources:
        kind, _, arg = source.partition(":")
        if kind == "header":
            found = ident(inbound.header(arg))
        elif kind == "field":
            found = ident(dig(payload, arg))
        elif kind == "index":
            found = index() if index else None
        else:
            raise ValueError(f"unknown id source {source!r}")
        if found:
            return found
    return None
