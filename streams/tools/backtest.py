"""Backtest: what aftersale would have sent for a historical dataset, against what really happened.

From a replay's intents and audit records and the replayed events themselves (the ground truth:
promised and actual delivery, cancellations, review scores), a Markdown report with PNG plots:

- delay alerts (delay_warning / delay_update): precision and recall of "predicted late" against
  orders delivered after their promise or never delivered, and the lead time from the first alert
  to the promised date;
- review requests: how many went to orders that ended with 1-2 stars, against a baseline that asks
  every delivered order N days after delivery;
- intents per type and channel, decisions not to send per reason, and messages per order (the
  over-messaging check).

Everything is computed from sorted data and written without times of day, so the same input gives
the same report byte for byte.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DAY = 86_400_000
HOUR = 3_600_000
DELAY_TYPES = ("delay_warning", "delay_update")
# Every message that tells the customer the order is running late (the model's alerts).
ALERT_TYPES = ("delay_warning", "delay_update", "dispatch_delayed", "stalled_pre_transit", "stalled_in_transit")
SERVICE_ALARMS = ALERT_TYPES + (
    "carrier_exception",
    "customs_delay",
    "weather_delay",
    "delivery_attempt_failed",
    "address_problem",
)
RULE_DAYS = (1, 2, 3, 5)
CURVE_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20)) + (0.99,)
REVIEW_TYPE = "review_request"
UNDELIVERED_SCANS = {"returned_to_sender", "expired"}


@dataclass
class OrderTruth:
    order_id: str
    customer_id: str | None = None
    placed_at: int | None = None
    promised_at: int | None = None
    delivered_at: int | None = None
    cancelled_at: int | None = None
    lost: bool = False  # returned to sender, lost, expired: will not arrive
    reviews: list[tuple[int, int]] = field(default_factory=list)  # (at, rating)

    @property
    def final_rating(self) -> int | None:
        return sorted(self.reviews)[-1][1] if self.reviews else None

    @property
    def first_review_at(self) -> int | None:
        return min(at for at, _ in self.reviews) if self.reviews else None


def ground_truth(events) -> tuple[dict[str, OrderTruth], int]:
    """What really happened to each order, from the replayed events; and the end of the data."""
    orders: dict[str, OrderTruth] = {}
    end = 0

    def get(order_id: str) -> OrderTruth:
        o = orders.get(order_id)
        if o is None:
            o = orders[order_id] = OrderTruth(order_id)
        return o

    for e in events:
        r = e.record
        t = e.event_time
        end = max(end, t)
        if e.topic == "orders":
            o = get(r["order_id"])
            o.customer_id = o.customer_id or r.get("customer_id")
            if r["type"] == "placed":
                o.placed_at = t if o.placed_at is None else min(o.placed_at, t)
                o.promised_at = e.event.promised_delivery_at
            elif r["type"] == "cancelled":
                o.cancelled_at = t if o.cancelled_at is None else min(o.cancelled_at, t)
        elif e.topic == "carrier-scans":
            o = get(r["order_id"])
            if r["status"] == "delivered":
                o.delivered_at = t if o.delivered_at is None else min(o.delivered_at, t)
            elif r["status"] in UNDELIVERED_SCANS or (r["status"] == "exception" and r.get("sub_status") == "lost"):
                o.lost = True
        elif e.topic == "engagement" and r.get("type") == "review_submitted" and r.get("order_id"):
            if r.get("rating") is not None:
                get(r["order_id"]).reviews.append((t, int(r["rating"])))
    return orders, end


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "n/a"


def _ratio(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _days(ms: float) -> float:
    return round(ms / DAY, 2)


# --- the figures -----------------------------------------------------------------------------

DEFINITIONS = [
    "**Late**: delivered on a calendar day after the promised date, in the shop's zone ({zone}). Orders never "
    "delivered (lost, returned, or still missing when the data ends after their promise) are counted apart, "
    "not as late; cancelled orders are left out.",
    "**Lead**: the start of the promised date (00:00 in the shop's zone) minus the alert's send time; > 0 is "
    "before the promised day. Median lead is over true alerts (alerted orders that were late).",
    "**Alert** (model): the first message that tells the customer the order is running late: "
    + ", ".join(f"`{t}`" for t in ALERT_TYPES)
    + ".",
    '**Rule N**: "not delivered N days before the promised date": alerts every order not delivered at the '
    "start of the promised date minus N days (lead N for every alert).",
    "**Precision / recall**: over delivered orders with a promise: precision = alerted and late / alerted, "
    "recall = alerted and late / late.",
]


def _local_day(ms: int, zone) -> int:
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000, zone).date().toordinal()


def _day_start(ms: int, zone) -> int:
    from datetime import datetime, time as dtime

    day = datetime.fromtimestamp(ms / 1000, zone).date()
    return int(datetime.combine(day, dtime(0), tzinfo=zone).timestamp() * 1000)


def _confusion(alerted: list, tp: list, late: set) -> dict:
    """Alerts, true and false positives, misses, precision and recall."""
    return {
        "alerts": len(alerted),
        "tp": len(tp),
        "fp": len(alerted) - len(tp),
        "fn": len(late) - len(tp),
        "precision": _ratio(len(tp), len(alerted)),
        "recall": _ratio(len(tp), len(late)),
    }


def _pr(alerts: dict[str, int], late: set, evaluated: list[str], starts: dict[str, int]) -> dict:
    """Precision, recall and lead of one alerting policy ({order: first alert send time})."""
    alerted = [o for o in evaluated if o in alerts]
    tp = [o for o in alerted if o in late]
    leads = sorted(starts[o] - alerts[o] for o in tp)
    all_leads = sorted(starts[o] - alerts[o] for o in alerted)
    return {
        **_confusion(alerted, tp, late),
        "lead_days_median_tp": _days(statistics.median(leads)) if leads else None,
        "lead_days_median_all": _days(statistics.median(all_leads)) if all_leads else None,
        "tp_before_promised_day": sum(1 for v in leads if v > 0),
        "_tp_leads": leads,
    }


def delay_alerts(
    truth: dict[str, OrderTruth], intents: list[dict], end: int, scores: list[dict] | None = None, zone: str = "UTC"
) -> dict:
    """The model's delay alerts beside the rules "not delivered N days before the promised date", on
    the same delivered orders; never-delivered orders apart; the model's curve over its threshold
    (from its scores) and its calibration."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    first_alert: dict[str, int] = {}
    alerts_per_order: Counter = Counter()
    for i in intents:
        if i["intent_type"] in ALERT_TYPES and i.get("order_id"):
            alerts_per_order[i["order_id"]] += 1
            oid, at = i["order_id"], i["send_at"]
            if oid not in first_alert or at < first_alert[oid]:
                first_alert[oid] = at
    evaluated, late, starts, never = [], set(), {}, []
    undecided = 0
    for oid in sorted(truth):
        o = truth[oid]
        if o.placed_at is None or o.promised_at is None or o.cancelled_at is not None:
            continue
        starts[oid] = _day_start(o.promised_at, tz)
        if o.delivered_at is not None:
            evaluated.append(oid)
            if _local_day(o.delivered_at, tz) > _local_day(o.promised_at, tz):
                late.add(oid)
        elif o.lost or o.promised_at < end:
            never.append(oid)
        else:
            undecided += 1
    model = _pr(first_alert, late, evaluated, starts)
    rules = {}
    for n in RULE_DAYS:
        fire = {
            oid: max(starts[oid] - n * DAY, truth[oid].placed_at)
            for oid in evaluated + never
            if truth[oid].delivered_at is None or truth[oid].delivered_at > starts[oid] - n * DAY
        }
        r = _pr(fire, late, evaluated, starts)
        r["never_delivered_alerted"] = sum(1 for o in never if o in fire)
        rules[n] = r
    curve = model_curve(scores, late, evaluated, starts) if scores is not None else []
    beats = {}
    for n, r in rules.items():
        # The best point of the model's curve at recall >= 0.9 and a median lead at least the rule's.
        ok = [
            c
            for c in curve
            if c["recall"] is not None
            and c["recall"] >= 0.9
            and c["lead_days_median_tp"] is not None
            and c["lead_days_median_tp"] >= n
        ]
        best = max(ok, key=lambda c: (c["precision"] or 0, c["threshold"]), default=None)
        shipped_ok = (model["recall"] or 0) >= 0.9 and (model["lead_days_median_tp"] or -1e9) >= n
        beats[n] = {
            "rule_precision": r["precision"],
            "rule_recall": r["recall"],
            "curve_threshold": best["threshold"] if best else None,
            "curve_precision": best["precision"] if best else None,
            "curve_recall": best["recall"] if best else None,
            "curve_lead_days": best["lead_days_median_tp"] if best else None,
            "curve_beats": bool(best and (best["precision"] or 0) > (r["precision"] or 0)),
            "shipped_beats": bool(shipped_ok and (model["precision"] or 0) > (r["precision"] or 0)),
        }
    out = {
        "zone": zone,
        "orders_evaluated": len(evaluated),
        "late": len(late),
        "never_delivered": len(never),
        "never_delivered_alerted": sum(1 for o in never if o in first_alert),
        "orders_undecided": undecided,
        "alerts_sent": sum(alerts_per_order.values()),
        "model": model,
        "rules": rules,
        "curve": curve,
        "beats": beats,
        "calibration": calibration(scores, late, evaluated) if scores is not None else None,
    }
    # Flat figures kept for the CLI line and earlier readers.
    out.update(
        {k: model[k] for k in ("precision", "recall", "tp", "fp", "fn", "lead_days_median_tp", "lead_days_median_all")}
    )
    return out


