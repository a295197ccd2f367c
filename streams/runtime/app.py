"""The Faust app: topics, tables and the two agents. Agents only decode, call the core, and send.

Event path:
  aftersale.orders, aftersale.carrier-scans (key order_id), aftersale.order-commands (ticks)
      -> order_stage agent -> core.orders.decide_order -> tables "orders", "lanes", "order_schedule"
      -> aftersale.customer-commands (key customer_id; candidate intents and order facts)
  aftersale.engagement, aftersale.support, aftersale.customer-commands (key customer_id)
      -> customer_stage agent -> core.customers.decide_customer -> tables "customers", "customer_schedule"
      -> aftersale.intents, aftersale.decision-audit
  anything undecodable or invalid -> aftersale.dead-letters (with reason, original bytes, offset)

Scheduled decisions (stall checks, delay re-assessment, post-delivery messages, quiet-hours release)
fire inside the same agents, from the partition that owns the key: see streams/runtime/scheduling.py.
"""

from __future__ import annotations

import gc
import logging
import os
import weakref
import time
from collections import deque
from pathlib import Path

import faust
import orjson
from faust.streams import _current_event
from aiohttp.web import Response

from ..codec import Codec
from . import rocksdb_memory
from ..config import Settings
from ..core import warm
from ..core.policy import PolicyConfig
from ..core.state import CustomerState, OrderState
from ..core.model import ErasureRequest, OrderEvent
from ..engine import CustomerStage, OrderStage, Outputs
from ..live_state import forget_customer
from ..metrics import Metrics, reason_label
from ..registry import make_registry
from .scheduling import Scheduler
from ..security import faust_credentials
from ..serde import AvroSerde
from .. import webauth
from ..web import register_views
from .faust_ext import SeekFirstTableManager, StallGuard, stream_buffers
from .batch import BatchRunner, check_size
from .checkpoint import MAX_OUTPUT_BYTES, Checkpoint, CheckpointFailed, Output
from .table_io import DirectTable, RocksStore, encode_value
from .writeback import WriteBack

log = logging.getLogger(__name__)

# RocksDB per partition: Faust's defaults (2 GiB block cache, 3 x 64 MiB write buffers per
# partition DB) grow memory with the partition count. The worker's stores share one cache and one
# memtable budget (streams/runtime/rocksdb_memory.py, which ignores block_cache_size); a memtable is still
# flushed at write_buffer_size on its own.
ROCKSDB_OPTIONS = {
    "block_cache_size": 64 * 1024 * 1024,
    "write_buffer_size": 16 * 1024 * 1024,
    "max_write_buffer_number": 2,
}


def enter(event) -> None:
    """Make `event` the current one in this task: a Faust table reads and writes the store and changelog
    partition of the current event, which a batch must set per input (Faust sets it only per event
    of a plain `async for`)."""
    _current_event.set(weakref.ref(event))


