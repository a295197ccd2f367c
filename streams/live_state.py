"""JSON views of live order and customer state, for the worker's HTTP API (streams/web.py).

The stored dict is served as it is under "state", so fields the core adds later show up without a
change here; "derived" adds what an operator would otherwise work out by hand. Pure functions: no
Faust, no Kafka, times passed in.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import Any

from .core.send_time import top_hours

# Bookkeeping times, not something that happened to the order.
NOT_MILESTONES = frozenset({"updated_at", "consent_at"})


def iso(ms: Any) -> str | None:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def as_dict(record: Any) -> dict:
    """A decision from the worker's recent buffers (a dataclass, or already a dict) as a JSON dict."""
    return asdict(record) if is_dataclass(record) else dict(record)


def _milestones(fields: dict, **extra) -> list[dict]:
    return [
        {"what": name[:-3], "at": value, "time": iso(value), **extra}
        for name, value in fields.items()
        if name.endswith("_at") and name not in NOT_MILESTONES and iso(value)
    ]


def timeline(order: dict) -> list[dict]:
    """Every '<what>_at' time of the order, of its shipments and of its returns, oldest first."""
    entries = _milestones(order)
    for shipment_id, shipment in (order.get("shipments") or {}).items():
        entries += _milestones(shipment, shipment_id=shipment_id)
    for return_id, ret in (order.get("returns") or {}).items():
        entries += _milestones(ret, return_id=return_id)
    return sorted(entries, key=lambda e: e["at"])


def returns(order: dict, now_ms: int) -> dict[str, dict]:
    """Per return: how far it got and, for "where is my refund?", the refund's state: refunded (when,
    how much), overdue (past the shop's usual time), expected (by when), or not applicable."""
    out = {}
    for return_id, r in (order.get("returns") or {}).items():
        due = (order.get("timers") or {}).get(f"refund_due:{return_id}")
        if r.get("refunded_at"):
            refund = {"state": "refunded", "at": iso(r["refunded_at"]), "amount": r.get("refund_amount")}
            refund["method"] = r.get("refund_method")
        elif r.get("status") in ("declined", "closed") or r.get("resolution") == "exchange":
            refund = {"state": "not_applicable"}
        elif r.get("refund_overdue_at") or (isinstance(due, int) and now_ms > due):
            refund = {"state": "overdue", "since": iso(r.get("refund_overdue_at") or due)}
        elif isinstance(due, int):
            refund = {"state": "expected", "by": iso(due)}
        else:
            refund = {"state": "waiting_for_the_return"}
        out[return_id] = {
            "status": r.get("status"),
            "resolution": r.get("resolution"),
            "items": list(r.get("items") or []),
            "tracking_number": r.get("tracking_number"),
            "carrier": r.get("carrier"),
            "exchange_order_id": r.get("exchange_order_id"),
            "refund": refund,
            "timeline": sorted(_milestones(r), key=lambda e: e["at"]),
        }
    return out


def tracking(order: dict) -> dict[str, dict]:
    """Normalized tracking status per shipment."""
    return {
        shipment_id: {
            "status": s.get("status"),
            "sub_status": s.get("sub_status"),
            "carrier": s.get("carrier"),
            "tracking_number": s.get("tracking_number"),
            "last_scan": iso(s.get("last_scan_at")),
            "delivered": iso(s.get("delivered_at")),
        }
        for shipment_id, s in (order.get("shipments") or {}).items()
    }


def is_late(order: dict, now_ms: int) -> bool | None:
    """Past the promised date and not delivered, or delivered after it; None without a promise."""
    promised = order.get("promised_delivery_at")
    if not isinstance(promised, int):
        return None
    shipments = list((order.get("shipments") or {}).values())
    delivered = [s.get("delivered_at") for s in shipments]
    if shipments and all(isinstance(d, int) for d in delivered):
        return max(delivered) > promised
    return now_ms > promised


def order_view(order: dict, decisions: dict[str, list[dict]], now_ms: int) -> dict:
    return {
        "order_id": order.get("order_id"),
        "state": order,
        "derived": {
            "timeline": timeline(order),
            "tracking": tracking(order),
            "returns": returns(order, now_ms),
            "promised_delivery": iso(order.get("promised_delivery_at")),
            "late": is_late(order, now_ms),
            "open_problems": list(order.get("problems") or []),
            "notified": list(order.get("notified") or []),
        },
        "recent": decisions,
    }


def channel_view(channel: dict) -> dict:
    if channel.get("unsubscribed_all"):
        consent = "none"
    elif channel.get("marketing_consent"):
        consent = "marketing_and_transactional"
    else:
        consent = "transactional_only"
    reachable = bool(channel.get("reachable")) and not channel.get("bounced") and consent != "none"
    return {"consent": consent, "reachable": reachable, "bounced": bool(channel.get("bounced"))}


def customer_view(customer: dict, decisions: dict[str, list[dict]]) -> dict:
    channels = {name: channel_view(ch) for name, ch in (customer.get("channels") or {}).items()}
    return {
        "customer_id": customer.get("customer_id"),
        "state": customer,
        "derived": {
            "channels": channels,
            "reachable_channels": sorted(n for n, c in channels.items() if c["reachable"]),
            "bounced_channels": sorted(n for n, c in channels.items() if c["bounced"]),
            "orders_count": customer.get("orders_count", 0),
            "open_tickets": list(customer.get("open_tickets") or []),
            "last_contacted": iso(max((i.get("at") or 0 for i in customer.get("recent_intents") or []), default=None)),
            # When they open and click, local hours best first (what send-time optimisation aims at).
            "engaged_hours": top_hours(customer.get("send_time")),
        },
        "recent": decisions,
    }


def recent_decisions(
    recent: dict, *, order_id: str | None = None, customer_id: str | None = None
) -> dict[str, list[dict]]:
    """This worker's recent intents and audit records about one order or customer, oldest first."""

    def wanted(d: dict) -> bool:
        return (order_id is None or d.get("order_id") == order_id) and (
            customer_id is None or d.get("customer_id") == customer_id
        )

    return {kind: [d for d in map(as_dict, list(recent[kind])) if wanted(d)] for kind in ("intents", "audit")}


def forget_customer(recent: dict, customer_id: str) -> int:
    """Drop an erased customer from a worker's recent decisions and dead letters; returns how many
    entries went. Dead letters carry no customer field: those whose error names the id go."""
    dropped = 0
    for entries in recent.values():
        keep = [
            e
            for e in entries
            if (e.get("customer_id") if isinstance(e, dict) else getattr(e, "customer_id", None)) != customer_id
            and not (isinstance(e, dict) and customer_id in str(e.get("error", "")))
        ]
        dropped += len(entries) - len(keep)
        entries.clear()
        entries.extend(keep)
    return dropped


def merge_decisions(*parts: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Decisions from several workers, without the copies both saw, oldest first."""
    merged: dict[str, list[dict]] = {}
    for kind, key in (("intents", "intent_id"), ("audit", "audit_id")):
        unique = {d[key]: d for part in parts for d in part.get(kind, [])}
        merged[kind] = sorted(unique.values(), key=lambda d: d.get("decided_at") or 0)
    return merged
