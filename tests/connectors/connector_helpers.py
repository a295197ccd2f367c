"""Shared helpers of the connector tests: fixtures on disk, provider signing, and an ingest service
running on a real port in its own event-loop thread (so sync tests and hypothesis can drive it)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from connectors.ingest import IngestService
from connectors.settings import IngestSettings
from connectors.signatures import sendgrid_keypair, sign
from connectors.sink import EventSink
from streams import webauth

FIXTURES = Path(__file__).parent / "fixtures"

SENDGRID_PRIVATE, SENDGRID_PUBLIC = sendgrid_keypair()
SECRETS = {
    "shopify": "shpss_5b0c1f3e9d8a7b6c",
    "aftership": "as-webhook-secret-1",
    "easypost": "ép-secret-NFKD",
    "klaviyo": "klaviyo-signing-secret-0123456789",
    "zendesk": "dGhpcyBpcyBhIHplbmRlc2sgc2VjcmV0",
    "gorgias": "gorgias-shared-token-42",
    "sendgrid": SENDGRID_PUBLIC,
}
PROVIDERS = list(SECRETS)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str):
    return json.loads(raw(name))


def signed(provider: str, body: bytes, now: float | None = None, **extra) -> dict[str, str]:
    key = SENDGRID_PRIVATE if provider == "sendgrid" else SECRETS[provider]
    return {
        "Content-Type": "application/json",
        **sign(provider, body, key, time.time() if now is None else now),
        **extra,
    }


class LoopThread:
    """An event loop in a daemon thread; run(coro) waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class IngestHarness:
    """The real ingest service on 127.0.0.1 with a real producer, and a real HTTP client."""

    def __init__(self, settings, ingest: IngestSettings | None = None, sink: EventSink | None = None):
        self.thread = LoopThread()
        self.service = IngestService(settings, ingest or IngestSettings(secrets=dict(SECRETS)), sink)
        self.thread.run(self._start())

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.service.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.session = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _request(self, method: str, path: str, body: bytes | None, headers: dict | None):
        async with self.session.request(method, self.url + path, data=body, headers=headers) as response:
            text = await response.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
            return response.status, payload

    def post(self, provider: str, body: bytes, headers: dict | None = None, query: str = ""):
        return self.thread.run(self._request("POST", f"/webhooks/{provider}{query}", body, headers))

    def unseal(self, customer_id: str, sealed) -> bytes:
        """What the service sealed, opened with the key topic's keys (streams/privacy.py)."""
        return self.thread.run(self.service.keys.unseal(customer_id, sealed))

    def get(self, path: str, token: bool = True):
        """GET, with the views' token of the service's settings unless `token` is False."""
        headers = webauth.headers(self.service.settings.web_token) if token else None
        return self.thread.run(self._request("GET", path, None, headers))

    def close(self) -> None:
        async def stop():
            await self.session.close()
            await self.runner.cleanup()

        self.thread.run(stop())
        self.thread.close()
