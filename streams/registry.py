"""Schema ids for the Confluent wire format.

Without a registry server, ids come from the local registry kept in the repo: schemas/registry.json
maps every registered schema version to its id, and schemas/registry/<id>.avsc keeps each version
frozen so bytes written with an older version stay readable. `aftersale schemas register` adds new
versions after a schema edit (a test fails until it is run).

With SCHEMA_REGISTRY_URL set, a Confluent-compatible Schema Registry assigns and serves the ids
(subject naming: TopicNameStrategy, "<topic>-value").
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol

from .schemas import SCHEMA_DIR, Schema, load_all, standalone_from_json

REGISTRY_FILE = SCHEMA_DIR / "registry.json"
FROZEN_DIR = SCHEMA_DIR / "registry"


class UnknownSchemaId(LookupError):
    pass


class Registry(Protocol):
    def id_for(self, subject: str, schema: Schema) -> int: ...

    def schema_for(self, schema_id: int) -> Schema: ...


class LocalRegistry:
    """Ids from the repo's registry file; never changes files while running."""

    def __init__(self, registry_file: Path = REGISTRY_FILE, frozen_dir: Path = FROZEN_DIR):
        self._file = registry_file
        self._frozen = frozen_dir
        entries = json.loads(registry_file.read_text())["schemas"] if registry_file.exists() else []
        self._by_fingerprint = {e["fingerprint"]: e["id"] for e in entries}
        self._by_id: dict[int, Schema] = {}
        self._entries = entries

    def id_for(self, subject: str, schema: Schema) -> int:
        try:
            return self._by_fingerprint[schema.fingerprint]
        except KeyError:
            raise UnknownSchemaId(
                f"schema {schema.name} ({schema.file}) is not in {self._file.name}: "
                "run `aftersale schemas register` after editing a schema"
            ) from None

    def schema_for(self, schema_id: int) -> Schema:
        cached = self._by_id.get(schema_id)
        if cached is None:
            path = self._frozen / f"{schema_id}.avsc"
            if not path.exists():
                raise UnknownSchemaId(f"schema id {schema_id} is not in the local registry")
            cached = self._by_id[schema_id] = standalone_from_json(json.loads(path.read_text()))
        return cached

    def unregistered(self) -> list[Schema]:
        return [s for s in load_all().values() if s.fingerprint not in self._by_fingerprint]

    def register_current(self) -> list[tuple[int, Schema]]:
        """Give every new schema version an id and freeze it. Returns what was added."""
        added = []
        next_id = max((e["id"] for e in self._entries), default=0) + 1
        self._frozen.mkdir(parents=True, exist_ok=True)
        for schema in self.unregistered():
            entry = {"id": next_id, "name": schema.name, "file": schema.file, "fingerprint": schema.fingerprint}
            (self._frozen / f"{next_id}.avsc").write_text(json.dumps(schema.standalone, indent=2) + "\n")
            self._entries.append(entry)
            self._by_fingerprint[schema.fingerprint] = next_id
            added.append((next_id, schema))
            next_id += 1
        self._file.write_text(json.dumps({"schemas": self._entries}, indent=2) + "\n")
        return added


class RemoteRegistry:
    """A Confluent-compatible Schema Registry, through confluent-kafka's client."""

    def __init__(self, url: str, auth: str | None = None):
        from confluent_kafka.schema_registry import SchemaRegistryClient

        conf = {"url": url}
        if auth:
            conf["basic.auth.user.info"] = auth
        self._client = SchemaRegistryClient(conf)
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Schema] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: Schema) -> int:
        key = (subject, schema.fingerprint)
        if key not in self._ids:
            from confluent_kafka.schema_registry import Schema as CSchema

            with self._lock:
                self._ids[key] = self._client.register_schema(subject, CSchema(json.dumps(schema.standalone), "AVRO"))
        return self._ids[key]

    def schema_for(self, schema_id: int) -> Schema:
        if schema_id not in self._schemas:
            try:
                fetched = self._client.get_schema(schema_id)
            except Exception as exc:  # the client raises its own error types
                raise UnknownSchemaId(f"schema id {schema_id}: {exc}") from exc
            self._schemas[schema_id] = standalone_from_json(json.loads(fetched.schema_str))
        return self._schemas[schema_id]


def make_registry(url: str | None, auth: str | None = None) -> Registry:
    return RemoteRegistry(url, auth) if url else LocalRegistry()
