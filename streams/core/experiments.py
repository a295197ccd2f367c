"""Experiments: holdouts, global control groups, message variants, send-time arms and bandits.

Each experiment splits units (customers, or orders) into arms by a hash of its salt and the unit id:
the same arm on every replay and every worker, with nothing stored. What an arm does:
- `hold`: the messages the experiment covers are not sent in this arm. They are audited `held_out`
  with the experiment and arm, at the point where they would have gone out (after consent, guards,
  quiet hours and caps), so the arm's outcome is comparable. A global control group holds every
  marketing message; a message holdout a few intent types. Transactional news is never held.
- `send_time`: "learned" (messages that can wait go out in the customer's best hour, send_time.py)
  or "fixed" (at the planned hour).
- otherwise a variant: the arm's name goes out on the intent (`experiment`, `arm`) for the sender to
  render (an incentive or not, one copy or another).
A variant experiment with `policy = "thompson"` picks the arm per message by Thompson sampling over
the measured reward (a review, a click or an order within `reward_days`), seeded per message so that
a replay picks the same arms; each pick says on the intent whether it explored or exploited.

Outcomes (`outcomes()`): what happened to each arm's units, counted once per input the customer stage
takes for the first time: orders, WISMO tickets, reviews and ratings, unsubscribes, repeat purchases.
`summarise()` turns the counts into rates with 95% intervals and differences from the control arm.
The experiments come from a TOML file (docs/experiments.md); `parse()` checks it.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from .model import MessageIntent

DAY = 86_400_000
UNITS = ("customer", "order")
POLICIES = ("hash", "thompson")
REWARDS = ("review", "click", "order")
SEND_TIMES = ("learned", "fixed")
# `messages` may name intent types, or these groups.
MARKETING = "marketing"  # every marketing message
CAN_WAIT = "can_wait"  # every message that can wait for the customer's best hour (send_time.can_wait)
Z95 = 1.959964


class ExperimentConfigError(ValueError):
    """An experiments file that cannot be run: says which experiment and what is wrong."""


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    weight: float
    hold: bool = False
    send_time: str | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    arms: tuple[Arm, ...]
    messages: frozenset[str]
    unit: str = "customer"
    policy: str = "hash"
    reward: str = "review"
    reward_days: int = 14
    repeat_days: int = 90
    start: int | None = None  # epoch ms (event time); None: from the start
    end: int | None = None
    salt: str = ""
    seed: int = 0

    @property
    def control(self) -> Arm:
        """The arm others are compared with: the held-back arm, else the fixed send time, else the first."""
        for arm in self.arms:
            if arm.hold or arm.send_time == "fixed":
                return arm
        return self.arms[0]

    @property
    def kind(self) -> str:
        if any(a.hold for a in self.arms):
            return "holdout"
        if any(a.send_time for a in self.arms):
            return "send_time"
        return "bandit" if self.policy == "thompson" else "variant"

    def active(self, now: int) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def covers(self, intent: MessageIntent, can_wait: bool) -> bool:
        m = self.messages
        return (
            intent.intent_type in m or (MARKETING in m and intent.kind == "marketing") or (CAN_WAIT in m and can_wait)
        )


# --- assignment --------------------------------------------------------------------------------


def bucket(experiment: Experiment, unit_id: str) -> float:
    """Where the unit falls in [0, 1): sha1 of the salt and the unit, stable everywhere."""
    digest = hashlib.sha1(f"{experiment.salt or experiment.id}|{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, unit_id: str) -> Arm:
    """The unit's arm, by the arms' weights."""
    point = bucket(experiment, unit_id) * sum(a.weight for a in experiment.arms)
    for arm in experiment.arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    return experiment.arms[-1]


def unit_of(experiment: Experiment, customer_id: str, order_id: str | None) -> str:
    """Order experiments split orders; a message about no order falls back to its customer."""
    return order_id if experiment.unit == "order" and order_id else customer_id


def memberships(
    experiments: tuple[Experiment, ...], intent: MessageIntent, now: int, can_wait: bool
) -> list[tuple[Experiment, Arm | None]]:
    """The active experiments that cover this message, each with its hashed arm (None for a
    Thompson-sampled experiment: its arm is picked when the message goes out)."""
    out = []
    for exp in experiments:
        if exp.active(now) and exp.covers(intent, can_wait):
            arm = None if exp.policy == "thompson" else assign(exp, unit_of(exp, intent.customer_id, intent.order_id))
            out.append((exp, arm))
    return out


# --- Thompson sampling ---------------------------------------------------------------------------


def bandit_key(experiment: Experiment) -> str:
    return f"bandit:{experiment.id}"


def thompson(experiment: Experiment, counts: dict | None, message_id: str) -> tuple[Arm, bool]:
    """Pick an arm: a draw from each arm's Beta(1 + successes, 1 + failures), the highest wins.
    Seeded by the experiment's seed and the message, so a replay draws the same. Returns the arm
    and whether it explored (was not the arm with the best mean so far)."""
    counts = counts or {}
    seed = int.from_bytes(hashlib.sha1(f"{experiment.seed}|{experiment.id}|{message_id}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    best, best_draw, means = None, -1.0, {}
    for arm in experiment.arms:
        trials, wins = counts.get(arm.name, (0, 0))
        a, b = 1 + wins, 1 + max(0, trials - wins)
        means[arm.name] = a / (a + b)
        draw = rng.betavariate(a, b)
        if draw > best_draw:
            best, best_draw = arm, draw
    greedy = max(experiment.arms, key=lambda arm: means[arm.name]).name
    return best, best.name != greedy


# --- outcomes ------------------------------------------------------------------------------------

# What is counted per arm (outcome name -> what it is); rates are in summarise().
OUTCOMES = {
    "units": "customers seen while it runs, or orders placed while it runs",
    "orders": "orders placed",
    "wismo_orders": "orders with a where-is-my-order ticket",
    "tickets": "support tickets opened",
    "delivered": "orders delivered",
    "reviewed": "delivered orders reviewed",
    "ratings": "ratings given",
    "rating_sum": "sum of ratings",
    "rating_sq": "sum of squared ratings",
    "unsubscribed": "customers who unsubscribed",
    "repeat": "customers who ordered again within repeat_days of their first order",
    "sent": "messages of the experiment sent",
    "held_out": "messages of the experiment held out",
    "rewarded": "Thompson-sampled messages followed by their reward within reward_days",
}


def arm_for_unit(experiment: Experiment, customer_id: str, order_id: str | None) -> Arm | None:
    """The unit's arm for outcome counting (order experiments need the order)."""
    if experiment.policy == "thompson":
        return None  # arms are per message: outcomes are the bandit's own counts
    if experiment.unit == "order" and not order_id:
        return None
    return assign(experiment, unit_of(experiment, customer_id, order_id))


