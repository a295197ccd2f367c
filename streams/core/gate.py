"""The guardrails every message passes, whoever proposed it (the order stage or a customer-side
policy), first time and again at release. In order:

1. stale: sent after it expires, or already expired -> dropped ("expired");
2. review rules (reviews.py): the order went wrong -> suppressed; already asked/reviewed -> skipped;
   at release, news about a parcel that moved on while it waited (a held "out for delivery" once
   "delivered" was proposed) -> dropped ("stale:superseded_by_...");
3. the order was cancelled (or refunded/returned, for marketing and post-delivery service) -> skipped;
4. the same news (order + intent type + occasion) already sent or waiting, on any channel -> skipped
   ("duplicate:..."); split orders: a second "shipped"/"delivered" for another parcel of the same order
   within `consolidation_ms` of the first -> skipped ("consolidated"), the first one stands;
5. channel (channels.py): consent and reachability, urgency, engagement -> skipped if none;
6. reputation guard (guard.py), marketing only -> held until it lifts, or suppressed if it outlasts
   the message;
7. send time (send_time.py), messages that can wait -> held until the customer's best hour, unless
   an experiment puts them in the fixed-time arm;
8. quiet hours (quiet_hours.py) -> held until the window ends (dropped if it expires first);
9. caps and smart sending (caps.py), marketing only -> skipped;
10. experiments (experiments.py): an arm that holds this message back -> audited "held_out";
11. out it goes: on the chosen channel (a new id if it moved), with segment and tone, its experiments
    and arms (a Thompson-sampled arm picked now), recorded.

Held messages are kept in the state (`held`) with a timer "release:<candidate id>"; at release they
go through all of this again with the time of release.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import caps, channels, experiments, guard, ids, reviews, send_time
from .decisions import CustomerDecision, audit, cancel_timer, set_timer, shared_get, shared_put
from .model import ContentHints, ExperimentArm, MessageIntent, message_intent_from, to_record
from .policy import HELD_KEPT, PolicyConfig
from .quiet_hours import quiet_until
from .segments import segment, tone
from .state import RECENT_INTENTS_KEPT, CustomerState, HeldIntent
from .touchpoints import POST_DELIVERY_SERVICE, after_sale

RELEASE = "release:"
# News that is still worth telling after the order was cancelled (none proposed yet; kept explicit).
# News that still goes out about a cancelled, refunded or returned order: it closes the story.
CLOSING_NEWS = frozenset(
    {
        "order_cancelled",
        "cancellation_confirmed",
        "refund_issued",
        "refund_delayed",
        "return_received",
        "return_label_ready",
        "return_declined",
    }
)
# How far a parcel's news has got; older news is not sent once newer news was proposed.
STAGES = {"shipped": 1, "out_for_delivery": 2, "ready_for_pickup": 2, "delivered": 3}
STAGE_NAMES = {1: "shipped", 2: "out_for_delivery", 3: "delivered"}


@dataclass(slots=True)
class Proposal:
    intent: MessageIntent  # on the channel it was proposed for
    candidate_id: str  # the id it was proposed under
    news: str  # order | intent type | occasion


def candidate_news(intent: MessageIntent) -> str:
    """The order stage decides each occasion once, from one event: the triggering event identifies
    the occasion whatever channel the candidate names."""
    return news_key(intent.order_id, intent.intent_type, f"ev:{intent.source_event_id}")


def news_key(order_id: str | None, intent_type: str, occasion: str) -> str:
    return f"{order_id or '-'}|{intent_type}|{occasion}"


def already_decided(state: CustomerState, candidate_id: str) -> bool:
    """Sent (under its own id or after moving channel) or waiting: a redelivery must change nothing."""
    for r in state.recent_intents:  # a plain loop: this runs for every candidate, over up to 50 records
        if r["intent_id"] == candidate_id or r.get("candidate_id") == candidate_id:
            return True
    return any(h.candidate_id == candidate_id for h in state.held)


def consider(
    decision: CustomerDecision, proposal: Proposal, now: int, config: PolicyConfig, released: HeldIntent | None = None
) -> None:
    """Decide one proposed message now (`released`: the hold it comes out of, at its release)."""
    state = decision.state
    intent = proposal.intent
    tz = intent.time_zone or state.time_zone

    if intent.send_at > intent.expires_at or now > intent.expires_at:
        audit(decision, intent, "dropped", ["expired"], now)
        return
    if intent.intent_type == "review_request":
        checked, verdict, reasons = reviews.check(state, intent, now, config)
        if checked is None:
            audit(decision, intent, verdict, reasons, now)
            return
        intent = checked
    stale = superseded(state, released) if released is not None else None
    if stale:
        audit(decision, intent, "dropped", [stale], now)
        return
    closed = _order_closed(state, intent)
    if closed:
        audit(decision, intent, "skipped", [closed], now)
        return
    repeated = _same_news(state, proposal, intent, max(now, intent.send_at), config)
    if repeated:
        audit(decision, intent, "skipped", repeated, now)
        return

    channel, passed_over, notes = channels.pick(state, intent, config)
    if channel is None:
        audit(decision, intent, "skipped", ["no_allowed_channel", *passed_over], now)
        return

    if intent.kind == "marketing":
        block = guard.customer_block(state, now, config, intent.order_id)
        if block is not None:
            if block.until is not None:
                if block.until > intent.expires_at:
                    audit(decision, intent, "suppressed", block.reasons, now, channel=channel)
                else:
                    _hold(decision, proposal, intent, channel, block.until, block.reasons, now, released)
                return
            if now >= intent.expires_at:
                audit(decision, intent, "suppressed", block.reasons, now, channel=channel)
            else:  # no known end: look again later, at the latest when the message expires
                _hold(
                    decision,
                    proposal,
                    intent,
                    channel,
                    min(now + config.guard_recheck_ms, intent.expires_at),
                    block.reasons,
                    now,
                    released,
                )
            return

    when = max(now, intent.send_at)
    can_wait = send_time.can_wait(intent)
    joined = experiments.memberships(config.experiments, intent, now, can_wait) if config.experiments else []
    timing = _timing(decision, proposal, intent, channel, when, tz, joined, can_wait, now, config, released)
    if timing is None:
        return  # held for the customer's best hour
    opens = quiet_until(when, tz, channel, intent.kind, intent.priority, config)
    if opens is not None:
        if opens > intent.expires_at:
            audit(decision, intent, "dropped", ["expired", "quiet_hours"], now, channel=channel)
        else:
            _hold(decision, proposal, intent, channel, opens, ["quiet_hours"], now, released)
        return

    capped = caps.blocked_reason(state, channel, intent.kind, when, tz, config)
    if capped:
        audit(decision, intent, "skipped", [capped], now, channel=channel)
        return

    for exp, arm in joined:
        if arm is not None and arm.hold and intent.kind != "transactional":
            reasons = [f"experiment:{exp.id}", f"arm:{arm.name}"]
            audit(decision, intent, "held_out", reasons, now, channel=channel, experiment=exp.id, arm=arm.name)
            decision.outcomes.append((exp.id, arm.name, "held_out", 1))
            return

    _emit(decision, proposal, intent, channel, [*notes, *timing], now, released, config, joined)


def _timing(
    decision: CustomerDecision,
    proposal: Proposal,
    intent: MessageIntent,
    channel: str,
    when: int,
    tz: str | None,
    joined: list,
    can_wait: bool,
    now: int,
    config: PolicyConfig,
    released: HeldIntent | None,
) -> list[str] | None:
    """Reason codes for when a message that can wait goes out, or None when it was held for the
    customer's best hour. Urgent order and delivery news never waits here."""
    if not can_wait or not config.send_time_optimisation:
        return []
    arm = next((a for _, a in joined if a is not None and a.send_time), None)
    if arm is not None and arm.send_time == "fixed":
        return ["send_time:fixed"]
    if released is not None and released.reasons and released.reasons[0].startswith("send_time:"):
        return released.reasons[:1]  # its hour has come
    best = send_time.best_time(decision, intent, channel, when, tz, segment(decision.state, now, config), config)
    if best is None:
        return ["send_time:no_history"]
    at, code = best
    if at > when:
        _hold(decision, proposal, intent, channel, at, [code], now, released)
        return None
    return [code]


