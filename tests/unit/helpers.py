"""Small builders and runners shared by the unit tests (no broker, no mocks).

Event ids default to a value derived from the event's content, so building the same event twice
gives the same id (a redelivery); pass `event_id=` to make a distinct event with the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import orjson

from streams.core import ids
from streams.core.customers import decide_customer
from streams.core.model import (
    CarrierScan,
    ContactChannels,
    ContentHints,
    CustomerCommand,
    DecisionAudit,
    Due,
    DueTick,
    EngagementEvent,
    Fulfillment,
    ItemHint,
    LineItem,
    MessageIntent,
    OrderEvent,
    OrderFact,
    Schedule,
    ShippingAddress,
    SupportEvent,
)
from streams.core.orders import decide_order
from streams.core.policy import DEFAULT_POLICY, PolicyConfig
from streams.core.state import CustomerState, OrderState

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

ORDER = "O1"
CUSTOMER = "C1"
SHIPMENT = "S1"

ITEMS = (
    LineItem(sku="TEE", title="Tee", category="fashion", quantity=2, product_id="TEE", price=29.0),
    LineItem(sku="LAMP", title="Lamp", category="home", quantity=1, product_id="LAMP", price=89.0),
)


# --- order stage inputs ----------------------------------------------------------------------


def contact(
    email: bool = True,
    sms: bool = False,
    push: bool = False,
    marketing_email: bool = False,
    marketing_sms: bool = False,
    locale: str | None = "de-DE",
) -> ContactChannels:
    return ContactChannels(
        email=email, sms=sms, push=push, marketing_email=marketing_email, marketing_sms=marketing_sms, locale=locale
    )


def order_event(
    type_: str, at: int = T0, order_id: str = ORDER, customer_id: str = CUSTOMER, event_id: str | None = None, **extra
) -> OrderEvent:
    return OrderEvent(
        event_id=event_id or f"ord-{order_id}-{type_}-{at}",
        event_time=at,
        source="test",
        type=type_,
        order_id=order_id,
        customer_id=customer_id,
        **extra,
    )


def placed(
    at: int = T0,
    order_id: str = ORDER,
    customer_id: str = CUSTOMER,
    event_id: str | None = None,
    items=ITEMS,
    promised: int | None = T0 + 3 * DAY,
    channels: ContactChannels | None = None,
    total: float = 147.0,
    time_zone: str = "Europe/Berlin",
) -> OrderEvent:
    return order_event(
        "placed",
        at,
        order_id,
        customer_id,
        event_id,
        order_number="#1",
        currency="EUR",
        total=total,
        line_items=list(items),
        promised_delivery_at=promised,
        shipping=ShippingAddress(country="DE", time_zone=time_zone, region="BY"),
        contact=channels if channels is not None else contact(),
    )


def fulfilled(
    at: int = T0 + 5 * HOUR,
    shipment_id: str = SHIPMENT,
    skus=("TEE",),
    carrier: str = "dhl",
    tracking: str | None = "TRK1",
    order_id: str = ORDER,
    customer_id: str = CUSTOMER,
    event_id: str | None = None,
) -> OrderEvent:
    return order_event(
        "fulfilled",
        at,
        order_id,
        customer_id,
        event_id or f"ord-{order_id}-fulfilled-{shipment_id}-{at}",
        fulfillment=Fulfillment(
            shipment_id=shipment_id,
            carrier=carrier,
            service_level="standard",
            tracking_number=tracking,
            skus=list(skus),
        ),
    )


def cancelled(
    at: int = T0 + HOUR,
    order_id: str = ORDER,
    customer_id: str = CUSTOMER,
    reason: str = "customer",
    event_id: str | None = None,
) -> OrderEvent:
    return order_event("cancelled", at, order_id, customer_id, event_id, reason=reason)


def scan(
    status: str,
    at: int,
    shipment_id: str = SHIPMENT,
    order_id: str = ORDER,
    event_id: str | None = None,
    customer_id: str | None = None,
    sub_status: str | None = None,
    carrier: str = "dhl",
    tracking: str | None = "TRK1",
    eta: int | None = None,
) -> CarrierScan:
    return CarrierScan(
        event_id=event_id or f"scan-{order_id}-{shipment_id}-{status}-{at}",
        event_time=at,
        source="test",
        order_id=order_id,
        shipment_id=shipment_id,
        carrier=carrier,
        status=status,
        customer_id=customer_id,
        tracking_number=tracking,
        service_level="standard",
        sub_status=sub_status,
        carrier_estimated_delivery_at=eta,
    )


# --- order stage runner ----------------------------------------------------------------------


@dataclass
class OrderRun:
    state: OrderState | None = None
    commands: list[CustomerCommand] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    duplicates: int = 0

    @property
    def intents(self) -> list[MessageIntent]:
        return candidates(self.commands)

    @property
    def facts(self) -> list[OrderFact]:
        return [c.fact for c in self.commands if c.kind == "order_fact"]

    def feed(self, *events, now: int | None = None) -> "OrderRun":
        """Feed events in order; `now` defaults to each event's own time (the event clock)."""
        for event in events:
            decision = decide_order(self.state, event, event.event_time if now is None else now)
            self.state = decision.state
            self.commands.extend(decision.commands)
            self.audit.extend(decision.audit)
            self.duplicates += decision.duplicate
        return self


