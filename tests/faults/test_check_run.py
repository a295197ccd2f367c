"""The fault tests' verdict on a run's outputs (no broker: outputs given as records)."""

from types import SimpleNamespace

from .helpers import RunOutputs, check_run

EVENTS = [SimpleNamespace(topic="orders", record={"order_id": "O1", "type": "placed"})]


def audit(reason, decision="dropped", intent_type="shipped"):
    return {
        "audit_id": "a1",
        "decided_at": 1,
        "order_id": "O1",
        "customer_id": "C1",
        "intent_type": intent_type,
        "channel": None,
        "decision": decision,
        "reasons": [reason],
        "intent_id": None,
        "source_event_id": "e1",
    }


def confirmation():
    return {"intent_id": "i1", "decided_at": 1, "order_id": "O1", "intent_type": "order_confirmation"}


def test_after_a_kill_the_same_decision_with_another_reason_is_counted_not_failed():
    out = RunOutputs(
        intents=[confirmation()],
        audit=[audit("stale:superseded_by_out_for_delivery"), audit("stale:superseded_by_delivered")],
    )
    verdict = check_run(EVENTS, out, killed=True)
    assert not verdict.problems and not verdict.missing
    assert verdict.stats["audit:same_decision_other_reason_after_a_kill"] == 1


def test_another_decision_under_one_audit_id_fails_even_after_a_kill():
    out = RunOutputs(intents=[confirmation()], audit=[audit("cap", decision="skipped"), audit("cap", decision="held")])
    assert check_run(EVENTS, out, killed=True).problems


def test_without_a_kill_any_difference_fails():
    out = RunOutputs(
        intents=[confirmation()],
        audit=[audit("stale:superseded_by_out_for_delivery"), audit("stale:superseded_by_delivered")],
    )
    assert check_run(EVENTS, out).problems


def test_a_placed_order_without_a_confirmation_decision_is_missing():
    assert check_run(EVENTS, RunOutputs()).missing