def release(decision: CustomerDecision, candidate_id: str, now: int, config: PolicyConfig) -> None:
    """A held message's time has come: take it out of the state and decide it again, from scratch."""
    state = decision.state
    held = next((h for h in state.held if h.candidate_id == candidate_id), None)
    if held is None:
        return
    state.held.remove(held)
    consider(
        decision, Proposal(message_intent_from(held.intent), held.candidate_id, held.news), now, config, released=held
    )


def note_progress(state: CustomerState, intent: MessageIntent) -> None:
    """Remember how far each parcel's news has got (whatever becomes of the candidate)."""
    stage = STAGES.get(intent.intent_type)
    order = state.orders.get(intent.order_id) if intent.order_id else None
    if stage is not None and order is not None:
        key = _parcel(intent)
        order.parcels[key] = max(order.parcels.get(key, 0), stage)


def superseded(state: CustomerState, held: HeldIntent) -> str | None:
    """News that waited while its parcel moved on: a held "out for delivery" released after
    "delivered" was proposed, a held "shipped" after "out for delivery". Service messages (problems
    on the way) are moot once the parcel is delivered. Only what happened *while* it waited counts:
    the order stage already keeps what it proposes in order."""
    intent = message_intent_from(held.intent)
    order = state.orders.get(intent.order_id) if intent.order_id else None
    if order is None:
        return None
    stage = STAGES.get(intent.intent_type)
    if stage is None:
        if intent.kind != "service" or intent.intent_type.startswith(POST_DELIVERY_SERVICE):
            return None
        stage = STAGES["out_for_delivery"]
    furthest = order.parcels.get(_parcel(intent), 0)
    if furthest > max(stage, held.parcel_stage):
        return f"stale:superseded_by_{STAGE_NAMES[furthest]}"
    return None