def build_app(settings: Settings) -> faust.App:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    rocksdb_memory.configure(settings.rocksdb_memory_mb * 2**20)
    app = faust.App(
        settings.app_id,
        # Faust's aiokafka transport with strict input offsets (streams/runtime/faust_ext.py), by the
        # `faust.transports` entry point in pyproject.toml.
        broker=[f"aftersale://{hp}" for hp in settings.bootstrap_servers.split(",")],
        store=rocksdb_memory.STORE_URL,  # Faust's RocksDB store, one memory budget for all of them
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        web_in_thread=False,
        # Faust's own views (raw table values at /table/, the partition map at /router/, debug pages)
        # are off: the worker's views (streams/web.py) show what they should, behind the token.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        producer_acks=-1,
        # No linger: a checkpoint hands the producer all records of a step before it awaits their
        # acknowledgements, so they leave in one request per partition leader anyway; a linger only
        # delayed each of a batch's two acknowledgement waits (bench latency at 690 events/s: p50
        # 82 ms with 5 ms of linger, 53 ms without; e2e CPU per event the same).
        producer_linger=0.0,
        producer_max_batch_size=256 * 1024,
        # Changelog values are whole JSON states that repeat their field names: zstd batches store
        # them in about a fifth of the bytes, for ~4% of the worker's CPU (docs/benchmarks.md).
        producer_compression_type=None if settings.compression == "none" else settings.compression,
        table_cleanup_interval=60.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_recovery_delay=0.0,
        consumer_group_instance_id=settings.instance_id,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        broker_credentials=faust_credentials(settings),  # SASL/SCRAM and TLS from AFTERSALE_SECURITY_*
        # Recovery that seeks before it resumes: see streams/runtime/faust_ext.py.
        TableManager=SeekFirstTableManager,
    )
    # Every view but /health and /ready needs the token (streams/webauth.py).
    web_token = webauth.worker_token(settings.web_token, settings.data_dir)
    app.web.web_app.middlewares.append(webauth.middleware(web_token))
    codec = Codec(
        AvroSerde(make_registry(settings.schema_registry_url, settings.schema_registry_auth)), settings.app_id
    )
    metrics = Metrics()
    # What this worker decided lately, newest last: for the ops page and support lookups.
    recent = {"intents": deque(maxlen=200), "audit": deque(maxlen=200), "dead_letters": deque(maxlen=100)}
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def topic(name: str, **kw):
        return app.topic(settings.topic(name), partitions=settings.partitions, **raw, **kw)

    order_inputs = app.topic(
        settings.topic("orders"), settings.topic("carrier-scans"), settings.topic("order-commands"), **raw
    )
    order_commands_out = topic("order-commands")
    customer_inputs = app.topic(
        settings.topic("engagement"),
        settings.topic("support"),
        settings.topic("customer-commands"),
        settings.topic("erasure-requests"),
        **raw,
    )
    commands_out = topic("customer-commands")
    intents_out = topic("intents")
    audit_out = topic("decision-audit")
    dead_letters_out = topic("dead-letters")

    orders = app.Table("orders", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS)
    customers = app.Table("customers", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS)
    # Transit statistics are learned per partition, from the deliveries that partition sees.
    lanes = app.Table("lanes", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS)
    order_schedule_table = app.Table(
        "order_schedule", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS
    )
    customer_schedule_table = app.Table(
        "customer_schedule", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS
    )
    # Engagement habits of the shop and its segments, and bandit counts, learned per partition.
    customer_stats = app.Table("customer_stats", default=None, partitions=settings.partitions, options=ROCKSDB_OPTIONS)

    def now_for(event_time: int) -> int:
        # Live decisions use the wall clock (so stale news is dropped); replays and the demo
        # use event time, so the same input gives the same output however fast it is fed.
        return event_time if settings.clock == "event" else int(time.time() * 1000)

    dead_letters_name = dead_letters_out.get_topic_name()

    def dead_letter(message, reason: str, error: str) -> Output:
        """The dead letter of an input, sent with its batch's outputs. The original bytes go with it,
        unless they would not fit one record: then it says where they are (topic, partition, offset)."""
        metrics.dead_letters.labels(codec.suffix(message.topic), reason).inc()
        recent["dead_letters"].append(
            {
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "reason": reason,
                "error": error[:300],
                "at": int(time.time() * 1000),
            }
        )
        log.warning(
            "dead letter %s[%d]@%d: %s: %s", message.topic, message.partition, message.offset, reason, error[:2000]
        )
        key, value = message.key, message.value
        if len(key or b"") + len(value or b"") > MAX_OUTPUT_BYTES // 2:
            error = (
                f"original key and value ({len(key or b''):,} and {len(value or b''):,} bytes) left out of this "
                f"record: read them at {message.topic}[{message.partition}]@{message.offset}; {error}"
            )
            key, value = (key if len(key or b"") <= 1024 else None), None
        return Output(
            dead_letters_name,
            key,
            codec.dead_letter(message.topic, message.partition, message.offset, key, value, reason, error),
        )

    commands_name, intents_name, audit_name, order_commands_name = (
        t.get_topic_name() for t in (commands_out, intents_out, audit_out, order_commands_out)
    )

    def encode_outputs(out: Outputs, stage: str) -> list[Output]:
        """Everything a decision implies, encoded, each with the state key that decided it (the order
        stage's order, the customer stage's customer). Encoding is done before anything is sent, so
        an output that does not fit its schema, or one record, dead-letters the input, not half its
        outputs."""
        by_order = stage == "order"
        records = [
            Output(commands_name, c.customer_id.encode(), codec.encode("customer-commands", c), c.order_id)
            for c in out.commands
        ]
        records += [
            Output(intents_name, i.customer_id.encode(), codec.encode("intents", i), i.customer_id) for i in out.intents
        ]
        records += [
            Output(
                audit_name,
                a.customer_id.encode(),
                codec.encode("decision-audit", a),
                a.order_id if by_order else a.customer_id,
            )
            for a in out.audit
        ]
        for order_id in out.erase_orders:
            records.append(
                Output(
                    order_commands_name,
                    order_id.encode(),
                    codec.encode(
                        "order-commands",
                        {
                            "command_id": f"erase:{order_id}",
                            "event_time": int(time.time() * 1000),
                            "order_id": order_id,
                            "kind": "erase",
                            "due": None,
                        },
                    ),
                )
            )
        return check_size(records)

    def count_outputs(out: Outputs) -> None:
        for command in out.commands:
            if command.kind == "order_fact" and command.fact.type in ("return_opened", "return_closed"):
                metrics.returns.labels(command.fact.type.removeprefix("return_")).inc()
            elif command.kind == "candidate_intent" and command.intent.intent_type == "refund_delayed":
                metrics.refunds_overdue.inc()
        for experiment, arm, outcome, value in out.outcomes:
            metrics.experiment_outcomes.labels(experiment, arm, outcome).inc(value)
        for intent in out.intents:
            metrics.intents_out.labels(intent.intent_type, intent.channel).inc()
            recent["intents"].append(intent)
        for audit in out.audit:
            for reason in audit.reasons[:1]:
                metrics.audit_out.labels(audit.decision, reason_label(reason)).inc()
            recent["audit"].append(audit)

    event_clock = settings.clock == "event"

    async def send(topic_name: str, key: bytes | None, value: bytes | None, partition: int | None = None):
        """Hand a record to the producer; returns the future of the broker's ack. Straight to the
        producer: Faust's Topic.send adds a FutureMessage, a channel and callbacks per record, which
        cost about a quarter of the worker's time, for nothing the batch needs."""
        return await app.producer.send(topic_name, key, value, partition, None, None)

    # The stages read the tables through WriteBack views (reads see the batch's own writes); a
    # Checkpoint (streams/runtime/checkpoint.py) writes each changed key once, with the outputs, in
    # its numbered steps. The states stay records within a batch (objects=True) and are serialised
    # once per input that changed them (checked against the record size limit).
    def state_view(table, state_type) -> WriteBack:
        return WriteBack(
            DirectTable(table), snapshot=encode_value, restore=lambda data: state_type.from_dict(orjson.loads(data))
        )

    order_tables = (orders, lanes, order_schedule_table)
    customer_tables = (customers, customer_schedule_table, customer_stats)
    order_views = [state_view(orders, OrderState)] + [WriteBack(DirectTable(t)) for t in order_tables[1:]]
    customer_views = [state_view(customers, CustomerState)] + [WriteBack(DirectTable(t)) for t in customer_tables[1:]]
    order_checkpoint = Checkpoint(send, [RocksStore(t) for t in order_tables], "order")
    customer_checkpoint = Checkpoint(send, [RocksStore(t) for t in customer_tables], "customer")
    # Warm start: statistics a replay of past orders learned (AFTERSALE_WARM_START, streams/core/warm.py).
    learned = warm.loads(Path(settings.warm_start).read_bytes()) if settings.warm_start else None
    order_stage_core = OrderStage(*order_views, objects=True, event_clock=event_clock, warm=learned)
    policy = PolicyConfig(experiments=settings.load_experiments())  # the experiments file, checked at start-up
    customer_stage_core = CustomerStage(*customer_views, objects=True, event_clock=event_clock, config=policy)

    def decide(stage, message, record) -> tuple[Outputs, int]:
        """One input through one stage: decide, then fire what became due, at most about
        `fire_limit` scheduled decisions (`more` says when more are due). Returns the outputs and the
        time the partition's schedule is due up to."""
        partition = message.partition
        if getattr(record, "kind", None) == "tick":  # wall-clock time for this partition's schedule
            return stage.fire(partition, record.due.now, settings.fire_limit), record.due.now
        topic_name = codec.suffix(message.topic)
        kind = getattr(record, "type", None) or getattr(record, "status", None) or getattr(record, "kind", None)
        metrics.events_in.labels(topic_name, kind or type(record).__name__).inc()
        out = stage.handle(partition, record, now_for(record.event_time))
        if isinstance(record, ErasureRequest):  # the state went with the stage; the ops views' copies go too
            forget_customer(recent, record.customer_id)
        elif isinstance(record, OrderEvent) and record.type == "return_requested" and not out.duplicate:
            for item in record.return_info.items:
                metrics.return_reasons.labels(item.reason or "unknown").inc(item.quantity)
        if out.duplicate:
            metrics.duplicates.labels(topic_name).inc()
        until = schedule_time(stage.schedule, partition, record.event_time)
        return out.extend(stage.fire(partition, until, settings.fire_limit)), until

    def on_outputs(key_of: str):
        def count(out: Outputs) -> None:
            count_outputs(out)
            metrics.fired.labels(key_of).inc(out.fired)

        return count

    def on_slice(key_of: str):
        def slice_made_durable(pending: int) -> None:
            metrics.fire_slices.labels(key_of).inc()
            log.info(
                "%s stage: %d scheduled decisions pending (AFTERSALE_FIRE_LIMIT %d): batch made durable "
                "before it goes on",
                key_of,
                pending,
                settings.fire_limit,
            )

        return slice_made_durable

    def runner(stage, views, checkpoint, key_of) -> BatchRunner:
        return BatchRunner(
            stage,
            views,
            checkpoint,
            decode=lambda m: codec.decode(m.topic, m.key, m.value),
            decide=decide,
            encode=lambda out: encode_outputs(out, key_of),
            dead_letter=dead_letter,
            fire_limit=settings.fire_limit,
            enter=enter,
            on_outputs=on_outputs(key_of),
            on_slice=on_slice(key_of),
        )

    runners = {
        "order": runner(order_stage_core, order_views, order_checkpoint, "order"),
        "customer": runner(customer_stage_core, customer_views, customer_checkpoint, "customer"),
    }
    generations = {}

    async def run_batch(stream, events, key_of) -> None:
        """Decide a batch and make it durable (streams/runtime/batch.py, checkpoint.py). If the broker
        refuses a checkpoint's records for longer than the producer retries, the worker exits: nothing
        of the batch was committed, what was made durable is found again, and the restarted worker
        goes on from there."""
        batch = runners[key_of]
        if generations.get(key_of) != app.consumer_generation_id:
            generations[key_of] = app.consumer_generation_id
            batch.checkpoint.new_assignment()

        async def commit_inputs() -> None:
            for event in events:
                await stream.ack(event)

        try:
            event_times = await batch.run(events, commit_inputs)
        except CheckpointFailed:
            log.critical(
                "a checkpoint was not acknowledged by the broker; exiting so its inputs are redelivered", exc_info=True
            )
            os._exit(70)
        done = time.time()
        for event_time in event_times:
            metrics.latency.labels(key_of).observe(max(0.0, done - event_time / 1000))

    in_batch = {"order": False, "customer": False}  # for the stall guard below
    heap = {"frozen": False}

    def freeze_heap_once() -> None:
        """What exists when the first batch comes (Faust, the Kafka clients, schemas, what recovery
        built) lives as long as the worker. Moved out of the cyclic GC's generations, it is no longer
        walked by every full collection (each took ~50 ms, a dozen a minute, all finding ~nothing)."""
        if not heap["frozen"]:
            heap["frozen"] = True
            gc.freeze()

    async def consume(stream, key_of: str) -> None:
        async for events in stream.noack_take(settings.batch_max, within=settings.batch_within):
            freeze_heap_once()
            in_batch[key_of] = True
            try:
                await run_batch(stream, events, key_of)
            finally:
                in_batch[key_of] = False

    @app.agent(order_inputs, name="order_stage")
    async def order_stage(stream):
        await consume(stream, "order")

    @app.agent(customer_inputs, name="customer_stage")
    async def customer_stage(stream):
        await consume(stream, "customer")

    def schedule_time(scheduler: Scheduler, partition: int, event_time: int) -> int:
        """The time up to which a partition's schedule is due: its event-time watermark when
        replaying, the wall clock when live."""
        if settings.clock == "event":
            return scheduler.watermark(partition, event_time)
        return int(time.time() * 1000)

    @app.timer(interval=settings.tick_interval)
    async def tick() -> None:
        """Live only: wake every owned partition so its due decisions fire without waiting for traffic."""
        if settings.clock != "wall":
            return
        now = int(time.time() * 1000)
        due = {"due": {"now": now}}
        for tp in app.assignor.assigned_actives():
            if tp.topic == order_commands_out.get_topic_name():
                value = codec.encode(
                    "order-commands",
                    {
                        "command_id": f"tick:{tp.partition}:{now}",
                        "event_time": now,
                        "order_id": None,
                        "kind": "tick",
                        **due,
                    },
                )
                await order_commands_out.send(value=value, partition=tp.partition)
            elif tp.topic == commands_out.get_topic_name():
                value = codec.encode(
                    "customer-commands",
                    {
                        "command_id": f"tick:{tp.partition}:{now}",
                        "event_time": now,
                        "customer_id": "",
                        "order_id": "",
                        "kind": "tick",
                        **due,
                    },
                )
                await commands_out.send(value=value, partition=tp.partition)

    if os.environ.get("AFTERSALE_DEBUG_DUMP_DIR"):

        @app.task
        async def install_debug_dump() -> None:
            """`kill -USR1 <worker>` writes its tasks and consumer state there (streams/debugdump.py)."""
            from ..debugdump import install

            install(app, os.environ["AFTERSALE_DEBUG_DUMP_DIR"])

    stall_guard = StallGuard()
    input_topics = set(order_inputs.topics) | set(customer_inputs.topics)

    @app.timer(interval=5.0)
    async def guard_against_stalls() -> None:
        """Re-read an input partition whose fetched records never reached its agent (runtime/faust_ext.py)."""
        idle = not any(in_batch.values()) and all(
            buffer.empty() for agent in (order_stage, customer_stage) for buffer in stream_buffers(agent)
        )
        await stall_guard.check(app, {tp for tp in app.consumer.assignment() if tp.topic in input_topics}, idle)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    @app.page("/health")
    async def health(web, request):
        return web.json({"status": "ok", "app": settings.app_id})

    # Handles for tests and the live-state views.
    app.aftersale = {
        "settings": settings,
        "web_token": web_token,
        "codec": codec,
        "metrics": metrics,
        "orders": orders,
        "customers": customers,
        "recent": recent,
        "lanes": lanes,
        "customer_stats": customer_stats,
        "experiments": policy.experiments,
        "scheduled_backlog": lambda: order_stage_core.schedule.pending + customer_stage_core.schedule.pending,
        "outputs": {
            "commands": commands_out,
            "intents": intents_out,
            "audit": audit_out,
            "dead_letters": dead_letters_out,
        },
    }
    register_views(app)
    return app
