"""Signature schemes, time parsing, time zones, shipment keys, the LRU. No broker."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings, strategies as st

from connectors.memory import LRU, Directory
from connectors.records import Learned, to_ms
from connectors.shipping import carrier_name, shipment_key
from connectors.signatures import VERIFIERS, SignatureError, sign, verify_body, sign_body
from connectors.timezones import ZoneTable

from connector_helpers import PROVIDERS, SECRETS, signed

BODY = b'{"id": 820982911946154508, "email": "jon@example.com"}'
NOW = 1_772_600_000.0


def verify(provider, headers, body=BODY, now=NOW, tolerance=300):
    VERIFIERS[provider]({k.lower(): v for k, v in headers.items()}, body, SECRETS[provider], now, tolerance)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_accepts_its_own_signature_and_rejects_others(provider):
    headers = signed(provider, BODY, now=NOW)
    verify(provider, headers)
    if provider != "gorgias":  # a shared token does not cover the body
        with pytest.raises(SignatureError):
            verify(provider, headers, body=BODY + b" ")
    with pytest.raises(SignatureError, match="missing"):
        verify(provider, {})
    other = PROVIDERS[(PROVIDERS.index(provider) + 1) % len(PROVIDERS)]
    with pytest.raises(SignatureError):
        verify(provider, {**signed(other, BODY, now=NOW), **{k: "x" for k in headers if k != "Content-Type"}})


def test_shopify_signature_is_base64_hmac_of_the_raw_body():
    expected = base64.b64encode(hmac.new(SECRETS["shopify"].encode(), BODY, hashlib.sha256).digest()).decode()
    assert sign("shopify", BODY, SECRETS["shopify"], NOW) == {"X-Shopify-Hmac-Sha256": expected}
    with pytest.raises(SignatureError, match="not base64"):
        verify("shopify", {"X-Shopify-Hmac-Sha256": "%%%"})


def test_zendesk_signs_timestamp_then_body():
    ts = "2026-03-04T05:06:40Z"
    mac = hmac.new(SECRETS["zendesk"].encode(), ts.encode() + BODY, hashlib.sha256).digest()
    verify(
        "zendesk",
        {"X-Zendesk-Webhook-Signature-Timestamp": ts, "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode()},
        now=to_ms(ts) / 1000,
    )


@pytest.mark.parametrize("provider", ["zendesk", "klaviyo", "sendgrid"])
def test_signed_timestamps_older_than_the_tolerance_are_replays(provider):
    headers = signed(provider, BODY, now=NOW - 301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(provider, headers, now=NOW)
    verify(provider, signed(provider, BODY, now=NOW - 299), now=NOW)


def test_easypost_uses_prefixed_hex_and_an_nfkd_normalized_secret():
    header = sign("easypost", BODY, SECRETS["easypost"], NOW)["X-Hmac-Signature"]
    assert header.startswith("hmac-sha256-hex=") and len(header) == 16 + 64
    verify("easypost", {"X-Hmac-Signature": header.upper().replace("HMAC-SHA256-HEX=", "hmac-sha256-hex=")})


def test_sender_signature_round_trip():
    signature = sign_body("s3cret", BODY)
    assert verify_body("s3cret", BODY, signature)
    assert not verify_body("s3cret", BODY + b"x", signature) and not verify_body("s3cret", BODY, None)


@pytest.mark.parametrize(
    "value, ms",
    [
        ("2026-03-02T09:14:27+01:00", 1_772_439_267_000),
        ("2026-03-02T08:14:27Z", 1_772_439_267_000),
        ("2026-03-02T08:14:27.123456789Z", 1_772_439_267_123),
        ("Mon, 02 Mar 2026 08:14:27 GMT", 1_772_439_267_000),
        (1_772_439_267, 1_772_439_267_000),
        ("1772439267", 1_772_439_267_000),
        (1_772_439_267_000, 1_772_439_267_000),
        ("2026-03-07", 1_772_927_999_000),  # a date: the end of that day
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
        ([1], None),
        (10**30, None),
        (-5, None),
        ("\u00b2", None),
        (float("nan"), None),
        (float("inf"), None),
        ("0001-01-01T00:00:00+05:00", None),
    ],
)
def test_provider_times_to_epoch_ms(value, ms):
    assert to_ms(value) == ms


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.floats(),
        st.integers(),
        st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)?", fullmatch=True),
    )
)
def test_any_provider_time_parses_or_is_none(value):
    ms = to_ms(value)
    assert ms is None or 946_684_800_000 <= ms <= 4_102_444_800_000


def test_time_zone_table_and_overrides():
    zones = ZoneTable()
    assert zones.zone_for("DE", "BY") == "Europe/Berlin"
    assert zones.zone_for("US", "CA") == "America/Los_Angeles"
    assert zones.zone_for("us", "US-AZ") == "America/Phoenix"
    assert zones.zone_for("US", None) == "America/New_York"
    assert zones.zone_for("CA", "BC") == "America/Vancouver" and zones.zone_for("AU", "WA") == "Australia/Perth"
    assert zones.zone_for("ES", "TF") == "Atlantic/Canary"
    assert zones.zone_for("ZZ", None) == "UTC"
    custom = ZoneTable({"US": "America/Chicago", "US-TX": "America/Denver"}, default="Europe/London")
    assert (custom.zone_for("US", "NY"), custom.zone_for("US", "TX"), custom.zone_for("US", "CA")) == (
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
    )
    assert custom.zone_for(None) == "Europe/London"
    with pytest.raises(ValueError, match="unknown IANA"):
        ZoneTable({"DE": "Europe/Atlantis"})


def test_carrier_names_and_shipment_keys_agree_across_providers():
    assert {carrier_name(n) for n in ("UPS", "ups", "United Parcel Service")} == {"ups"}
    assert {carrier_name(n) for n in ("DHL Express", "DHLExpress", "dhl")} == {"dhl"}
    assert carrier_name("Some Local Courier") == "some-local-courier" and carrier_name(None) == "unknown"
    assert shipment_key(" 1z999aa1 0123456784 ", "f") == "1Z999AA10123456784"
    assert shipment_key(None, "shopify:1") == shipment_key("", "shopify:1") == "shopify:1"


def test_lru_forgets_the_least_recently_used():
    lru = LRU(2)
    lru.put("a"), lru.put("b")
    assert "a" in lru  # touches a
    lru.put("c")
    assert "a" in lru and "b" not in lru and "c" in lru and len(lru) == 2


def test_directory_learns_customers_tracking_numbers_and_returns():
    directory = Directory(10)
    directory.learn(
        [
            Learned("order_customer", "O1", "C1"),
            Learned("tracking_order", "TRK", "O1"),
            Learned("return_order", "R1", "O1"),
            Learned("order_customer", "O2", ""),
        ]
    )
    assert directory.customer_for_order("O1") == "C1" and directory.order_for_shipment("TRK") == "O1"
    assert directory.order_for_return("R1") == "O1" and directory.order_for_return("TRK") is None
    assert directory.customer_for_order("O2") is None


def test_ingest_settings_from_env():
    from connectors.settings import IngestSettings

    settings = IngestSettings.from_env(
        {
            "AFTERSALE_SHOPIFY_SECRET": "s1",
            "AFTERSALE_INGEST_PORT": "9090",
            "AFTERSALE_TIME_ZONES": '{"US": "America/Chicago"}',
            "AFTERSALE_DEFAULT_TIME_ZONE": "Europe/Paris",
            "AFTERSALE_EASYPOST_ORDER_ID": "field:result.reference, index",
            "AFTERSALE_INGEST_RECORD_UNKNOWN": "0",
        }
    )
    assert settings.secrets["shopify"] == "s1" and settings.secrets["zendesk"] is None
    assert (settings.port, settings.record_unknown) == (9090, False)
    assert settings.mapping.easypost_order_id == ("field:result.reference", "index")
    assert settings.mapping.zones.zone_for("US", "NY") == "America/Chicago"
    assert settings.mapping.zones.zone_for("ZZ") == "Europe/Paris"
    with pytest.raises(SystemExit, match="AFTERSALE_TIME_ZONES"):
        IngestSettings.from_env({"AFTERSALE_TIME_ZONES": '{"DE": "Mars/Olympus"}'})
    with pytest.raises(SystemExit, match="AFTERSALE_EASYPOST_ORDER_ID"):
        IngestSettings.from_env({"AFTERSALE_EASYPOST_ORDER_ID": "guess"})


def test_body_limits_per_provider_from_env():
    from connectors.settings import BODY_LIMITS, IngestSettings

    defaults = IngestSettings.from_env({})
    assert defaults.body_limits == BODY_LIMITS
    assert defaults.body_limit("shopify") > defaults.body_limit("aftership") >= defaults.body_limit("klaviyo")
    # One provider's own setting wins over the setting for all.
    settings = IngestSettings.from_env(
        {"AFTERSALE_INGEST_MAX_BODY": "200000", "AFTERSALE_INGEST_MAX_BODY_SHOPIFY": "8388608"}
    )
    assert settings.body_limit("shopify") == 8_388_608
    assert {settings.body_limit(p) for p in BODY_LIMITS if p != "shopify"} == {200_000}
    with pytest.raises(SystemExit, match="AFTERSALE_INGEST_MAX_BODY_ZENDESK must be a positive number"):
        IngestSettings.from_env({"AFTERSALE_INGEST_MAX_BODY_ZENDESK": "0"})
