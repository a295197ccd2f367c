"""`aftersale bench --only ingest`: webhooks per second through the ingest service, against a
baseline measured in the same run: the same aiohttp server and client, with a handler that reads
the body and answers 200 without verifying, mapping or producing. The ratio is the share of plain
HTTP throughput left once every webhook is signature-checked, mapped, Avro-encoded and acknowledged
by the broker (acks=all, idempotent producer) before the answer."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import orjson
from aiohttp import web

from streams.tools.figures import Figure, register

SECRET = "bench-shopify-secret"


def order(n: int, run: str) -> dict:
    """A Shopify orders/create payload of realistic size, a new order each time (no duplicates)."""
    order_id = 7_000_000_000_000 + n
    return {
        "id": order_id,
        "name": f"#{10_000 + n}",
        "order_number": 10_000 + n,
        "email": f"buyer{n}@example.com",
        "created_at": "2026-03-02T09:14:27+01:00",
        "processed_at": "2026-03-02T09:14:29+01:00",
        "updated_at": "2026-03-02T09:14:30+01:00",
        "currency": "EUR",
        "total_price": "134.80",
        "financial_status": "paid",
        "customer_locale": "de-DE",
        "tags": "category:footwear",
        "buyer_accepts_marketing": True,
        "customer": {
            "id": 900_000 + n % 5000,
            "email": f"buyer{n}@example.com",
            "phone": "+4915112345678",
            "email_marketing_consent": {"state": "subscribed"},
            "sms_marketing_consent": {"state": "not_subscribed"},
        },
        "line_items": [
            {
                "id": order_id * 10 + i,
                "product_id": 8_123_456_789_000 + i,
                "variant_id": 44_123_456_789_000 + i,
                "sku": f"SKU-{i}",
                "title": f"Product {i}",
                "quantity": 1 + i % 2,
                "price": "19.90",
                "requires_shipping": True,
            }
            for i in range(3)
        ],
        "shipping_address": {
            "city": "München",
            "zip": "80802",
            "province_code": "BY",
            "country_code": "DE",
            "phone": "+4915112345678",
        },
        "note_attributes": [{"name": "bench_run", "value": run}],
    }


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhooks/shopify"


def _baseline_app() -> web.Application:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/webhooks/shopify", accept)
    return app


async def _drive(url: str, requests: list[tuple[bytes, dict]], concurrency: int) -> tuple[float, list[float]]:
    """Send all requests with `concurrency` in flight; returns (webhooks/s, latencies in s)."""
    latencies: list[float] = []
    queue = iter(requests)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for body, headers in queue:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(requests) / elapsed, latencies


def _requests(count: int, offset: int, run: str) -> list[tuple[bytes, dict]]:
    from .signatures import sign

    out = []
    for n in range(offset, offset + count):
        body = orjson.dumps(order(n, run))
        out.append(
            (
                body,
                {
                    "Content-Type": "application/json",
                    "X-Shopify-Topic": "orders/create",
                    "X-Shopify-Webhook-Id": f"{run}-{n}",
                    **sign("shopify", body, SECRET, time.time()),
                },
            )
        )
    return out


async def _measure(bootstrap: str, count: int, concurrency: int) -> list[Figure]:
    from deploy.topics import apply
    from streams.config import Settings

    from .ingest import IngestService
    from .settings import IngestSettings

    run = uuid.uuid4().hex[:8]
    settings = Settings(bootstrap_servers=bootstrap, app_id=f"bench-ingest-{run}")
    await asyncio.to_thread(apply, settings)
    service = IngestService(settings, IngestSettings(secrets={"shopify": SECRET}))
    ingest_runner, ingest_url = await _serve(service.app())
    base_runner, base_url = await _serve(_baseline_app())
    try:
        warm = min(200, count)
        await _drive(base_url, _requests(warm, 0, run), concurrency)
        await _drive(ingest_url, _requests(warm, 0, run), concurrency)
        # Signing is done before the clock starts: it is the provider's work, not ours.
        base_rate, _ = await _drive(base_url, _requests(count, warm, run), concurrency)
        rate, latencies = await _drive(ingest_url, _requests(count, warm, run), concurrency)
    finally:
        await ingest_runner.cleanup()
        await base_runner.cleanup()
    if service.sink.acknowledged < 2 * (count + warm):  # placed + paid per order
        raise RuntimeError(f"only {service.sink.acknowledged} records acknowledged for {count + warm} webhooks")
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    note = f"{count} Shopify orders/create, {concurrency} in flight, client in the same process"
    return [
        Figure("ingest.baseline_http_200", base_rate, "webhooks/s", note="same server and client, handler answers 200"),
        Figure(
            "ingest.webhooks_per_s",
            rate,
            "webhooks/s",
            baseline="ingest.baseline_http_200",
            ratio=rate / base_rate,
            note=note + "; verified, mapped, 2 records each acknowledged (acks=all) before 200",
        ),
        Figure("ingest.p99_ms", p99, "ms", note="webhook answer time incl. broker acknowledgement, at that load"),
    ]


@register(
    "ingest",
    "webhook ingest service: signed Shopify webhooks over HTTP to acknowledged Kafka records",
    needs_broker=True,
)
def bench_ingest(options: dict) -> list[Figure]:
    from deploy.broker import LocalBroker, external_bootstrap

    count = int(options.get("webhooks") or 3000)
    concurrency = int(options.get("concurrency") or 32)
    bootstrap = options.get("bootstrap") or external_bootstrap()
    if bootstrap:
        return asyncio.run(_measure(bootstrap, count, concurrency))
    with LocalBroker() as broker:
        return asyncio.run(_measure(broker.bootstrap_servers, count, concurrency))
