"""Between wire bytes and the core's typed records: which schema each topic carries, and how."""

from __future__ import annotations

import time

from .core import model
from .core.model import InvalidEvent
from .serde import AvroSerde, DecodeError

# topic suffix -> (Avro record name, converter to a core record)
INPUTS = {
    "orders": ("io.aftersale.OrderEvent", model.order_event_from),
    "carrier-scans": ("io.aftersale.CarrierScan", model.carrier_scan_from),
    "engagement": ("io.aftersale.EngagementEvent", model.engagement_event_from),
    "support": ("io.aftersale.SupportEvent", model.support_event_from),
    "customer-commands": ("io.aftersale.CustomerCommand", model.customer_command_from),
    "order-commands": ("io.aftersale.OrderCommand", model.order_command_from),
    "erasure-requests": ("io.aftersale.ErasureRequest", model.erasure_request_from),
}
# What each input must be keyed by, so its state lives on the partition that owns the key.
KEY_FIELD = {
    "orders": "order_id",
    "carrier-scans": "order_id",
    "engagement": "customer_id",
    "support": "customer_id",
    "customer-commands": "customer_id",
    "order-commands": "order_id",
    "erasure-requests": "customer_id",
}
OUTPUTS = {
    "customer-commands": "io.aftersale.CustomerCommand",
    "intents": "io.aftersale.MessageIntent",
    "decision-audit": "io.aftersale.DecisionAudit",
    "dead-letters": "io.aftersale.DeadLetter",
    **{name: schema for name, (schema, _) in INPUTS.items()},
    "connector-unknown": "io.aftersale.DeadLetter",  # webhook events the ingest service could not map
    "sender-dead-letters": "io.aftersale.DeadLetter",  # intents the reference sender could not deliver
}


class Codec:
    def __init__(self, serde: AvroSerde, app_id: str):
        self.serde = serde
        self.prefix = f"{app_id}."

    def suffix(self, topic: str) -> str:
        return topic[len(self.prefix) :] if topic.startswith(self.prefix) else topic

    def decode(self, topic: str, key: bytes | None, value: bytes | None):
        """Bytes from an input topic to a core record; raises DecodeError or InvalidEvent."""
        name = self.suffix(topic)
        try:
            schema, convert = INPUTS[name]
        except KeyError:
            raise DecodeError("unknown_topic", f"no schema is bound to topic {topic}") from None
        record = self.serde.decode(value, schema)
        try:
            event = convert(record)
        except InvalidEvent:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidEvent("invalid_field", f"{schema}: {exc}") from exc
        expected_key = getattr(event, KEY_FIELD[name])
        if key is None and expected_key:
            # Without a key the producer picks the partition: it may not be the one that owns the state.
            raise InvalidEvent(
                "missing_key", f"{topic} must be keyed by {KEY_FIELD[name]} ({expected_key!r}), got no key"
            )
        if key is not None and expected_key is not None and key.decode("utf-8", "replace") != expected_key:
            # Keyed by something else, the event would land on a partition that does not own its state.
            raise InvalidEvent(
                "wrong_key", f"{topic} must be keyed by {KEY_FIELD[name]} ({expected_key!r}), got {key!r}"
            )
        return event

    def encode(self, topic_suffix: str, obj) -> bytes:
        record = obj if isinstance(obj, dict) else model.to_record(obj)
        return self.serde.encode(f"{self.prefix}{topic_suffix}-value", OUTPUTS[topic_suffix], record)

    def dead_letter(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str, error: str
    ) -> bytes:
        return self.encode(
            "dead-letters",
            {
                "received_at": int(time.time() * 1000),
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": key,
                "value": value,
                "reason": reason,
                "error": error[:2000],
            },
        )
