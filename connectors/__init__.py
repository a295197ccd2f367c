"""Connectors: provider webhooks in (ingest), message intents out (reference sender).

connectors/ingest.py       the aiohttp ingest service: verify, map, produce, answer
connectors/signatures.py   every provider's signature scheme (checks and, for tests, signers)
connectors/providers/      one pure mapping module per provider: payload -> our Avro records
connectors/sink.py         the idempotent aiokafka producer that the ingest service awaits
connectors/sender.py       consumes intents, delivers them over HTTP or SMTP, dead-letters the rest
"""