def model_curve(scores: list[dict], late: set, evaluated: list[str], starts: dict[str, int]) -> list[dict]:
    """Precision, recall and median lead had the model alerted the first time its P(late) reached
    each threshold (every assessment it made: at hand-off, at each re-check, while awaiting hand-off)."""
    by_order: dict[str, list[tuple[int, float]]] = defaultdict(list)
    wanted = set(evaluated)
    for s in scores:
        if s["order_id"] in wanted:
            by_order[s["order_id"]].append((s["at"], s["p_late"]))
    for v in by_order.values():
        v.sort()
    points = []
    for threshold in CURVE_THRESHOLDS:
        alerts = {}
        for oid, seq in by_order.items():
            at = next((t for t, p in seq if p >= threshold), None)
            if at is not None:
                alerts[oid] = at
        r = _pr(alerts, late, evaluated, starts)
        r.pop("_tp_leads")
        points.append({"threshold": threshold, **r})
    return points


def calibration(scores: list[dict], late: set, evaluated: list[str], bins: int = 10) -> dict:
    """Reliability of the predicted P(late) on delivered orders: every assessment, weighted so each
    order counts once; Brier score, and the same for the base rate (what "always say the average" gets)."""
    wanted = set(evaluated)
    per_order = Counter(s["order_id"] for s in scores if s["order_id"] in wanted)
    rows = [
        (s["p_late"], 1.0 if s["order_id"] in late else 0.0, 1.0 / per_order[s["order_id"]])
        for s in scores
        if s["order_id"] in wanted
    ]
    weight = sum(w for *_, w in rows)
    if not weight:
        return {"assessments": 0, "orders": 0, "brier": None, "brier_base_rate": None, "bins": []}
    base = sum(y * w for _, y, w in rows) / weight
    brier = sum(w * (p - y) ** 2 for p, y, w in rows) / weight
    brier_base = sum(w * (base - y) ** 2 for _, y, w in rows) / weight
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(p, y, w) for p, y, w in rows if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        wsum = sum(w for *_, w in inside)
        table.append(
            {
                "from": lo,
                "to": hi,
                "assessments": len(inside),
                "weight": round(wsum, 2),
                "predicted": round(sum(p * w for p, _, w in inside) / wsum, 4) if wsum else None,
                "observed": round(sum(y * w for _, y, w in inside) / wsum, 4) if wsum else None,
            }
        )
    return {
        "assessments": len(rows),
        "orders": len(per_order),
        "base_rate": round(base, 4),
        "brier": round(brier, 4),
        "brier_base_rate": round(brier_base, 4),
        "bins": table,
    }


