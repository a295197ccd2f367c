"""The worker's HTTP API beside /metrics and /health: live order and customer state (answered by the
worker that owns the key, whichever worker is asked), readiness, the ops page and its data, and the
OpenAPI description. Described in streams/openapi.py; registered by build_app.

Routing: a key's table partition is the partition of the input event that wrote it, i.e. where the
producer's partitioner put the raw id. So requests are routed with `app.topic_route` on the input topic
each table is co-partitioned with. `app.table_route` would hash the table's own key encoding (JSON:
b'"O-1"', not b'O-1') and pick another partition, hence another worker. Producers must partition with
murmur2, like Java clients, Faust and the ingest service do (librdkafka: partitioner=murmur2_random).
"""

from __future__ import annotations

import logging
import time
from importlib import metadata, resources

import aiohttp
from aiokafka.errors import KafkaError
from faust.web import View
from yarl import URL

from .live_state import customer_view, merge_decisions, order_view, recent_decisions
from . import privacy, webauth
from .openapi import openapi_document
from .ops import REFRESH_SECONDS, OpsMonitor, readiness
from .runtime.checkpoint import OUTBOX_PREFIX

log = logging.getLogger(__name__)

PEER_TIMEOUT = aiohttp.ClientTimeout(total=3)


def _same_worker(url: URL, canonical: URL) -> bool:
    return (url.host, url.port) == (canonical.host, canonical.port)


def register_views(app) -> None:
    handles = app.aftersale
    orders, customers, recent, settings = (
        handles["orders"],
        handles["customers"],
        handles["recent"],
        handles["settings"],
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    orders_input = app.topic(settings.topic("orders"), **raw)  # co-partitioned with the orders table
    customers_input = app.topic(settings.topic("customer-commands"), **raw)  # ... with the customers table
    monitor = OpsMonitor(app)
    ops_html = resources.files("streams").joinpath("static/ops.html").read_text(encoding="utf-8")
    document = openapi_document(metadata.version("aftersale"))
    peer_headers = webauth.headers(handles["web_token"])  # workers ask each other with the same token

    def here() -> str:
        return str(app.conf.canonical_url)

    def not_found(web, what: str, key: str):
        return web.json({"error": f"unknown {what}", f"{what}_id": key, "served_by": here()}, status=404)

    async def decisions_at_customer_owner(customer_id: str | None, order_id: str) -> dict | None:
        """Intents are decided on the worker that owns the customer, which need not own the order.
        {} when that is this worker (already counted), None when it could not be asked."""
        if not customer_id:
            return {}
        try:
            owner = app.router.external_topic_key_store(customers_input, customer_id)
        except KeyError:  # no assignment yet
            return None
        if _same_worker(owner, app.conf.canonical_url):
            return {}
        url = owner.with_path(f"/customers/{customer_id}").with_query(order_id=order_id)
        try:
            async with app.http_client.get(url, timeout=PEER_TIMEOUT, headers=peer_headers) as response:
                if response.status == 200:
                    return (await response.json())["recent"]
                return {} if response.status == 404 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("recent decisions of %s not fetched from %s: %r", customer_id, owner, exc)
            return None

    @app.timer(interval=REFRESH_SECONDS, name="aftersale_ops_refresh")
    async def refresh_ops() -> None:
        try:
            await monitor.refresh()
        except Exception:  # an exception in a Faust timer stops the worker; figures are not worth that
            log.exception("ops figures not refreshed")

    @app.page("/orders/{order_id}", name="order_state")
    @app.topic_route(topic=orders_input, match_info="order_id")
    async def order_state(web, request, order_id: str):
        stored = None if order_id.startswith(OUTBOX_PREFIX) else orders.get(order_id)
        if stored is None:
            return not_found(web, "order", order_id)
        remote = await decisions_at_customer_owner(stored.get("customer_id"), order_id)
        decisions = merge_decisions(recent_decisions(recent, order_id=order_id), remote or {})
        view = order_view(stored, decisions, int(time.time() * 1000))
        return web.json({**view, "recent_partial": remote is None, "served_by": here()})

    @app.page("/customers/{customer_id}", name="customer_state")
    @app.topic_route(topic=customers_input, match_info="customer_id")
    async def customer_state(web, request, customer_id: str):
        stored = None if customer_id.startswith(OUTBOX_PREFIX) else customers.get(customer_id)
        if stored is None:
            return not_found(web, "customer", customer_id)
        decisions = recent_decisions(recent, customer_id=customer_id, order_id=request.query.get("order_id"))
        return web.json({**customer_view(stored, decisions), "served_by": here()})

    @app.page("/ready", name="ready")
    async def ready(web, request):
        status = readiness(app)
        return web.json(status, status=200 if status["ready"] else 503)

    @app.page("/api/ops", name="ops_data")
    async def ops_data(web, request):
        return web.json(monitor.snapshot())

    @app.page("/ops", name="ops_page")
    async def ops_page(web, request):
        return web.html(ops_html)

    @app.page("/api/erasure", name="erasure")
    class ErasureView(View):
        """POST {"customer_id", "order_ids"?}: shred the customer's keys, then ask the worker that
        owns them to delete their state (streams/privacy.py). 202 once both are acknowledged."""

        async def post(self, request):
            try:
                body = await request.json()
                customer_id, order_ids = body["customer_id"], body.get("order_ids") or []
                if not isinstance(customer_id, str) or not customer_id.strip():
                    raise ValueError("customer_id must be a non-empty string")
                if not isinstance(order_ids, list) or not all(isinstance(o, str) for o in order_ids):
                    raise ValueError("order_ids must be a list of strings")
            except (ValueError, KeyError, TypeError) as exc:
                return self.json({"error": "bad_request", "reason": f"{exc!r}"[:300]}, status=400)
            try:
                done = await privacy.erase(settings, customer_id, order_ids, source="api")
            except (KafkaError, OSError, RuntimeError) as exc:
                log.warning("erasure of %s not done: %r", customer_id, exc)
                return self.json(
                    {"error": "unavailable", "reason": "the event bus did not acknowledge; ask again"}, status=503
                )
            return self.json(done, status=202)

    @app.page("/openapi.json", name="openapi")
    async def openapi(web, request):
        return web.json(document)
