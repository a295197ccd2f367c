"""The backtest report: its figures on a hand-checked case, and the report files."""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.backtest import build, write_report
from streams.cli import main
from streams.replay import InputReport, prepare

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "olist"
T = 1_767_225_600_000
DAY = 86_400_000
PNGS = ("lead_time.png", "review_requests.png", "intents_by_type.png", "suppressions.png", "messages_per_order.png")


def order(oid: str, at: int, promised: int | None, kind: str = "placed", **extra) -> tuple[str, str, dict]:
    return ("orders", oid, {"event_id": f"{oid}-{kind}", "event_time": at, "source": "t", "type": kind, "order_id": oid,
                            "customer_id": f"C-{oid}", "promised_delivery_at": promised, **extra})


def scan(oid: str, at: int, status: str) -> tuple[str, str, dict]:
    return ("carrier-scans", oid, {"event_id": f"{oid}-{status}", "event_time": at, "source": "t", "order_id": oid,
                                   "shipment_id": f"{oid}-S", "carrier": "c", "status": status})


def review(oid: str, at: int, rating: int) -> tuple[str, str, dict]:
    return ("engagement", f"C-{oid}", {"event_id": f"{oid}-review", "event_time": at, "source": "t",
                                       "type": "review_submitted", "customer_id": f"C-{oid}", "order_id": oid,
                                       "channel": "web", "rating": rating})


def intent(oid: str, kind: str, at: int, channel: str = "email") -> dict:
    return {"intent_id": f"{oid}-{kind}", "intent_type": kind, "order_id": oid, "customer_id": f"C-{oid}",
            "channel": channel, "send_at": at, "decided_at": at}


@pytest.fixture
def case():
    raw = [
        order("O1", T, T + 5 * DAY), scan("O1", T + 7 * DAY, "delivered"), review("O1", T + 9 * DAY, 1),
        order("O2", T, T + 5 * DAY), scan("O2", T + 4 * DAY, "delivered"), review("O2", T + 6 * DAY, 5),
        order("O3", T, T + 5 * DAY),  # never delivered, the data goes on past its promise: late
        order("O4", T, T + 5 * DAY), scan("O4", T + 3 * DAY, "delivered"), review("O4", T + 12 * DAY, 2),
        order("O5", T, T + 5 * DAY), order("O5", T + DAY, None, kind="cancelled"),
        order("O6", T + 20 * DAY, T + 40 * DAY),  # in transit before its promise when the data ends
    ]
    events = prepare(raw, InputReport("t", "events"))
    intents = [intent("O1", "delay_warning", T + 3 * DAY), intent("O1", "delay_update", T + 4 * DAY),
               intent("O2", "delay_warning", T + 2 * DAY, "sms"), intent("O2", "review_request", T + 8 * DAY),
               intent("O1", "order_confirmation", T), intent("O2", "order_confirmation", T)]
    audit = [{"audit_id": "a1", "decided_at": T, "intent_type": "review_request", "order_id": "O1", "customer_id": "C-O1",
              "decision": "suppressed", "reasons": ["guard:late_delivery"]},
             {"audit_id": "a2", "decided_at": T, "intent_type": "care_tips", "order_id": "O4", "customer_id": "C-O4",
              "decision": "held", "reasons": ["quiet_hours"]}]
    return events, intents, audit


def test_delay_alert_precision_recall_and_lead_time(case):
    fig = build(*case, input_report={"source": "t", "kind": "events"})
    d = fig["delay"]
    assert (d["tp"], d["fp"], d["fn"], d["tn"]) == (1, 1, 1, 1)  # O1, O2, O3, O4; O5 cancelled, O6 undecided
    assert d["orders_evaluated"] == 4 and d["orders_undecided"] == 1
    assert d["late"] == 2 and d["late_undelivered"] == 1
    assert d["precision"] == 0.5 and d["recall"] == 0.5
    assert d["lead_days_median_tp"] == 2.0  # first alert of O1 two days before its promise
    assert d["lead_days_median_all"] == 2.5  # and O2's three days before
    assert d["alerts_sent"] == 3 and d["tp_alerted_before_promise"] == 1


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
    for heading in ("## Delay alerts", "## Review requests", "## Intents per type and channel",
                    "## Not sent", "## Messages per order"):
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
    assert main(["backtest", "--simulate", "60", "--seed", "3", "--from-replay", str(tmp_path / "r"),
                 "--out", str(tmp_path / "bt"), "--no-progress"]) == 0
    assert main(["backtest", "--simulate", "60", "--seed", "3", "--out", str(tmp_path / "bt2"), "--no-progress"]) == 0
    assert (tmp_path / "bt" / "figures.json").read_bytes() == (tmp_path / "bt2" / "figures.json").read_bytes()
