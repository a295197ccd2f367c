"""Where to reach a customer: intents carry ids, not addresses.

A JSON file (AFTERSALE_CUSTOMER_DIRECTORY) mapping customer id -> {"email": ..., "phone": ...}.
It is re-read when the file changes, so it can be refreshed by an export job without a restart.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Which address each channel needs; push goes through the HTTP endpoint, which owns device tokens.
ADDRESS_FOR_CHANNEL = {"email": "email", "sms": "phone"}


class CustomerDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._entries: dict[str, dict] = {}
        self._stamp: tuple[float, int] | None = None
        self._load()

    def _load(self) -> None:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: expected a JSON object of customer id -> {{email, phone}}")
        self._entries = {str(k): v for k, v in data.items() if isinstance(v, dict)}
        self._stamp = stamp

    def lookup(self, customer_id: str) -> dict | None:
        try:
            self._load()
        except (OSError, ValueError) as exc:  # a half-written export: keep serving the last good copy
            log.warning("customer directory %s not reloaded: %s", self.path, exc)
        entry = self._entries.get(customer_id)
        if entry is None:
            return None
        return {k: entry[k] for k in ("email", "phone") if isinstance(entry.get(k), str) and entry[k].strip()}
