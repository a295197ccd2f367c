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

def delay_alerts(truth: dict[str, OrderTruth], intents: list[dict], end: int) -> dict:
    first_alert: dict[str, int] = {}
    alerts_per_order: Counter = Counter()
    for i in intents:
        if i["intent_type"] in DELAY_TYPES and i.get("order_id"):
            alerts_per_order[i["order_id"]] += 1
            at = i["send_at"]
            if i["order_id"] not in first_alert or at < first_alert[i["order_id"]]:
                first_alert[i["order_id"]] = at
    evaluated, late, predicted = [], set(), set()
    undecided = 0
    for oid in sorted(truth):
        o = truth[oid]
        if o.placed_at is None or o.promised_at is None or o.cancelled_at is not None:
            continue  # no promise to keep, or nothing to deliver
        if o.delivered_at is not None:
            is_late = o.delivered_at > o.promised_at
        elif o.lost or o.promised_at < end:
            is_late = True  # never arrived (lost, returned, or still not there when the data ends)
        else:
            undecided += 1  # in transit when the data ends, promise not yet passed: unknown
            continue
        evaluated.append(oid)
        if is_late:
            late.add(oid)
        if oid in first_alert:
            predicted.add(oid)
    tp, fp, fn = len(predicted & late), len(predicted - late), len(late - predicted)
    tn = len(evaluated) - tp - fp - fn
    leads = {oid: truth[oid].promised_at - first_alert[oid] for oid in sorted(predicted)}
    tp_leads = sorted(v for oid, v in leads.items() if oid in late)
    fp_leads = sorted(v for oid, v in leads.items() if oid not in late)
    # How long before the parcel really came (or the data ended) the customer heard of the delay.
    warned_before_delivery = [oid for oid in sorted(predicted & late)
                              if truth[oid].delivered_at is None or first_alert[oid] < truth[oid].delivered_at]
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision and recall else None
    return {
        "orders_evaluated": len(evaluated), "orders_undecided": undecided, "late": len(late),
        "late_delivered": sum(1 for o in late if truth[o].delivered_at is not None),
        "late_undelivered": sum(1 for o in late if truth[o].delivered_at is None),
        "predicted_late": len(predicted), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": precision, "recall": recall, "f1": f1,
        "alerts_sent": sum(alerts_per_order.values()),
        "alerts_on_evaluated_orders": sum(alerts_per_order[o] for o in evaluated),
        "lead_days_median_tp": _days(statistics.median(tp_leads)) if tp_leads else None,
        "lead_days_median_all": _days(statistics.median(sorted(leads.values()))) if leads else None,
        "lead_days_min_tp": _days(tp_leads[0]) if tp_leads else None,
        "lead_days_max_tp": _days(tp_leads[-1]) if tp_leads else None,
        "tp_alerted_before_promise": sum(1 for v in tp_leads if v > 0),
        "tp_alerted_before_delivery": len(warned_before_delivery),
        "_tp_leads": tp_leads, "_fp_leads": fp_leads,
    }


def review_requests(truth: dict[str, OrderTruth], intents: list[dict], audit: list[dict], baseline_days: int) -> dict:
    engine_first: dict[str, int] = {}
    for i in intents:
        if i["intent_type"] == REVIEW_TYPE and i.get("order_id"):
            oid = i["order_id"]
            engine_first[oid] = min(engine_first.get(oid, i["send_at"]), i["send_at"])
    baseline_first = {oid: o.delivered_at + baseline_days * DAY for oid, o in sorted(truth.items())
                      if o.delivered_at is not None}

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
        return {"requests": len(sent), "to_1_2_stars": buckets["1-2"], "to_3_stars": buckets["3"],
                "to_4_5_stars": buckets["4-5"], "to_unreviewed": buckets["no_review"],
                "to_reviewed_orders": reviewed,
                "share_1_2_of_all": _ratio(buckets["1-2"], len(sent)),
                "share_1_2_of_reviewed": _ratio(buckets["1-2"], reviewed),
                "after_customer_already_reviewed": after_review}

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
            if o is not None and o.final_rating is not None and o.final_rating <= 2 and a["order_id"] not in engine_first:
                low_not_sent.add(a["order_id"])
    low_orders = sorted(oid for oid, o in truth.items() if o.final_rating is not None and o.final_rating <= 2)
    return {"engine": breakdown(engine_first), "baseline": breakdown(baseline_first), "baseline_days": baseline_days,
            "orders_with_reviews": sum(1 for o in truth.values() if o.reviews), "orders_ending_1_2_stars": len(low_orders),
            "engine_not_sent": dict(sorted(not_sent.items())), "engine_held": dict(sorted(held.items())),
            "engine_not_sent_on_1_2_star_orders": len(low_not_sent)}


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
        "intents": len(intents), "by_type": dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_channel": dict(sorted(by_channel.items())),
        "by_type_channel": {t: dict(sorted(c.items())) for t, c in sorted(by_type_channel.items())},
        "audit": len(audit), "audit_by_decision": dict(sorted(decisions.items())),
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


