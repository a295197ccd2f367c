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

The same table places AfterShip checkpoints, whose local times often carry no offset
(`known_zone`, with countries as ISO alpha-3 codes or English names through `country_code`).
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


# ISO 3166 alpha-3 codes and English names of the countries above, for providers that name a
# country so (AfterShip checkpoints: country_iso3 / country_name).
_ALPHA3_NAMES = {
    "AT": ("AUT", "Austria"),
    "BE": ("BEL", "Belgium"),
    "BG": ("BGR", "Bulgaria"),
    "CH": ("CHE", "Switzerland"),
    "CY": ("CYP", "Cyprus"),
    "CZ": ("CZE", "Czechia", "Czech Republic"),
    "DE": ("DEU", "Germany"),
    "DK": ("DNK", "Denmark"),
    "EE": ("EST", "Estonia"),
    "ES": ("ESP", "Spain"),
    "FI": ("FIN", "Finland"),
    "FR": ("FRA", "France"),
    "GB": ("GBR", "United Kingdom", "Great Britain", "UK"),
    "GR": ("GRC", "Greece"),
    "HR": ("HRV", "Croatia"),
    "HU": ("HUN", "Hungary"),
    "IE": ("IRL", "Ireland"),
    "IS": ("ISL", "Iceland"),
    "IT": ("ITA", "Italy"),
    "LI": ("LIE", "Liechtenstein"),
    "LT": ("LTU", "Lithuania"),
    "LU": ("LUX", "Luxembourg"),
    "LV": ("LVA", "Latvia"),
    "MT": ("MLT", "Malta"),
    "NL": ("NLD", "Netherlands", "The Netherlands"),
    "NO": ("NOR", "Norway"),
    "PL": ("POL", "Poland"),
    "PT": ("PRT", "Portugal"),
    "RO": ("ROU", "Romania"),
    "SE": ("SWE", "Sweden"),
    "SI": ("SVN", "Slovenia"),
    "SK": ("SVK", "Slovakia"),
    "TR": ("TUR", "Turkey", "Türkiye"),
    "UA": ("UKR", "Ukraine"),
    "AE": ("ARE", "United Arab Emirates"),
    "CN": ("CHN", "China"),
    "HK": ("HKG", "Hong Kong"),
    "IL": ("ISR", "Israel"),
    "IN": ("IND", "India"),
    "JP": ("JPN", "Japan"),
    "KR": ("KOR", "South Korea", "Korea, Republic of"),
    "MY": ("MYS", "Malaysia"),
    "PH": ("PHL", "Philippines"),
    "SA": ("SAU", "Saudi Arabia"),
    "SG": ("SGP", "Singapore"),
    "TH": ("THA", "Thailand"),
    "TW": ("TWN", "Taiwan"),
    "ZA": ("ZAF", "South Africa"),
    "NZ": ("NZL", "New Zealand"),
    "AR": ("ARG", "Argentina"),
    "CL": ("CHL", "Chile"),
    "CO": ("COL", "Colombia"),
    "PE": ("PER", "Peru"),
    "US": ("USA", "United States", "United States of America", "USA"),
    "CA": ("CAN", "Canada"),
    "AU": ("AUS", "Australia"),
    "MX": ("MEX", "Mexico"),
    "BR": ("BRA", "Brazil"),
}
_COUNTRY_ALIASES = {alias.upper(): code for code, aliases in _ALPHA3_NAMES.items() for alias in aliases}


def country_code(value) -> str | None:
    """ISO 3166 alpha-2 from alpha-2, alpha-3 or an English name; None when not recognised.
    An unknown two-letter value is kept as it is (AFTERSALE_TIME_ZONES may know it)."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().upper()
    if value in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[value]
    return value if len(value) == 2 and value.isalpha() else None


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
        return self.known_zone(country, province) or self.default

    def known_zone(self, country: str | None, province: str | None = None) -> str | None:
        """The zone of a country (ISO alpha-2) and province, None when the table does not know it."""
        country = (country or "").strip().upper()
        province = (province or "").strip().upper()
        # Shopify sends "US" + "CA"; some platforms send ISO 3166-2 "US-CA" as the province.
        if province.startswith(f"{country}-"):
            province = province[len(country) + 1 :]
        region = f"{country}-{province}" if province else None
        for table in (self.overrides, REGION_ZONES):
            if region and region in table:
                return table[region]
        return self.overrides.get(country) or COUNTRY_ZONES.get(country)
