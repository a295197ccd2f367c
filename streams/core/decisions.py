"""What one customer-stage decision produces, and the small helpers every policy uses to add to it:
audit records with deterministic ids, and timers (see model.Schedule for the contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ids
from .model import DecisionAudit, MessageIntent, Schedule
from .state import CustomerState


@dataclass(slots=True)
class CustomerDecision:
    state: CustomerState
    intents: list[MessageIntent] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    schedule: list[Schedule] = field(default_factory=list)  # call me back (see model.Schedule)
    duplicate: bool = False  # nothing happened: a redelivered item, or a Due/tick with nothing due
    shared: object = None  # the partition's learned statistics (a mapping view), read through shared_get
    stats: dict = field(default_factory=dict)  # statistics this decision changed: key -> new value
    outcomes: list = field(default_factory=list)  # (experiment, arm, outcome, value) (experiments.py)


def shared_get(decision: CustomerDecision, key: str):
    """A partition statistic as this decision left it (its own changes first)."""
    found = decision.stats.get(key)
    if found is None and decision.shared is not None:
        found = decision.shared.get(key)
    return found


def shared_put(decision: CustomerDecision, key: str, value) -> None:
    decision.stats[key] = value


def audit(
    decision: CustomerDecision,
    intent: MessageIntent,
    verdict: str,
    reasons: list[str],
    now: int,
    *extra: object,
    channel: str | None = None,
    experiment: str | None = None,
    arm: str | None = None,
) -> None:
    """Record a decision not to send (now). The id depends only on the intent, the verdict and
    `extra` (e.g. the release time of a hold), so a replay gives the same audit ids. `channel`: the
    channel it would have gone on, when one was chosen (else the one it was proposed for)."""
    decision.audit.append(
        DecisionAudit(
            audit_id=ids.audit_id(intent.intent_id, intent.intent_type, verdict, *extra),
            decided_at=now,
            customer_id=decision.state.customer_id,
            intent_type=intent.intent_type,
            decision=verdict,
            reasons=list(reasons),
            source_event_id=intent.source_event_id,
            order_id=intent.order_id,
            channel=channel or intent.channel,
            intent_id=intent.intent_id,
            experiment=experiment,
            arm=arm,
        )
    )


def set_timer(decision: CustomerDecision, kind: str, due_at: int) -> None:
    """Ask to be called back at `due_at` for `kind` (replaces an earlier time for the same kind)."""
    state = decision.state
    if state.timers.get(kind) == due_at:
        return
    state.timers[kind] = due_at
    decision.schedule.append(Schedule(state.customer_id, kind, due_at))


def plan(decision: CustomerDecision, kind: str, due_at: int, now: int) -> None:
    """A policy's timer: at `due_at`, or just after now if that has passed (a reminder whose moment
    went by while the input was late goes out next, never inside the decision that planned it, so
    that items processed at the same moment see the same timers whatever their order)."""
    set_timer(decision, kind, max(due_at, now + 1))


def cancel_timer(state: CustomerState, kind: str) -> bool:
    """Forget a timer; its schedule entry, when it comes due, no longer matches and is ignored."""
    return state.timers.pop(kind, None) is not None
