"""The ingest service: one webhook endpoint per provider, POST /webhooks/<provider>.

At most AFTERSALE_INGEST_MAX_IN_FLIGHT webhook requests are handled at once (their bodies held in
memory); one more is answered 429 with Retry-After at once, never queued. /health and /metrics are
not counted. Per request: the endpoint's secret must be configured (else 503, the provider retries later); the
body must fit the endpoint's limit (else 413; read in chunks, given up as soon as it is over); the
signature must match (else 401); the body must be JSON the provider's mapping can read (else 400
with the reason). Then the mapped records are produced and the answer is 200 only once the broker
has acknowledged them; a broker failure answers 503 so the provider retries. A delivery with an
event too large for any Kafka record can never succeed: 413, logged, counted and recorded (without
its body) on <app>.connector-unknown. Nothing else is produced for a rejected request.

Duplicates: a delivery or event id accepted recently (bounded LRU) is answered 200 without producing
again; the engine de-duplicates on event id as well, so a retry after a restart is harmless too.
Unknown topics/event types and events that cannot be attributed (no order or customer id) are
accepted, counted in aftersale_ingest_events_total{outcome="unknown"|"unmapped"}, logged, and their
body is produced to <app>.connector-unknown (DeadLetter schema; AFTERSALE_INGEST_RECORD_UNKNOWN=0
turns that off) so they can be looked at and replayed. Events that are known but carry nothing for
the engine (e.g. an orders/updated that changed a note) are counted as "ignored".

Personal data: mappings keep ids and channels, never addresses. What a customer writes (support
text) is scored for sentiment here and then sealed with the customer's key, and connector-unknown
bodies are sealed with the unattributed key (streams/privacy.py), so an erasure reaches every copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import NoReturn

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from deploy.topics import spec_by_name
from streams import webauth
from streams.config import Settings
from streams.core.model import InvalidEvent
from streams.core.sentiment import compound
from streams.privacy import UNATTRIBUTED, KeyStore, is_sealed

from .memory import LRU, Directory
from .providers import MAPPERS
from .records import Inbound, Malformed, Mapped, Skip
from .settings import SECRET_ENV, IngestSettings
from .signatures import VERIFIERS, SignatureError, check_secret
from .sink import EventSink, Message, RecordTooLarge

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1  # what a 429 asks the provider to wait: in-flight requests take milliseconds


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aftersale_ingest_requests", "Webhook requests by answer", ["provider", "outcome"], registry=self.registry
        )
        self.events = Counter(
            "aftersale_ingest_events",
            "Provider events by what became of them",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "aftersale_ingest_seconds",
            "Webhook handling time, broker acknowledgement included",
            ["provider"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge("aftersale_ingest_in_flight", "Webhook requests being handled", registry=self.registry)


class Answer(Exception):
    """Ends a request early with a status and a JSON reason."""

    def __init__(self, status: int, outcome: str, reason: str):
        super().__init__(reason)
        self.status, self.outcome, self.reason = status, outcome, reason


class IngestService:
    def __init__(self, settings: Settings, ingest: IngestSettings, sink: EventSink | None = None):
        self.settings = settings
        self.ingest = ingest
        self.sink = sink or EventSink(settings)
        self.keys = KeyStore(settings)
        self.metrics = IngestMetrics()
        self.accepted = LRU(ingest.dedupe_size)
        self.directory = Directory(ingest.lookup_size)
        self.in_flight = 0
        for provider, secret in ingest.secrets.items():
            if secret:
                check_secret(provider, secret)

    @property
    def configured(self) -> list[str]:
        return [p for p in MAPPERS if self.ingest.secrets.get(p)]

    def app(self) -> web.Application:
        # /metrics needs the views' token; webhooks carry their provider's signature instead.
        webauth.warn_if_unset(self.settings.web_token, "ingest")
        app = web.Application(
            # Webhook bodies are read in chunks up to their endpoint's limit (_read_body); this is
            # aiohttp's own limit of request.read(), which no endpoint uses.
            client_max_size=max(self.ingest.body_limit(p) for p in MAPPERS),
            middlewares=[webauth.middleware(self.settings.web_token, open_prefixes=("/webhooks/",))],
        )
        app.router.add_post("/webhooks/{provider}", self.webhook)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_page)

        async def start_sink(_app) -> None:
            await self.sink.start()
            await self.keys.start()
            self._expiry = asyncio.get_running_loop().create_task(self._expire_unattributed())

        async def stop_sink(_app) -> None:
            self._expiry.cancel()
            await self.keys.stop()
            await self.sink.stop()

        app.on_startup.append(start_sink)
        app.on_cleanup.append(stop_sink)
        return app

    async def _expire_unattributed(self, every: float = 3600) -> None:
        """Shred the keys of unattributed bodies once connector-unknown no longer keeps what they
        sealed: nothing readable outlives that topic's retention."""
        retention_ms = int(spec_by_name("connector-unknown").config["retention.ms"])
        while True:
            try:
                await self.keys.shred(UNATTRIBUTED, older_than_ms=int(time.time() * 1000) - retention_ms)
            except (KafkaError, OSError) as exc:
                log.warning("expiring unattributed keys: %r; next try in %d s", exc, every)
            await asyncio.sleep(every)

    # --- endpoints -----------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        if provider not in MAPPERS:
            return web.json_response(
                {"error": "unknown_provider", "reason": f"no endpoint for {provider!r}; known: {sorted(MAPPERS)}"},
                status=404,
            )
        if self.in_flight >= self.ingest.max_in_flight:
            # Answered before the body is read: a burst costs no memory and waits in no queue.
            self.metrics.requests.labels(provider, "overloaded").inc()
            return web.json_response(
                {
                    "error": "overloaded",
                    "reason": f"{self.in_flight} webhook requests in flight, the most this service takes; retry",
                },
                status=429,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        started = time.perf_counter()
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            body = await self._handle(provider, request)
            status, outcome = 200, body["status"]
        except Answer as answer:
            status, outcome, body = answer.status, answer.outcome, {"error": answer.outcome, "reason": answer.reason}
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
        self.metrics.requests.labels(provider, outcome).inc()
        self.metrics.seconds.labels(provider).observe(time.perf_counter() - started)
        return web.json_response(body, status=status)

    async def health(self, _request: web.Request) -> web.Response:
        endpoints = {p: "ready" if p in self.configured else f"off: {SECRET_ENV[p]} is not set" for p in MAPPERS}
        ok = self.sink.started
        return web.json_response(
            {
                "status": "ok" if ok else "starting",
                "producer": "started" if ok else "stopped",
                "acknowledged": self.sink.acknowledged,
                "endpoints": endpoints,
            },
            status=200 if ok else 503,
        )

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- one webhook ---------------------------------------------------------------------------

    async def _handle(self, provider: str, request: web.Request) -> dict:
        secret = self.ingest.secrets.get(provider)
        if not secret:
            raise Answer(503, "not_configured", f"{SECRET_ENV[provider]} is not set: this endpoint is off")
        raw = await self._read_body(provider, request)
        headers = _headers(request)
        now = time.time()
        try:
            VERIFIERS[provider](headers, raw, secret, now, self.ingest.signature_tolerance)
        except SignatureError as exc:
            raise Answer(401, "bad_signature", str(exc)) from None
        mapped, payload = self._map(
            provider, raw, Inbound(headers, int(now * 1000), dict(request.query), self.directory, self.ingest.mapping)
        )
        if mapped.delivery_id and mapped.delivery_id in self.accepted:
            self.metrics.events.labels(provider, "duplicate").inc(max(1, len(mapped.records)))
            return {"status": "duplicate", "produced": 0}
        fresh = [r for r in mapped.records if r.event_id not in self.accepted]
        try:  # sealing may make a customer's key: the broker must acknowledge it first
            messages = await self._messages(provider, fresh, mapped, payload, raw, int(now * 1000))
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.warning("%s: no key to seal with, the broker did not acknowledge it: %r", provider, exc)
            raise Answer(
                503, "broker_unavailable", "the event bus did not acknowledge the events; retry later"
            ) from None
        oversized = self.sink.oversized(messages)
        if oversized:
            await self._too_large(provider, oversized, mapped.delivery_id, int(now * 1000), produced=False)
        try:
            await self.sink.send_all(messages, self.ingest.produce_timeout)
        except RecordTooLarge as exc:  # refused by the broker, whose limit is below the producer's
            await self._too_large(provider, exc.oversized, mapped.delivery_id, int(now * 1000), produced=True)
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.warning("%s: broker did not acknowledge %d records: %r", provider, len(messages), exc)
            raise Answer(
                503, "broker_unavailable", "the event bus did not acknowledge the events; retry later"
            ) from None
        for key in [mapped.delivery_id, *(r.event_id for r in fresh)]:
            if key:
                self.accepted.put(key)
        self.directory.learn(mapped.learned)
        return self._account(provider, mapped, len(fresh))

    async def _read_body(self, provider: str, request: web.Request) -> bytes:
        """The body, read chunk by chunk and given up as soon as it is over the endpoint's limit
        (a Content-Length over it is refused before reading anything), so an oversized or unsigned
        request never costs more than the limit. Chunked bodies are counted the same way, and so
        are compressed ones, after aiohttp decompressed them."""
        limit = self.ingest.body_limit(provider)
        length = request.content_length
        if length is not None and length > limit:
            raise Answer(413, "too_large", f"Content-Length {length} is over {limit} bytes, the limit of this endpoint")
        body = bytearray()
        try:
            async with asyncio.timeout(self.ingest.read_timeout):  # a slow sender holds a slot no longer
                async for chunk in request.content.iter_any():
                    body += chunk
                    if len(body) > limit:
                        raise Answer(413, "too_large", f"body over {limit} bytes, the limit of this endpoint")
        except TimeoutError:
            raise Answer(
                408, "read_timeout", f"body not received within {self.ingest.read_timeout:g} s; send it again"
            ) from None
        return bytes(body)

    async def _too_large(
        self, provider: str, oversized: list[tuple[Message, int]], delivery_id: str | None, now_ms: int, produced: bool
    ) -> NoReturn:
        """Records too large for Kafka: retrying cannot help, so the answer is a permanent 413. The
        fact is logged, counted (outcome too_large) and recorded on connector-unknown with no body
        bytes at all (they may be personal data), just where it would have gone and its size."""
        limit = self.sink.max_request_size
        sizes = ", ".join(f"{m.topic} {size} bytes" for m, size in oversized)
        log.warning(
            "%s: delivery %s can never be produced (%s; max_request_size %d bytes)%s; answered 413",
            provider,
            delivery_id,
            sizes,
            limit,
            ", its other records were" if produced else "",
        )
        self.metrics.events.labels(provider, "too_large").inc(len(oversized))
        if self.ingest.record_unknown:
            markers = [
                self._connector_unknown(
                    provider,
                    m.topic,
                    None,
                    "too_large",
                    f"{provider} delivery {delivery_id}: the record for {m.topic}"
                    f"{f' (event {m.event_id})' if m.event_id else ''} is {size} bytes, over the "
                    f"producer's max_request_size of {limit} bytes",
                    now_ms,
                    delivery_id,
                )
                for m, size in oversized
            ]
            try:
                await self.sink.send_all(markers, self.ingest.produce_timeout)
            except (KafkaError, asyncio.TimeoutError) as exc:
                log.warning("%s: the too_large record was not acknowledged: %r", provider, exc)
                raise Answer(
                    503, "broker_unavailable", "the event bus did not acknowledge the events; retry later"
                ) from None
        raise Answer(
            413,
            "record_too_large",
            f"{len(oversized)} event(s) of this delivery are larger than the event bus accepts "
            f"({', '.join(str(size) for _m, size in oversized)} bytes encoded; at most {limit}): "
            "it can never be accepted, retrying will not help"[:1000],
        )

    def _map(self, provider: str, raw: bytes, inbound: Inbound) -> tuple[Mapped, object]:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Answer(400, "malformed", f"body is not JSON: {exc}") from None
        try:
            return MAPPERS[provider](payload, inbound), payload
        except Malformed as exc:
            raise Answer(400, "malformed", str(exc)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A payload shape none of the mapping's checks foresaw: still the sender's data, not our crash.
            log.warning("%s: unexpected payload shape", provider, exc_info=True)
            raise Answer(400, "malformed", f"unexpected payload shape: {exc!r}"[:500]) from None

    async def _messages(self, provider: str, fresh, mapped: Mapped, payload, raw: bytes, now_ms: int) -> list[Message]:
        """Encoded records, personal data sealed. Keys are made (and acknowledged) on the way, so
        broker failures surface here too."""
        try:
            for record in fresh:  # validated before anything is sealed: a 400 makes no key
                self.sink.check(record)
            messages = [self.sink.prepare(await self._sealed(r)) for r in fresh]
            if self.ingest.record_unknown:
                messages += [
                    await self._unknown(provider, skip, payload, raw, now_ms, mapped.delivery_id)
                    for skip in mapped.skipped
                    if skip.kind in ("unknown", "unmapped")
                ]
        except (InvalidEvent, ValueError, TypeError) as exc:
            raise Answer(400, "malformed", f"event does not fit our schema: {exc}"[:500]) from None
        return messages

    async def _sealed(self, record):
        """A support text scored, then sealed with its customer's key."""
        text = record.value.get("text") if record.topic == "support" else None
        if not text or is_sealed(text):
            return record
        value = {
            **record.value,
            "sentiment": compound(text) if record.value.get("from_customer", True) else None,
            "text": await self.keys.seal(record.value["customer_id"], text),
        }
        return dataclasses.replace(record, value=value)

    async def _unknown(
        self, provider: str, skip: Skip, payload, raw: bytes, now_ms: int, delivery_id: str | None
    ) -> Message:
        # The whole body when the skip is the whole delivery, else just the one event of a batch.
        value = raw if skip.raw is payload or skip.raw is None else orjson.dumps(skip.raw)
        value = (await self.keys.seal(UNATTRIBUTED, value)).encode()
        return self._connector_unknown(provider, skip.what, value, skip.kind, skip.reason, now_ms, delivery_id)

    def _connector_unknown(
        self, provider: str, what: str, value: bytes | None, reason: str, error: str, now_ms: int, delivery_id
    ) -> Message:
        """A record for <app>.connector-unknown (DeadLetter schema), keyed by provider."""
        return self.sink.prepare_raw(
            "connector-unknown",
            provider,
            {
                "received_at": now_ms,
                "topic": f"{provider}:{what}"[:200],
                "partition": -1,
                "offset": -1,
                "key": delivery_id.encode() if delivery_id else None,
                "value": value,
                "reason": reason,
                "error": error[:2000],
            },
        )

    def _account(self, provider: str, mapped: Mapped, produced: int) -> dict:
        counts = {
            "produced": produced,
            "duplicate": len(mapped.records) - produced,
            "ignored": 0,
            "unknown": 0,
            "unmapped": 0,
        }
        for skip in mapped.skipped:
            counts[skip.kind] += 1
            level = logging.INFO if skip.kind == "ignored" else logging.WARNING
            log.log(level, "%s %s %s: %s", provider, skip.kind, skip.what, skip.reason)
        for outcome, n in counts.items():
            if n:
                self.metrics.events.labels(provider, outcome).inc(n)
        return {"status": "accepted", **counts}


def _headers(request: web.Request) -> dict[str, str]:
    """Lower-cased names; values as valid text. aiohttp keeps undecodable header bytes as surrogate
    escapes, which no provider signs and no Avro string can hold: they become U+FFFD."""
    return {
        k.lower(): v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for k, v in request.headers.items()
    }


def run(settings: Settings, ingest: IngestSettings) -> None:
    try:
        service = IngestService(settings, ingest)
    except ValueError as exc:  # a configured secret that cannot work: say so, no traceback
        raise SystemExit(str(exc)) from None
    if not service.configured:
        log.warning(
            "no provider secret is set: every webhook endpoint answers 503 (see %s)", ", ".join(SECRET_ENV.values())
        )
    print(
        f"aftersale ingest on http://{ingest.host}:{ingest.port}/webhooks/<provider>; "
        f"ready: {', '.join(service.configured) or 'none'}; producing to {settings.bootstrap_servers}",
        flush=True,
    )
    web.run_app(service.app(), host=ingest.host, port=ingest.port, print=None)