def followed_by_problem(truth: dict[str, OrderTruth], intents: list[dict], zone: str = "UTC") -> dict:
    """Per service message type: how often the order it went to was then delivered late (the problem
    it announced), among delivered orders; never-delivered apart."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    seen: dict[str, set] = defaultdict(set)
    for i in intents:
        if i.get("order_id") and i["intent_type"] in SERVICE_ALARMS:
            seen[i["intent_type"]].add(i["order_id"])
    out = {}
    for t in sorted(seen):
        orders = sorted(seen[t])
        delivered = [o for o in orders if o in truth and truth[o].delivered_at is not None and truth[o].promised_at]
        late = [o for o in delivered if _local_day(truth[o].delivered_at, tz) > _local_day(truth[o].promised_at, tz)]
        never = [o for o in orders if o in truth and truth[o].delivered_at is None and truth[o].cancelled_at is None]
        out[t] = {
            "orders": len(orders),
            "delivered": len(delivered),
            "followed_by_late_delivery": len(late),
            "share": _ratio(len(late), len(delivered)),
            "never_delivered": len(never),
        }
    return out


def silent_decisions(
    candidates: list[dict] | None, intents: list[dict], audit: list[dict], truth: dict[str, OrderTruth]
) -> dict:
    """Every candidate message must end as an intent or an audit record; every delivered, uncancelled
    order must get a review-request decision (an intent or an audit record)."""
    from ..core import ids
    from ..core.model import CHANNELS

    sent = {i["intent_id"] for i in intents}
    audited = {a.get("intent_id") for a in audit}
    missing = []
    for c in candidates or ():
        cid = c["intent_id"]
        if cid in audited or cid in sent or any(ids.rechannel(cid, ch) in sent for ch in CHANNELS):
            continue
        missing.append(cid)
    review_decided = {i["order_id"] for i in intents if i["intent_type"] == REVIEW_TYPE}
    review_decided |= {a["order_id"] for a in audit if a["intent_type"] == REVIEW_TYPE}
    delivered = [o for o, t in sorted(truth.items()) if t.delivered_at is not None and t.cancelled_at is None]
    no_review = [o for o in delivered if o not in review_decided]
    return {
        "candidates": None if candidates is None else len(candidates),
        "candidates_without_decision": len(missing),
        "examples": missing[:5],
        "delivered_orders": len(delivered),
        "delivered_without_review_decision": len(no_review),
        "review_examples": no_review[:5],
    }


def review_requests(truth: dict[str, OrderTruth], intents: list[dict], audit: list[dict], baseline_days: int) -> dict:
    engine_first: dict[str, int] = {}
    for i in intents:
        if i["intent_type"] == REVIEW_TYPE and i.get("order_id"):
            oid = i["order_id"]
            engine_first[oid] = min(engine_first.get(oid, i["send_at"]), i["send_at"])
    baseline_first = {
        oid: o.delivered_at + baseline_days * DAY for oid, o in sorted(truth.items()) if o.delivered_at is not None
    }

    def breakdown(sent: dict[str, int]) -> dict:
        buckets = Counter()
        after_review = 0
        for oid, at in sent.items():
            o = truth.get(oid)
            rating = o.final_rating if o else None
            buckets["no_review" if rating is None else ("1-2" if rating <= 2 else ("3" if rating == 3 else "4-5"))] += 1
            if o is not None and o.first_review_at is not None and o.first_review_at < at:
                after_review += 1
        reviewed = sum(v for k, v in buckets.items() if k != "no_review")
        return {
            "requests": len(sent),
            "to_1_2_stars": buckets["1-2"],
            "to_3_stars": buckets["3"],
            "to_4_5_stars": buckets["4-5"],
            "to_unreviewed": buckets["no_review"],
            "to_reviewed_orders": reviewed,
            "share_1_2_of_all": _ratio(buckets["1-2"], len(sent)),
            "share_1_2_of_reviewed": _ratio(buckets["1-2"], reviewed),
            "after_customer_already_reviewed": after_review,
        }

    not_sent, held = Counter(), Counter()
    low_not_sent = set()
    for a in audit:
        if a["intent_type"] == REVIEW_TYPE and a.get("order_id"):
            why = f"{a['decision']}:{a['reasons'][0] if a['reasons'] else '-'}"
            if a["decision"] == "held":  # waiting (quiet hours, a guard): may go out later
                held[why] += 1
                continue
            not_sent[why] += 1
            o = truth.get(a["order_id"])
            if (
                o is not None
                and o.final_rating is not None
                and o.final_rating <= 2
                and a["order_id"] not in engine_first
            ):
                low_not_sent.add(a["order_id"])
    low_orders = sorted(oid for oid, o in truth.items() if o.final_rating is not None and o.final_rating <= 2)

    def reach(sent: dict[str, int]) -> dict:
        """Share of delivered, uncancelled orders of each eventual score that got a request."""
        out = {}
        for name, lo, hi in (("1_2", 1, 2), ("3_5", 3, 5), ("4_5", 4, 5)):
            group = [
                oid
                for oid, o in truth.items()
                if o.delivered_at is not None
                and o.cancelled_at is None
                and o.final_rating is not None
                and lo <= o.final_rating <= hi
            ]
            got = sum(1 for oid in group if oid in sent)
            out[name] = {"orders": len(group), "requested": got, "share": _ratio(got, len(group))}
        return out

    return {
        "engine": breakdown(engine_first),
        "baseline": breakdown(baseline_first),
        "baseline_days": baseline_days,
        "reach": reach(engine_first),
        "baseline_reach": reach(baseline_first),
        "orders_with_reviews": sum(1 for o in truth.values() if o.reviews),
        "orders_ending_1_2_stars": len(low_orders),
        "engine_not_sent": dict(sorted(not_sent.items())),
        "engine_held": dict(sorted(held.items())),
        "engine_not_sent_on_1_2_star_orders": len(low_not_sent),
    }


def messages(intents: list[dict], audit: list[dict]) -> dict:
    by_type = Counter(i["intent_type"] for i in intents)
    by_channel = Counter(i["channel"] for i in intents)
    by_type_channel: dict[str, Counter] = defaultdict(Counter)
    for i in intents:
        by_type_channel[i["intent_type"]][i["channel"]] += 1
    per_order = Counter(i["order_id"] for i in intents if i.get("order_id"))
    per_customer_day = Counter((i["customer_id"], i["send_at"] // DAY) for i in intents)
    reasons = Counter()
    decisions = Counter(a["decision"] for a in audit)
    for a in audit:
        for reason in a["reasons"][:1] or ["-"]:
            reasons[(a["decision"], reason.split(":", 1)[0] if reason.startswith(("p_late", "basis")) else reason)] += 1
    counts = sorted(per_order.values())
    top = sorted(per_order.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {
        "intents": len(intents),
        "by_type": dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_channel": dict(sorted(by_channel.items())),
        "by_type_channel": {t: dict(sorted(c.items())) for t, c in sorted(by_type_channel.items())},
        "audit": len(audit),
        "audit_by_decision": dict(sorted(decisions.items())),
        "audit_by_reason": [(d, r, n) for (d, r), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))],
        "orders_messaged": len(per_order),
        "per_order_median": statistics.median(counts) if counts else None,
        "per_order_mean": round(sum(counts) / len(counts), 2) if counts else None,
        "per_order_p95": counts[min(len(counts) - 1, int(0.95 * len(counts)))] if counts else None,
        "per_order_max": counts[-1] if counts else None,
        "per_order_histogram": dict(sorted(Counter(counts).items())),
        "top_orders": top,
        "per_customer_day_max": max(per_customer_day.values()) if per_customer_day else None,
        "customer_days_over_3": sum(1 for v in per_customer_day.values() if v > 3),
    }


# --- refunds of returns ----------------------------------------------------------------------

REFUND_ALERT = "refund_delayed"
# A refund is late when it comes more than this long after the return was received (or has not come
# this long after, when the data ends). The simulator's on-time refunds take 1.5-6 days and its late
# ones 8-20, so on simulated data this threshold and the simulator's own record agree; the record
# (truth) is used where there is one, the threshold on other data.
REFUND_LATE_DAYS = 7.0


@dataclass
class ReturnTruth:
    return_id: str
    order_id: str
    requested_at: int | None = None
    resolution: str | None = None
    declined: bool = False
    exchange: bool = False
    received_at: int | None = None
    refunded_at: int | None = None
    asked_at: int | None = None  # the customer's first support contact about the order after receipt


def return_truth(events) -> dict[str, ReturnTruth]:
    """What happened to each return (by return id), from the replayed events: receipt, refund (a
    `refunded` naming the return, or else the order's first refund after a receipt), and when the
    customer first contacted support about the order after the receipt."""
    returns: dict[str, ReturnTruth] = {}
    loose_refunds: list[tuple[str, int]] = []
    tickets: dict[str, list[int]] = defaultdict(list)
    for e in events:
        r, t = e.record, e.event_time
        if e.topic == "support":
            if r.get("order_id") and r.get("type") == "ticket_opened" and r.get("from_customer", True):
                tickets[r["order_id"]].append(t)
            continue
        if e.topic != "orders":
            continue
        info = r.get("return_info")
        if not info:
            if r["type"] == "refunded":
                loose_refunds.append((r["order_id"], t))
            continue
        rid = info["return_id"]
        o = returns.get(rid)
        if o is None:
            o = returns[rid] = ReturnTruth(rid, r["order_id"])
        o.resolution = o.resolution or info.get("resolution")
        kind = r["type"]
        if kind == "return_requested":
            o.requested_at = t if o.requested_at is None else min(o.requested_at, t)
        elif kind == "return_declined":
            o.declined = True
        elif kind == "exchange_created":
            o.exchange = True
        elif kind == "return_received":
            o.received_at = t if o.received_at is None else min(o.received_at, t)
        elif kind == "refunded":
            o.refunded_at = t if o.refunded_at is None else min(o.refunded_at, t)
    by_order: dict[str, list[ReturnTruth]] = defaultdict(list)
    for o in returns.values():
        by_order[o.order_id].append(o)
    for oid, t in sorted(loose_refunds):
        waiting = [o for o in by_order.get(oid, ()) if o.refunded_at is None and o.received_at is not None]
        waiting = [o for o in waiting if o.received_at <= t]
        if waiting:
            min(waiting, key=lambda o: (o.received_at, o.return_id)).refunded_at = t
    for o in returns.values():
        if o.received_at is not None:
            until = o.refunded_at if o.refunded_at is not None else float("inf")
            o.asked_at = min((t for t in tickets.get(o.order_id, ()) if o.received_at < t < until), default=None)
    return returns


def refund_alerts(
    returns: dict[str, ReturnTruth],
    intents: list[dict],
    audit: list[dict],
    end: int,
    sim_truth: dict[str, dict] | None = None,
    late_days: float = REFUND_LATE_DAYS,
) -> dict:
    """Did the engine flag a late refund (a `refund_delayed` intent, or an audit record of one when it
    was not sent) before the refund came, against whether the refund was late: the simulator's record
    where there is one, else "refunded (or still not) more than `late_days` after receipt"."""
    sim_truth = sim_truth or {}
    by_order: dict[str, list[ReturnTruth]] = defaultdict(list)
    for o in sorted(returns.values(), key=lambda o: o.return_id):
        by_order[o.order_id].append(o)
    raised = [
        (i["send_at"], (i.get("content") or {}).get("return_id"), i.get("order_id"), "intent")
        for i in intents
        if i["intent_type"] == REFUND_ALERT
    ]
    raised += [(a["decided_at"], None, a.get("order_id"), "audit") for a in audit if a["intent_type"] == REFUND_ALERT]
    first: dict[str, int] = {}
    after_refund = unmatched = 0
    for at, rid, oid, _ in sorted(raised, key=lambda x: (x[0], x[1] or "", x[2] or "", x[3])):
        o = returns.get(rid) if rid else None
        if o is None:  # no return id: the order's latest return received by then
            seen = [r for r in by_order.get(oid or "", ()) if r.received_at is not None and r.received_at <= at]
            o = max(seen, key=lambda r: (r.received_at, r.return_id), default=None)
        if o is None:
            unmatched += 1
        elif o.refunded_at is not None and at >= o.refunded_at:
            after_refund += 1
        elif o.return_id not in first:
            first[o.return_id] = at
    evaluated, late, undecided, from_sim, disagree, unrefunded = [], set(), 0, 0, 0, 0
    limit = int(late_days * DAY)
    for rid, o in sorted(returns.items()):
        if o.received_at is None or o.declined or o.exchange or o.resolution == "exchange":
            continue
        by_rule = None
        if o.refunded_at is not None:
            by_rule = o.refunded_at - o.received_at > limit
        elif end - o.received_at > limit:
            by_rule = True
        sim = sim_truth.get(rid, {}).get("refund_late")
        if sim is not None:
            from_sim += 1
            disagree += by_rule is not None and by_rule != sim
            is_late = sim
        elif by_rule is None:
            undecided += 1
            continue
        else:
            is_late = by_rule
        evaluated.append(rid)
        unrefunded += o.refunded_at is None
        if is_late:
            late.add(rid)
    alerted = [r for r in evaluated if r in first]
    tp = [r for r in alerted if r in late]
    to_refund = sorted(returns[r].refunded_at - first[r] for r in tp if returns[r].refunded_at is not None)
    asked = [r for r in tp if returns[r].asked_at is not None]
    to_ask = sorted(returns[r].asked_at - first[r] for r in asked)
    after_receipt = sorted(first[r] - returns[r].received_at for r in alerted)
    all_returns = list(returns.values())
    return {
        "late_days": late_days,
        "returns": len(all_returns),
        "declined": sum(o.declined for o in all_returns),
        "exchanges": sum(o.exchange or o.resolution == "exchange" for o in all_returns if not o.declined),
        "received": sum(o.received_at is not None for o in all_returns),
        "refunded": sum(o.refunded_at is not None for o in all_returns),
        "resolutions": dict(sorted(Counter(o.resolution or "unknown" for o in all_returns).items())),
        "evaluated": len(evaluated),
        "late": len(late),
        "late_share": _ratio(len(late), len(evaluated)),
        "not_refunded_by_end": unrefunded,
        "undecided": undecided,
        "truth_from_simulator": from_sim,
        "simulator_and_threshold_disagree": disagree,
        "raised": len(raised),
        "raised_after_refund": after_refund,
        "raised_unmatched": unmatched,
        **_confusion(alerted, tp, late),
        "lead_days_to_refund_median": _days(statistics.median(to_refund)) if to_refund else None,
        "asked": sum(1 for r in late if returns[r].asked_at is not None),
        "tp_asked": len(asked),
        "tp_before_ask": sum(1 for v in to_ask if v > 0),
        "lead_days_to_ask_median": _days(statistics.median(to_ask)) if to_ask else None,
        "days_after_receipt_median": _days(statistics.median(after_receipt)) if after_receipt else None,
    }


def render_refunds(rf: dict) -> list[str]:
    lines = ["## Refunds of returns: late-refund alerts", ""]
    if not rf["returns"]:
        return lines + ["No returns in this data (no return events): nothing to evaluate.", ""]
    lines += [
        f"- **Late refund**: refunded more than {rf['late_days']:g} days after the return was received, or not "
        "refunded that long after when the data ends; on simulated data the simulator's record of each refund "
        f"(its late tail) decides ({rf['truth_from_simulator']} returns; the threshold disagrees on "
        f"{rf['simulator_and_threshold_disagree']}).",
        f"- **Alert**: the first `{REFUND_ALERT}` intent (send time) or audit record of one (decision time) "
        "for the return before its refund came; alerts after the refund are counted apart.",
        "- **Lead**: the refund's time (or the customer's first support contact about the order after the "
        "receipt) minus the alert's; median over true alerts.",
        "",
        f"{rf['returns']} returns: {rf['declined']} declined, {rf['exchanges']} exchanges, {rf['received']} "
        f"received, {rf['refunded']} refunded (resolutions asked: "
        + ", ".join(f"{k} {v}" for k, v in rf["resolutions"].items())
        + f"). Evaluated (received, to be refunded): {rf['evaluated']}, {rf['late']} late "
        f"({_fmt(rf['late_share'])}), {rf['not_refunded_by_end']} not refunded when the data ends; "
        f"{rf['undecided']} received too recently to tell (left out).",
        "",
    ]
    if not rf["raised"]:
        lines += [f"The engine raised no `{REFUND_ALERT}` (no intent, no audit record): recall 0.", ""]
    lines += [
        _table(
            ["alerts", "true", "false", "missed", "precision", "recall", "median lead to refund (d)"],
            [
                [
                    rf["alerts"],
                    rf["tp"],
                    rf["fp"],
                    rf["fn"],
                    _f(rf["precision"]),
                    _f(rf["recall"]),
                    _f(rf["lead_days_to_refund_median"]),
                ]
            ],
        ),
        "",
        f"Customers with a late refund who contacted support after the receipt: {rf['asked']}; of the "
        f"{rf['tp_asked']} of them alerted, {rf['tp_before_ask']} before they wrote (median lead to the contact "
        f"{_f(rf['lead_days_to_ask_median'])} d). Median time from receipt to alert "
        f"{_f(rf['days_after_receipt_median'])} d. `{REFUND_ALERT}` raised {rf['raised']} times; after the "
        f"refund {rf['raised_after_refund']}, matching no received return {rf['raised_unmatched']}.",
        "",
    ]
    return lines


def _outcomes(replay_dir: Path) -> list[dict] | None:
    import orjson

    path = replay_dir / "outcomes.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None


def _sim_truth(
    source: str | None, simulate_orders: int | None, seed: int, planted: tuple = ()
) -> dict[str, dict] | None:
    """The simulator's record of each return: regenerated for --simulate, read from the "truth" of a
    `simulate --out` file's lines; none for other data."""
    if simulate_orders:
        from .simulate import generate, returns_truth

        return returns_truth(generate(orders=simulate_orders, seed=seed, planted=planted))
    path = Path(source) if source else None
    if path is None or path.is_dir() or path.suffix.lower() == ".csv" or not path.exists():
        return None
    import orjson

    out: dict[str, dict] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if b'"truth"' not in line:
                continue
            try:
                truth = orjson.loads(line).get("truth")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(truth, dict) and truth.get("return_id"):
                out[truth["return_id"]] = truth
    return out or None


# --- plots -----------------------------------------------------------------------------------


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("the backtest's plots need matplotlib: pip install 'aftersale[tools]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})  # no version stamp: stable bytes
    import matplotlib.pyplot as plt

    plt.close(fig)


LEAD_RANGE = (-4.0, 12.0)  # days shown; alerts outside are counted in the legend, not drawn


def plot_lead_time(d: dict, path: Path) -> None:
    """Lead of the model's true alerts, in half-day bins over a fixed range (outliers counted apart,
    so they cannot squeeze the picture), with the rules' leads marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    leads = [v / DAY for v in d["model"]["_tp_leads"]]
    lo, hi = LEAD_RANGE
    inside = [v for v in leads if lo <= v <= hi]
    below, above = sum(1 for v in leads if v < lo), sum(1 for v in leads if v > hi)
    if leads:
        ax.hist(
            inside,
            bins=int((hi - lo) * 2),
            range=(lo, hi),
            color="#2a7",
            label=f"model, true alerts (n={len(leads)}; {below} below {lo:g} d, {above} above {hi:g} d)",
        )
        med = statistics.median(leads)
        ax.axvline(med, color="#164", linestyle="--", linewidth=1, label=f"model median {med:.2f} d")
    else:
        ax.text(0.5, 0.5, "no true delay alerts", ha="center", va="center", transform=ax.transAxes)
    for n in RULE_DAYS:
        ax.axvline(n, color="#888", linestyle=":", linewidth=0.8)
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("days from the alert to the start of the promised date (dotted: rules N = 1, 2, 3, 5)")
    ax.set_ylabel("late orders")
    ax.set_title("Delay alerts: lead before the promised date")
    if leads:  # nothing to label otherwise
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    _save(fig, path)


def plot_curves(d: dict, path: Path) -> None:
    """Precision against recall, and precision against median lead, of the model over its threshold
    and of the rules "not delivered N days before", on the same orders."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    curve = [c for c in d["curve"] if c["precision"] is not None]
    rules = sorted(d["rules"].items())
    if curve:
        a1.plot(
            [c["recall"] for c in curve],
            [c["precision"] for c in curve],
            "-o",
            ms=3,
            color="#27c",
            label="model, over P(late) threshold",
        )
        a2.plot(
            [c["lead_days_median_tp"] for c in curve],
            [c["precision"] for c in curve],
            "-o",
            ms=3,
            color="#27c",
            label="model, over P(late) threshold",
        )
    m = d["model"]
    if m["precision"] is not None:
        a1.plot([m["recall"]], [m["precision"]], "*", ms=12, color="#c33", label="model as shipped")
        a2.plot([m["lead_days_median_tp"]], [m["precision"]], "*", ms=12, color="#c33", label="model as shipped")
    a1.plot(
        [r["recall"] for _, r in rules],
        [r["precision"] for _, r in rules],
        "s",
        color="#888",
        label="rule: not delivered N d before",
    )
    a2.plot(
        [n for n, _ in rules],
        [r["precision"] for _, r in rules],
        "s-",
        color="#888",
        label="rule: not delivered N d before",
    )
    for n, r in rules:
        a1.annotate(
            f"N={n}", (r["recall"] or 0, r["precision"] or 0), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
        a2.annotate(f"N={n}", (n, r["precision"] or 0), fontsize=7, xytext=(3, 3), textcoords="offset points")
    a1.axvline(0.9, color="#bbb", linewidth=0.8, linestyle="--")
    a1.set_xlabel("recall (late orders alerted)")
    a1.set_ylabel("precision (alerted orders that were late)")
    a2.set_xlabel("median lead of true alerts (days before the promised date)")
    a2.set_ylabel("precision")
    a2.set_xlim(-1, 10)
    for ax in (a1, a2):
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=7, loc="lower left")
    fig.suptitle("Delay alerts: model and rules on the same delivered orders", fontsize=10)
    _save(fig, path)


def plot_calibration(c: dict | None, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], color="#bbb", linewidth=0.8, linestyle="--", label="perfectly calibrated")
    if c and c["bins"]:
        pts = [b for b in c["bins"] if b["predicted"] is not None]
        ax.plot(
            [b["predicted"] for b in pts],
            [b["observed"] for b in pts],
            "-o",
            color="#27c",
            label=f"model (Brier {c['brier']}, base rate {c['brier_base_rate']})",
        )
        for b in pts:
            ax.annotate(
                f"{b['weight']:g}",
                (b["predicted"], b["observed"]),
                fontsize=6,
                xytext=(3, -8),
                textcoords="offset points",
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(late) (bin mean)")
    ax.set_ylabel("observed share late")
    ax.set_title("Calibration of P(late) (labels: orders' weight)")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    _save(fig, path)


def plot_reviews(r: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    labels = ["1-2 stars", "3 stars", "4-5 stars", "no review"]
    keys = ["to_1_2_stars", "to_3_stars", "to_4_5_stars", "to_unreviewed"]
    x = range(len(labels))
    e = [r["engine"][k] for k in keys]
    b = [r["baseline"][k] for k in keys]
    ax.bar([i - 0.2 for i in x], e, width=0.4, color="#27c", label=f"aftersale ({r['engine']['requests']})")
    ax.bar(
        [i + 0.2 for i in x],
        b,
        width=0.4,
        color="#aaa",
        label=f"everyone {r['baseline_days']} days after delivery ({r['baseline']['requests']})",
    )
    for i, (ev, bv) in enumerate(zip(e, b)):
        ax.text(i - 0.2, ev, str(ev), ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, bv, str(bv), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("review requests")
    ax.set_title("Review requests by the order's eventual review score")
    ax.legend(frameon=False)
    _save(fig, path)


def plot_intents(m: dict, path: Path) -> None:
    plt = _plt()
    types = list(m["by_type"])
    channels = sorted(m["by_channel"])
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(types) + 1)))
    left = [0] * len(types)
    colors = {"email": "#27c", "sms": "#e83", "push": "#7a4"}
    for ch in channels:
        vals = [m["by_type_channel"].get(t, {}).get(ch, 0) for t in types]
        ax.barh(types, vals, left=left, color=colors.get(ch, "#999"), label=ch)
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set_xlabel("intents")
    ax.set_title("Intents per type and channel")
    if channels:
        ax.legend(frameon=False, loc="lower right")
    _save(fig, path)


def plot_suppressions(m: dict, path: Path) -> None:
    plt = _plt()
    rows = m["audit_by_reason"][:20]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(rows) + 1)))
    if rows:
        colors = {"suppressed": "#c44", "held": "#e93", "skipped": "#888", "dropped": "#559"}
        ax.barh(
            [f"{d}: {r}" for d, r, _ in rows], [n for *_, n in rows], color=[colors.get(d, "#999") for d, _, _ in rows]
        )
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no decisions not to send", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("decisions")
    ax.set_title("Not sent, by decision and first reason")
    _save(fig, path)


