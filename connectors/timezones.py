"""A default IANA time zone for a shipping address, since Shopify sends none.

The engine needs the customer's zone (quiet hours, local days). We derive it from the shipping
address: first the province/state for countries that span several zones, then the country. The
table is deliberately small: it covers the countries where one zone is right for (nearly) everyone,
and splits the multi-zone ones (US, CA, AU, MX, BR, and the Spanish and Portuguese islands) by state
or province, choosing the zone of most people where a state is itself split. Anything else falls
back to the default zone.

Override or extend it with AFTERSALE_TIME_ZONES, a JSON object of "CC" or "CC-PROVINCE" to zone,
e.g. {"US-AZ": "America/Phoenix", "PT-20": "Atlantic/Azores"}; the fallback is
AFTERSALE_DEFAULT_TIME_ZONE (default UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COUNTRY_ZONES = {
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "CH": "Europe/Zurich",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IS": "Atlantic/Reykjavik",
    "IT": "Europe/Rome",
    "LI": "Europe/Vaduz",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "SE": "Europe/Stockholm",
    "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava",
    "TR": "Europe/Istanbul",
    "UA": "Europe/Kyiv",
    "AE": "Asia/Dubai",
    "CN": "Asia/Shanghai",
    "HK": "Asia/Hong_Kong",
    "IL": "Asia/Jerusalem",
    "IN": "Asia/Kolkata",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "MY": "Asia/Kuala_Lumpur",
    "PH": "Asia/Manila",
    "SA": "Asia/Riyadh",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
    "TW": "Asia/Taipei",
    "ZA": "Africa/Johannesburg",
    "NZ": "Pacific/Auckland",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "CO": "America/Bogota",
    "PE": "America/Lima",
    # Multi-zone countries: the zone of most people, refined by REGION_ZONES below.
    "US": "America/New_York",
    "CA": "America/Toronto",
    "AU": "Australia/Sydney",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
}

_US = {
    "America/Chicago": "AL AR IA IL KS LA MN MO MS ND NE OK SD TN TX WI",
    "America/Denver": "CO ID MT NM UT WY",
    "America/Phoenix": "AZ",
    "America/Los_Angeles": "CA NV OR WA",
    "America/Anchorage": "AK",
    "Pacific/Honolulu": "HI",
    "America/Puerto_Rico": "PR VI",
}
_CA = {
    "America/Vancouver": "BC",
    "America/Edmonton": "AB NT",
    "America/Regina": "SK",
    "America/Winnipeg": "MB",
    "America/Halifax": "NS NB PE",
    "America/St_Johns": "NL",
    "America/Whitehorse": "YT",
    "America/Iqaluit": "NU",
}
_AU = {
    "Australia/Brisbane": "QLD",
    "Australia/Adelaide": "SA",
    "Australia/Darwin": "NT",
    "Australia/Perth": "WA",
    "Australia/Hobart": "TAS",
}
_MX = {"America/Tijuana": "BC", "America/Hermosillo": "SON", "America/Cancun": "ROO", "America/Mazatlan": "BCS SIN NAY"}
_BR = {"America/Manaus": "AM RR RO", "America/Cuiaba": "MT MS", "America/Belem": "PA AP", "America/Rio_Branco": "AC"}
_ES = {"Atlantic/Canary": "CN GC TF"}
_PT = {"Atlantic/Azores": "20", "Atlantic/Madeira": "30"}

REGION_ZONES = {
    f"{country}-{code}": zone
    for country, table in (("US", _US), ("CA", _CA), ("AU", _AU), ("MX", _MX), ("BR", _BR), ("ES", _ES), ("PT", _PT))
    for zone, codes in table.items()
    for code in codes.split()
}


def check_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {zone!r}") from None
    return zone


@dataclass(frozen=True)
class ZoneTable:
    overrides: dict = field(default_factory=dict)  # "CC" or "CC-PROVINCE" -> zone, checked first
    default: str = "UTC"

    def __post_init__(self) -> None:
        for zone in (*self.overrides.values(), self.default):
            check_zone(zone)

    def zone_for(self, country: str | None, province: str | None = None) -> str:
        country = (country or "").strip().upper()
        province = (province or "").strip().upper()
        # Shopify sends "US" + "CA"; some platforms send ISO 3166-2 "US-CA" as the province.
        if province.startswith(f"{country}-"):
            province = province[len(country) + 1 :]
        region = f"{country}-{province}" if province else None
        for table in (self.overrides, REGION_ZONES):
            if region and region in table:
                return table[region]
        return self.overrides.get(country) or COUNTRY_ZONES.get(country) or self.default