def count(
    out: list,
    experiments: tuple[Experiment, ...],
    now: int,
    customer_id: str,
    order_id: str | None,
    pairs: tuple[tuple[str, float], ...],
    unit: str | None = None,
) -> None:
    """Add (experiment, arm, outcome, value) for each (outcome, value) pair and every active
    experiment (of `unit` only, when given), under the arm of the unit the input is about."""
    for exp in experiments:
        if (unit is not None and exp.unit != unit) or not exp.active(now):
            continue
        arm = arm_for_unit(exp, customer_id, order_id)
        if arm is not None:
            out.extend((exp.id, arm.name, outcome, value) for outcome, value in pairs)


# --- intervals -----------------------------------------------------------------------------------


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float, float]:
    """A proportion and its Wilson score interval (good at small counts and near 0 or 1)."""
    if n <= 0:
        return (math.nan, math.nan, math.nan)
    p = min(max(k / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """The difference a - b of two Wilson proportions with Newcombe's hybrid score interval."""
    (p1, l1, u1), (p2, l2, u2) = a, b
    if math.isnan(p1) or math.isnan(p2):
        return (math.nan, math.nan, math.nan)
    d = p1 - p2
    return (d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def mean_interval(total: float, squares: float, n: float, z: float = Z95) -> tuple[float, float, float]:
    if n <= 1:
        return (total / n if n else math.nan, math.nan, math.nan)
    mean = total / n
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = z * math.sqrt(var / n)
    return (mean, mean - half, mean + half)


# Rates per arm: name -> (numerator, denominator, what it is per).
RATES = {
    "wismo_per_100_orders": ("wismo_orders", "orders", 100),
    "review_rate": ("reviewed", "delivered", 1),
    "unsubscribe_rate": ("unsubscribed", "units", 1),
    "repeat_rate": ("repeat", "units", 1),
}
BANDIT_RATES = {"reward_rate": ("rewarded", "sent", 1)}  # Thompson-sampled arms are per message


def summarise(counts: dict[tuple[str, str, str], float], experiments: tuple[Experiment, ...]) -> list[dict]:
    """Per experiment and arm: the counts, each rate with its 95% interval, the mean rating, and each
    rate's difference from the control arm with its interval. `counts`: (experiment, arm, outcome) ->
    total. Rates are proportions (orders with a WISMO ticket per 100 orders, delivered orders reviewed,
    customers who unsubscribed or bought again); customer rates only for customer experiments."""
    rows = []
    for exp in experiments:
        control = exp.control.name
        per_arm = {}
        for arm in exp.arms:
            c = {o: counts.get((exp.id, arm.name, o), 0) for o in OUTCOMES}
            rates = {}
            for name, (num, den, scale) in (BANDIT_RATES if exp.policy == "thompson" else RATES).items():
                if exp.unit == "order" and num in ("unsubscribed", "repeat"):
                    continue
                rates[name] = (wilson(min(c[num], c[den]), c[den]), scale)
            per_arm[arm.name] = (c, rates)
        for arm in exp.arms:
            c, rates = per_arm[arm.name]
            row = {
                "experiment": exp.id,
                "kind": exp.kind,
                "unit": exp.unit,
                "arm": arm.name,
                "control": arm.name == control,
                "weight": arm.weight,
                "counts": c,
                "rates": {},
                "mean_rating": mean_interval(c["rating_sum"], c["rating_sq"], c["ratings"]),
            }
            for name, (interval, scale) in rates.items():
                entry = {"value": [v * scale for v in interval]}
                if arm.name != control and name in per_arm[control][1]:
                    diff = newcombe(interval, per_arm[control][1][name][0])
                    entry["diff_vs_control"] = [v * scale for v in diff]
                row["rates"][name] = entry
            rows.append(row)
    return rows


# --- the experiments file ------------------------------------------------------------------------


def _time(value, where: str) -> int | None:
    from datetime import date, datetime, timezone

    if value is None:
        return None
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp() * 1000)
    raise ExperimentConfigError(f"{where}: not a date or date-time: {value!r}")


def parse(data: dict) -> tuple[Experiment, ...]:
    """Experiments from the parsed TOML (`[[experiment]]` tables); raises ExperimentConfigError."""
    known = {
        "id",
        "arms",
        "messages",
        "unit",
        "policy",
        "reward",
        "reward_days",
        "repeat_days",
        "start",
        "end",
        "salt",
        "seed",
        "description",
    }
    out, seen = [], set()
    for n, raw in enumerate(data.get("experiment") or ()):
        where = f"experiment #{n + 1} ({raw.get('id', '?')})"
        unknown = set(raw) - known
        if unknown:
            raise ExperimentConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        exp_id = str(raw.get("id") or "")
        if not exp_id or exp_id in seen or ":" in exp_id:
            raise ExperimentConfigError(f"{where}: needs a unique id without ':'")
        seen.add(exp_id)
        arms = []
        for a in raw.get("arms") or ():
            extra = set(a) - {"name", "weight", "hold", "send_time"}
            if extra or not a.get("name") or not isinstance(a.get("weight"), (int, float)) or a["weight"] <= 0:
                raise ExperimentConfigError(
                    f"{where}: each arm needs a name and a weight > 0 (and may say hold or send_time)"
                )
            if a.get("send_time") not in (None, *SEND_TIMES):
                raise ExperimentConfigError(f"{where}: arm {a['name']}: send_time is one of {SEND_TIMES}")
            arms.append(Arm(str(a["name"]), float(a["weight"]), bool(a.get("hold", False)), a.get("send_time")))
        if len(arms) < 2 or len({a.name for a in arms}) != len(arms):
            raise ExperimentConfigError(f"{where}: needs at least two arms with distinct names")
        send_time = any(a.send_time for a in arms)
        if send_time and not all(a.send_time for a in arms):
            raise ExperimentConfigError(f"{where}: a send-time experiment gives every arm a send_time")
        messages = raw.get("messages") or ([CAN_WAIT] if send_time else [])
        if not messages:
            raise ExperimentConfigError(
                f"{where}: say which messages it covers (intent types, 'marketing' or 'can_wait')"
            )
        unit = raw.get("unit", "customer")
        policy = raw.get("policy", "hash")
        reward = raw.get("reward", "review")
        if unit not in UNITS or policy not in POLICIES or reward not in REWARDS:
            raise ExperimentConfigError(f"{where}: unit in {UNITS}, policy in {POLICIES}, reward in {REWARDS}")
        if policy == "thompson" and (send_time or any(a.hold for a in arms)):
            raise ExperimentConfigError(
                f"{where}: Thompson sampling chooses between variants, not holdouts or send times"
            )
        out.append(
            Experiment(
                id=exp_id,
                arms=tuple(arms),
                messages=frozenset(messages),
                unit=unit,
                policy=policy,
                reward=reward,
                reward_days=int(raw.get("reward_days", 14)),
                repeat_days=int(raw.get("repeat_days", 90)),
                start=_time(raw.get("start"), where),
                end=_time(raw.get("end"), where),
                salt=str(raw.get("salt") or ""),
                seed=int(raw.get("seed", 0)),
            )
        )
    return tuple(out)


def loads(text: str) -> tuple[Experiment, ...]:
    import tomllib

    try:
        return parse(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ExperimentConfigError(f"not valid TOML: {e}") from None
