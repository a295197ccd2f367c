"""How the reference sender delivers one intent: HTTP (any channel) or SMTP (e-mail), and how often
it tries. A transport either returns (delivered) or raises Retryable or Permanent."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import orjson

from .signatures import sign_body

USER_AGENT = "aftersale-sender/1"


class Permanent(Exception):
    """Trying again cannot help (4xx, no address): the intent is dead-lettered with `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Retryable(Exception):
    def __init__(self, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.retry_after = retry_after


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)], so
    senders that failed together do not retry together."""
    return (rng or random).uniform(0, min(cap, base * 2**attempt))


class HttpTransport:
    """POSTs {"intent": ..., "recipient": ...} as JSON, signed, with the intent id as idempotency key."""

    name = "http"

    def __init__(self, url: str, secret: str, timeout: float = 10.0):
        self.url = url
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=self.timeout)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def deliver(self, intent: dict, recipient: dict | None) -> None:
        body = orjson.dumps({"intent": intent, "recipient": recipient})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": intent["intent_id"],
            "X-Aftersale-Signature": sign_body(self.secret, body),
        }
        try:
            async with self.session.post(self.url, data=body, headers=headers) as response:
                text = (await response.text(errors="replace"))[:300]
                status = response.status
                retry_after = _seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Retryable(f"http: {exc!r}") from None
        if 200 <= status < 300:
            return
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(f"http {status}: {text}", retry_after)
        raise Permanent(f"http_{status}", text)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the jittered backoff is good enough


SUBJECTS = {
    "order_confirmation": "We have your order",
    "shipped": "Your order is on its way",
    "out_for_delivery": "Your parcel arrives today",
    "delivered": "Your parcel was delivered",
}


def render_email(intent: dict, sender: str, to: str) -> EmailMessage:
    """A plain reference rendering; real senders use their own templates with the content hints."""
    content = intent.get("content") or {}
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = SUBJECTS.get(intent["intent_type"], intent["intent_type"].replace("_", " ").capitalize())
    message["Date"] = email.utils.formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "aftersale.invalid"
    # Deterministic, so a receiving system can recognise a re-sent message.
    message["Message-ID"] = f"<{intent['intent_id']}@{domain}>"
    message["X-Aftersale-Intent-Id"] = intent["intent_id"]
    arms = intent.get("experiments") or []
    if arms:  # which arm of each experiment this message is (docs/experiments.md)
        message["X-Aftersale-Experiments"] = "; ".join(f"{a['experiment']}={a['arm']}" for a in arms)
    # SendGrid's SMTP relay copies these into its event webhook, which attributes engagement back.
    message["X-SMTPAPI"] = json.dumps(
        {
            "unique_args": {
                k: v
                for k, v in (
                    ("customer_id", intent["customer_id"]),
                    ("intent_id", intent["intent_id"]),
                    ("order_id", intent.get("order_id")),
                    ("experiment", intent.get("experiment")),
                    ("arm", intent.get("arm")),
                )
                if v
            }
        }
    )
    lines = [message["Subject"] + "."]
    if intent.get("experiment") and intent.get("arm"):
        lines.append(f"Variant: {intent['experiment']} / {intent['arm']}")  # a real template renders it
    if intent.get("order_id"):
        lines.append(f"Order: {intent['order_id']}")
    for item in content.get("items") or []:
        lines.append(f"- {item['quantity']} x {item['title']}")
    if content.get("tracking_number"):
        lines.append(f"Tracking: {content.get('carrier') or ''} {content['tracking_number']}".replace("  ", " "))
    message.set_content("\n".join(lines) + "\n")
    return message


class SmtpTransport:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def deliver(self, intent: dict, recipient: dict | None) -> None:
        address = (recipient or {}).get("email")
        if not address:
            raise Permanent("no_address", f"no e-mail address for customer {intent['customer_id']}")
        message = render_email(intent, self.sender, address)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(400 <= c < 500 for c in codes):
                raise Retryable(f"smtp recipient deferred: {exc}") from None
            raise Permanent("smtp_rejected", str(exc)[:300]) from None
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise Retryable(f"smtp {exc.code}: {exc.message}") from None
            raise Permanent(f"smtp_{exc.code}", exc.message[:300]) from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise Retryable(f"smtp: {exc!r}") from None
