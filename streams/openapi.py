"""The OpenAPI 3.1 description of a worker's HTTP API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from .webauth import OPEN_PATHS


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_NOT_FOUND = _json(_ref("Error"), "No state for this key (never seen, or not yet recovered)")
_UNAVAILABLE = _json(_ref("Error"), "No partition assignment yet (worker starting or rebalancing); retry")
_ROUTED = (
    "Served by the worker that owns the key: any worker accepts the request and forwards it "
    "(the `served_by` field names the one that answered)."
)

_DECISIONS = {
    "type": "object",
    "description": "Recent decisions from the workers' in-memory buffers (the last few hundred per worker; "
    "empty after a restart). The durable record is the intents and decision-audit topics.",
    "properties": {
        "intents": {"type": "array", "items": _ref("MessageIntent")},
        "audit": {"type": "array", "items": _ref("DecisionAudit")},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "MessageIntent": {
        "type": "object",
        "description": "As on the aftersale.intents topic (schemas/message_intent.avsc); times in epoch ms.",
        "required": ["intent_id", "intent_type", "channel", "customer_id"],
        "properties": {
            k: {"type": t}
            for k, t in {
                "intent_id": "string",
                "decided_at": "integer",
                "order_id": ["string", "null"],
                "customer_id": "string",
                "intent_type": "string",
                "kind": "string",
                "channel": "string",
                "send_at": "integer",
                "expires_at": "integer",
                "priority": "string",
                "content": "object",
                "reason_codes": "array",
                "source_event_id": "string",
                "experiment": ["string", "null"],
                "arm": ["string", "null"],
                "experiments": "array",
            }.items()
        },
    },
    "DecisionAudit": {
        "type": "object",
        "description": "As on the aftersale.decision-audit topic: a decision not to send, and why.",
        "required": ["audit_id", "intent_type", "decision", "reasons"],
        "properties": {
            k: {"type": t}
            for k, t in {
                "audit_id": "string",
                "decided_at": "integer",
                "customer_id": "string",
                "order_id": ["string", "null"],
                "intent_type": "string",
                "decision": "string",
                "reasons": "array",
                "channel": ["string", "null"],
                "experiment": ["string", "null"],
                "arm": ["string", "null"],
            }.items()
        },
    },
    "OrderView": {
        "type": "object",
        "required": ["order_id", "state", "derived", "recent", "served_by"],
        "properties": {
            "order_id": {"type": "string"},
            "state": {
                "type": "object",
                "additionalProperties": True,
                "description": "The stored OrderState as it is (streams/core/state.py); grows with the core.",
            },
            "derived": {
                "type": "object",
                "properties": {
                    "timeline": {
                        "type": "array",
                        "description": "Every `<what>_at` time of the order, its shipments and its returns",
                        "items": {
                            "type": "object",
                            "properties": {
                                "what": {"type": "string"},
                                "at": {"type": "integer"},
                                "time": {"type": "string", "format": "date-time"},
                                "shipment_id": {"type": "string"},
                                "return_id": {"type": "string"},
                            },
                        },
                    },
                    "tracking": {
                        "type": "object",
                        "description": "Normalized tracking status per shipment id",
                        "additionalProperties": {"type": "object"},
                    },
                    "returns": {
                        "type": "object",
                        "description": "Per return id: status, resolution, items, the return parcel's tracking, "
                        "its timeline, and `refund.state`: refunded (at, amount, method) | overdue (since) | "
                        "expected (by) | waiting_for_the_return | not_applicable",
                        "additionalProperties": {"type": "object"},
                    },
                    "promised_delivery": {"type": ["string", "null"], "format": "date-time"},
                    "late": {"type": ["boolean", "null"]},
                    "open_problems": {"type": "array", "items": {"type": "string"}},
                    "notified": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Occasions already decided (sent or dropped)",
                    },
                },
            },
            "recent": _DECISIONS,
            "recent_partial": {
                "type": "boolean",
                "description": "True when the worker owning the customer could not be asked",
            },
            "served_by": {"type": "string"},
        },
    },
    "CustomerView": {
        "type": "object",
        "required": ["customer_id", "state", "derived", "recent", "served_by"],
        "properties": {
            "customer_id": {"type": "string"},
            "state": {
                "type": "object",
                "additionalProperties": True,
                "description": "The stored CustomerState as it is (streams/core/state.py).",
            },
            "derived": {
                "type": "object",
                "properties": {
                    "channels": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "consent": {"enum": ["none", "transactional_only", "marketing_and_transactional"]},
                                "reachable": {"type": "boolean"},
                                "bounced": {"type": "boolean"},
                            },
                        },
                    },
                    "reachable_channels": {"type": "array", "items": {"type": "string"}},
                    "bounced_channels": {"type": "array", "items": {"type": "string"}},
                    "orders_count": {"type": "integer"},
                    "open_tickets": {"type": "array", "items": {"type": "string"}},
                    "last_contacted": {"type": ["string", "null"], "format": "date-time"},
                    "engaged_hours": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Local hours the customer opens and clicks in, best first (send-time optimisation)",
                    },
                },
            },
            "recent": _DECISIONS,
            "served_by": {"type": "string"},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "input_partitions": {"type": "integer"},
        },
    },
    "OpsSnapshot": {
        "type": "object",
        "description": "This worker's figures and recent decisions; the ops page polls it every 2 s.",
        "required": ["app_id", "worker", "status", "throughput", "totals", "lag", "alerts", "recent_intents"],
        "properties": {
            "app_id": {"type": "string"},
            "worker": {"type": "string"},
            "now": {"type": "integer"},
            "refreshed_at": {"type": ["integer", "null"]},
            "status": _ref("Readiness"),
            "throughput": {
                "type": "object",
                "properties": {
                    "events_in_per_s": {"type": ["number", "null"]},
                    "intents_out_per_s": {"type": ["number", "null"]},
                    "window_s": {"type": ["number", "null"]},
                },
            },
            "totals": {"type": "object", "additionalProperties": {"type": "number"}},
            "lag": {
                "type": "object",
                "properties": {
                    "total": {"type": "integer"},
                    "partitions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "topic": {"type": "string"},
                                "partition": {"type": "integer"},
                                "lag": {"type": "integer"},
                            },
                        },
                    },
                },
            },
            "returns": {
                "type": "object",
                "description": "Since this worker started: returns opened and closed, open (the difference), "
                "refunds overdue (refund_delayed proposed), items asked to be returned by reason",
                "properties": {
                    "opened": {"type": "number"},
                    "closed": {"type": "number"},
                    "open": {"type": "number"},
                    "refunds_overdue": {"type": "number"},
                    "reasons": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"reason": {"type": "string"}, "count": {"type": "number"}},
                        },
                    },
                },
            },
            "experiments": {
                "type": "array",
                "description": "Since this worker started, per experiment and arm (docs/experiments.md): units, "
                "orders, messages sent and held out, rates as [value, low, high] (95%) with diff_vs_control",
                "items": {
                    "type": "object",
                    "properties": {
                        "experiment": {"type": "string"},
                        "kind": {"type": "string"},
                        "arm": {"type": "string"},
                        "control": {"type": "boolean"},
                        "units": {"type": "number"},
                        "orders": {"type": "number"},
                        "sent": {"type": "number"},
                        "held_out": {"type": "number"},
                        "rates": {"type": "object"},
                        "mean_rating": {"type": "array"},
                    },
                },
            },
            "tables": {"type": "object", "additionalProperties": {"type": "integer"}},
            "scheduled_backlog": {"type": "integer"},
            "intents_by_type": {"type": "object", "additionalProperties": {"type": "number"}},
            "not_sent_by_reason": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "decision": {"type": "string"},
                        "reason": {"type": "string"},
                        "count": {"type": "number"},
                    },
                },
            },
            "alerts": {
                "type": "array",
                "items": _ref("MessageIntent"),
                "description": "Recent intents whose type contains delay, exception or stall",
            },
            "recent_intents": {"type": "array", "items": _ref("MessageIntent")},
            "recent_audit": {"type": "array", "items": _ref("DecisionAudit")},
            "dead_letters": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def _get(summary: str, responses: dict, description: str = "", parameters: list | None = None) -> dict:
    operation = {"summary": summary, "responses": responses}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PATHS: dict[str, Any] = {
    "/orders/{order_id}": _get(
        "An order's live state",
        {"200": _json(_ref("OrderView"), "The order"), "404": _NOT_FOUND, "503": _UNAVAILABLE},
        _ROUTED + " Recent decisions come from both the order's and the customer's worker.",
        [_path_param("order_id")],
    ),
    "/customers/{customer_id}": _get(
        "A customer's live state",
        {"200": _json(_ref("CustomerView"), "The customer"), "404": _NOT_FOUND, "503": _UNAVAILABLE},
        _ROUTED,
        [
            _path_param("customer_id"),
            {
                "name": "order_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "Only recent decisions about this order",
            },
        ],
    ),
    "/health": _get("Liveness: the worker's web server answers", {"200": _json({"type": "object"}, "Alive")}),
    "/ready": _get(
        "Readiness: running, partitions assigned, tables recovered",
        {"200": _json(_ref("Readiness"), "Ready"), "503": _json(_ref("Readiness"), "Not ready yet")},
    ),
    "/metrics": _get(
        "Prometheus metrics of this worker",
        {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
    ),
    "/api/ops": _get("The ops page's data for this worker", {"200": _json(_ref("OpsSnapshot"), "Snapshot")}),
    "/ops": _get(
        "The ops page (HTML, updates itself from /api/ops)",
        {"200": {"description": "HTML page", "content": {"text/html": {}}}},
    ),
    "/openapi.json": _get("This description", {"200": _json({"type": "object"}, "OpenAPI 3.1 document")}),
    "/api/erasure": {
        "post": {
            "summary": "Erase a customer (GDPR art. 17)",
            "description": "Shreds the customer's keys (every sealed copy of their texts and raw bodies "
            "becomes unreadable), then asks the worker that owns them to delete their state and their "
            "orders' state. Safe to repeat; answered once both are acknowledged by the broker.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["customer_id"],
                            "properties": {
                                "customer_id": {"type": "string", "minLength": 1},
                                "order_ids": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "Orders to erase besides those the worker knows",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "202": _json(
                    {
                        "type": "object",
                        "properties": {
                            "customer_id": {"type": "string"},
                            "keys_shredded": {"type": "integer"},
                            "request": {"type": "string", "description": "event id of the ErasureRequest"},
                        },
                    },
                    "Keys shredded and the state erasure requested",
                ),
                "400": _json(_ref("Error"), "Not a JSON object with a customer_id"),
                "503": _json(_ref("Error"), "The broker did not acknowledge; ask again"),
            },
        }
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aftersale worker",
            "version": version,
            "description": "Live state, readiness, metrics and the ops page of one aftersale worker. "
            "Times are epoch milliseconds UTC, or ISO 8601 where the field says date-time.",
        },
        "paths": _with_auth(PATHS),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "AFTERSALE_WEB_TOKEN"},
                "browser": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name, AFTERSALE_WEB_TOKEN as the password",
                },
            },
        },
        "security": [{"token": []}, {"browser": []}],
    }


_UNAUTHORIZED = _json({"type": "object"}, "Without the token (AFTERSALE_WEB_TOKEN)")


def _with_auth(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation answers 401 without the token, but the open ones, which need no security."""
    out = {}
    for path, item in paths.items():
        out[path] = {}
        for method, operation in item.items():
            operation = dict(operation)
            if path in OPEN_PATHS:  # probes call these without the token
                operation["security"] = []
            else:
                operation["responses"] = {**operation["responses"], "401": _UNAUTHORIZED}
            out[path][method] = operation
    return out
