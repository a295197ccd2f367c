"""Confluent wire framing (magic byte 0, 4-byte big-endian schema id, Avro binary) with fastavro."""
from __future__ import annotations

import io
import struct

import fastavro

from .registry import Registry, UnknownSchemaId
from .schemas import Schema, by_name

MAGIC = 0
_HEADER = struct.Struct(">bI")


class DecodeError(ValueError):
    """Bytes that cannot become a record. `reason` is a short code for the dead-letter topic."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class AvroSerde:
    def __init__(self, registry: Registry):
        self.registry = registry
        self._resolved: dict[tuple[int, str], tuple[dict, dict]] = {}

    def encode(self, subject: str, schema_name: str, record: dict) -> bytes:
        schema = by_name(schema_name)
        schema_id = self.registry.id_for(subject, schema)
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def decode(self, data: bytes | None, expected: str) -> dict:
        """Decode bytes written with any registered version of the `expected` schema."""
        if not data or len(data) < _HEADER.size:
            raise DecodeError("undecodable", f"{len(data or b'')} bytes is too short for the Confluent framing")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("undecodable", f"magic byte {magic}, expected 0 (Confluent wire format)")
        writer, reader = self._schemas(schema_id, expected)
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as exc:  # fastavro raises many types on truncated/garbled input
            raise DecodeError("undecodable", f"Avro body does not match schema id {schema_id}: {exc!r}") from exc
        if buf.tell() != len(data):
            raise DecodeError("undecodable", f"{len(data) - buf.tell()} trailing bytes after the Avro record")
        return record

    def _schemas(self, schema_id: int, expected: str) -> tuple[dict, dict]:
        key = (schema_id, expected)
        hit = self._resolved.get(key)
        if hit is None:
            try:
                writer: Schema = self.registry.schema_for(schema_id)
            except UnknownSchemaId as exc:
                raise DecodeError("unknown_schema", str(exc)) from exc
            if writer.name != expected:
                raise DecodeError("schema_mismatch", f"schema id {schema_id} is {writer.name}, this topic carries {expected}")
            hit = self._resolved[key] = (writer.parsed, by_name(expected).parsed)
        return hit
