"""One token in front of every HTTP view of the worker, the ingest service and the sender, except
health and readiness (which probes call without credentials).

A request carries the token as `Authorization: Bearer <token>` (scripts, Prometheus, support bots)
or as the password of HTTP Basic authentication with any user name (a browser asks for it once for
the ops page, then sends it with the page's own requests). Without it: 401.

The token is AFTERSALE_WEB_TOKEN. A worker started without one makes a random token and keeps it in
`<data dir>/web-token` (readable by its user only), so its views are never open by default; workers
that route requests to each other need the same token, so set it when there are several.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready"})
TOKEN_FILE = "web-token"
CHALLENGE = 'Basic realm="aftersale", charset="UTF-8"'


def worker_token(configured: str | None, data_dir: Path) -> str:
    """The configured token, else the one kept in the data dir (made on first use)."""
    if configured:
        return configured
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    log.warning("AFTERSALE_WEB_TOKEN is not set: the HTTP views need the token written to %s", path)
    return token


def presented(header: str | None) -> str | None:
    """The token an Authorization header carries (Bearer, or Basic's password), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def allowed(header: str | None, token: str | None) -> bool:
    """Constant-time comparison; with no token configured nothing is allowed."""
    given = presented(header)
    return bool(token) and given is not None and hmac.compare_digest(given.encode(), token.encode())


def middleware(token: str | None, open_paths: frozenset[str] = OPEN_PATHS, open_prefixes: tuple[str, ...] = ()):
    """aiohttp middleware: 401 for any path but `open_paths` (and those under `open_prefixes`, e.g.
    webhooks, which carry their provider's signature) without the token."""

    @web.middleware
    async def require_token(request: web.Request, handler):
        path = request.path
        if path in open_paths or path.startswith(open_prefixes) or allowed(request.headers.get("Authorization"), token):
            return await handler(request)
        return web.json_response(
            {"error": "unauthorized: send the token as `Authorization: Bearer <token>`"},
            status=401,
            headers={"WWW-Authenticate": CHALLENGE},
        )

    return require_token


def warn_if_unset(token: str | None, service: str) -> None:
    """A service without a data dir has no token to fall back on: its views stay closed."""
    if not token:
        log.warning("%s: AFTERSALE_WEB_TOKEN is not set, so /metrics answers 401 to everyone", service)


def headers(token: str | None) -> dict[str, str]:
    """What a client (a peer worker, a tool, a test) sends to be let in."""
    return {"Authorization": f"Bearer {token}"} if token else {}