def plot_per_order(m: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    hist = m["per_order_histogram"]
    if hist:
        ax.bar(list(hist), list(hist.values()), color="#27c")
        ax.axvline(m["per_order_max"], color="#c44", linestyle=":", linewidth=1, label=f"max {m['per_order_max']}")
        ax.legend(frameon=False)
    ax.set_xlabel("messages (intents) per order")
    ax.set_ylabel("orders")
    ax.set_title("Messages per order")
    _save(fig, path)


# --- the report ------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


UNJOINED_EFFECTS = {
    "order_without_customer": "no customer row: no destination region (so no lane: the delay model fell back to "
    "the carrier-wide statistics), time zone assumed Sao Paulo, one customer per order",
    "order_without_items": "no line items: no category (review timing fell back to the default delay), no care "
    "tips or cross-sell content; the review request was decided at the order level",
    "item_without_product": "no product row: the item's category is unknown",
    "item_without_seller": "no seller row: no origin region for the lane",
    "item_without_order": "an item of an order not in the data: not used",
    "review_without_order": "a review of an order not in the data: not used",
    "review_without_answer_time": "a review without an answer time: not used",
    "review_without_score": "a review without a valid score: not used",
    "delivered_without_carrier_date": "delivered without a hand-off time: no transit time learned from it",
    "order_without_promise": "no promised date: no delay alert possible, not in the delay figures",
}


def build(
    events,
    intents: list[dict],
    audit: list[dict],
    input_report: dict,
    baseline_days: int = 7,
    replay_info: dict | None = None,
    scores: list[dict] | None = None,
    candidates: list[dict] | None = None,
    zone: str = "UTC",
    sim_truth: dict[str, dict] | None = None,
    refund_late_days: float = REFUND_LATE_DAYS,
    outcomes: list[dict] | None = None,
    running: tuple = (),
    planted: tuple = (),
    seed: int | None = None,
) -> dict:
    """`outcomes`, `running`, `planted`: the replay's experiment outcomes, its experiments and the
    effects planted in its simulated traffic; `seed`: the simulator's, for the send-time truth."""
    from . import experiments_report

    truth, end = ground_truth(events)
    return {
        "send_time": experiments_report.send_time(events, intents, audit, seed, running),
        "experiments": experiments_report.experiment_outcomes(outcomes, running, planted, truth),
        "delay": delay_alerts(truth, intents, end, scores, zone),
        "refunds": refund_alerts(return_truth(events), intents, audit, end, sim_truth, refund_late_days),
        "followed": followed_by_problem(truth, intents, zone),
        "silent": silent_decisions(candidates, intents, audit, truth),
        "reviews": review_requests(truth, intents, audit, baseline_days),
        "messages": messages(intents, audit),
        "input": input_report,
        "replay": replay_info or {},
        "orders": len(truth),
        "events": len(events),
    }


def _f(v) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def render(fig: dict) -> str:
    d, r, m, inp = fig["delay"], fig["reviews"], fig["messages"], fig["input"]
    rp = fig["replay"]
    lines = ["# Backtest: what aftersale would have sent", ""]
    lines.append(
        f"Input: `{inp.get('source')}` ({inp.get('kind')}): {fig['events']:,} events of {fig['orders']:,} orders "
        f"replayed {rp.get('path', 'in-process')} on {rp.get('partitions', '?')} partitions, time ticking every "
        f"{rp.get('tick_hours', '?')} h and running on {rp.get('run_on_days', '?')} days past the last event."
    )
    wi = rp.get("what_if") or {}
    if wi.get("assume_consent"):
        lines.append(
            f"**What-if: consent assumed.** Every order's checkout consented to marketing e-mail "
            f"({wi['orders_given_consent']} orders); the {wi['review_answers_held_out']} review answers in "
            "the data answered the shop's own survey, which aftersale's request replaces, so they are "
            "outcomes here (ground truth), not inputs."
        )
    if rp.get("warm_start"):
        lines.append(f"Warm start: learned statistics from `{rp['warm_start']}`.")
    if inp.get("missing_files"):
        lines.append(f"Missing files: {', '.join(inp['missing_files'])}.")
    if inp.get("unjoined"):
        lines += [
            "",
            "Rows not joined (not fatal): " + ", ".join(f"{k} {v}" for k, v in inp["unjoined"].items()) + ".",
            "What that disabled:",
            "",
        ]
        lines += [f"- {k} ({v}): {UNJOINED_EFFECTS.get(k, 'not used')}." for k, v in inp["unjoined"].items()]
    if inp.get("rejected"):
        lines.append("Events rejected: " + ", ".join(f"{k} {v}" for k, v in inp["rejected"].items()) + ".")
    mo = d["model"]
    rule_rows = [
        [
            f"rule N={n}: not delivered {n} d before",
            rr["alerts"],
            rr["tp"],
            _f(rr["precision"]),
            _f(rr["recall"]),
            _f(rr["lead_days_median_tp"]),
            rr["never_delivered_alerted"],
        ]
        for n, rr in sorted(d["rules"].items())
    ]
    lines += [
        "",
        "## Delay alerts",
        "",
        *[f"- {t.format(zone=d['zone'])}" for t in DEFINITIONS],
        "",
        f"{d['orders_evaluated']} delivered orders with a promise, {d['late']} late; {d['never_delivered']} "
        f"never delivered (apart: the model alerted {d['never_delivered_alerted']} of them); "
        f"{d['orders_undecided']} still in transit before their promise when the data ends (left out).",
        "",
        _table(
            ["policy", "alerts", "true", "precision", "recall", "median lead, true (d)", "never-delivered alerted"],
            [
                [
                    "**model (as shipped)**",
                    mo["alerts"],
                    mo["tp"],
                    _f(mo["precision"]),
                    _f(mo["recall"]),
                    _f(mo["lead_days_median_tp"]),
                    d["never_delivered_alerted"],
                ],
                *rule_rows,
            ],
        ),
        "",
        f"Model: median lead over all its alerts {_f(mo['lead_days_median_all'])} d; true alerts before the "
        f"promised day {mo['tp_before_promised_day']} of {mo['tp']}; delay messages sent in all "
        f"{d['alerts_sent']}.",
        "",
        "Against each rule: the model as shipped, and the best point of its curve (alerting the first time "
        "its P(late) reached a threshold) with recall >= 0.9 and a median lead at least the rule's:",
        "",
        _table(
            [
                "rule",
                "rule precision",
                "shipped beats it",
                "curve threshold",
                "curve precision",
                "curve recall",
                "curve lead (d)",
                "curve beats it",
            ],
            [
                [
                    f"N={n}",
                    _f(bt["rule_precision"]),
                    "yes" if bt["shipped_beats"] else "no",
                    _f(bt["curve_threshold"]),
                    _f(bt["curve_precision"]),
                    _f(bt["curve_recall"]),
                    _f(bt["curve_lead_days"]),
                    "yes" if bt["curve_beats"] else "no",
                ]
                for n, bt in sorted(d["beats"].items())
            ],
        ),
        "",
        "![precision, recall and lead](delay_curves.png)",
        "",
        "![lead time](lead_time.png)",
        "",
    ]
    c = d["calibration"]
    if c:
        lines += [
            "### Calibration of P(late)",
            "",
            f"{c['assessments']} assessments of {c['orders']} delivered orders, each order weighted 1 "
            f"(its assessments share the weight). Brier score {_f(c['brier'])}; always predicting the base rate "
            f"({_f(c.get('base_rate'))}) scores {_f(c['brier_base_rate'])} (lower is better).",
            "",
            _table(
                ["P(late)", "assessments", "orders' weight", "mean predicted", "observed late"],
                [
                    [
                        f"{b['from']:.1f}-{b['to']:.1f}",
                        b["assessments"],
                        b["weight"],
                        _f(b["predicted"]),
                        _f(b["observed"]),
                    ]
                    for b in c["bins"]
                ],
            ),
            "",
            "![calibration](calibration.png)",
            "",
        ]
    else:
        lines += [
            "### Calibration of P(late)",
            "",
            "No model scores with this replay (a replay through Kafka does "
            "not expose the model's assessments): no curve, no calibration.",
            "",
            "![calibration](calibration.png)",
            "",
        ]
    fo = fig["followed"]
    lines += [
        "## Service messages: followed by the problem they announced?",
        "",
        "Per type, orders that got it, and of those delivered how many were then delivered late.",
        "",
        _table(
            ["message type", "orders", "delivered", "then late", "share", "never delivered"],
            [
                [t, v["orders"], v["delivered"], v["followed_by_late_delivery"], _f(v["share"]), v["never_delivered"]]
                for t, v in fo.items()
            ],
        ),
        "",
    ]
    sd = fig["silent"]
    lines += [
        "## No silent decisions",
        "",
        f"Candidate messages proposed by the order stage: {_f(sd['candidates'])}; without an intent or an audit "
        f"record: {sd['candidates_without_decision']}. Delivered orders: {sd['delivered_orders']}; without a "
        f"review-request decision (intent or audit): {sd['delivered_without_review_decision']}.",
        "",
    ]
    e, b = r["engine"], r["baseline"]
    lines += [
        "## Review requests",
        "",
        f"aftersale's `review_request` intents against a baseline that asks every delivered order "
        f"{r['baseline_days']} days after delivery, by the order's eventual review score (the last one, where "
        f"the data has one). {r['orders_with_reviews']} orders have reviews; {r['orders_ending_1_2_stars']} "
        f"ended with 1-2 stars.",
        "",
        _table(
            ["", "aftersale", f"baseline ({r['baseline_days']} d)"],
            [
                ["requests", e["requests"], b["requests"]],
                ["to orders that ended 1-2 stars", e["to_1_2_stars"], b["to_1_2_stars"]],
                ["share of requests to 1-2 star orders", _fmt(e["share_1_2_of_all"]), _fmt(b["share_1_2_of_all"])],
                [
                    "share among requests to reviewed orders",
                    _fmt(e["share_1_2_of_reviewed"]),
                    _fmt(b["share_1_2_of_reviewed"]),
                ],
                [
                    "to 3 / 4-5 star orders",
                    f"{e['to_3_stars']} / {e['to_4_5_stars']}",
                    f"{b['to_3_stars']} / {b['to_4_5_stars']}",
                ],
                ["to orders without a review", e["to_unreviewed"], b["to_unreviewed"]],
                [
                    "sent after the customer had already reviewed",
                    e["after_customer_already_reviewed"],
                    b["after_customer_already_reviewed"],
                ],
            ],
        ),
        "",
        "Review requests aftersale decided not to send: "
        + (", ".join(f"{k} {v}" for k, v in r["engine_not_sent"].items()) or "none")
        + f"; {r['engine_not_sent_on_1_2_star_orders']} orders that ended with 1-2 stars were among them "
        "(and got no request). Held for a while (quiet hours, a guard; may have gone out later): "
        + (", ".join(f"{k} {v}" for k, v in r["engine_held"].items()) or "none")
        + ".",
        "",
        "Reach: share of delivered orders of each eventual score that got a request: "
        + "; ".join(
            f"{k.replace('_', '-')} stars {v['requested']} of {v['orders']} ({_fmt(v['share'])})"
            for k, v in r["reach"].items()
        )
        + " (baseline: "
        + "; ".join(f"{k.replace('_', '-')} {_fmt(v['share'])}" for k, v in r["baseline_reach"].items())
        + ").",
        "",
        "![review requests](review_requests.png)",
        "",
    ]
    if "refunds" in fig:
        lines += render_refunds(fig["refunds"])
    lines += [
        "## Intents per type and channel",
        "",
        _table(
            ["intent type", *sorted(m["by_channel"]), "total"],
            [
                [t, *[m["by_type_channel"].get(t, {}).get(ch, 0) for ch in sorted(m["by_channel"])], n]
                for t, n in m["by_type"].items()
            ]
            + [["**all**", *[m["by_channel"][ch] for ch in sorted(m["by_channel"])], m["intents"]]],
        ),
        "",
        "![intents](intents_by_type.png)",
        "",
        "## Not sent: suppressions and other decisions, per reason",
        "",
        "Decisions: " + (", ".join(f"{k} {v}" for k, v in m["audit_by_decision"].items()) or "none") + ".",
        "",
        _table(["decision", "first reason", "count"], [[dd, rr, n] for dd, rr, n in m["audit_by_reason"]]),
        "",
        "![suppressions](suppressions.png)",
        "",
        "## Messages per order (over-messaging check)",
        "",
        _table(
            ["figure", "value"],
            [
                ["orders with at least one intent", m["orders_messaged"]],
                [
                    "median / mean / p95 per order",
                    f"{m['per_order_median']} / {m['per_order_mean']} / {m['per_order_p95']}",
                ],
                ["max per order", m["per_order_max"]],
                ["most messaged orders", ", ".join(f"{o} ({n})" for o, n in m["top_orders"])],
                ["max intents to one customer in one (UTC) day", m["per_customer_day_max"]],
                ["customer-days with more than 3 intents", m["customer_days_over_3"]],
            ],
        ),
        "",
        "![messages per order](messages_per_order.png)",
        "",
    ]
    from . import experiments_report

    lines += experiments_report.render(fig["send_time"], fig["experiments"], _table)
    return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def write_report(fig: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_lead_time(fig["delay"], out / "lead_time.png")
    plot_curves(fig["delay"], out / "delay_curves.png")
    plot_calibration(fig["delay"]["calibration"], out / "calibration.png")
    plot_reviews(fig["reviews"], out / "review_requests.png")
    plot_intents(fig["messages"], out / "intents_by_type.png")
    plot_suppressions(fig["messages"], out / "suppressions.png")
    plot_per_order(fig["messages"], out / "messages_per_order.png")
    path = out / "report.md"
    path.write_text(render(fig) + "\n", encoding="utf-8")
    import orjson

    public = _public(fig)
    (out / "figures.json").write_bytes(
        orjson.dumps(public, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    )
    return path


def _public(v):
    """The figures without the private lists (keys starting with "_")."""
    if isinstance(v, dict):
        return {k: _public(x) for k, x in v.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(v, list):
        return [_public(x) for x in v]
    return v


def run_backtest(
    source: str | None,
    out_dir: str | Path,
    partitions: int = 4,
    run_on_days: float = 30.0,
    baseline_days: int = 7,
    progress: bool = True,
    simulate_orders: int | None = None,
    seed: int = 7,
    from_replay: str | None = None,
    tick_hours: float = 1.0,
    assume_consent: bool = False,
    warm_start: str | None = None,
    zone: str | None = None,
    refund_late_days: float = REFUND_LATE_DAYS,
    experiments: str | None = None,
    plant: tuple[str, ...] = (),
) -> dict:
    """Replay `source` in process (or take the outputs of an earlier replay in `from_replay`, e.g. one
    through Kafka), then write report.md, figures.json and the PNGs in `out_dir` (the replay's own
    outputs go to out_dir/replay/). The ground truth is read from all the input's events, also under
    the consent what-if (which keeps review answers out of the replay). `zone`: the shop's, for
    "late by calendar day" (default: Sao Paulo for Olist data, else UTC). `experiments`, `plant`: see
    run_replay (with `from_replay`, the file that replay ran)."""
    from ..config import load_experiments
    from .replay import _planted, load, load_simulated, run_replay
    from .replay.output import read_jsonl

    running = load_experiments(experiments)
    planted = _planted(plant, running, simulate_orders)
    if simulate_orders:
        events, report = load_simulated(simulate_orders, seed=seed, planted=planted)
    else:
        events, report = load(source)
    if zone is None:
        from .olist import DATA_ZONE

        zone = str(DATA_ZONE) if report.kind == "olist" else "UTC"
    out = Path(out_dir)
    if from_replay:
        replay_dir = Path(from_replay)
        import orjson

        info = orjson.loads((replay_dir / "summary.json").read_bytes())
    else:
        replay_dir = out / "replay"
        info = run_replay(
            source,
            replay_dir,
            partitions=partitions,
            run_on_days=run_on_days,
            progress=progress,
            simulate_orders=simulate_orders,
            seed=seed,
            tick_hours=tick_hours,
            what_if_consent=assume_consent,
            warm_start=warm_start,
            experiments=experiments,
            plant=plant,
        )
    intents = read_jsonl(replay_dir / "intents.jsonl")
    audit = read_jsonl(replay_dir / "audit.jsonl")
    scores = read_jsonl(replay_dir / "scores.jsonl") if (replay_dir / "scores.jsonl").exists() else None
    candidates = read_jsonl(replay_dir / "candidates.jsonl") if (replay_dir / "candidates.jsonl").exists() else None
    replay_info = {k: info.get(k) for k in ("path", "partitions", "run_on_days", "tick_hours", "what_if", "warm_start")}
    fig = build(
        events,
        intents,
        audit,
        info.get("input") or report.to_dict(),
        baseline_days,
        replay_info,
        scores,
        candidates,
        zone,
        _sim_truth(source, simulate_orders, seed, planted),
        refund_late_days,
        _outcomes(replay_dir),
        running,
        planted,
        seed if simulate_orders else None,
    )
    write_report(fig, out)
    return fig
