"""Prometheus metrics of a worker (served at /metrics by the worker's web server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter("aftersale_events_in", "Events consumed", ["topic", "type"], registry=self.registry)
        self.duplicates = Counter(
            "aftersale_duplicates", "Events ignored as duplicates", ["topic"], registry=self.registry
        )
        self.intents_out = Counter(
            "aftersale_intents_out", "Intents emitted", ["intent_type", "channel"], registry=self.registry
        )
        self.audit_out = Counter(
            "aftersale_decisions_not_sent",
            "Suppressed, held, skipped or dropped decisions",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "aftersale_dead_letters",
            "Inputs sent to the dead-letter topic",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.returns = Counter(
            "aftersale_returns",
            "Returns opened and closed (the order stage's return facts; open now = opened - closed)",
            ["change"],
            registry=self.registry,
        )
        self.return_reasons = Counter(
            "aftersale_return_reasons", "Items asked to be returned, by reason", ["reason"], registry=self.registry
        )
        self.refunds_overdue = Counter(
            "aftersale_refunds_overdue",
            "Returns received whose refund is later than the shop's usual time (refund_delayed proposed)",
            registry=self.registry,
        )
        self.experiment_outcomes = Counter(
            "aftersale_experiment_outcomes",
            "Per experiment and arm: units, orders, WISMO orders, deliveries, reviews, ratings, unsubscribes, "
            "repeat buyers, messages sent and held out (docs/experiments.md)",
            ["experiment", "arm", "outcome"],
            registry=self.registry,
        )
        self.fired = Counter(
            "aftersale_scheduled_fired",
            "Scheduled decisions taken (timers that fell due)",
            ["stage"],
            registry=self.registry,
        )
        self.fire_slices = Counter(
            "aftersale_fire_slices",
            "Times a batch was made durable early because about "
            "AFTERSALE_FIRE_LIMIT scheduled decisions were pending (a burst of due timers)",
            ["stage"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aftersale_event_to_decision_seconds",
            "Event time to decision (wall clock)",
            ["stage"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
        )
        # Refreshed every few seconds by streams/ops.py from what this worker owns.
        self.consumer_lag = Gauge(
            "aftersale_consumer_lag",
            "Messages not yet processed: end offset - committed offset",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.table_keys = Gauge(
            "aftersale_table_keys",
            "Keys in this worker's active table partitions (estimated when large)",
            ["table"],
            registry=self.registry,
        )
        self.scheduled_backlog = Gauge(
            "aftersale_scheduled_backlog", "Scheduled decisions waiting for their time", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def reason_label(reason: str) -> str:
    """A reason code as a metric label: the send-time hour dropped (`send_time:customer:h19` ->
    `send_time:customer`), so labels stay few."""
    if reason.startswith("send_time:"):
        head, _, hour = reason.rpartition(":")
        return head if hour.startswith("h") else reason
    return reason
