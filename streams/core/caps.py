"""Frequency caps and smart sending: how much marketing a customer gets, per channel.

- Daily cap per channel per calendar day in the customer's zone. Every message sent that day counts
  (a customer who got two shipping e-mails today has had enough e-mail), but only marketing is ever
  skipped for it; transactional and service messages always go out.
- 30-day limit on marketing e-mails (review requests included), Yotpo/Okendo's 5 per 30 days.
- Smart sending (Klaviyo): skip marketing if a marketing message went out on the same channel within
  16 h (e-mail) or 24 h (SMS, push).
A capped marketing message is skipped, not postponed: a promotion sent days late is worse than none.
"""

from __future__ import annotations

from .local_time import local_day
from .policy import DAY, MARKETING_LOG_KEPT, PolicyConfig
from .state import CustomerState

MARKETING_WINDOW_MS = 30 * DAY


def sent_on_day(state: CustomerState, channel: str, at: int, tz: str | None) -> int:
    """Messages already sent on `channel` on the customer's local calendar day of `at`."""
    day = local_day(at, tz)
    return sum(1 for r in state.recent_intents if r["channel"] == channel and local_day(r["at"], tz) == day)


def blocked_reason(
    state: CustomerState, channel: str, kind: str, at: int, tz: str | None, config: PolicyConfig
) -> str | None:
    """Why a message of `kind` may not go out on `channel` at `at` because of caps, or None."""
    if kind != "marketing":
        return None
    cap = config.daily_cap.get(channel)
    if cap is not None and sent_on_day(state, channel, at, tz) >= cap:
        return f"cap:{channel}:marketing"
    window = config.smart_sending_ms.get(channel)
    # Symmetric windows: with out-of-order input, a message "later" in the log is just as close.
    if window is not None and any(r["channel"] == channel and abs(at - r["at"]) < window for r in state.marketing_log):
        return "smart_sending"
    if channel == "email":
        recent = sum(
            1 for r in state.marketing_log if r["channel"] == "email" and abs(at - r["at"]) < MARKETING_WINDOW_MS
        )
        if recent >= config.marketing_emails_per_30d:
            return "cap:email:30d"
    return None


def record_marketing(state: CustomerState, channel: str, intent_type: str, at: int) -> None:
    state.marketing_log.append({"at": at, "channel": channel, "intent_type": intent_type})
    state.marketing_log.sort(key=lambda r: r["at"])
    newest = state.marketing_log[-1]["at"]
    state.marketing_log[:] = [r for r in state.marketing_log if newest - r["at"] < MARKETING_WINDOW_MS]
    del state.marketing_log[:-MARKETING_LOG_KEPT]
