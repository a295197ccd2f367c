"""Transit times learned online per lane, as distributions (histograms of business days), with
fallbacks to coarser lanes when a lane has seen too few deliveries.

A lane is (carrier, service level, origin region, destination region). Every delivered shipment
adds its transit time (first carrier scan to delivery, business days) to its lane and to each
coarser lane, so a new lane borrows the shape of its carrier's network until it has data of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

BUCKET_DAYS = 0.25  # resolution of the histogram
BUCKETS = 80  # 0 .. 20 business days; longer transits land in the last bucket
MIN_SAMPLES = 20  # fewer than this and the next coarser lane is used
DECAY_AT = 4000  # counts are halved past this total, so the lane follows recent behaviour


@lru_cache(maxsize=4096)  # few distinct lanes, asked for on every scan and delay re-check
def lane_keys(carrier: str | None, service: str | None, origin: str | None, destination: str | None) -> tuple[str, ...]:
    """From the most specific lane to the global one. An unknown origin or destination is no lane
    of its own (every parcel without one would share it): those levels are left out, so such a
    parcel falls back to its carrier's service-wide lane (see lane_known)."""
    c, s, o, d = carrier or "?", service or "?", origin or "?", destination or "?"
    keys = (f"{c}|{s}|{o}|{d}",) if origin and destination else ()
    keys += (f"{c}|{s}|*|{d}",) if destination else ()
    return keys + (f"{c}|{s}|*|*", f"{c}|*|*|*", "*|*|*|*")


def lane_known(origin: str | None, destination: str | None) -> bool:
    return bool(origin and destination)


@dataclass(slots=True)
class LaneStats:
    counts: list[float]
    total: float = 0.0
    _below: list[float] | None = field(default=None, repr=False, compare=False)  # prefix sums, built on first use

    @classmethod
    def empty(cls) -> "LaneStats":
        return cls([0.0] * BUCKETS, 0.0)

    @classmethod
    def from_dict(cls, data: dict | None) -> "LaneStats":
        return cls(list(data["counts"]), data["total"]) if data else cls.empty()

    def to_dict(self) -> dict:
        return {"counts": self.counts, "total": self.total}

    def add(self, transit_days: float) -> None:
        if self.total >= DECAY_AT:
            self.counts = [c / 2 for c in self.counts]
            self.total /= 2
        index = min(BUCKETS - 1, max(0, int(transit_days / BUCKET_DAYS)))
        self.counts[index] += 1
        self.total += 1
        self._below = None

    def _prefix(self) -> list[float]:
        """Prefix sums (below[i] = sum(counts[:i]), added left to right as sum does: identical
        results), computed once per stats object."""
        if self._below is None:
            self._below = list(accumulate(self.counts, initial=0.0))
        return self._below

    def survival(self, days: float) -> float:
        """P(transit > days), linear inside a bucket."""
        if self.total <= 0:
            return 1.0
        if days < 0:
            return 1.0
        position = days / BUCKET_DAYS
        index = int(position)
        if index >= BUCKETS:
            return 0.0
        below = self._prefix()[index] + self.counts[index] * (position - index)
        return max(0.0, 1.0 - below / self.total)

    def quantile_after(self, elapsed: float, q: float) -> float:
        """The q-quantile of transit time given it already exceeds `elapsed` business days."""
        s_elapsed = self.survival(elapsed)
        if s_elapsed <= 0:
            return elapsed
        target = s_elapsed * (1 - q)  # survival level to find
        lo, hi = max(0.0, elapsed), BUCKETS * BUCKET_DAYS
        below, counts, total = self._prefix(), self.counts, self.total
        if total <= 0:  # no data: survival is 1 everywhere (the inlined formula would divide by 0)
            for _ in range(40):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if 1.0 > target else (lo, mid)
            return hi
        # survival(mid) > target, inlined with the same arithmetic (this loop is the delay model's
        # hot spot); survival's floor at 0 only matters for a negative target.
        width, buckets, floor_above = BUCKET_DAYS, BUCKETS, 0.0 > target
        for _ in range(40):  # bisection on the monotone survival function
            mid = (lo + hi) / 2
            position = mid / width
            index = int(position)
            if floor_above or (
                index < buckets and 1.0 - (below[index] + counts[index] * (position - index)) / total > target
            ):
                lo = mid
            else:
                hi = mid
        return hi


def pick(stats: dict[str, LaneStats], keys: tuple[str, ...]) -> tuple[str, LaneStats] | None:
    """The most specific lane with enough deliveries, or None."""
    for key in keys:
        lane = stats.get(key)
        if lane is not None and lane.total >= MIN_SAMPLES:
            return key, lane
    return None
