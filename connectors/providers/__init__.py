"""One mapping module per provider: `map_webhook(payload, inbound) -> Mapped`, pure and broker-free."""

from __future__ import annotations

from typing import Callable

from ..records import Inbound, Mapped
from . import aftership, easypost, gorgias, klaviyo, sendgrid, shopify, zendesk

MAPPERS: dict[str, Callable[[object, Inbound], Mapped]] = {
    "shopify": shopify.map_webhook,
    "aftership": aftership.map_webhook,
    "easypost": easypost.map_webhook,
    "sendgrid": sendgrid.map_webhook,
    "klaviyo": klaviyo.map_webhook,
    "zendesk": zendesk.map_webhook,
    "gorgias": gorgias.map_webhook,
}
