"""Prices, quotes, charges and the surge multiplier (docs/economy.md §1 amounts, §2 surge).

Pure: no networking, no trio, no clock of its own (every time is passed in), so the daemon and
the market simulation (tests/benchmarks/sim_market.py) run exactly this code.

Amounts are integers in micro-tokens (1 $9000 = 10**6). Floats appear only for the surge
multiplier, which is converted to an integer number of thousandths (`surge_milli`) before it
touches an amount.

Kinds, their units, how many units one base price buys and the default prices are defined once,
in federation/kinds.py.

A per-model price overrides the kind's: key "KIND@MODEL" (and "vision.request@MODEL").

Rounding: a price is the exact rational
    (fixed + base * units / per) * surge_milli / 1000
computed with integers only and rounded UP once, at the very end, to a whole micro-token. So a
quote is never below the exact price and at most 1 micro-token above it; zero units cost only the
fixed part (the vision request price).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import kinds as _kinds
from .kinds import (ASSUMED_AUDIO_BYTES_PER_S, DEFAULT_MAX_AUDIO_S, DEFAULT_MAX_TOKENS, REF_IMAGE_PIXEL_STEPS,
                    UnitsError, audio_seconds)

KINDS = _kinds.KIND_NAMES
PER_UNITS: dict[str, int] = {k.name: k.per for k in _kinds.KINDS.values()}  # units one base price buys
UNIT_NAMES = {k.name: k.unit for k in _kinds.KINDS.values()}
DEFAULT_PRICES: dict[str, int] = _kinds.default_prices()  # the grid realm's defaults (µ per price unit)

MAX_PRICE = 10**12  # the caps validator's bound for one announced price
PEAK_KEY = "peak"  # peaking threshold in the announcement's price map, in thousandths (2.5x -> 2500)
REQUEST_SUFFIX = ".request"


class PriceError(ValueError):
    """A price or price override that cannot be accepted; the message says what and why."""


# ------------------------------------------------------------------------------------ surge math

def surge_milli(surge: float) -> int:
    """The surge multiplier as an integer number of thousandths (1.5 -> 1500). At least 1000."""
    if isinstance(surge, bool) or not isinstance(surge, (int, float)) or not math.isfinite(surge):
        raise PriceError(f"surge must be a finite number, got {surge!r}")
    return max(1000, int(round(surge * 1000)))


def round_half(x: float) -> float:
    """Round to the nearest 0.5 (halves round up: 1.25 -> 1.5)."""
    return math.floor(x * 2 + 0.5) / 2


def apply_surge(base: int, surge: float) -> int:
    """base x surge in micro-tokens, rounded up. The routing price and the worker's quote both
    use this, so a broker's expectation and a worker's quote agree exactly."""
    return -(-int(base) * surge_milli(surge) // 1000)


# ------------------------------------------------------------------------------------ units

def estimate_units(kind: str, params: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None) -> int:
    """Units to quote for, before the work runs (federation/kinds.py says how, per kind)."""
    try:
        return _kinds.kind(kind).estimate(params, inputs)
    except UnitsError as e:
        raise PriceError(str(e)) from None


def _nonneg_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise PriceError(f"{name} must be a whole number >= 0, got {v!r}")
    return math.ceil(v)


# ------------------------------------------------------------------------------------ price table

def _check_price(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PriceError(f"price {key}={value!r} must be a whole number of micro-tokens")
    if not 0 <= value <= MAX_PRICE:
        raise PriceError(f"price {key}={value} is out of range [0, {MAX_PRICE}] micro-tokens")
    return value


def _split_key(key: str) -> tuple[str, str | None]:
    """'chat@m' -> ('chat', 'm'); 'vision.request' -> ('vision.request', None)."""
    kind, _, model = key.partition("@")
    base_kind = kind[: -len(REQUEST_SUFFIX)] if kind.endswith(REQUEST_SUFFIX) else kind
    if base_kind not in KINDS or (kind != base_kind and not _kinds.KINDS[base_kind].default_request_price):
        allowed = ", ".join(KINDS + tuple(f"{k.name}.request" for k in _kinds.KINDS.values() if k.default_request_price))
        raise PriceError(f"unknown price key {key!r}: the kind must be one of {allowed} (optionally @MODEL)")
    if "@" in key and not model:
        raise PriceError(f"price key {key!r} has an empty model name after '@'")
    return kind, model or None


@dataclass(frozen=True)
class PriceTable:
    """A worker's base prices: micro-tokens per price unit, per kind, optionally per model.

    `prices` maps "KIND", "vision.request" and "KIND@MODEL" to micro-tokens. A kind with no price
    is free (0), which is what a private realm without a token wants.
    """

    prices: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def __post_init__(self) -> None:
        clean = {}
        for k, v in dict(self.prices).items():
            if not isinstance(k, str):
                raise PriceError(f"price key {k!r} must be a string")
            _split_key(k)
            clean[k] = _check_price(k, v)
        object.__setattr__(self, "prices", clean)

    # ---- lookups
    def base(self, kind: str, model: str | None = None) -> int:
        """Micro-tokens per price unit (per 1k tokens, per reference image, per minute...)."""
        if kind not in KINDS:
            raise PriceError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if model is not None and f"{kind}@{model}" in self.prices:
            return self.prices[f"{kind}@{model}"]
        return self.prices.get(kind, 0)

    def fixed(self, kind: str, model: str | None = None) -> int:
        """The per-request part of a price (kinds with a request price: vision)."""
        if kind not in _kinds.KINDS or not _kinds.KINDS[kind].default_request_price:
            return 0
        if model is not None and f"{kind}.request@{model}" in self.prices:
            return self.prices[f"{kind}.request@{model}"]
        return self.prices.get(f"{kind}.request", 0)

    # ---- prices
    def price(self, kind: str, units: int, surge: float = 1.0, model: str | None = None) -> int:
        """(fixed + base x units / per) x surge, integers only, rounded up once (see module doc)."""
        units = _nonneg_int(units, "units")
        per = PER_UNITS[kind] if kind in PER_UNITS else None
        if per is None:
            raise PriceError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        numerator = (self.fixed(kind, model) * per + self.base(kind, model) * units) * surge_milli(surge)
        return -(-numerator // (per * 1000))

    def base_quote(self, kind: str, units: int, model: str | None = None) -> int:
        """The price at surge 1 (what a router multiplies by a peer's announced surge)."""
        return self.price(kind, units, 1.0, model)

    def quote(self, kind: str, params: Mapping[str, Any] | None = None, estimated_units: int | None = None,
              surge: float = 1.0, *, model: str | None = None, inputs: Mapping[str, Any] | None = None) -> int:
        """Micro-tokens the worker asks before the work: price(kind, estimated units, surge).

        estimated_units None: estimate_units(kind, params, inputs). The requester holds this
        amount; the final charge is never above it.
        """
        if estimated_units is None:
            estimated_units = estimate_units(kind, params, inputs)
        return self.price(kind, estimated_units, surge, model)

    def charge(self, kind: str, actual_units: int, quoted_surge: float, *, quoted: int,
               model: str | None = None) -> int:
        """The final price: actual units at the surge of the accepted quote, never above `quoted`."""
        return min(int(quoted), self.price(kind, actual_units, quoted_surge, model))

    def max_charge(self, kind: str, quoted: int, units: int, estimated: int, model: str | None = None) -> int:
        """The most a payer owes for `units` of work it accepted at `quoted` for `estimated` units,
        whatever surge the worker applied: price(u, s) = ceil(N(u)·s/K) and quoted >= N(est)·s/K
        give price(u, s) <= ceil(quoted·N(u)/N(est)), with N(u) = fixed·per + base·u. Never above
        `quoted`. The broker checks a worker's receipt against this (docs/protocol.md §7)."""
        quoted, units, estimated = int(quoted), _nonneg_int(units, "units"), _nonneg_int(estimated, "estimated")
        per = PER_UNITS.get(kind)
        if per is None:
            raise PriceError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        fixed, base = self.fixed(kind, model) * per, self.base(kind, model)
        n_est = fixed + base * estimated
        if n_est <= 0 or units >= estimated:
            return max(0, quoted)
        return max(0, min(quoted, -(-quoted * (fixed + base * units) // n_est)))

    # ---- announcements and overrides
    def to_announcement(self, peaking_threshold: float | None = None) -> dict[str, int]:
        """The `prices` map for the capability announcement (caps.py: str -> int, <= 16 keys).

        A peaking threshold rides along as PEAK_KEY in thousandths, because caps.py keeps only
        its known fields.
        """
        out = dict(self.prices)
        if peaking_threshold is not None and peaking_threshold > 1:
            out[PEAK_KEY] = surge_milli(peaking_threshold)
        if len(out) > 16:
            raise PriceError(f"{len(out)} price entries; an announcement carries at most 16")
        return out

    @classmethod
    def from_announcement(cls, prices: Mapping[str, Any]) -> "PriceTable":
        """A peer's table from its announced `prices` (unknown keys, e.g. PEAK_KEY, are ignored)."""
        clean = {}
        for k, v in (prices or {}).items():
            try:
                _split_key(k)
            except (PriceError, TypeError, AttributeError):
                continue
            clean[k] = v
        return cls(clean)

    def with_overrides(self, overrides: Mapping[str, int]) -> "PriceTable":
        return PriceTable({**self.prices, **overrides})


def peaking_threshold_from_announcement(prices: Mapping[str, Any]) -> float | None:
    """The peaking threshold a peer announced (None: not a peaking worker)."""
    v = (prices or {}).get(PEAK_KEY)
    if isinstance(v, int) and not isinstance(v, bool) and v > 1000:
        return v / 1000
    return None


def parse_price(text: str) -> tuple[str, int]:
    """Parse one `--price KIND=MICROTOKENS` (KIND may be "vision.request" or "KIND@MODEL").

    "chat=1500" -> ("chat", 1500). Underscores are allowed in the number ("1_500"). Errors say
    what was wrong and what is allowed.
    """
    if not isinstance(text, str) or "=" not in text:
        raise PriceError(f"--price {text!r}: expected KIND=MICROTOKENS, e.g. chat=1500")
    key, _, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not key:
        raise PriceError(f"--price {text!r}: the kind is missing before '='")
    _split_key(key)
    if not value:
        raise PriceError(f"--price {text!r}: the price is missing after '='")
    try:
        amount = int(value, 10)
    except ValueError:
        raise PriceError(
            f"--price {text!r}: {value!r} is not a whole number of micro-tokens "
            f"(1 token = 1,000,000 micro-tokens; no decimals)") from None
    return key, _check_price(key, amount)


def parse_prices(texts: Iterable[str]) -> dict[str, int]:
    """Several `--price` options; a later one for the same key wins."""
    out: dict[str, int] = {}
    for t in texts:
        k, v = parse_price(t)
        out[k] = v
    return out


# ------------------------------------------------------------------------------------ surge meter

def accepts_work(surge: float, threshold: float | None) -> bool:
    """A peaking worker takes work only while its surge is at or above its threshold."""
    return threshold is None or threshold <= 1 or surge >= threshold


def market_surge(surges: Iterable[float]) -> float:
    """The market's surge as a peaking worker sees it: the median announced surge of the fresh
    peers serving its kind (1.0 when it sees none)."""
    s = sorted(x for x in surges if isinstance(x, (int, float)) and math.isfinite(x))
    if not s:
        return 1.0
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def peaking_surge(own: float, market: float, cap: float = 10.0) -> float:
    """What a peaking worker announces: the higher of its own surge and the market's, on the
    0.5 grid, capped. An idle peaker thus joins at the price level the market has reached."""
    return min(cap, max(1.0, own, round_half(market)))


# Peaking thresholds per kind (the founding white paper): a peaking worker joins a kind's market
# only while that market's surge is at least this; above PRIORITY_SURGE every peaking worker joins.
DEFAULT_PEAK_THRESHOLDS = {"chat": 1.5, "vision": 2.5, "imagine": 2.0, "transcribe": 2.0, "speak": 2.0}
PRIORITY_SURGE = 3.0


@dataclass(frozen=True)
class PeakingPolicy:
    """When a peaking worker takes work: the one code path of the daemon (mtor_node/network.py)
    and the market simulation (tests/benchmarks/sim_market.py).

    The worker announces `announced(own, market)`: the higher of its own surge and the market's
    (median surge announced by the fresh peers serving its kinds), so an idle peaker offers at the
    price level the market reached; it takes an intent of `kind` while `accepts(kind, announced,
    market)`: announced >= the kind's threshold, or the market >= the priority override."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PEAK_THRESHOLDS))
    priority: float = PRIORITY_SURGE

    @classmethod
    def from_setting(cls, peaking: float, priority: float = PRIORITY_SURGE) -> "PeakingPolicy | None":
        """`prices.peaking`: 0 = not a peaking worker; 1 = the per-kind defaults (chat 1.5,
        imagine 2.0, vision 2.5, transcribe and speak 2.0); > 1 = that threshold for every kind."""
        if not peaking or peaking < 1:
            return None
        if peaking == 1:
            return cls(priority=priority)
        return cls({k: float(peaking) for k in KINDS}, priority)

    def threshold(self, kind: str) -> float:
        return float(self.thresholds.get(kind, PRIORITY_SURGE))

    def lowest(self, kinds: Iterable[str]) -> float:
        """The threshold announced (caps carry one): the lowest of the kinds served."""
        ts = [self.threshold(k) for k in kinds]
        return min(ts) if ts else self.priority

    def announced(self, own: float, market: float, cap: float = 10.0) -> float:
        return peaking_surge(own, market, cap)

    def accepts(self, kind: str, announced: float, market: float) -> bool:
        return announced >= self.threshold(kind) or market >= self.priority


@dataclass
class SurgeConfig:
    cap: float = 10.0  # the highest multiplier (docs/economy.md §2)
    alpha: float = 0.3  # EWMA weight of one observation
    idle_half_life_s: float = 20.0  # with no observations, load decays toward 1 with this half-life
    max_step: float = 1.0  # most the announced surge moves per announcement (tick)
    window: int = 256  # per-kind samples kept for the baseline
    percentile: float = 0.10  # baseline = this percentile of per-unit service time
    min_samples: int = 3  # below this, a kind's ratio counts as 1 (no evidence of load)


class SurgeMeter:
    """A worker's surge multiplier from its own load.

    ratio of one finished intent = (service latency + queue wait) / (baseline per unit x units),
    clamped to [1, cap]. baseline per kind = `baseline` fixed by the operator if given; else the
    10th percentile of the last 256 per-unit service latencies (queue wait excluded) - a low
    percentile of what the machine does when nothing is in its way - or the `calibrate`d warm-up
    speed if that is lower or there are fewer than `min_samples` samples yet.

    load = EWMA of ratios (alpha 0.3 per observation), decaying toward 1 with a 20 s half-life
    while time passes without observations (load goes away -> surge goes back to 1). At each
    announcement `tick(now)` rounds max(load, pending) to 0.5, clamps it to [1, cap] and moves the
    announced value at most `max_step` from the previous one; `pending` is the ratio the oldest
    still-queued intent already has (so a stuck queue shows before anything finishes).
    `value()` is the announced surge: the one quotes use, the one peers see.
    """

    def __init__(self, config: SurgeConfig | None = None, *, baseline: Mapping[str, float] | None = None, **kw: Any):
        self.config = config or SurgeConfig(**kw)
        self._fixed_baseline = dict(baseline or {})
        self._prior: dict[str, float] = {}
        self._samples: dict[str, deque[float]] = {}
        self._baseline_cache: dict[str, float | None] = {}
        self._load = 1.0
        self._t = None  # time of the last observation/tick
        self._announced = 1.0
        self.observations = 0

    # ---- inputs
    def baseline(self, kind: str) -> float | None:
        """Seconds per unit when unloaded, or None while unknown."""
        if kind in self._fixed_baseline:
            return self._fixed_baseline[kind]
        if kind not in self._baseline_cache:
            s = self._samples.get(kind)
            prior = self._prior.get(kind)
            if not s or len(s) < self.config.min_samples:
                self._baseline_cache[kind] = prior
            else:
                ordered = sorted(s)
                b = ordered[min(len(ordered) - 1, int(self.config.percentile * len(ordered)))]
                self._baseline_cache[kind] = b if prior is None else min(b, prior)
        return self._baseline_cache[kind]

    def calibrate(self, kind: str, seconds_per_unit: float) -> None:
        """The unloaded speed measured at model load (a warm-up run): used from the first intent
        on, and kept as long as live samples are not lower. Without it a kind has no baseline
        (ratio 1) until `min_samples` intents finished."""
        if seconds_per_unit > 0 and math.isfinite(seconds_per_unit):
            self._prior[kind] = float(seconds_per_unit)
            self._baseline_cache.pop(kind, None)

    def _decay_to(self, now: float | None) -> None:
        if now is None:
            return
        if self._t is not None and now > self._t:
            f = 0.5 ** ((now - self._t) / self.config.idle_half_life_s)
            self._load = 1.0 + (self._load - 1.0) * f
        if self._t is None or now > self._t:
            self._t = now

    def ratio(self, kind: str, total_s: float, units: float = 1) -> float:
        b = self.baseline(kind)
        if not b or b <= 0:
            return 1.0
        return min(self.config.cap, max(1.0, total_s / (b * max(units, 1e-9))))

    def observe(self, kind: str, latency_s: float, queue_wait_s: float = 0.0, *, units: float = 1,
                now: float | None = None) -> float:
        """A finished intent: service latency (run time) and the time it waited in the queue.

        `units` = the intent's actual units (tokens, pixel-steps, seconds, chars), so a long answer
        is not mistaken for load. Returns the intent's ratio.
        """
        latency_s = max(0.0, float(latency_s))
        queue_wait_s = max(0.0, float(queue_wait_s))
        units = max(float(units), 1e-9)
        self._decay_to(now)
        if kind not in self._fixed_baseline:
            s = self._samples.setdefault(kind, deque(maxlen=self.config.window))
            s.append(latency_s / units)
            self._baseline_cache.pop(kind, None)
        r = self.ratio(kind, latency_s + queue_wait_s, units)
        self._load += self.config.alpha * (r - self._load)
        self.observations += 1
        return r

    def observe_refused(self, kind: str, *, queued: int, running: int, slots: int, units: float = 1,
                        now: float | None = None) -> float:
        """An intent this worker refused because its queue was full: the latency it would have had
        is at least (queued + running) / slots services ahead of it plus its own, so that counts
        as an observation. Without it a worker that turns work away looks no busier than one with
        a short queue, its price stays low, and every broker keeps trying it (see docs/economy.md)."""
        self._decay_to(now)
        b = self.baseline(kind)
        if not b:
            return 1.0
        service = b * max(float(units), 1e-9)
        r = self.ratio(kind, service * (1 + (queued + running) / max(1, slots)), units)
        self._load += self.config.alpha * (r - self._load)
        return r

    # ---- outputs
    def load(self, now: float | None = None) -> float:
        """The smoothed load ratio (unrounded, not rate-limited), decayed to `now`."""
        self._decay_to(now)
        return self._load

    def tick(self, now: float, *, oldest_wait_s: float = 0.0, oldest_kind: str | None = None,
             oldest_units: float = 1) -> float:
        """Call once per announcement: returns (and keeps) the surge to announce."""
        target = self.load(now)
        if oldest_kind is not None and oldest_wait_s > 0:
            b = self.baseline(oldest_kind)
            if b:
                service = b * max(oldest_units, 1e-9)
                target = max(target, min(self.config.cap, (oldest_wait_s + service) / service))
        target = min(self.config.cap, max(1.0, round_half(target)))
        step = self.config.max_step
        new = min(max(target, self._announced - step), self._announced + step)
        self._announced = min(self.config.cap, max(1.0, round_half(new)))
        return self._announced

    def value(self, now: float | None = None) -> float:
        """The announced surge (what quotes use until the next tick)."""
        return self._announced
