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
