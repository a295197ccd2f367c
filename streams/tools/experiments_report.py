"""Backtest sections for what the engine learns from outcomes: send time and experiments.

- Send time: messages that can wait, scored with the simulator's truth of each customer's habit
  (simulate.open_probability at the moment the message went out). Per send-time arm: the expected
  open rate, opens drawn from it (seeded per message, so the report is the same every run) with a
  Wilson interval, and the difference learned - fixed with Newcombe's interval. Within the learned
  arm, the same messages at the hour they were planned for (paired). And a check that no message
  that cannot wait carries a send-time reason. Needs simulated traffic (the habits are its truth).
- Experiments: per experiment and arm, the outcomes the replay counted (outcomes.json) as rates
  with 95% intervals and differences from the control arm; with planted effects (simulated), the
  difference each plant should make, and whether the interval holds it.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from ..core import experiments as ex
from ..core.touchpoints import after_sale


def _can_wait(intent: dict) -> bool:
    return after_sale(intent.get("kind") or "", intent.get("intent_type") or "")


def _send_time_arm(intent: dict, experiment_ids: set[str]) -> str | None:
    for e in intent.get("experiments") or ():
        if e["experiment"] in experiment_ids:
            return e["arm"]
    codes = [c for c in intent.get("reason_codes") or () if c.startswith("send_time:")]
    if not codes:
        return None
    return "fixed" if codes[0] == "send_time:fixed" else "learned"


def _drawn(intent_id: str, p: float) -> bool:
    return random.Random(int(hashlib.sha1(intent_id.encode()).hexdigest()[:12], 16)).random() < p


def send_time(events, intents: list[dict], audit: list[dict], seed: int | None, running: tuple) -> dict:
    """The send-time section's figures (see the module docstring)."""
    moved_urgent = sum(
        1 for i in intents if not _can_wait(i) and any(c.startswith("send_time:") for c in i.get("reason_codes") or ())
    )
    out: dict = {"urgent_moved": moved_urgent, "arms": {}, "available": seed is not None}
    if seed is None:
        return out
    from .simulate import habits, open_probability

    truth = habits(events, seed)
    exp_ids = {e.id for e in running if e.kind == "send_time"}
    arm_names = {a.name: a.send_time for e in running if e.kind == "send_time" for a in e.arms}
    planned: dict[str, int] = {}
    for a in audit:
        if a["decision"] == "held" and any(r.startswith("send_time:") for r in a["reasons"]):
            planned[a["intent_id"]] = min(planned.get(a["intent_id"], a["decided_at"]), a["decided_at"])
    arms: dict[str, dict] = defaultdict(
        lambda: {"messages": 0, "p_sum": 0.0, "opened": 0, "p_planned_sum": 0.0, "moved": 0}
    )
    hours = defaultdict(lambda: defaultdict(int))
    for i in intents:
        if not _can_wait(i) or i.get("channel") != "email" or i.get("customer_id") not in truth:
            continue
        arm = _send_time_arm(i, exp_ids)
        if arm is None:
            continue
        kind = arm_names.get(arm, arm)  # learned | fixed
        h = truth[i["customer_id"]]
        p = open_probability(h, i["send_at"])
        row = arms[kind]
        row["messages"] += 1
        row["p_sum"] += p
        row["opened"] += _drawn(i["intent_id"], p)
        at_planned = planned.get(i["intent_id"], i["send_at"])
        row["p_planned_sum"] += open_probability(h, at_planned)
        row["moved"] += at_planned != i["send_at"]
        local = datetime.fromtimestamp(i["send_at"] / 1000, ZoneInfo(h.tz)).hour
        hours[kind]["in_habit" if (local - h.peak_hour) % 24 < h.spread_hours else "outside"] += 1
    for kind, row in arms.items():
        n = row["messages"]
        row["expected_open_rate"] = row["p_sum"] / n
        row["expected_open_rate_at_planned_time"] = row["p_planned_sum"] / n
        row["open_rate"] = list(ex.wilson(row["opened"], n))
        row["in_habit_window"] = hours[kind]["in_habit"]
        out["arms"][kind] = row
    if "learned" in arms and "fixed" in arms:
        out["learned_minus_fixed"] = list(
            ex.newcombe(tuple(arms["learned"]["open_rate"]), tuple(arms["fixed"]["open_rate"]))
        )
        out["expected_learned_minus_fixed"] = (
            arms["learned"]["expected_open_rate"] - arms["fixed"]["expected_open_rate"]
        )
    return out


def experiment_outcomes(outcomes: list[dict] | None, running: tuple, planted: tuple, truth: dict | None) -> dict:
    """Per arm rates with intervals (experiments.summarise), and each planted effect's expected
    difference from the control arm, with whether the measured interval holds it."""
    if outcomes is None:
        return {"available": False, "rows": [], "planted": []}
    counts = {(r["experiment"], r["arm"], r["outcome"]): r["value"] for r in outcomes}
    rows = ex.summarise(counts, running)
    late_share = None
    if truth:
        placed = [o for o in truth.values() if o.placed_at is not None]
        late = [
            o
            for o in placed
            if o.cancelled_at is None and (o.delivered_at is None or (o.promised_at and o.delivered_at > o.promised_at))
        ]
        late_share = len(late) / len(placed) if placed else None
    checks = []
    for p in planted:
        exp = p.experiment
        control = exp.control.name
        rate, scale, per = (
            ("wismo_per_100_orders", 100 * (late_share or 0.0), "late orders")
            if p.outcome == "wismo"
            else ("review_rate", 1.0, "delivered orders")
        )
        for row in rows:
            if row["experiment"] != exp.id or row["control"] or rate not in row["rates"]:
                continue
            expected = ((p.arm == row["arm"]) - (p.arm == control)) * p.lift * scale
            measured = row["rates"][rate].get("diff_vs_control")
            checks.append(
                {
                    "experiment": exp.id,
                    "arm": row["arm"],
                    "control": control,
                    "rate": rate,
                    "planted": f"{p.arm}:{p.outcome}{p.lift:+g} (of {per})",
                    "expected_diff": expected,
                    "measured_diff": measured,
                    "inside": bool(measured and measured[1] <= expected <= measured[2]),
                }
            )
    return {"available": True, "rows": rows, "planted": checks, "late_share": late_share}