# --- plots -----------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})  # no version stamp: stable bytes
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_lead_time(d: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    tp = [v / DAY for v in d["_tp_leads"]]
    fp = [v / DAY for v in d["_fp_leads"]]
    values = tp + fp
    if values:
        lo, hi = min(values + [0.0]), max(values + [0.0])
        bins = max(8, min(60, int((hi - lo) * 2) + 1))  # half-day bins
        ax.hist([tp, fp], bins=bins, range=(lo, hi + 1e-9), stacked=True, color=["#2a7", "#d84"],
                label=[f"late orders (true alerts, n={len(tp)})", f"on time (false alerts, n={len(fp)})"])
        if tp:
            ax.axvline(statistics.median(tp), color="#164", linestyle="--", linewidth=1,
                       label=f"median lead, true alerts: {statistics.median(tp):.1f} d")
        ax.legend(loc="upper left", frameon=False)
    else:
        ax.text(0.5, 0.5, "no delay alerts", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_xlabel("days from the first delay alert to the promised date (> 0: warned before the promise)")
    ax.set_ylabel("orders")
    ax.set_title("Delay alerts: lead time before the promised date")
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
    ax.bar([i + 0.2 for i in x], b, width=0.4, color="#aaa",
           label=f"everyone {r['baseline_days']} days after delivery ({r['baseline']['requests']})")
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
        ax.barh([f"{d}: {r}" for d, r, _ in rows], [n for *_, n in rows], color=[colors.get(d, "#999") for d, _, _ in rows])
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


def build(events, intents: list[dict], audit: list[dict], input_report: dict, baseline_days: int = 7,
          replay_info: dict | None = None) -> dict:
    truth, end = ground_truth(events)
    return {"delay": delay_alerts(truth, intents, end), "reviews": review_requests(truth, intents, audit, baseline_days),
            "messages": messages(intents, audit), "input": input_report, "replay": replay_info or {},
            "orders": len(truth), "events": len(events)}


def render(fig: dict) -> str:
    d, r, m, inp = fig["delay"], fig["reviews"], fig["messages"], fig["input"]
    rp = fig["replay"]
    lines = ["# Backtest: what aftersale would have sent", ""]
    lines.append(f"Input: `{inp.get('source')}` ({inp.get('kind')}): {fig['events']:,} events of {fig['orders']:,} orders "
                 f"replayed {rp.get('path', 'in-process')} on {rp.get('partitions', '?')} partitions, time ticking every "
                 f"{rp.get('tick_hours', '?')} h and running on {rp.get('run_on_days', '?')} days past the last event.")
    if inp.get("missing_files"):
        lines.append(f"Missing files: {', '.join(inp['missing_files'])}.")
    if inp.get("unjoined"):
        lines.append("Rows not joined (not fatal): " + ", ".join(f"{k} {v}" for k, v in inp["unjoined"].items()) + ".")
    if inp.get("rejected"):
        lines.append("Events rejected: " + ", ".join(f"{k} {v}" for k, v in inp["rejected"].items()) + ".")
    lines += ["", "## Delay alerts", "",
              "An order counts as late when it was delivered after its promised date, or never delivered (lost, "
              "returned, or still missing when the data ends after its promise). Cancelled orders and orders still "
              "in transit before their promise at the end of the data are left out. *Predicted late* = the order got "
              "a `delay_warning` or `delay_update` intent.", "",
              _table(["", "late", "on time"], [["alerted", d["tp"], d["fp"]], ["not alerted", d["fn"], d["tn"]]]), "",
              _table(["figure", "value"], [
                  ["orders evaluated", d["orders_evaluated"]],
                  ["late (delivered late / never delivered)", f"{d['late']} ({d['late_delivered']} / {d['late_undelivered']})"],
                  ["predicted late (alerted)", d["predicted_late"]],
                  ["precision", d["precision"]], ["recall", d["recall"]], ["F1", d["f1"]],
                  ["delay intents sent (all orders)", d["alerts_sent"]],
                  ["median lead time, true alerts (days before promise)", d["lead_days_median_tp"]],
                  ["median lead time, all alerts", d["lead_days_median_all"]],
                  ["true alerts sent before the promise", f"{d['tp_alerted_before_promise']} of {d['tp']}"],
                  ["true alerts sent before the parcel came", f"{d['tp_alerted_before_delivery']} of {d['tp']}"],
                  ["orders undecided at the end of the data", d["orders_undecided"]],
              ]), "", "![lead time](lead_time.png)", ""]
    e, b = r["engine"], r["baseline"]
    lines += ["## Review requests", "",
              f"aftersale's `review_request` intents against a baseline that asks every delivered order "
              f"{r['baseline_days']} days after delivery, by the order's eventual review score (the last one, where "
              f"the data has one). {r['orders_with_reviews']} orders have reviews; {r['orders_ending_1_2_stars']} "
              f"ended with 1-2 stars.", "",
              _table(["", "aftersale", f"baseline ({r['baseline_days']} d)"], [
                  ["requests", e["requests"], b["requests"]],
                  ["to orders that ended 1-2 stars", e["to_1_2_stars"], b["to_1_2_stars"]],
                  ["share of requests to 1-2 star orders", _fmt(e["share_1_2_of_all"]), _fmt(b["share_1_2_of_all"])],
                  ["share among requests to reviewed orders", _fmt(e["share_1_2_of_reviewed"]),
                   _fmt(b["share_1_2_of_reviewed"])],
                  ["to 3 / 4-5 star orders", f"{e['to_3_stars']} / {e['to_4_5_stars']}",
                   f"{b['to_3_stars']} / {b['to_4_5_stars']}"],
                  ["to orders without a review", e["to_unreviewed"], b["to_unreviewed"]],
                  ["sent after the customer had already reviewed", e["after_customer_already_reviewed"],
                   b["after_customer_already_reviewed"]],
              ]), "",
              "Review requests aftersale decided not to send: "
              + (", ".join(f"{k} {v}" for k, v in r["engine_not_sent"].items()) or "none")
              + f"; {r['engine_not_sent_on_1_2_star_orders']} orders that ended with 1-2 stars were among them "
              "(and got no request). Held for a while (quiet hours, a guard; may have gone out later): "
              + (", ".join(f"{k} {v}" for k, v in r["engine_held"].items()) or "none") + ".", "",
              "![review requests](review_requests.png)", ""]
    lines += ["## Intents per type and channel", "",
              _table(["intent type", *sorted(m["by_channel"]), "total"],
                     [[t, *[m["by_type_channel"].get(t, {}).get(ch, 0) for ch in sorted(m["by_channel"])], n]
                      for t, n in m["by_type"].items()] + [["**all**", *[m["by_channel"][ch] for ch in sorted(m["by_channel"])],
                                                             m["intents"]]]),
              "", "![intents](intents_by_type.png)", "",
              "## Not sent: suppressions and other decisions, per reason", "",
              "Decisions: " + (", ".join(f"{k} {v}" for k, v in m["audit_by_decision"].items()) or "none") + ".", "",
              _table(["decision", "first reason", "count"], [[dd, rr, n] for dd, rr, n in m["audit_by_reason"]]), "",
              "![suppressions](suppressions.png)", "",
              "## Messages per order (over-messaging check)", "",
              _table(["figure", "value"], [
                  ["orders with at least one intent", m["orders_messaged"]],
                  ["median / mean / p95 per order", f"{m['per_order_median']} / {m['per_order_mean']} / {m['per_order_p95']}"],
                  ["max per order", m["per_order_max"]],
                  ["most messaged orders", ", ".join(f"{o} ({n})" for o, n in m["top_orders"])],
                  ["max intents to one customer in one (UTC) day", m["per_customer_day_max"]],
                  ["customer-days with more than 3 intents", m["customer_days_over_3"]],
              ]), "", "![messages per order](messages_per_order.png)", ""]
    return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def write_report(fig: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_lead_time(fig["delay"], out / "lead_time.png")
    plot_reviews(fig["reviews"], out / "review_requests.png")
    plot_intents(fig["messages"], out / "intents_by_type.png")
    plot_suppressions(fig["messages"], out / "suppressions.png")
    plot_per_order(fig["messages"], out / "messages_per_order.png")
    path = out / "report.md"
    path.write_text(render(fig) + "\n", encoding="utf-8")
    import orjson

    public = {k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
              for k, v in fig.items()}
    (out / "figures.json").write_bytes(orjson.dumps(public, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    return path


def run_backtest(source: str | None, out_dir: str | Path, partitions: int = 4, run_on_days: float = 30.0,
                 baseline_days: int = 7, progress: bool = True, simulate_orders: int | None = None, seed: int = 7,
                 from_replay: str | None = None, tick_hours: float = 1.0) -> dict:
    """Replay `source` in process (or take the outputs of an earlier replay in `from_replay`, e.g. one
    through Kafka), then write report.md, figures.json and the PNGs in `out_dir` (the replay's own
    outputs go to out_dir/replay/)."""
    from .replay import load, load_simulated, run_replay
    from .replay.output import read_jsonl

    if simulate_orders:
        events, report = load_simulated(simulate_orders, seed=seed)
    else:
        events, report = load(source)
    out = Path(out_dir)
    if from_replay:
        replay_dir = Path(from_replay)
        import orjson

        info = orjson.loads((replay_dir / "summary.json").read_bytes())
    else:
        replay_dir = out / "replay"
        info = run_replay(source, replay_dir, partitions=partitions, run_on_days=run_on_days, progress=progress,
                          simulate_orders=simulate_orders, seed=seed, tick_hours=tick_hours)
    intents = read_jsonl(replay_dir / "intents.jsonl")
    audit = read_jsonl(replay_dir / "audit.jsonl")
    replay_info = {k: info.get(k) for k in ("path", "partitions", "run_on_days", "tick_hours")}
    fig = build(events, intents, audit, report.to_dict(), baseline_days, replay_info)
    write_report(fig, out)
    return fig
