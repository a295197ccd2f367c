"""Properties of the customer stage over random customer timelines (hypothesis, derandomized).

A timeline mixes order facts, candidate intents (transactional, service, urgent, marketing),
engagement, support contacts and ticks at random times over two months, in a random time zone,
around daylight-saving changes. It is run as the app runs it: items in time order, and scheduled
decisions fired as Dues when the clock passes them.

What is checked, for every intent that comes out, against an independent model of the inputs
processed so far (not the engine's own state):
- consent and reachability per channel and kind;
- quiet hours in the customer's zone (unless urgent and not marketing);
- daily caps per channel per local day, smart sending, 5 marketing e-mails in 30 days, one review
  request per product per year;
- the reputation guard for marketing, and never a review request for an order that had a problem;
- nothing sent after it expires; no intent id twice.
And: every item delivered twice gives exactly the same output; the same timeline in a fresh state
gives the same ids; replaying it into the final state adds nothing.

Processing order (what is proved): within a batch of simultaneous items, the order does not change
the set of intent ids or audit ids, nor the timers, provided the batch changes no consent (no
checkout, unsubscribe, resubscribe, bounce, spam report), cancels or refunds nothing, holds no
marketing candidate, and proposes each piece of news once (at most one "shipped"/"delivered" per
order). Those exceptions are order-dependent by design: the newest consent statement wins, a
cancellation stops what comes after it, caps go to whoever comes first, and in a split order the
first parcel's announcement stands.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import (
    DAY,
    HOUR,
    MINUTE,
    CustomerRun,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    item,
    support,
    tick,
)
from streams.core.model import CustomerCommand, EngagementEvent, MessageIntent, SupportEvent

PROPERTY = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Tokyo", "America/Los_Angeles"]
# Starts just before daylight-saving changes in one hemisphere or the other.
STARTS = [
    int(datetime(2026, m, d, tzinfo=ZoneInfo("UTC")).timestamp() * 1000) for m, d in [(1, 5), (3, 1), (3, 25), (10, 10)]
]
ORDERS = ["O1", "O2", "O3"]
CATALOG = [
    item("TEE", "fashion", 2),
    item("HDP", "electronics"),
    item("COF", "consumables", 2),
    item("LMP", "home"),
    item("SRM", "beauty"),
    item("ESP", "appliances"),
]
NEGATIVE_TEXTS = [
    "My parcel is late again, this is really frustrating. I want a refund.",
    "The box arrived damaged and nobody answers my emails. Terrible service.",
]
OTHER_TEXTS = ["Hi, could you tell me when my order will arrive? Thanks!", "Can I change the delivery address?", None]
TRANSACTIONAL = [
    ("shipped", "transactional", "normal"),
    ("out_for_delivery", "transactional", "high"),
    ("delivered", "transactional", "normal"),
    ("delay_warning", "service", "high"),
    ("address_problem", "service", "urgent"),
    ("order_confirmation", "transactional", "high"),
]


# --- timelines -------------------------------------------------------------------------------


@st.composite
def timelines(draw, max_items: int = 40):
    start = draw(st.sampled_from(STARTS))
    tz = draw(st.sampled_from(ZONES))
    n = draw(st.integers(8, max_items))
    # Crowded (caps, smart sending, quiet hours) or spread out (post-delivery, win-back, replenishment).
    span_days = draw(st.sampled_from([2, 7, 60]))
    # Distinct times at minute resolution (ties would make "newest consent" ambiguous).
    offsets = sorted(draw(st.lists(st.integers(0, span_days * 24 * 60), min_size=n, max_size=n, unique=True)))
    items = []
    counter = [0]

    def uid(prefix):
        counter[0] += 1
        return f"{prefix}-{counter[0]}"

    placed_first = draw(st.booleans())
    # A calm customer (no problems, no complaints) lets marketing through to the caps.
    calm = draw(st.booleans())
    kinds = [
        "placed",
        "delivered",
        "candidate",
        "candidate",
        "candidate",
        "marketing",
        "marketing",
        "engagement",
        "engagement",
        "consent",
        "tick",
    ]
    if calm:
        kinds += ["marketing", "marketing", "placed"]
    else:
        kinds += ["problem", "cancelled", "refunded", "support", "support"]
    for i, off in enumerate(offsets):
        at = start + off * MINUTE
        choice = "placed" if (i == 0 and placed_first) else draw(st.sampled_from(kinds))
        order_id = draw(st.sampled_from(ORDERS))
        if choice == "placed":
            goods = draw(st.lists(st.sampled_from(CATALOG), min_size=1, max_size=3, unique_by=lambda x: x.sku))
            items.append(
                fact_command(
                    "placed",
                    at,
                    order_id=order_id,
                    time_zone=tz,
                    items=goods,
                    total=float(draw(st.sampled_from([20, 80, 300]))),
                    command_id=uid("placed"),
                    channels=contact(
                        email=True,
                        sms=draw(st.booleans()),
                        push=draw(st.booleans()),
                        marketing_email=draw(st.booleans()),
                        marketing_sms=draw(st.booleans()),
                    ),
                )
            )
        elif choice == "delivered":
            late = not calm and draw(st.booleans())
            goods = draw(st.lists(st.sampled_from(CATALOG), min_size=0, max_size=2, unique_by=lambda x: x.sku))
            items.append(
                fact_command(
                    "delivered",
                    at,
                    order_id=order_id,
                    time_zone=tz,
                    items=goods,
                    detail="late" if late else "on_time",
                    had_problem=late or (not calm and draw(st.booleans())),
                    command_id=uid("delivered"),
                )
            )
        elif choice == "problem":
            detail = draw(
                st.sampled_from(
                    [
                        "exception:customs_delay",
                        "delay:predicted",
                        "stall:in_transit",
                        "returned_to_sender:return",
                        "attempt_failed:recipient_unavailable",
                    ]
                )
            )
            items.append(
                fact_command(
                    "delivery_problem", at, order_id=order_id, time_zone=tz, detail=detail, command_id=uid("problem")
                )
            )
        elif choice in ("cancelled", "refunded"):
            items.append(
                fact_command(
                    choice,
                    at,
                    order_id=order_id,
                    time_zone=tz,
                    detail=draw(st.sampled_from(["customer", "return", "damaged"])),
                    command_id=uid(choice),
                )
            )
        elif choice == "candidate":
            intent_type, kind, priority = draw(st.sampled_from(TRANSACTIONAL))
            message = intent(
                intent_type,
                draw(st.sampled_from(["email", "sms", "push"])),
                kind=kind,
                at=at,
                order_id=order_id,
                occasion=uid("occ"),
                source_event_id=uid("ev"),
                priority=priority,
                ttl=draw(st.sampled_from([2 * HOUR, 12 * HOUR, 2 * DAY])),
                tracking=draw(st.sampled_from(["TRK1", "TRK2", None])),
            )
            items.append(candidate_command(message))
        elif choice == "marketing":
            message = intent(
                "promotion",
                draw(st.sampled_from(["email", "sms", "push"])),
                kind="marketing",
                at=at,
                order_id=None,
                occasion=uid("promo"),
                source_event_id=uid("campaign"),
                priority="low",
                ttl=draw(st.sampled_from([6 * HOUR, 3 * DAY, 20 * DAY])),
                reason_codes=["campaign"],
            )
            items.append(candidate_command(message))
        elif choice == "engagement":
            kind = draw(st.sampled_from(["opened", "clicked", "review_submitted"]))
            channel = "web" if kind == "review_submitted" else draw(st.sampled_from(["email", "sms", "push"]))
            items.append(
                engagement(
                    kind,
                    channel,
                    at=at,
                    order_id=order_id,
                    event_id=uid("eng"),
                    rating=draw(st.integers(1, 5)) if kind == "review_submitted" else None,
                )
            )
        elif choice == "consent":
            kind = draw(st.sampled_from(["unsubscribed", "resubscribed", "spam_report", "bounced"]))
            items.append(
                engagement(
                    kind,
                    draw(st.sampled_from(["email", "sms", "push"])),
                    at=at,
                    event_id=uid("c"),
                    scope=draw(st.sampled_from(["marketing", "all"])),
                    order_id=None,
                )
            )
        elif choice == "support":
            kind = draw(st.sampled_from(["ticket_opened", "message", "solved", "satisfaction_rating"]))
            items.append(
                support(
                    kind,
                    draw(st.sampled_from(["T1", "T2"])),
                    at=at,
                    event_id=uid("sup"),
                    order_id=order_id,
                    status="solved" if kind == "solved" else None,
                    from_customer=kind != "solved" and draw(st.booleans()),
                    text=draw(st.sampled_from(NEGATIVE_TEXTS + OTHER_TEXTS)),
                    rating=draw(st.integers(1, 5)) if kind == "satisfaction_rating" else None,
                )
            )
        else:
            items.append(tick(at))
    return tz, items


# --- an independent model of what the inputs say ---------------------------------------------


@dataclass
class Channel:
    reachable: bool = False
    bounced: bool = False
    unsubscribed_all: bool = False
    marketing: bool = False
    stated: bool = False


@dataclass
class Order:
    delivered_at: int | None = None
    late: bool = False
    problem_open_at: int | None = None
    went_wrong: bool = False


@dataclass
class Model:
    tz: str | None = None
    channels: dict = field(default_factory=lambda: defaultdict(Channel))
    orders: dict = field(default_factory=lambda: defaultdict(Order))
    open_tickets: set = field(default_factory=set)
    negative_at: int | None = None
    cooldowns: list = field(default_factory=list)  # (since, reason) of refunds, returns, cancellations
    sent: list = field(default_factory=list)  # emitted intents
    reviewed_skus: dict = field(default_factory=dict)

    def apply(self, item) -> None:
        if isinstance(item, CustomerCommand) and item.kind == "order_fact":
            self._fact(item)
        elif isinstance(item, EngagementEvent):
            self._engagement(item)
        elif isinstance(item, SupportEvent):
            self._support(item)

    def _fact(self, command) -> None:
        fact, at, order = command.fact, command.event_time, self.orders[command.order_id]
        self.tz = fact.time_zone or self.tz
        if fact.type == "placed":
            offers = {"email": fact.contact.marketing_email, "sms": fact.contact.marketing_sms, "push": False}
            for name in ("email", "sms", "push"):
                ch = self.channels[name]
                if getattr(fact.contact, name):
                    ch.reachable, ch.bounced = True, False
                if offers[name] or not ch.stated:
                    ch.marketing, ch.stated = offers[name], True
        elif fact.type == "delivered":
            order.delivered_at = at if order.delivered_at is None else min(order.delivered_at, at)
            order.late = order.late or fact.detail == "late"
            order.went_wrong = order.went_wrong or fact.detail == "late" or fact.had_problem
            order.problem_open_at = None
        elif fact.type == "delivery_problem":
            if not fact.detail.startswith("delay:"):
                order.went_wrong = True
            if order.delivered_at is None or at > order.delivered_at:
                order.problem_open_at = at
            if fact.detail.startswith("returned_to_sender"):
                self.cooldowns.append(at)
        elif fact.type in ("cancelled", "refunded"):
            order.went_wrong = True
            order.problem_open_at = None
            self.cooldowns.append(at)

    def _engagement(self, event) -> None:
        if event.type == "review_submitted":
            if event.rating <= 2:
                self._negative(event.event_time, event.order_id)
            return
        ch = self.channels[event.channel]
        if event.type in ("unsubscribed", "spam_report"):
            ch.marketing, ch.stated = False, True
            ch.unsubscribed_all = ch.unsubscribed_all or event.scope == "all"
        elif event.type == "resubscribed":
            ch.marketing, ch.unsubscribed_all, ch.stated = True, False, True
        elif event.type == "bounced":
            ch.bounced = True

    def _support(self, event) -> None:
        if event.type == "solved":
            self.open_tickets.discard(event.ticket_id)
        elif event.type == "ticket_opened" or (event.type == "message" and event.from_customer):
            self.open_tickets.add(event.ticket_id)
        if (event.type == "satisfaction_rating" and event.rating <= 2) or (
            event.from_customer and event.text in NEGATIVE_TEXTS
        ):
            self._negative(event.event_time, event.order_id)

    def _negative(self, at, order_id) -> None:
        self.negative_at = at
        if order_id in self.orders:
            self.orders[order_id].went_wrong = True

    # --- the rules every emitted intent must satisfy -------------------------------------------

    def violations(self, i: MessageIntent) -> list[str]:
        out = []
        now, moment = i.decided_at, max(i.decided_at, i.send_at)
        ch = self.channels[i.channel]
        if not ch.reachable or ch.bounced or ch.unsubscribed_all:
            out.append("unreachable")
        if i.kind == "marketing" and not ch.marketing:
            out.append("no_consent")
        if i.time_zone != self.tz:
            out.append("time_zone")
        wall = datetime.fromtimestamp(moment / 1000, ZoneInfo(i.time_zone)).time()
        night = wall >= time(21) or wall < time(8)
        quiet_applies = i.channel in ("sms", "push") or i.kind == "marketing"
        if night and quiet_applies and (i.kind == "marketing" or i.priority != "urgent"):
            out.append("quiet_hours")
        if now > i.expires_at or i.send_at > i.expires_at:
            out.append("expired")
        if any(s.intent_id == i.intent_id for s in self.sent):
            out.append("twice")
        if i.kind == "marketing":
            out += self._marketing(i, now, moment)
        return out

    def _marketing(self, i, now, moment) -> list[str]:
        out = []
        zone = ZoneInfo(i.time_zone)
        day = datetime.fromtimestamp(moment / 1000, zone).date()
        same_day = [
            s
            for s in self.sent
            if s.channel == i.channel
            and datetime.fromtimestamp(max(s.decided_at, s.send_at) / 1000, zone).date() == day
        ]
        if len(same_day) >= {"email": 2, "sms": 1, "push": 2}[i.channel]:
            out.append("daily_cap")
        window = {"email": 16 * HOUR, "sms": 24 * HOUR, "push": 24 * HOUR}[i.channel]
        marketing = [s for s in self.sent if s.kind == "marketing"]
        if any(s.channel == i.channel and abs(max(s.decided_at, s.send_at) - moment) < window for s in marketing):
            out.append("smart_sending")
        if (
            i.channel == "email"
            and len(
                [s for s in marketing if s.channel == "email" and abs(max(s.decided_at, s.send_at) - moment) < 30 * DAY]
            )
            >= 5
        ):
            out.append("30_days")
        if self.open_tickets:
            out.append("guard:open_ticket")
        if self.negative_at is not None and now < self.negative_at + 14 * DAY:
            out.append("guard:negative_contact")
        if any(now < since + 14 * DAY for since in self.cooldowns):
            out.append("guard:refund_return_cancel")
        if any(o.late and o.delivered_at is not None and now < o.delivered_at + 7 * DAY for o in self.orders.values()):
            out.append("guard:late_delivery")
        if any(o.problem_open_at is not None and now < o.problem_open_at + 30 * DAY for o in self.orders.values()):
            out.append("guard:delivery_problem")
        if i.intent_type == "review_request":
            if self.orders[i.order_id].went_wrong:
                out.append("review_after_problem")
            for it in i.content.items:
                if it.sku in self.reviewed_skus and abs(now - self.reviewed_skus[it.sku]) < 365 * DAY:
                    out.append("review_twice")
        return out

    def record(self, i: MessageIntent) -> None:
        self.sent.append(i)
        if i.intent_type == "review_request":
            for it in i.content.items:
                self.reviewed_skus[it.sku] = i.decided_at


def run_timeline(items, duplicate: bool = False, check: bool = True) -> tuple[CustomerRun, list[str]]:
    """Time order, Dues fired as the clock passes them; every emitted intent checked by the model."""
    run = CustomerRun()
    model = Model()
    problems: list[str] = []

    def take(start: int) -> None:
        for emitted in run.intents[start:]:
            if check:
                problems.extend(f"{emitted.intent_type}/{emitted.channel}: {v}" for v in model.violations(emitted))
            model.record(emitted)

    for it in items:
        n = len(run.intents)
        run.advance(it.event_time)  # what was due before this item, on the state before it
        take(n)
        n = len(run.intents)
        run.feed(it, *([it] if duplicate else []))
        model.apply(it)
        take(n)
    n = len(run.intents)
    run.advance(max(it.event_time for it in items) + 60 * DAY)
    take(n)
    return run, problems


# --- the properties --------------------------------------------------------------------------


@PROPERTY
@given(timeline=timelines())
def test_no_intent_ever_breaks_consent_quiet_hours_caps_or_the_guard(timeline):
    _, items = timeline
    _, problems = run_timeline(items)
    assert problems == []


@PROPERTY
@given(timeline=timelines(max_items=30))
def test_every_item_delivered_twice_gives_the_same_output(timeline):
    _, items = timeline
    once, _ = run_timeline(items, check=False)
    twice, _ = run_timeline(items, duplicate=True, check=False)
    assert twice.intents == once.intents
    assert twice.audit == once.audit
    assert twice.state.to_dict() == once.state.to_dict()


@PROPERTY
@given(timeline=timelines(max_items=30))
def test_the_same_timeline_gives_the_same_ids_and_a_replay_adds_nothing(timeline):
    _, items = timeline
    first, _ = run_timeline(items, check=False)
    second, _ = run_timeline(items, check=False)
    assert [i.intent_id for i in first.intents] == [i.intent_id for i in second.intents]
    assert [a.audit_id for a in first.audit] == [a.audit_id for a in second.audit]
    n_intents, n_audit = len(first.intents), len(first.audit)
    first.feed(*items, now=max(it.event_time for it in items) + 61 * DAY)  # every item again, much later
    assert first.intents[n_intents:] == [] and first.audit[n_audit:] == []


def _independent(batch) -> bool:
    news = set()
    for it in batch:
        if (
            isinstance(it, CustomerCommand)
            and it.kind == "order_fact"
            and it.fact.type in ("placed", "cancelled", "refunded")
        ):
            return False
        if isinstance(it, EngagementEvent) and it.type in ("unsubscribed", "resubscribed", "spam_report", "bounced"):
            return False
        if isinstance(it, CustomerCommand) and it.kind == "candidate_intent":
            if it.intent.kind == "marketing":
                return False
            key = (
                it.intent.order_id,
                "parcel" if it.intent.intent_type in ("shipped", "delivered") else it.intent.intent_type,
            )
            if key in news:
                return False
            news.add(key)
    return True


@st.composite
def prefix_and_batch(draw):
    tz, items = draw(timelines(max_items=25))
    _, extra = draw(timelines(max_items=12))
    at = max(it.event_time for it in items) + draw(st.integers(1, 3 * 24 * 60)) * MINUTE
    batch = []
    for n, it in enumerate(extra):  # the same kinds of items, all at one moment
        if isinstance(it, CustomerCommand) and it.kind == "tick":
            continue
        if isinstance(it, CustomerCommand):
            fields = {"event_time": at, "command_id": f"b{n}-{it.command_id}"}
            if it.intent is not None:
                fields["intent"] = replace(it.intent, decided_at=at, send_at=at, expires_at=at + DAY)
            if it.fact is not None:
                fields["fact"] = replace(it.fact, time_zone=tz)
            batch.append(replace(it, **fields))
        else:
            batch.append(replace(it, event_time=at, event_id=f"b{n}-{it.event_id}"))
    keep = []
    for b in batch:
        if _independent([*keep, b]):
            keep.append(b)
    order = draw(st.permutations(range(len(keep))))
    return items, keep, [keep[k] for k in order]


def _after(items, batch):
    run, _ = run_timeline(items, check=False)
    at = batch[0].event_time if batch else max(it.event_time for it in items)
    run.advance(at)
    n_i, n_a = len(run.intents), len(run.audit)
    for it in batch:
        run.feed(it)
        run.advance(at)  # as the app does after every record
    return run, {i.intent_id for i in run.intents[n_i:]}, {a.audit_id for a in run.audit[n_a:]}


@PROPERTY
@given(case=prefix_and_batch())
def test_simultaneous_independent_items_commute(case):
    items, batch, shuffled = case
    run1, intents1, audit1 = _after(items, batch)
    run2, intents2, audit2 = _after(items, shuffled)
    assert intents1 == intents2
    assert audit1 == audit2
    assert run1.state.timers == run2.state.timers
