"""Avro schemas of every topic, loaded from the repo's schemas/ folder.

Schemas may reference named types defined in another file (the intent record is reused inside the
customer-command record), so files are parsed in dependency order into one shared namespace, and
each is also kept in a self-contained form (references inlined) for registration and fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fastavro
from fastavro.schema import to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Parse order matters: a file may only reference types from files listed before it.
SCHEMA_FILES = [
    "order_event",
    "carrier_scan",
    "engagement_event",
    "support_event",
    "message_intent",
    "decision_audit",
    "dead_letter",
    "customer_command",
    "order_command",
    "erasure_request",
]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


@dataclass(frozen=True)
class Schema:
    name: str  # full name, e.g. io.aftersale.OrderEvent
    file: str
    standalone: dict  # references inlined: what a registry stores
    parsed: dict  # fastavro-parsed, for reading and writing
    canonical: str  # Avro parsing canonical form
    fingerprint: str  # sha256 of the whole standalone schema


def _inline(node, definitions: dict, defined: set, namespace: str):
    """Replace references to named types with their definition (the first time only)."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = node if "." in node else f"{namespace}.{node}"
        if full in defined:
            return full
        return _inline(definitions[full], definitions, defined, namespace)
    if isinstance(node, list):
        return [_inline(n, definitions, defined, namespace) for n in node]
    if isinstance(node, dict):
        out = dict(node)
        kind = node.get("type")
        if kind in ("record", "enum", "fixed") and "name" in node:
            ns = node.get("namespace", namespace)
            full = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
            defined.add(full)
            namespace = ns
        if kind == "record":
            out["fields"] = [{**f, "type": _inline(f["type"], definitions, defined, namespace)} for f in node["fields"]]
        elif kind == "array":
            out["items"] = _inline(node["items"], definitions, defined, namespace)
        elif kind == "map":
            out["values"] = _inline(node["values"], definitions, defined, namespace)
        elif isinstance(kind, (dict, list)):
            out["type"] = _inline(kind, definitions, defined, namespace)
        return out
    return node


def _collect_definitions(node, namespace: str, into: dict) -> None:
    if isinstance(node, list):
        for n in node:
            _collect_definitions(n, namespace, into)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed") and "name" in node:
            namespace = node.get("namespace", namespace)
            full = node["name"] if "." in node["name"] else f"{namespace}.{node['name']}"
            into[full] = {**node, "namespace": namespace}
        for key in ("fields", "items", "values"):
            if key in node:
                _collect_definitions(node[key], namespace, into)
        if isinstance(kind, (dict, list)):
            _collect_definitions(kind, namespace, into)
        if "fields" in node:
            for f in node["fields"]:
                _collect_definitions(f["type"], namespace, into)


def standalone_from_json(schema: dict) -> Schema:
    """A Schema from a self-contained schema dict (e.g. one fetched from a registry)."""
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema, _write_hint=False))
    # Parsed with fastavro's marker: without it every read and write parses the schema again, which
    # was ~90% of the cost of decoding a record.
    parsed = fastavro.parse_schema(schema)
    # The fingerprint covers the whole schema (defaults, logical types, docs), not just the
    # parsing canonical form, so any edit is a new version in the registry.
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    namespace = schema.get("namespace", "")
    name = schema["name"] if "." in schema["name"] else f"{namespace}.{schema['name']}"
    return Schema(
        name=name,
        file="",
        standalone=schema,
        parsed=parsed,
        canonical=canonical,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
    )


@lru_cache(maxsize=1)
def load_all() -> dict[str, Schema]:
    """Current schemas of the repo, by full name."""
    definitions: dict = {}
    out: dict[str, Schema] = {}
    for stem in SCHEMA_FILES:
        raw = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())
        _collect_definitions(raw, raw.get("namespace", ""), definitions)
        standalone = _inline(raw, definitions, set(), raw.get("namespace", ""))
        schema = standalone_from_json(standalone)
        out[schema.name] = Schema(**{**schema.__dict__, "file": f"{stem}.avsc"})
    return out


def by_name(name: str) -> Schema:
    return load_all()[name]