def run_orders(*events, now: int | None = None) -> OrderRun:
    return OrderRun().feed(*events, now=now)


def candidates(commands) -> list[MessageIntent]:
    return [c.intent for c in commands if c.kind == "candidate_intent"]


def types(intents) -> list[str]:
    return [i.intent_type for i in intents]


def json_roundtrip(data: dict) -> dict:
    """What a Faust table stores and gives back."""
    return orjson.loads(orjson.dumps(data))


# --- customer stage inputs -------------------------------------------------------------------


def fact_command(
    fact_type: str = "placed",
    at: int = T0,
    customer_id: str = CUSTOMER,
    order_id: str = ORDER,
    channels: ContactChannels | None = None,
    total: float | None = None,
    categories=(),
    detail: str | None = None,
    command_id: str | None = None,
    time_zone: str | None = "Europe/Berlin",
    items=(),
    had_problem: bool = False,
    promised: int | None = None,
) -> CustomerCommand:
    if fact_type == "placed" and channels is None:
        channels = contact()
    if fact_type == "placed" and items and not categories:
        categories = sorted({i.category for i in items})
    return CustomerCommand(
        command_id=command_id or ids.stable_id("fact", f"{order_id}-{fact_type}-{at}", fact_type),
        event_time=at,
        customer_id=customer_id,
        order_id=order_id,
        kind="order_fact",
        fact=OrderFact(
            type=fact_type,
            total=total,
            categories=list(categories),
            time_zone=time_zone,
            contact=channels,
            detail=detail,
            items=list(items),
            had_problem=had_problem,
            promised_delivery_at=promised,
        ),
    )


def item(sku: str, category: str, quantity: int = 1, title: str | None = None) -> ItemHint:
    return ItemHint(sku=sku, title=title or sku.title(), category=category, quantity=quantity)


def tick(at: int, customer_id: str = CUSTOMER) -> CustomerCommand:
    """Wall-clock time advanced (the app sends these to every partition it owns)."""
    return CustomerCommand(
        command_id=f"tick:{at}", event_time=at, customer_id=customer_id, order_id="", kind="tick", due=DueTick(now=at)
    )


def intent(
    intent_type: str = "order_confirmation",
    channel: str = "email",
    kind: str = "transactional",
    at: int = T0,
    customer_id: str = CUSTOMER,
    order_id: str | None = ORDER,
    occasion: str | None = None,
    reason_codes=("order_placed",),
    source_event_id: str = "ev-1",
    priority: str = "high",
    ttl: int = DAY,
    tracking: str | None = None,
) -> MessageIntent:
    return MessageIntent(
        intent_id=ids.intent_id(customer_id, order_id, intent_type, occasion or intent_type, channel),
        decided_at=at,
        order_id=order_id,
        customer_id=customer_id,
        intent_type=intent_type,
        kind=kind,
        channel=channel,
        send_at=at,
        expires_at=at + ttl,
        priority=priority,
        content=ContentHints(
            items=[ItemHint("TEE", "Tee", "fashion", 2)], category="fashion", tracking_number=tracking
        ),
        reason_codes=list(reason_codes),
        source_event_id=source_event_id,
    )


def candidate_command(
    message: MessageIntent | None = None, command_id: str | None = None, **intent_args
) -> CustomerCommand:
    message = message or intent(**intent_args)
    return CustomerCommand(
        command_id=command_id or ids.stable_id("candidate", message.intent_id),
        event_time=message.decided_at,
        customer_id=message.customer_id,
        order_id=message.order_id or "",
        kind="candidate_intent",
        intent=message,
    )


def promotion(
    at: int, n: int = 1, ttl: int = DAY, channel: str = "email", customer_id: str = CUSTOMER
) -> CustomerCommand:
    """A campaign's marketing message for the customer, proposed at `at` (occasion p<n>)."""
    return candidate_command(
        intent(
            "promotion",
            channel,
            kind="marketing",
            at=at,
            customer_id=customer_id,
            order_id=None,
            occasion=f"p{n}",
            reason_codes=["campaign"],
            source_event_id=f"promo-{n}",
            priority="low",
            ttl=ttl,
        )
    )


