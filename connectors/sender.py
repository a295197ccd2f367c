"""The reference sender: consumes <app>.intents (its own consumer group) and delivers each intent.

Per intent, in order:
- not decodable -> dead letter `undecodable`;
- already delivered or dead-lettered by this process (same intent_id) -> skipped;
- now past expires_at -> dead letter `expired` (never sent late); else wait until send_at;
- e-mail over SMTP when configured, everything else (and e-mail without SMTP) over HTTP;
  a channel with no transport -> dead letter `no_transport`;
- the customer's address from the customer directory (when one is configured): none for the
  channel -> dead letter `no_address`;
- transient failures (connection errors, timeouts, 408/425/429/5xx, SMTP 4xx) are retried with
  exponential backoff and full jitter, up to max_attempts, never past expires_at; then dead letter
  `retries_exhausted` (or `expired`). Permanent failures (other 4xx, SMTP 5xx) dead-letter at once.

Dead letters go to <app>.sender-dead-letters (DeadLetter schema: the intent's original bytes, its
topic/partition/offset, a reason and the error). An offset is committed only once its intent and
every earlier one of the partition were delivered or dead-lettered: delivery is at least once, and
a redelivered intent carries the same Idempotency-Key. Intents of one customer go out in send_at
order: an intent waits for that customer's earlier intents that are due no later than itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from streams import security, webauth
from streams.config import Settings
from streams.core.model import InvalidEvent, MessageIntent, message_intent_from, to_record
from streams.producer import make_codec
from streams.serde import DecodeError

from .directory import ADDRESS_FOR_CHANNEL, CustomerDirectory
from .memory import LRU
from .settings import SenderSettings
from .sink import EventSink, Message
from .transports import HttpTransport, Permanent, Retryable, SmtpTransport, backoff

log = logging.getLogger(__name__)


class SenderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.intents = Counter(
            "aftersale_sender_intents", "Intents by outcome", ["channel", "outcome"], registry=self.registry
        )
        self.attempts = Counter(
            "aftersale_sender_attempts", "Delivery attempts", ["transport", "result"], registry=self.registry
        )
        self.dead_letters = Counter(
            "aftersale_sender_dead_letters", "Intents dead-lettered", ["reason"], registry=self.registry
        )


@dataclass
class PartitionProgress:
    """Offsets of one partition still being worked on; what may be committed is below the lowest."""

    pending: set[int] = field(default_factory=set)
    next_offset: int | None = None  # one past the highest offset seen
    committed: int | None = None

    def started(self, offset: int) -> None:
        self.pending.add(offset)
        self.next_offset = max(self.next_offset or 0, offset + 1)

    def finished(self, offset: int) -> None:
        self.pending.discard(offset)

    def commit_point(self) -> int | None:
        return min(self.pending) if self.pending else self.next_offset


class Sender:
    def __init__(self, settings: Settings, sender: SenderSettings, clock=time.time):
        self.settings = settings
        self.config = sender
        self.clock = clock
        self.codec = make_codec(settings)
        self.metrics = SenderMetrics()
        self.dead_letters = EventSink(settings, self.codec)
        self.directory = CustomerDirectory(sender.directory) if sender.directory else None
        self.http = HttpTransport(sender.http_url, sender.http_secret, sender.http_timeout) if sender.http_url else None
        self.smtp = (
            SmtpTransport(
                sender.smtp_host,
                sender.smtp_port,
                sender.smtp_from,
                sender.smtp_user,
                sender.smtp_password,
                sender.smtp_starttls,
            )
            if sender.smtp_host
            else None
        )
        self.topic = settings.topic("intents")
        self.consumer: AIOKafkaConsumer | None = None
        self.done = LRU(100_000)  # intent ids delivered or dead-lettered by this process
        self._running: dict[str, asyncio.Future] = {}  # intent id -> its first delivery, for duplicates
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task]] = {}
        self._by_customer: dict[str, list[tuple[int, asyncio.Task]]] = {}
        self._stopping = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.dead_letters.start()
        for transport in (self.http, self.smtp):
            if transport:
                await transport.start()
        self.consumer = AIOKafkaConsumer(
            **security.aiokafka_options(self.settings),
            group_id=self.config.group or f"{self.settings.app_id}-sender",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        self._stopping.set()
        for tp in list(self._tasks):
            await self._drop(tp)
        if self.consumer is not None:
            await self._commit()
            await self.consumer.stop()
        for transport in (self.http, self.smtp):
            if transport:
                await transport.stop()
        await self.dead_letters.stop()

    async def run(self) -> None:
        """Consume until stop() is called (or the task is cancelled)."""
        assert self.consumer is not None, "start() first"
        while not self._stopping.is_set():
            self._flow_control()
            batch = await self.consumer.getmany(timeout_ms=200, max_records=500)
            for tp, messages in batch.items():
                for message in messages:
                    self._spawn(tp, message)
            await self._commit()

    @property
    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._progress.values())

    def _flow_control(self) -> None:
        # Intents waiting for send_at or retrying are held in memory: bound them by pausing fetches.
        assigned = self.consumer.assignment()
        if self.in_flight >= self.config.max_in_flight:
            self.consumer.pause(*assigned)
        elif self.consumer.paused():
            self.consumer.resume(*assigned)

    # --- per message ---------------------------------------------------------------------------

    def _spawn(self, tp: TopicPartition, message) -> None:
        progress = self._progress.setdefault(tp, PartitionProgress())
        progress.started(message.offset)
        intent = self._decode(message)
        predecessors = self._predecessors(intent) if intent else []
        task = asyncio.create_task(self._process(message, intent, predecessors))
        self._tasks.setdefault(tp, set()).add(task)
        if intent:
            self._by_customer.setdefault(intent.customer_id, []).append((intent.send_at, task))

        def finished(t: asyncio.Task) -> None:
            self._tasks.get(tp, set()).discard(t)
            if intent:
                queue = [entry for entry in self._by_customer.get(intent.customer_id, []) if entry[1] is not t]
                if queue:
                    self._by_customer[intent.customer_id] = queue
                else:
                    self._by_customer.pop(intent.customer_id, None)
            if not t.cancelled() and t.exception() is None and tp in self._progress:
                self._progress[tp].finished(message.offset)
            elif not t.cancelled():
                # Never commit past an intent whose handling crashed: it is redelivered on restart.
                log.error("intent at %s[%d]@%d failed: %r", tp.topic, tp.partition, message.offset, t.exception())

        task.add_done_callback(finished)

    def _decode(self, message) -> MessageIntent | None:
        try:
            return message_intent_from(self.codec.serde.decode(message.value, "io.aftersale.MessageIntent"))
        except (DecodeError, InvalidEvent, KeyError, TypeError, ValueError):
            return None

    def _predecessors(self, intent: MessageIntent) -> list[asyncio.Task]:
        return [
            task
            for send_at, task in self._by_customer.get(intent.customer_id, ())
            if send_at <= intent.send_at and not task.done()
        ]

    async def _process(self, message, intent: MessageIntent | None, predecessors: list[asyncio.Task]) -> None:
        if intent is None:
            await self._dead_letter(
                message, "undecodable", "not a MessageIntent in the Confluent wire format", "unknown"
            )
            return
        if intent.intent_id in self.done:
            self.metrics.intents.labels(intent.channel, "duplicate").inc()
            return
        first = self._running.get(intent.intent_id)
        if first is not None:  # the same intent twice in flight: the first one decides
            await asyncio.shield(first)
            self.metrics.intents.labels(intent.channel, "duplicate").inc()
            return
        marker = self._running[intent.intent_id] = asyncio.get_running_loop().create_future()
        try:
            if predecessors:
                await asyncio.wait(predecessors)
            await self._deliver(message, intent)
            self.done.put(intent.intent_id)
        finally:
            marker.set_result(None)
            del self._running[intent.intent_id]

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _deliver(self, message, intent: MessageIntent) -> None:
        if self._now_ms() >= intent.expires_at:
            await self._dead_letter(
                message, "expired", f"expired at {intent.expires_at} before it could be sent", intent.channel
            )
            return
        wait = (intent.send_at - self._now_ms()) / 1000
        if wait > 0:
            await asyncio.sleep(wait)
            if self._now_ms() >= intent.expires_at:  # an intent due only after it expires
                await self._dead_letter(
                    message, "expired", f"send_at {intent.send_at} is after expires_at", intent.channel
                )
                return
        transport = self.smtp if intent.channel == "email" and self.smtp else self.http
        if transport is None:
            await self._dead_letter(
                message, "no_transport", f"no transport for channel {intent.channel}", intent.channel
            )
            return
        recipient = self.directory.lookup(intent.customer_id) if self.directory else None
        needed = ADDRESS_FOR_CHANNEL.get(intent.channel)
        if self.directory and needed and not (recipient or {}).get(needed):
            await self._dead_letter(
                message,
                "no_address",
                f"no {needed} for customer {intent.customer_id} in {self.directory.path.name}",
                intent.channel,
            )
            return
        failure = await self._attempts(transport, to_record(intent), recipient, intent.expires_at)
        if failure is None:
            self.metrics.intents.labels(intent.channel, "delivered").inc()
            log.info(
                "delivered %s %s to %s over %s",
                intent.intent_type,
                intent.intent_id,
                intent.customer_id,
                transport.name,
            )
        else:
            await self._dead_letter(message, *failure, intent.channel)

    async def _attempts(
        self, transport, intent: dict, recipient: dict | None, expires_at: int
    ) -> tuple[str, str] | None:
        """None when delivered, else (reason, error) for the dead letter."""
        last = ""
        for attempt in range(self.config.max_attempts):
            try:
                await transport.deliver(intent, recipient)
                self.metrics.attempts.labels(transport.name, "ok").inc()
                return None
            except Permanent as exc:
                self.metrics.attempts.labels(transport.name, "permanent").inc()
                return exc.reason, exc.detail
            except Retryable as exc:
                self.metrics.attempts.labels(transport.name, "retryable").inc()
                last = str(exc)
                delay = max(
                    backoff(attempt, self.config.backoff_base, self.config.backoff_cap),
                    min(exc.retry_after or 0.0, self.config.backoff_cap),
                )
            if attempt + 1 == self.config.max_attempts:
                break
            if self._now_ms() + delay * 1000 >= expires_at:
                return "expired", f"expired while retrying after {attempt + 1} attempts; last: {last}"
            await asyncio.sleep(delay)
        return "retries_exhausted", f"{self.config.max_attempts} attempts; last: {last}"

    async def _dead_letter(self, message, reason: str, error: str, channel: str) -> None:
        value = self.codec.encode(
            "sender-dead-letters",
            {
                "received_at": self._now_ms(),
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "key": message.key,
                "value": message.value,
                "reason": reason,
                "error": error[:2000],
            },
        )
        # Retried until the broker has it: an intent is never committed before it is delivered or parked.
        while True:
            try:
                await self.dead_letters.send_all(
                    [Message(self.settings.topic("sender-dead-letters"), message.key, value)], timeout=30
                )
                break
            except (KafkaError, asyncio.TimeoutError) as exc:
                log.warning("dead letter not acknowledged yet (%r); retrying", exc)
                await asyncio.sleep(1)
        self.metrics.dead_letters.labels(reason).inc()
        self.metrics.intents.labels(channel, "dead_lettered").inc()
        log.warning(
            "dead-lettered intent %s[%d]@%d: %s: %s", message.topic, message.partition, message.offset, reason, error
        )

    # --- offsets and rebalances ----------------------------------------------------------------

    async def _commit(self, partitions=None) -> None:
        offsets = {}
        for tp in partitions if partitions is not None else list(self._progress):
            progress = self._progress.get(tp)
            point = progress.commit_point() if progress else None
            if point is not None and point != progress.committed:
                offsets[tp] = point
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:  # e.g. mid-rebalance: the new owner redelivers
            log.warning("offset commit failed: %r", exc)
            return
        for tp, point in offsets.items():
            self._progress[tp].committed = point

    async def _drop(self, tp: TopicPartition) -> None:
        """Stop working on a partition (revoked, or shutting down): what is not done is redelivered."""
        tasks = self._tasks.pop(tp, set())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def revoked(self, partitions) -> None:
        await self._commit([tp for tp in partitions if tp in self._progress])
        for tp in partitions:
            await self._drop(tp)
            self._progress.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, sender: Sender):
        self.sender = sender

    async def on_partitions_revoked(self, revoked) -> None:
        await self.sender.revoked(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        return None


def web_app(sender: "Sender", token: str | None) -> web.Application:
    """The sender's /metrics (behind the views' token) and /health (open)."""

    async def metrics(_request) -> web.Response:
        return web.Response(
            body=generate_latest(sender.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def health(_request) -> web.Response:
        return web.json_response({"status": "ok", "in_flight": sender.in_flight})

    app = web.Application(middlewares=[webauth.middleware(token)])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def serve(settings: Settings, config: SenderSettings) -> None:
    sender = Sender(settings, config)
    await sender.start()
    runner = None
    if config.web_port:
        webauth.warn_if_unset(settings.web_token, "sender")
        runner = web.AppRunner(web_app(sender, settings.web_token))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", config.web_port).start()
    transports = [name for name, t in (("http", sender.http), ("smtp", sender.smtp)) if t]
    print(
        f"aftersale sender: {settings.topic('intents')} -> {', '.join(transports)}; "
        f"dead letters to {settings.topic('sender-dead-letters')}",
        flush=True,
    )
    try:
        await sender.run()
    finally:
        await sender.stop()
        if runner is not None:
            await runner.cleanup()
