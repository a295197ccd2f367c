"""Every topic aftersale uses, defined in one place, and the command that applies them.

Inputs that feed the same table share a key and a partition count (co-partitioning): orders and
carrier scans are keyed by order id; engagement, support and the internal customer-commands topic
by customer id. Faust's changelog topics must have the same partition count as their sources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streams.config import Settings
from streams.security import librdkafka_config

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without the app prefix
    schema: str  # Avro record carried as value
    key: str  # what the key is
    config: dict
    doc: str


def _retain(days: int) -> dict:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", "segment.ms": str(DAY_MS)}

TOPICS = [
    TopicSpec("orders", "io.aftersale.OrderEvent", "order_id", _retain(14), "order lifecycle events from the shop"),
    TopicSpec("carrier-scans", "io.aftersale.CarrierScan", "order_id", _retain(14), "normalized tracking scans"),
    TopicSpec(
        "engagement",
        "io.aftersale.EngagementEvent",
        "customer_id",
        _retain(14),
        "deliveries, opens, clicks, unsubscribes, reviews",
    ),
    TopicSpec(
        "support", "io.aftersale.SupportEvent", "customer_id", _retain(14), "help-desk tickets, messages, ratings"
    ),
    TopicSpec(
        "customer-commands",
        "io.aftersale.CustomerCommand",
        "customer_id",
        _retain(7),
        "internal: order stage to customer stage, ticks",
    ),
    TopicSpec(
        "erasure-requests", "io.aftersale.ErasureRequest", "customer_id", _retain(7), "erase a customer's state (GDPR)"
    ),
    TopicSpec(
        "order-commands",
        "io.aftersale.OrderCommand",
        "order_id",
        _retain(1),
        "internal: ticks and erasures for the order stage",
    ),
    TopicSpec(
        "intents", "io.aftersale.MessageIntent", "customer_id", _retain(14), "messages to send, for sender services"
    ),
    TopicSpec(
        "decision-audit",
        "io.aftersale.DecisionAudit",
        "customer_id",
        _retain(30),
        "suppressed, held, skipped, dropped decisions",
    ),
    TopicSpec(
        "dead-letters", "io.aftersale.DeadLetter", "original key", _retain(30), "inputs that could not be processed"
    ),
    TopicSpec(
        "connector-unknown",
        "io.aftersale.DeadLetter",
        "provider",
        _retain(7),
        "webhook events of unknown type or without ids, raw body",
    ),
    TopicSpec(
        "customer-keys",
        "JSON",
        "[customer_id, key id]",
        {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": "0",
            # Shredded keys leave the disk within a day: segments roll hourly, dirty ones are cleaned
            # within max.compaction.lag.ms, tombstones themselves go after delete.retention.ms.
            "segment.ms": str(3_600_000),
            "max.compaction.lag.ms": str(DAY_MS),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": str(DAY_MS),
        },
        "per-customer keys that seal free text and raw bodies; erasure tombstones them",
    ),
    TopicSpec(
        "sender-dead-letters",
        "io.aftersale.DeadLetter",
        "customer_id",
        _retain(30),
        "intents the reference sender could not deliver",
    ),
]

# Faust names changelogs "<app id>-<table>-changelog"; declared here so `aftersale topics` shows
# and creates them with the right partitions and compaction before a worker starts.
TABLES = ["orders", "customers", "lanes", "order_schedule", "customer_schedule", "customer_stats"]


def changelog_name(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def spec_by_name(name: str) -> TopicSpec:
    return next(t for t in TOPICS if t.name == name)


def all_topics(settings: Settings) -> list[tuple[str, dict]]:
    topics = [(settings.topic(t.name), t.config) for t in TOPICS]
    topics += [(changelog_name(settings.app_id, t), COMPACTED) for t in TABLES]
    return topics


def apply(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics (idempotent). Returns the names created. Existing topics are checked
    for a matching partition count, since co-partitioning silently breaks without it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **librdkafka_config(settings)})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = all_topics(settings)
    mismatched = [
        f"{name} has {len(existing[name].partitions)} partitions, expected {settings.partitions}"
        for name, _ in wanted
        if name in existing and len(existing[name].partitions) != settings.partitions
    ]
    if mismatched:
        raise RuntimeError("co-partitioning broken: " + "; ".join(mismatched))
    new = [
        NewTopic(
            name, num_partitions=settings.partitions, replication_factor=settings.replication_factor, config=config
        )
        for name, config in wanted
        if name not in existing
    ]
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items() if new else []:
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # a concurrent creator is fine; anything else is not
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    log.info("topics: %d wanted, %d created", len(wanted), len(created))
    return created