def _parcel(intent: MessageIntent) -> str:
    return intent.content.tracking_number or "-"


def _order_closed(state: CustomerState, intent: MessageIntent) -> str | None:
    order = state.orders.get(intent.order_id) if intent.order_id else None
    if order is None or intent.intent_type in CLOSING_NEWS:
        return None
    if order.cancelled_at is not None:
        return "order_cancelled"
    later = after_sale(intent.kind, intent.intent_type)
    if later and order.refunded_at is not None:
        return "order_refunded"
    if later and (order.returned or order.returning):
        return "order_returned"
    return None


def _same_news(
    state: CustomerState, proposal: Proposal, intent: MessageIntent, when: int, config: PolicyConfig
) -> list[str]:
    for r in state.recent_intents:
        if r.get("news") == proposal.news:
            return [f"duplicate:sent_on:{r['channel']}"]
    for h in state.held:
        if h.news == proposal.news and h.candidate_id != proposal.candidate_id:
            return ["duplicate:held"]
    if intent.intent_type in config.consolidate_types and intent.order_id:
        for r in state.recent_intents:
            if (
                r["order_id"] == intent.order_id
                and r["intent_type"] == intent.intent_type
                and abs(r["at"] - when) <= config.consolidation_ms
            ):
                return ["consolidated"]
        for h in state.held:
            other = h.intent
            if (
                h.candidate_id != proposal.candidate_id
                and other["order_id"] == intent.order_id
                and other["intent_type"] == intent.intent_type
                and abs(other["send_at"] - when) <= config.consolidation_ms
            ):
                return ["consolidated"]
    return []


def _hold(
    decision: CustomerDecision,
    proposal: Proposal,
    intent: MessageIntent,
    channel: str,
    until: int,
    reasons: list[str],
    now: int,
    before: HeldIntent | None,
) -> None:
    """Keep the message and ask to be called back. Audited when it starts waiting, or waits for other
    reasons than before (a guard re-checked daily is not audited again every day)."""
    state = decision.state
    until = max(until, now + 1)  # never ask to be called back in the past
    state.held = [h for h in state.held if h.candidate_id != proposal.candidate_id]
    order = state.orders.get(intent.order_id) if intent.order_id else None
    stage = before.parcel_stage if before is not None else (order.parcels.get(_parcel(intent), 0) if order else 0)
    state.held.append(
        HeldIntent(
            intent=to_record(proposal.intent),
            candidate_id=proposal.candidate_id,
            news=proposal.news,
            reasons=list(reasons),
            held_at=now,
            release_at=until,
            parcel_stage=stage,
        )
    )
    set_timer(decision, RELEASE + proposal.candidate_id, until)
    if before is None or before.reasons != list(reasons):
        audit(decision, intent, "held", reasons, now, until, channel=channel)
    while len(state.held) > HELD_KEPT:  # bounded: the message closest to expiry gives way
        victim = min(state.held, key=lambda h: (h.intent["expires_at"], h.candidate_id))
        state.held.remove(victim)
        cancel_timer(state, RELEASE + victim.candidate_id)
        audit(decision, message_intent_from(victim.intent), "dropped", ["held_overflow"], now)