# --- rendering -----------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}%"


def _iv(triple, scale: str = "pct") -> str:
    if not triple or triple[0] != triple[0]:
        return "n/a"
    v, lo, hi = triple
    if scale == "pct":
        return f"{100 * v:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def render(st: dict, xo: dict, table) -> list[str]:
    lines = ["## Send time: messages that can wait, at the customer's hour", ""]
    if not st["available"]:
        lines.append("Needs simulated traffic: the customers' habits are the simulator's truth.")
    elif not st["arms"]:
        lines.append("No message that can wait went out by e-mail.")
    else:
        lines.append(
            "Messages that can wait (marketing, care tips, onboarding) sent by e-mail, scored with the "
            "simulator's truth of each customer's habit (`simulate.open_probability` at `send_at`). Opens are "
            "drawn from it per message (seeded); the interval is Wilson's, the difference Newcombe's."
        )
        lines.append("")
        rows = []
        for kind in sorted(st["arms"]):
            a = st["arms"][kind]
            rows.append(
                [
                    kind,
                    a["messages"],
                    _pct(a["expected_open_rate"]),
                    _iv(a["open_rate"]),
                    _pct(a["expected_open_rate_at_planned_time"]),
                    a["moved"],
                    _pct(a["in_habit_window"] / a["messages"]),
                ]
            )
        lines.append(
            table(
                [
                    "arm",
                    "messages",
                    "expected open rate",
                    "opened [95% CI]",
                    "same messages at the planned hour",
                    "moved",
                    "sent in the habit window",
                ],
                rows,
            )
        )
        if "learned_minus_fixed" in st:
            lines += [
                "",
                f"Learned - fixed: opened {_iv(st['learned_minus_fixed'])}; expected "
                f"{100 * st['expected_learned_minus_fixed']:+.1f} points.",
            ]
    lines += ["", f"Messages that cannot wait carrying a send-time reason (must be 0): {st['urgent_moved']}.", ""]

    lines += ["## Experiments: outcomes per arm", ""]
    if not xo["available"]:
        lines += [
            "No experiments in this replay (`--experiments FILE`), or it ran through Kafka (see the metrics).",
            "",
        ]
        return lines
    rate_names = [
        ("wismo_per_100_orders", "WISMO orders per 100 orders"),
        ("review_rate", "reviewed / delivered"),
        ("unsubscribe_rate", "unsubscribed"),
        ("repeat_rate", "bought again"),
        ("reward_rate", "reward / sent"),
    ]
    for exp_id in dict.fromkeys(r["experiment"] for r in xo["rows"]):
        rows = [r for r in xo["rows"] if r["experiment"] == exp_id]
        head = rows[0]
        lines += [f"### {exp_id} ({head['kind']}, by {head['unit']})", ""]
        present = [(k, label) for k, label in rate_names if k in head["rates"]]
        bandit = head["kind"] == "bandit"  # arms are per message: no units, orders or holdouts
        body = []
        for r in rows:
            c = r["counts"]
            cells = [r["arm"] + (" (control)" if r["control"] and r["arm"] != "control" else "")]
            cells += (
                [int(c["sent"])] if bandit else [int(c["units"]), int(c["orders"]), int(c["sent"]), int(c["held_out"])]
            )
            for k, _ in present:
                entry = r["rates"][k]
                scale = "num" if k == "wismo_per_100_orders" else "pct"
                cell = _iv(entry["value"], scale)
                if "diff_vs_control" in entry:
                    cell += f"; vs control {_iv(entry['diff_vs_control'], scale)}"
                cells.append(cell)
            if not bandit:
                cells.append(_iv(r["mean_rating"], "num"))
            body.append(cells)
        header = ["arm", *(["sent"] if bandit else ["units", "orders", "sent", "held out"])]
        header += [label for _, label in present]
        if not bandit:
            header.append("mean rating")
        lines += [table(header, body), ""]
    if xo["planted"]:
        lines += ["### Planted effects found again?", ""]
        lines.append(
            table(
                [
                    "experiment",
                    "arm vs control",
                    "planted",
                    "rate",
                    "expected difference",
                    "measured [95% CI]",
                    "inside",
                ],
                [
                    [
                        p["experiment"],
                        f"{p['arm']} vs {p['control']}",
                        p["planted"],
                        p["rate"],
                        f"{p['expected_diff']:+.2f}"
                        if p["rate"] == "wismo_per_100_orders"
                        else f"{100 * p['expected_diff']:+.1f}%",
                        _iv(p["measured_diff"], "num" if p["rate"] == "wismo_per_100_orders" else "pct"),
                        "yes" if p["inside"] else "**no**",
                    ]
                    for p in xo["planted"]
                ],
            )
        )
        lines.append("")
    return lines
