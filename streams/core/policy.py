"""The customer-side policy numbers, in one place.

Every customer-side module reads its numbers from a `PolicyConfig`; `DEFAULT_POLICY` is what the
engine uses. Each default says where it comes from (the tools shops compare us with, see
docs of Klaviyo, Braze, Yotpo/Okendo, AfterShip) or why it was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from types import MappingProxyType
from typing import Mapping

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    # --- quiet hours, in the customer's own time zone ------------------------------------------
    # The window may cross midnight (start > end). Held messages are released when it ends.
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    # Channels on which every kind of message waits (a buzzing phone at night) ...
    quiet_all_kinds: frozenset = frozenset({"sms", "push"})
    # ... and channels on which only marketing waits (an e-mail at night wakes nobody, but promotions
    # land better in the morning).
    quiet_marketing_only: frozenset = frozenset({"email"})
    # Local hour at which scheduled post-delivery messages are planned (not a rule, a good time).
    send_hour: int = 10

    # --- frequency caps and smart sending ------------------------------------------------------
    # Messages per channel per calendar day in the customer's zone (Braze-style global caps). Every
    # message counts towards the day's tally; only marketing is ever skipped because of it.
    daily_cap: Mapping = field(default_factory=lambda: _frozen({"email": 2, "sms": 1, "push": 2}))
    # Klaviyo Smart Sending: skip marketing if a marketing message went out on that channel lately.
    smart_sending_ms: Mapping = field(
        default_factory=lambda: _frozen({"email": 16 * HOUR, "sms": 24 * HOUR, "push": 24 * HOUR})
    )
    # Yotpo/Okendo: at most 5 review/marketing e-mails per 30 days, one review request per product a year.
    marketing_emails_per_30d: int = 5
    review_per_product_ms: int = 365 * DAY
    # Split orders: a second "shipped"/"delivered" for another parcel of the same order this close to
    # the first is not announced again (AfterShip: one summary for split orders).
    consolidate_types: frozenset = frozenset({"shipped", "delivered"})
    consolidation_ms: int = 6 * HOUR

    # --- channel choice ------------------------------------------------------------------------
    # Marketing moves to another allowed channel only if that one is clearly more engaging.
    engagement_min_sent: int = 3  # sends on a channel before its rate is trusted
    engagement_margin: float = 0.15  # rate difference needed to leave the preferred channel

    # --- reputation guard (marketing only: transactional and service always go out) ------------
    negative_sentiment: float = -0.3  # VADER compound score at or below which a text is negative
    negative_rating: int = 2  # satisfaction or review rating at or below this is negative
    negative_contact_cooldown_ms: int = 14 * DAY
    late_delivery_cooldown_ms: int = 7 * DAY
    refund_cooldown_ms: int = 14 * DAY  # refunds, returns and cancellations
    problem_hold_max_ms: int = 30 * DAY  # an unresolved delivery problem stops holding after this
    return_hold_max_ms: int = 45 * DAY  # an open return the shop never closed stops holding after this
    guard_recheck_ms: int = DAY  # a guard with no known end (open ticket/problem) is re-checked this often

    # --- post-delivery window ------------------------------------------------------------------
    care_tips_after_days: int = 1
    onboarding_after_days: tuple = (1, 4, 10)  # onboarding_1/2/3 for complex products
    complex_categories: frozenset = frozenset({"electronics", "appliances"})
    # What the care/how-to message is about, by category (categories not listed get none).
    care_topics: Mapping = field(
        default_factory=lambda: _frozen(
            {
                "fashion": "garment_care",
                "beauty": "how_to_apply",
                "home": "care_and_cleaning",
                "consumables": "storage_and_use",
                "sports": "care_and_maintenance",
                "toys": "safety_and_care",
            }
        )
    )
    # Review request timing by time to value: worn/applied soon; durable goods need weeks of use;
    # consumables after first use.
    review_after_days: Mapping = field(
        default_factory=lambda: _frozen(
            {
                "fashion": 4,
                "beauty": 5,
                "electronics": 14,
                "appliances": 14,
                "home": 14,
                "consumables": 8,
            }
        )
    )
    review_default_days: int = 7
    # A positive signal (open/click about the order soon after delivery) brings the request forward.
    review_signal_window_ms: int = 48 * HOUR
    review_pull_in_fraction: float = 0.5  # of the normal delay
    review_min_days: int = 2
    cross_sell_after_days: int = 10
    complementary: Mapping = field(
        default_factory=lambda: _frozen(
            {
                "fashion": "accessories",
                "electronics": "accessories",
                "appliances": "consumables",
                "consumables": "consumables",
                "home": "home_decor",
                "beauty": "skincare",
            }
        )
    )

    # --- replenishment -------------------------------------------------------------------------
    # Days one unit lasts, by category (a 1 kg bag of beans ~ a month for one person; a serum ~ six
    # weeks). Only these categories are replenished. quantity x days = the pack lasts.
    days_per_unit: Mapping = field(
        default_factory=lambda: _frozen(
            {
                "consumables": 30,
                "beauty": 45,
                "pet_supplies": 30,
                "household": 45,
            }
        )
    )
    replenish_lead_days: int = 5  # remind this long before the customer runs out
    replenish_min_interval_days: int = 7  # shorter reorder intervals are treated as noise (double orders)

    # --- win-back ------------------------------------------------------------------------------
    winback_gap_factor: float = 2.0  # x the customer's median gap between orders ...
    winback_min_gap_days: int = 45  # ... but never sooner than this
    winback_one_time_days: int = 90  # for customers with a single order

    # --- segments ------------------------------------------------------------------------------
    high_value_total: float = 500.0  # lifetime spend
    high_value_order: float = 250.0  # or one order this large
    lapsed_days: int = 180  # no order for this long
    occasional_gap_days: int = 90  # repeat customers whose usual gap is this long

    # --- send-time optimisation (send_time.py) ---------------------------------------------------
    # Klaviyo Smart Send Time and Braze Intelligent Timing learn the hour each customer engages.
    send_time_optimisation: bool = True  # off: messages go out at the planned hour
    send_time_half_life_days: int = 90  # an open this old counts half
    send_time_min_opens: float = 2.0  # the customer's own (decayed) opens before their habit leads
    send_time_prior_weight: float = 2.0  # the shop's or segment's habit counts as this many opens
    send_time_min_shop_opens: float = 30.0  # a shop or segment histogram is used from this many opens
    send_time_max_delay_ms: int = 24 * HOUR  # a message waits at most this long for the best hour

    # --- experiments (experiments.py): from the experiments file, none by default ---------------
    experiments: tuple = ()

    # --- lifetimes of the messages the customer stage creates ----------------------------------
    ttl_ms: Mapping = field(
        default_factory=lambda: _frozen(
            {
                "care_tips": 3 * DAY,
                "onboarding": 3 * DAY,
                "review_request": 7 * DAY,
                "cross_sell": 5 * DAY,
                "replenishment": 7 * DAY,
                "winback": 7 * DAY,
            }
        )
    )

    def ttl(self, intent_type: str) -> int:
        key = "onboarding" if intent_type.startswith("onboarding") else intent_type
        return self.ttl_ms.get(key, 3 * DAY)


DEFAULT_POLICY = PolicyConfig()

# Bounded memories of the customer state (Faust stores the whole state on every change).
ORDERS_KEPT = 20
HELD_KEPT = 20
REPLENISH_KEPT = 20
SKU_PURCHASES_KEPT = 6
ORDER_TIMES_KEPT = 12
REVIEW_ASKED_KEPT = 100
MARKETING_LOG_KEPT = 30
OPEN_TICKETS_KEPT = 20
OPEN_RETURNS_KEPT = 20
PROBLEMS_KEPT = 5
ITEMS_KEPT = 20  # line items remembered per order (templates need the main ones)
CATEGORIES_KEPT = 50
ORDER_IDS_KEPT = 1000  # order ids per customer, for erasure requests
ENGAGEMENTS_KEPT = 5  # opens/clicks remembered per order