def _emit(
    decision: CustomerDecision,
    proposal: Proposal,
    intent: MessageIntent,
    channel: str,
    notes: list[str],
    now: int,
    released: HeldIntent | None,
    config: PolicyConfig,
    joined: list | None = None,
) -> None:
    state = decision.state
    tags, variant = [], None
    for exp, arm in joined or ():
        if arm is None:  # Thompson sampling: the arm is picked per message
            arm, explored = _bandit(decision, exp, proposal, intent, now)
            notes = [*notes, f"bandit:{exp.id}:{arm.name}:{'explore' if explored else 'exploit'}"]
        tags.append(ExperimentArm(exp.id, arm.name))
        if variant is None and exp.kind in ("variant", "bandit"):
            variant = tags[-1]
        decision.outcomes.append((exp.id, arm.name, "sent", 1))
    named = variant or (tags[0] if tags else None)
    # The intent as it goes out: copied field by field (dataclasses.replace is several times slower,
    # and this runs for every message); the content's lists are shared, as replace shares them.
    c = intent.content
    seg = segment(state, now, config)
    content = ContentHints(
        items=c.items,
        category=c.category,
        carrier=c.carrier,
        tracking_number=c.tracking_number,
        window_start=c.window_start,
        window_end=c.window_end,
        segment=c.segment or seg,
        tone=c.tone or tone(state, seg, intent.kind, intent.order_id),
        amount=c.amount,
        currency=c.currency,
        return_id=c.return_id,
    )
    moved = channel != intent.channel
    out = MessageIntent(
        intent_id=ids.rechannel(intent.intent_id, channel) if moved else intent.intent_id,
        decided_at=now,
        order_id=intent.order_id,
        customer_id=intent.customer_id,
        intent_type=intent.intent_type,
        kind=intent.kind,
        channel=channel,
        send_at=max(intent.send_at, now) if released is not None else intent.send_at,
        expires_at=intent.expires_at,
        priority=intent.priority,
        content=content,
        reason_codes=[*intent.reason_codes, *notes],
        source_event_id=intent.source_event_id,
        locale=intent.locale or state.locale,
        time_zone=intent.time_zone or state.time_zone,
        experiment=named.experiment if named else None,
        arm=named.arm if named else None,
        experiments=tags,
    )
    decision.intents.append(out)
    state.channel(channel).sent += 1
    state.recent_intents.append(
        {
            "intent_id": out.intent_id,
            "candidate_id": proposal.candidate_id,
            "intent_type": out.intent_type,
            "kind": out.kind,
            "channel": channel,
            "order_id": out.order_id,
            "news": proposal.news,
            "at": max(out.send_at, now),
        }
    )
    del state.recent_intents[:-RECENT_INTENTS_KEPT]
    if out.kind == "marketing":
        caps.record_marketing(state, channel, out.intent_type, max(out.send_at, now))
    if out.intent_type == "review_request":
        reviews.record_asked(state, out, now, config)


def _bandit(
    decision: CustomerDecision, exp: experiments.Experiment, proposal: Proposal, intent: MessageIntent, now: int
) -> tuple[experiments.Arm, bool]:
    """Pick the arm by Thompson sampling, count the trial, and remember it for the reward."""
    key = experiments.bandit_key(exp)
    counts = shared_get(decision, key) or {}
    arm, explored = experiments.thompson(exp, counts, proposal.candidate_id)
    trials, wins = counts.get(arm.name, (0, 0))
    shared_put(decision, key, {**counts, arm.name: [trials + 1, wins]})
    decision.state.exposures[exp.id] = {
        "arm": arm.name,
        "at": max(now, intent.send_at),
        "order_id": intent.order_id,
    }
    return arm, explored
