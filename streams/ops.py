"""What a running worker knows about itself, for operators: consumer lag per partition, table sizes,
the scheduled backlog and throughput (refreshed by a timer; it only reads), readiness, and the
snapshot behind the ops page (/api/ops).

Everything here is per worker: a worker sees the partitions it owns. Prometheus adds them up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from .core.experiments import summarise
from .live_state import as_dict
from .runtime.checkpoint import OUTBOX_PREFIX
from .runtime.faust_ext import active_dbs
from .runtime.table_io import encode_key

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
TABLES_EVERY = 2  # refreshes: table sizes every 10 s, they move slowly and counting costs a little
EXACT_COUNT_UP_TO = 10_000  # keys per partition DB counted one by one (~10 ms); above, RocksDB's estimate
RATE_WINDOW_SECONDS = 30.0  # throughput is averaged over about this long
ALERT_WORDS = ("delay", "exception", "stall")  # intent types an operator wants to see at once
LISTED = 50  # recent decisions in the snapshot


def _finite(entry: dict) -> dict:
    """An interval entry with NaN (no data yet) as None: JSON has no NaN."""
    return {k: [None if x != x else round(x, 4) for x in v] for k, v in entry.items()}


def is_alert(intent_type: str) -> bool:
    return any(word in intent_type for word in ALERT_WORDS)


def counter_totals(counter, *labels: str) -> dict[tuple, float]:
    """A labelled prometheus Counter's values, summed by the given labels (none: one grand total)."""
    totals: dict[tuple, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = tuple(sample.labels[name] for name in labels)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def counter_total(counter) -> float:
    return counter_totals(counter).get((), 0.0)


def input_partitions(app) -> list:
    """The partitions of our own topics this worker consumes; not changelogs (recovery reads them
    from offsets kept in RocksDB, nothing commits them) nor Faust's internal leader topic."""
    prefix = app.aftersale["settings"].topic("")
    return [tp for tp in app.consumer.assignment() if tp.topic.startswith(prefix)]


async def consumer_lag(app) -> dict[tuple[str, int], int]:
    """End offset minus committed offset for every input partition this worker owns. Committed, not
    fetched: the consumer's position runs ahead of what was processed (an agent stuck on a batch
    once showed lag 0 with 169 inputs behind). The offsets are those the broker returned at the
    assignment and those committed since (streams/runtime/faust_ext.py); a partition never committed
    counts from its earliest offset."""
    consumer = app.consumer
    tps = input_partitions(app)
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    committed = consumer.committed_offsets()
    never = [tp for tp in tps if committed.get(tp) is None]
    if never:
        committed = {**committed, **await asyncio.wait_for(consumer.earliest_offsets(*never), timeout=2.0)}
    lag = {}
    for tp in tps:
        done = committed.get(tp)
        if ends.get(tp) is not None and done is not None:
            lag[(tp.topic, tp.partition)] = max(0, ends[tp] - done)
    return lag


_OUTBOX = encode_key(OUTBOX_PREFIX)[:-1]  # the checkpoint's outbox records, not table keys


async def approx_keys(table) -> int:
    """Keys in the active partitions of a table on this worker. Small partitions are counted;
    large ones take RocksDB's free estimate, which counts a key again for each update not yet
    compacted away (26x too high for a demo-sized table, closer for big settled ones)."""
    store = table.data
    if not getattr(store, "use_rocksdict", False):
        return len(store)
    total = 0
    for db in active_dbs(table):
        estimate = db.property_int_value("rocksdb.estimate-num-keys") or 0
        if estimate > EXACT_COUNT_UP_TO:
            total += estimate
        else:
            total += sum(1 for key in db.keys() if key != store.offset_key and not key.startswith(_OUTBOX))
        await asyncio.sleep(0)  # let the agents run between partitions
    return total


def readiness(app) -> dict[str, Any]:
    """Ready = running, not rebalancing, the current assignment received and its tables recovered.
    A worker with no partitions (more workers than partitions) is ready: it still routes requests."""
    recovery = app.tables.recovery
    checks = {
        "running": app.state == "running",
        "assigned": recovery.completed.is_set() and not app.rebalancing,
        "recovered": recovery.completed.is_set() and not app.in_recovery,
    }
    partitions = 0
    if checks["running"] and checks["assigned"]:
        partitions = len(input_partitions(app))
    return {"ready": all(checks.values()), "checks": checks, "input_partitions": partitions}


class OpsMonitor:
    def __init__(self, app):
        self.app = app
        self.handles = app.aftersale
        self.samples: deque = deque(maxlen=int(RATE_WINDOW_SECONDS / REFRESH_SECONDS) + 2)
        self.lag: dict[tuple[str, int], int] = {}
        self.table_keys: dict[str, int] = {}
        self.backlog = 0
        self.refreshed_at: int | None = None
        self.refreshes = 0

    def _throughput_totals(self) -> tuple[float, float]:
        metrics = self.handles["metrics"]
        return counter_total(metrics.events_in), counter_total(metrics.intents_out)

    async def refresh(self) -> None:
        metrics = self.handles["metrics"]
        self.samples.append((time.monotonic(), *self._throughput_totals()))
        try:
            lag = await consumer_lag(self.app)
        except Exception as exc:  # a broker hiccup: keep the last figures, try again next time
            log.info("consumer lag not refreshed: %r", exc)
        else:
            self.lag = lag
            metrics.consumer_lag.clear()  # partitions this worker lost in a rebalance go away
            for (topic, partition), behind in lag.items():
                metrics.consumer_lag.labels(topic, str(partition)).set(behind)
        if self.refreshes % TABLES_EVERY == 0:
            try:
                for name, table in self.app.tables.items():
                    self.table_keys[name] = await approx_keys(table)
                    metrics.table_keys.labels(name).set(self.table_keys[name])
            except Exception as exc:  # e.g. a partition closed by a rebalance meanwhile; next time
                log.info("table sizes not refreshed: %r", exc)
        self.refreshes += 1
        try:
            self.backlog = int(self.handles.get("scheduled_backlog", lambda: 0)())
            metrics.scheduled_backlog.set(self.backlog)
        except Exception as exc:
            log.warning("scheduled backlog not available: %r", exc)
        self.refreshed_at = int(time.time() * 1000)

    def rates(self) -> dict[str, float | None]:
        """Events in and intents out per second, since the oldest sample of the window."""
        now = time.monotonic()
        old = next((s for s in self.samples if now - s[0] <= RATE_WINDOW_SECONDS + REFRESH_SECONDS), None)
        if old is None or now - old[0] < 1.0:
            return {"events_in_per_s": None, "intents_out_per_s": None, "window_s": None}
        events, intents = self._throughput_totals()
        seconds = now - old[0]
        return {
            "events_in_per_s": round((events - old[1]) / seconds, 2),
            "intents_out_per_s": round((intents - old[2]) / seconds, 2),
            "window_s": round(seconds, 1),
        }

    @staticmethod
    def _returns(metrics) -> dict[str, Any]:
        changes = {c: n for (c,), n in counter_totals(metrics.returns, "change").items()}
        opened, closed = changes.get("opened", 0.0), changes.get("closed", 0.0)
        reasons = counter_totals(metrics.return_reasons, "reason")
        return {
            "opened": opened,
            "closed": closed,
            "open": max(0.0, opened - closed),  # of those this worker saw open since it started
            "refunds_overdue": counter_total(metrics.refunds_overdue),
            "reasons": [{"reason": r, "count": n} for (r,), n in sorted(reasons.items(), key=lambda kv: -kv[1])],
        }

    def _experiments(self, metrics) -> list[dict[str, Any]]:
        """Per experiment and arm, what this worker counted since it started, with 95% intervals
        (the same figures as the replay's report; Prometheus sums them over workers)."""
        running = self.handles.get("experiments") or ()
        if not running:
            return []
        counts = counter_totals(metrics.experiment_outcomes, "experiment", "arm", "outcome")
        rows = []
        for row in summarise(counts, running):
            c = row["counts"]
            rows.append(
                {
                    "experiment": row["experiment"],
                    "kind": row["kind"],
                    "arm": row["arm"],
                    "control": row["control"],
                    **{k: c[k] for k in ("units", "orders", "sent", "held_out")},
                    "rates": {k: _finite(v) for k, v in row["rates"].items()},
                    "mean_rating": _finite({"value": row["mean_rating"]})["value"],
                }
            )
        return rows

    def snapshot(self) -> dict[str, Any]:
        metrics, recent = self.handles["metrics"], self.handles["recent"]
        intents = [as_dict(i) for i in reversed(recent["intents"])]
        not_sent = counter_totals(metrics.audit_out, "decision", "reason")
        events, intents_out = self._throughput_totals()
        by_type = {t: n for (t,), n in sorted(counter_totals(metrics.intents_out, "intent_type").items())}
        return {
            "app_id": self.handles["settings"].app_id,
            "worker": str(self.app.conf.canonical_url),
            "now": int(time.time() * 1000),
            "refreshed_at": self.refreshed_at,
            "status": readiness(self.app),
            "throughput": self.rates(),
            "totals": {
                "events_in": events,
                "intents_out": intents_out,
                "not_sent": sum(not_sent.values()),
                "alerts": sum(n for t, n in by_type.items() if is_alert(t)),
                "dead_letters": counter_total(metrics.dead_letters),
                "duplicates": counter_total(metrics.duplicates),
            },
            "lag": {
                "total": sum(self.lag.values()),
                "partitions": [{"topic": t, "partition": p, "lag": n} for (t, p), n in sorted(self.lag.items())],
            },
            "returns": self._returns(metrics),
            "experiments": self._experiments(metrics),
            "tables": dict(self.table_keys),
            "scheduled_backlog": self.backlog,
            "intents_by_type": by_type,
            "not_sent_by_reason": [
                {"decision": d, "reason": r, "count": n}
                for (d, r), n in sorted(not_sent.items(), key=lambda kv: -kv[1])
            ],
            "alerts": [i for i in intents if is_alert(i["intent_type"])][:LISTED],
            "recent_intents": intents[:LISTED],
            "recent_audit": [as_dict(a) for a in reversed(recent["audit"])][:LISTED],
            "dead_letters": list(reversed(recent["dead_letters"]))[:20],
        }
