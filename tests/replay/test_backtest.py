"""The backtest report: its figures on a hand-checked case, and the report files."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.tools.backtest import build, write_report
from streams.cli import main
from streams.tools.replay import InputReport, prepare

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "olist"
T = 1_767_225_600_000
DAY = 86_400_000
PNGS = (
    "lead_time.png",
    "delay_curves.png",
    "calibration.png",
    "review_requests.png",
    "intents_by_type.png",
    "suppressions.png",
    "messages_per_order.png",
)


def order(oid: str, at: int, promised: int | None, kind: str = "placed", **extra) -> tuple[str, str, dict]:
    return (
        "orders",
        oid,
        {
            "event_id": f"{oid}-{kind}",
            "event_time": at,
            "source": "t",
            "type": kind,
            "order_id": oid,
            "customer_id": f"C-{oid}",
            "promised_delivery_at": promised,
            **extra,
        },
    )


def scan(oid: str, at: int, status: str) -> tuple[str, str, dict]:
    return (
        "carrier-scans",
        oid,
        {
            "event_id": f"{oid}-{status}",
            "event_time": at,
            "source": "t",
            "order_id": oid,
            "shipment_id": f"{oid}-S",
            "carrier": "c",
            "status": status,
        },
    )


def review(oid: str, at: int, rating: int) -> tuple[str, str, dict]:
    return (
        "engagement",
        f"C-{oid}",
        {
            "event_id": f"{oid}-review",
            "event_time": at,
            "source": "t",
            "type": "review_submitted",
            "customer_id": f"C-{oid}",
            "order_id": oid,
            "channel": "web",
            "rating": rating,
        },
    )


def intent(oid: str, kind: str, at: int, channel: str = "email") -> dict:
    return {
        "intent_id": f"{oid}-{kind}",
        "intent_type": kind,
        "order_id": oid,
        "customer_id": f"C-{oid}",
        "channel": channel,
        "send_at": at,
        "decided_at": at,
    }


@pytest.fixture
def case():
    raw = [
        order("O1", T, T + 5 * DAY),
        scan("O1", T + 7 * DAY, "delivered"),
        review("O1", T + 9 * DAY, 1),
        order("O2", T, T + 5 * DAY),
        scan("O2", T + 4 * DAY, "delivered"),
        review("O2", T + 6 * DAY, 5),
        order("O3", T, T + 5 * DAY),  # never delivered, the data goes on past its promise: late
        order("O4", T, T + 5 * DAY),
        scan("O4", T + 3 * DAY, "delivered"),
        review("O4", T + 12 * DAY, 2),
        order("O5", T, T + 5 * DAY),
        order("O5", T + DAY, None, kind="cancelled"),
        order("O6", T + 20 * DAY, T + 40 * DAY),  # in transit before its promise when the data ends
    ]
    events = prepare(raw, InputReport("t", "events"))
    intents = [
        intent("O1", "delay_warning", T + 3 * DAY),
        intent("O1", "delay_update", T + 4 * DAY),
        intent("O2", "delay_warning", T + 2 * DAY, "sms"),
        intent("O2", "review_request", T + 8 * DAY),
        intent("O1", "order_confirmation", T),
        intent("O2", "order_confirmation", T),
    ]
    audit = [
        {
            "audit_id": "a1",
            "decided_at": T,
            "intent_type": "review_request",
            "order_id": "O1",
            "customer_id": "C-O1",
            "decision": "suppressed",
            "reasons": ["guard:late_delivery"],
        },
        {
            "audit_id": "a2",
            "decided_at": T,
            "intent_type": "care_tips",
            "order_id": "O4",
            "customer_id": "C-O4",
            "decision": "held",
            "reasons": ["quiet_hours"],
        },
    ]
    return events, intents, audit


def test_delay_alerts_beside_the_rules_with_never_delivered_apart(case):
    fig = build(*case, input_report={"source": "t", "kind": "events"})
    d = fig["delay"]
    # Delivered with a promise: O1 (late), O2, O4; O3 never delivered (apart), O5 cancelled, O6 undecided.
    assert d["orders_evaluated"] == 3 and d["late"] == 1 and d["never_delivered"] == 1 and d["orders_undecided"] == 1
    m = d["model"]
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 0) and m["precision"] == 0.5 and m["recall"] == 1.0
    assert m["lead_days_median_tp"] == 2.0  # O1 warned two days before the start of its promised day
    assert m["lead_days_median_all"] == 2.5  # and O2 three days before
    assert d["never_delivered_alerted"] == 0 and d["alerts_sent"] == 3
    # Rule N alerts whatever is not delivered at the start of the promised day minus N days.
    rules = d["rules"]
    assert (rules[1]["alerts"], rules[1]["precision"], rules[1]["lead_days_median_tp"]) == (1, 1.0, 1.0)
    assert (rules[2]["alerts"], rules[2]["precision"]) == (2, 0.5)  # O4 came exactly then: delivered
    assert (rules[3]["alerts"], rules[3]["precision"]) == (3, 0.3333)
    assert rules[1]["never_delivered_alerted"] == 1
    assert d["beats"][1]["shipped_beats"] is False and d["beats"][5]["shipped_beats"] is False


def test_late_is_by_calendar_day_in_the_shops_zone():
    promised = T + 5 * DAY + 3 * 3_600_000  # 2026-01-06 03:00 UTC = Jan 6, 00:00 in Sao Paulo
    raw = [order("A", T, promised), scan("A", promised + 22 * 3_600_000, "delivered")]  # Jan 6, 22:00 local
    events = prepare(raw, InputReport("t", "events"))
    assert build(events, [], [], input_report={}, zone="America/Sao_Paulo")["delay"]["late"] == 0
    assert build(events, [], [], input_report={}, zone="UTC")["delay"]["late"] == 1  # Jan 7 in UTC


def test_curve_and_calibration_come_from_the_models_scores(case):
    events, intents, audit = case
    scores = [
        {"order_id": "O1", "phase": "in_transit", "at": T + DAY, "p_late": 0.3, "basis": "x"},
        {"order_id": "O1", "phase": "in_transit", "at": T + 2 * DAY, "p_late": 0.8, "basis": "x"},
        {"order_id": "O2", "phase": "in_transit", "at": T + DAY, "p_late": 0.4, "basis": "x"},
        {"order_id": "O4", "phase": "in_transit", "at": T + DAY, "p_late": 0.1, "basis": "x"},
    ]
    d = build(events, intents, audit, input_report={}, scores=scores)["delay"]
    at = {c["threshold"]: c for c in d["curve"]}
    assert (at[0.25]["alerts"], at[0.25]["precision"], at[0.25]["lead_days_median_tp"]) == (2, 0.5, 4.0)
    assert (at[0.5]["alerts"], at[0.5]["precision"], at[0.5]["lead_days_median_tp"]) == (1, 1.0, 3.0)
    assert at[0.9]["alerts"] == 0
    c = d["calibration"]
    # O1 counts once (two assessments, half a weight each): ((0.7^2 + 0.2^2)/2 + 0.4^2 + 0.1^2) / 3
    assert c["orders"] == 3 and c["brier"] == round(((0.49 + 0.04) / 2 + 0.16 + 0.01) / 3, 4)
    assert d["beats"][1]["curve_beats"] is False  # no point at recall >= 0.9 beats a rule of precision 1.0


def test_every_candidate_needs_an_intent_or_an_audit_record(case):
    events, intents, audit = case
    candidates = [{"intent_id": "O1-delay_warning"}, {"intent_id": "lost-one"}]
    audit = audit + [
        {
            "audit_id": "a3",
            "decided_at": T,
            "intent_type": "review_request",
            "order_id": "O4",
            "customer_id": "C-O4",
            "decision": "skipped",
            "reasons": ["x"],
            "intent_id": "i4",
        }
    ]
    s = build(events, intents, audit, input_report={}, candidates=candidates)["silent"]
    assert s["candidates_without_decision"] == 1 and s["examples"] == ["lost-one"]
    assert s["delivered_orders"] == 3 and s["delivered_without_review_decision"] == 0  # O1 audit, O2 intent, O4 audit


def test_review_requests_against_the_send_to_everyone_baseline(case):
    r = build(*case, input_report={}, baseline_days=7)["reviews"]
    assert r["engine"]["requests"] == 1 and r["engine"]["to_4_5_stars"] == 1 and r["engine"]["to_1_2_stars"] == 0
    assert r["engine"]["after_customer_already_reviewed"] == 1
    b = r["baseline"]
    assert b["requests"] == 3 and b["to_1_2_stars"] == 2 and b["share_1_2_of_all"] == 0.6667
    assert b["after_customer_already_reviewed"] == 2  # O1 and O2 reviewed within 7 days; O4 later
    assert r["orders_ending_1_2_stars"] == 2 and r["engine_not_sent_on_1_2_star_orders"] == 1


def test_messages_per_type_channel_and_order(case):
    m = build(*case, input_report={})["messages"]
    assert m["by_type_channel"]["delay_warning"] == {"email": 1, "sms": 1}
    assert m["per_order_max"] == 3 and m["top_orders"] == [("O1", 3), ("O2", 3)]
    assert m["per_order_histogram"] == {3: 2}
    assert m["audit_by_decision"] == {"held": 1, "suppressed": 1}


def test_report_files(case, tmp_path):
    fig = build(*case, input_report={"source": "t", "kind": "events"})
    path = write_report(fig, tmp_path)
    text = path.read_text()
    for heading in (
        "## Delay alerts",
        "## Review requests",
        "## Intents per type and channel",
        "## Not sent",
        "## Messages per order",
    ):
        assert heading in text
    for png in PNGS:
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000 and f"({png})" in text


def test_backtest_cli_on_the_olist_fixture_is_byte_identical_between_runs(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["backtest", "--input", str(FIXTURE), "--out", str(tmp_path / name), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "report.md" in out
    for f in ("report.md", "figures.json", *PNGS, "replay/intents.jsonl", "replay/audit.jsonl", "replay/summary.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    text = (tmp_path / "a" / "report.md").read_text()
    assert "olist_sellers_dataset.csv" in text and "review_without_order 2" in text


def test_backtest_of_an_earlier_replay(tmp_path):
    assert main(["replay", "--simulate", "60", "--seed", "3", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert (
        main(
            [
                "backtest",
                "--simulate",
                "60",
                "--seed",
                "3",
                "--from-replay",
                str(tmp_path / "r"),
                "--out",
                str(tmp_path / "bt"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["backtest", "--simulate", "60", "--seed", "3", "--out", str(tmp_path / "bt2"), "--no-progress"]) == 0
    assert (tmp_path / "bt" / "figures.json").read_bytes() == (tmp_path / "bt2" / "figures.json").read_bytes()


# --- refunds of returns ----------------------------------------------------------------------


def ret(oid: str, kind: str, at: int, resolution: str = "refund", **info) -> tuple[str, str, dict]:
    return order(
        oid,
        at,
        None,
        kind=kind,
        return_info={
            "return_id": f"{oid}-R1",
            "items": [{"sku": "S", "quantity": 1}],
            "resolution": resolution,
            **info,
        },
    )


def ticket(oid: str, at: int) -> tuple[str, str, dict]:
    return (
        "support",
        f"C-{oid}",
        {
            "event_id": f"{oid}-tkt-{at}",
            "event_time": at,
            "source": "t",
            "type": "ticket_opened",
            "customer_id": f"C-{oid}",
            "order_id": oid,
            "ticket_id": f"{oid}-t",
            "topic": "return",
        },
    )


def refund_intent(oid: str, at: int, return_id: str | None = None) -> dict:
    return {**intent(oid, "refund_delayed", at), "intent_id": f"{oid}-rd-{at}", "content": {"return_id": return_id}}


def refund_audit(oid: str, at: int) -> dict:
    return {
        "audit_id": f"{oid}-a-{at}",
        "decided_at": at,
        "intent_type": "refund_delayed",
        "order_id": oid,
        "customer_id": f"C-{oid}",
        "decision": "suppressed",
        "reasons": ["frequency_cap"],
    }


@pytest.fixture
def refunds_case():
    raw = [
        ret("A", "return_requested", T - 5 * DAY),
        ret("A", "return_received", T),
        ticket("A", T + 8 * DAY),
        ret("A", "refunded", T + 10 * DAY),  # late, alerted at 6 d: lead 4 d, 2 d before the customer wrote
        ret("B", "return_received", T),
        ret("B", "refunded", T + 3 * DAY),  # on time, flagged by an audit record at 2 d: false
        ret("C", "return_received", T),
        ret("C", "refunded", T + 12 * DAY),  # late, missed
        ret("E", "return_requested", T),
        ret("E", "return_declined", T + DAY),  # declined: not evaluated
        ret("F", "return_received", T, resolution="exchange"),
        ret("F", "exchange_created", T + DAY, resolution="exchange", exchange_order_id="F-X1"),
        ret("G", "return_received", T + 28 * DAY),  # too recent when the data ends: left out
        ret("H", "return_received", T),  # never refunded: late, alerted at 8 d
        ret("I", "return_received", T),
        order("I", T + 2 * DAY, None, kind="refunded", amount=10.0),  # a refund naming no return: on time
        order("Z", T + 30 * DAY, None),
    ]
    events = prepare(raw, InputReport("t", "events"))
    intents = [
        refund_intent("A", T + 6 * DAY, "A-R1"),
        refund_intent("B", T + 4 * DAY),  # after B's refund: apart
        refund_intent("H", T + 8 * DAY, "H-R1"),
    ]
    audit = [refund_audit("B", T + 2 * DAY), refund_audit("Z", T + DAY)]  # Z has no return: unmatched
    return events, intents, audit


def test_late_refund_alerts_against_what_happened(refunds_case):
    rf = build(*refunds_case, input_report={})["refunds"]
    assert (rf["returns"], rf["declined"], rf["exchanges"], rf["received"], rf["refunded"]) == (8, 1, 1, 7, 4)
    # Evaluated: A, B, C, H, I (G too recent); late: A, C (refunded after 7 d) and H (still not).
    assert (rf["evaluated"], rf["late"], rf["undecided"], rf["not_refunded_by_end"]) == (5, 3, 1, 1)
    assert (rf["alerts"], rf["tp"], rf["fp"], rf["fn"]) == (3, 2, 1, 1)
    assert rf["precision"] == rf["recall"] == 0.6667
    assert rf["lead_days_to_refund_median"] == 4.0  # A only: H was never refunded
    assert (rf["asked"], rf["tp_asked"], rf["tp_before_ask"], rf["lead_days_to_ask_median"]) == (1, 1, 1, 2.0)
    assert rf["days_after_receipt_median"] == 6.0  # alerts at 2, 6 and 8 days after receipt
    assert (rf["raised"], rf["raised_after_refund"], rf["raised_unmatched"]) == (5, 1, 1)
    assert rf["truth_from_simulator"] == 0


def test_the_simulators_record_decides_where_there_is_one(refunds_case):
    events, intents, audit = refunds_case
    sim = {"A-R1": {"return_id": "A-R1", "refund_late": False}}
    rf = build(events, intents, audit, input_report={}, sim_truth=sim)["refunds"]
    assert rf["truth_from_simulator"] == 1 and rf["simulator_and_threshold_disagree"] == 1
    assert (rf["late"], rf["tp"], rf["fp"], rf["fn"]) == (2, 1, 2, 1)
    # A longer threshold: C (12 d) is still late, A (10 d) and H (30 d without) too; fewer late with 11 d.
    rf = build(events, intents, audit, input_report={}, refund_late_days=11)["refunds"]
    assert (rf["late"], rf["undecided"]) == (2, 1)


def test_refunds_without_returns_or_alerts_report_zeros(case, refunds_case, tmp_path):
    fig = build(*case, input_report={})
    rf = fig["refunds"]
    assert rf["returns"] == rf["evaluated"] == rf["alerts"] == 0 and rf["precision"] is None
    text = write_report(fig, tmp_path / "none").read_text()
    assert "## Refunds of returns" in text and "No returns in this data" in text
    events, _, _ = refunds_case
    fig = build(events, [], [], input_report={})
    assert (fig["refunds"]["recall"], fig["refunds"]["precision"]) == (0.0, None)
    text = write_report(fig, tmp_path / "silent").read_text()
    assert "raised no `refund_delayed`" in text and "| 0 | 0 | 0 | 3 | n/a | 0.000 | n/a |" in text


def test_backtest_of_simulated_returns_takes_the_simulators_record(tmp_path, capsys):
    """--simulate regenerates the simulator's record of each refund; a `simulate --out` file carries it
    beside each return's first event. Both give the same refunds figures."""
    import orjson

    events = tmp_path / "events.jsonl"
    assert main(["simulate", "--orders", "80", "--seed", "4", "--out", str(events)]) == 0
    for name, source in (("sim", ["--simulate", "80", "--seed", "4"]), ("file", ["--input", str(events)])):
        assert main(["backtest", *source, "--out", str(tmp_path / name), "--no-progress", "--run-on-days", "40"]) == 0
    assert "late refunds:" in capsys.readouterr().out
    sim, file = (orjson.loads((tmp_path / n / "figures.json").read_bytes())["refunds"] for n in ("sim", "file"))
    assert sim == file
    assert sim["returns"] > 5 and sim["evaluated"] > 3 and sim["truth_from_simulator"] == sim["evaluated"]
    assert sim["simulator_and_threshold_disagree"] == 0 and sim["undecided"] == 0
    assert "## Refunds of returns" in (tmp_path / "sim" / "report.md").read_text()