def engagement(
    type_: str,
    channel: str = "email",
    at: int = T0 + HOUR,
    customer_id: str = CUSTOMER,
    scope: str | None = None,
    rating: int | None = None,
    event_id: str | None = None,
    order_id: str | None = ORDER,
) -> EngagementEvent:
    return EngagementEvent(
        event_id=event_id or f"eng-{customer_id}-{type_}-{channel}-{at}",
        event_time=at,
        source="test",
        type=type_,
        customer_id=customer_id,
        channel=channel,
        order_id=order_id,
        scope=scope,
        rating=rating,
        product_id="TEE" if rating is not None else None,
    )


def support(
    type_: str,
    ticket_id: str = "T1",
    at: int = T0 + HOUR,
    customer_id: str = CUSTOMER,
    status: str | None = None,
    from_customer: bool = True,
    rating: int | None = None,
    event_id: str | None = None,
    text: str | None = None,
    order_id: str | None = ORDER,
    sentiment: float | None = None,
) -> SupportEvent:
    return SupportEvent(
        event_id=event_id or f"sup-{customer_id}-{ticket_id}-{type_}-{at}",
        event_time=at,
        source="test",
        type=type_,
        customer_id=customer_id,
        ticket_id=ticket_id,
        order_id=order_id,
        status=status,
        from_customer=from_customer,
        text=text,
        rating=rating,
        topic="wismo",
        sentiment=sentiment,
    )


# --- customer stage runner -------------------------------------------------------------------

PLANNED_HOUR = replace(DEFAULT_POLICY, send_time_optimisation=False)


@dataclass
class CustomerRun:
    """The customer stage as the app runs it: state kept between items, and (with `fire_dues`)
    scheduled decisions fired as Dues once time has passed them, oldest first."""

    state: CustomerState | None = None
    intents: list[MessageIntent] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    duplicates: int = 0
    schedule: list[Schedule] = field(default_factory=list)  # entries not fired yet (the app's schedule table)
    fire_dues: bool = False  # after each item, fire what is due by its time (the app on the event clock)
    # Tests of the other policies decide at the planned hour; send-time tests pass DEFAULT_POLICY.
    config: PolicyConfig = PLANNED_HOUR
    shared: dict = field(default_factory=dict)  # the partition's statistics (the app's customer_stats)

    def feed(self, *items, now: int | None = None) -> "CustomerRun":
        for item in items:
            at = item.event_time if now is None else now
            decision = decide_customer(self.state, item, at, self.config, self.shared)
            self._take(decision)
            self.duplicates += decision.duplicate
            if self.fire_dues:
                self.advance(at, live=False)
        return self

    def advance(self, now: int, live: bool = True) -> "CustomerRun":
        """Fire every schedule entry due by `now`, as the app does (a Due each; stale ones are no-ops).
        live: the wall clock passes every due time on the way (each fires at its own time, like a live
        worker's ticks); else all fire at `now` (the event clock jumping ahead, or a worker catching up)."""
        clock = 0
        while due := sorted((s for s in self.schedule if s.due_at <= now), key=lambda s: (s.due_at, s.key, s.kind)):
            batch = due[:1] if live else due
            for entry in batch:
                self.schedule.remove(entry)
            for entry in batch:
                at = max(clock, entry.due_at) if live else now
                clock = at
                if self.state is not None:
                    due = Due(entry.key, entry.kind, entry.due_at, at)
                    self._take(decide_customer(self.state, due, at, self.config, self.shared))
        return self

    def _take(self, decision) -> None:
        self.state = decision.state
        self.shared.update(decision.stats)
        self.intents.extend(decision.intents)
        self.audit.extend(decision.audit)
        self.schedule.extend(decision.schedule)


def run_customer(*items, now: int | None = None, config: PolicyConfig | None = None) -> CustomerRun:
    return CustomerRun(config=config or PLANNED_HOUR).feed(*items, now=now)


def send(run: CustomerRun, *items, now: int | None = None) -> tuple[list[MessageIntent], list[DecisionAudit]]:
    """Feed items into an existing run; return only what they produced."""
    n_intents, n_audit = len(run.intents), len(run.audit)
    run.feed(*items, now=now)
    return run.intents[n_intents:], run.audit[n_audit:]


def advance(run: CustomerRun, now: int, live: bool = True) -> tuple[list[MessageIntent], list[DecisionAudit]]:
    """Let time pass to `now` (scheduled decisions fire); return only what that produced."""
    n_intents, n_audit = len(run.intents), len(run.audit)
    run.advance(now, live)
    return run.intents[n_intents:], run.audit[n_audit:]


def audits(records) -> list[tuple[str, str, list[str]]]:
    return [(a.intent_type, a.decision, a.reasons) for a in records]
