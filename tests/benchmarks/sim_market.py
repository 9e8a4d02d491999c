"""Discrete-event market simulation driving the REAL federation.pricing and federation.market.

    nice -n 10 python tests/benchmarks/sim_market.py            # 10,000 workers, 4 scenarios, plots
    nice -n 10 python tests/benchmarks/sim_market.py --quick    # 2,000 workers, shorter

What is real: every worker prices with a `PriceTable`, measures its load with a `SurgeMeter`
(observe at each finished intent, tick at each announcement), peaking workers use
`federation.pricing.PeakingPolicy` (the daemon's code path); every broker chooses with `market.route` over `Offer`s and every
worker re-checks the price with `price_moved` when an intent arrives; charges use
`PriceTable.charge`. What is simulated: GPUs (a speed in tokens/s per slot), the network (RTT by
region), gossip (announcements every `announce_s`, seen by brokers after a gossip delay), demand.

Simplifications (they do not change who wins or what is paid, only the cost of simulating):
- Brokers share one gossip view ("board") refreshed every `refresh_s` (0.5 s) with the
  announcements whose gossip delay has passed; each broker keeps its own back-off marks for
  workers that answered "busy".
- A broker does not scan all 10,000 announcements per intent: it walks a price index (announced
  effective price per 1k tokens, rebuilt every refresh, workers announcing a full queue left out)
  and hands the first `k` workers it has not marked busy to `market.route`. Because the index is
  sorted by the same effective price, the cheapest candidate is the same as with a full scan.
- A failover attempt is resolved at dispatch time against the worker's real state; each refused
  attempt adds that worker's RTT to the intent's wait.
- One kind (chat; units = output tokens). Other kinds differ only in units.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from federation.market import Offer, price_moved, route  # noqa: E402
from federation.pricing import (  # noqa: E402
    PeakingPolicy, PriceTable, SurgeConfig, SurgeMeter, apply_surge,
)

KIND = "chat"


@dataclass(frozen=True)
class Tier:
    name: str
    share: float  # of workers
    speed: float  # output tokens/s per slot
    slots: int  # intents run in parallel
    price: int  # median base price, micro-tokens per 1k output tokens


TIERS = (
    Tier("RTX 3060", 0.40, 12.0, 1, 800),
    Tier("RTX 4090", 0.30, 30.0, 1, 1_200),
    Tier("A100", 0.20, 40.0, 2, 2_000),
    Tier("H100", 0.10, 60.0, 2, 3_000),
)
REGION_RTT_MS = (  # NA, EU, ASIA, SA
    (20, 90, 160, 120),
    (90, 20, 200, 190),
    (160, 200, 30, 250),
    (120, 190, 250, 25),
)
MAX_TOKENS = (256, 512, 1024)


@dataclass
class Config:
    workers: int = 10_000
    brokers: int = 100
    duration_s: float = 180.0
    seed: int = 1
    announce_s: float = 5.0  # each worker announces this often (staggered)
    gossip_delay_s: tuple = (0.05, 0.8)  # uniform: time for an announcement to reach brokers
    refresh_s: float = 0.5  # brokers' view/index refresh
    window: int = 16  # cheapest unmarked index entries handed to market.route per dispatch
    k: int = 8  # failover attempts per dispatch (in market.route's order)
    refusal_signal: bool = True  # workers feed "busy" refusals to SurgeMeter.observe_refused
    strict: bool = False  # market.route's strict order (no price/latency bands, no random tie-break)
    walk_limit: int = 400  # index entries a broker looks at per attempt
    queue_limit_per_slot: int = 1  # a worker answers "busy" beyond slots * this queued intents
    change_min_s: float = 0.5  # "announce at once on change" (queue full <-> not), at most this often
    busy_mark_s: float = 5.0  # a broker skips a worker this long after a "busy"
    patience_s: float = 90.0  # an intent not started by then is given up (timed out)
    retry_s: tuple = (0.5, 1.0, 1.0, 2.0, 2.0, 4.0)  # broker retries when nobody takes it (last repeats)
    peaking_share: float = 0.05  # workers that only work while surge >= threshold
    peaking_threshold: float = 2.0
    no_limit_share: float = 0.3  # requesters with no max price
    limit_per_1k: tuple = (1_200, 6_000)  # other requesters' max price per 1k tokens, uniform
    price_spread: float = 0.3  # base price = tier price * U(1 - spread, 1 + spread)
    surge: SurgeConfig = field(default_factory=SurgeConfig)
    # worker list override (tests): list of (tier index, base price per 1k, peaking threshold|None)
    custom_workers: list | None = None
    max_tokens: tuple = MAX_TOKENS


# ---------------------------------------------------------------------------------- demand

def capacity_jobs_per_s(workers: list, mean_tokens: float) -> float:
    return sum(w.slots * w.speed for w in workers if w.peak is None) / mean_tokens


def demand_fn(scenario: str, base: float):
    """Arrival rate (intents/s) over time for the four white-paper scenarios."""
    if scenario == "normal":
        return lambda t: base
    if scenario == "viral":  # sudden spike at 60 s (+3.5x base), decays with a 40 s time constant
        return lambda t: base * (1 + (3.5 * math.exp(-(t - 60) / 40) if t >= 60 else 0))
    if scenario == "launch":  # step up at 60 s and stays
        return lambda t: base * (2.1 if t >= 60 else 1)
    if scenario == "blackswan":  # x4 at 60 s ramping to x8 at 105 s, held, back to x1 at 150 s
        def f(t):
            if 60 <= t < 105:
                return base * (4 + 4 * (t - 60) / 45)
            if 105 <= t < 150:
                return base * 8
            return base
        return f
    raise ValueError(scenario)


# ---------------------------------------------------------------------------------- actors

class Worker:
    __slots__ = ("i", "name", "tier", "speed", "slots", "base", "table", "peak", "policy", "region", "jitter", "meter",
                 "queue", "busy", "surge", "limit", "served", "tokens", "phase", "assigned_t", "full",
                 "last_ann", "dirty")

    def __init__(self, i, tier_i, tier, base, peak, region, cfg, rng):
        self.i, self.name, self.tier = i, f"w{i:05d}", tier_i
        self.speed, self.slots, self.base = tier.speed, tier.slots, base
        self.table = PriceTable({KIND: base})
        self.peak = peak
        # the daemon's peaking code path (federation.pricing.PeakingPolicy), one kind here
        self.policy = PeakingPolicy({KIND: peak}) if peak is not None else None
        self.region = region
        self.jitter = rng.uniform(0, 30)
        self.meter = SurgeMeter(cfg.surge)
        self.meter.calibrate(KIND, 1.0 / tier.speed)  # the warm-up run at model load
        self.queue: deque = deque()
        self.busy = 0
        self.surge = 1.0  # announced (and quoted) surge
        self.limit = tier.slots * cfg.queue_limit_per_slot
        self.served = 0
        self.tokens = 0
        self.phase = rng.uniform(0, cfg.announce_s)
        self.assigned_t: list = []  # times intents were accepted (tests look at this)
        self.full = False
        self.last_ann = -1e9
        self.dirty = False


class Intent:
    __slots__ = ("arrival", "broker", "max_tokens", "actual", "max_price", "tries", "last_reason", "seen_price")

    def __init__(self, arrival, broker, max_tokens, actual, max_price):
        self.arrival, self.broker = arrival, broker
        self.max_tokens, self.actual, self.max_price = max_tokens, actual, max_price
        self.tries = 0
        self.last_reason = ""
        self.seen_price = None


ARRIVE, RETRY, DONE, REFRESH = 0, 1, 2, 3


class Sim:
    def __init__(self, cfg: Config, scenario: str = "normal", rate_fn=None):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        rng = self.rng
        self.workers: list[Worker] = []
        if cfg.custom_workers is not None:
            for i, (ti, base, peak) in enumerate(cfg.custom_workers):
                self.workers.append(Worker(i, ti, TIERS[ti], base, peak, rng.randrange(4), cfg, rng))
        else:
            for i in range(cfg.workers):
                x, ti = rng.random(), 0
                acc = 0.0
                for ti, tier in enumerate(TIERS):
                    acc += tier.share
                    if x < acc:
                        break
                tier = TIERS[ti]
                base = int(tier.price * rng.uniform(1 - cfg.price_spread, 1 + cfg.price_spread))
                peak = cfg.peaking_threshold if rng.random() < cfg.peaking_share else None
                self.workers.append(Worker(i, ti, tier, base, peak, rng.randrange(4), cfg, rng))
        n = len(self.workers)
        self.base_arr = np.array([w.base for w in self.workers], dtype=np.int64)
        self.peak_arr = np.array([w.peak or 0.0 for w in self.workers])
        self.full_arr = np.array([w.limit + w.slots for w in self.workers])  # queued + running
        self.tier_arr = np.array([w.tier for w in self.workers])
        self.board_surge = np.ones(n)
        self.board_queue = np.zeros(n, dtype=np.int64)
        self.board_sent = np.full(n, -1.0)
        self.index: list[int] = []
        self.pending: list = []  # gossip in flight: (arrival time, worker, surge, queue)
        self.market = 1.0
        self.busy_marks = [dict() for _ in range(cfg.brokers)]
        self.broker_region = [rng.randrange(4) for _ in range(cfg.brokers)]
        mean_tokens = float(np.mean(cfg.max_tokens)) * 0.65
        self.capacity = capacity_jobs_per_s(self.workers, mean_tokens)
        self.rate_fn = rate_fn or demand_fn(scenario, 0.45 * self.capacity)
        self.events: list = []
        self.base_quotes: dict = {}
        self.seq = 0
        # results
        self.outcomes = {"served": 0, "timed_out": 0, "refused_price": 0}
        self.waits: list[float] = []
        self.prices: list[float] = []  # price paid per 1k tokens, per served intent
        nb = int(cfg.duration_s) + 1
        self.ts = {
            "arrivals": np.zeros(nb), "served": np.zeros(nb), "timed_out": np.zeros(nb),
            "refused": np.zeros(nb),
            "price_sum": np.zeros(nb), "price_n": np.zeros(nb),
            "tier_tokens": np.zeros((nb, len(TIERS))),
            "surge_tier": np.zeros((nb, len(TIERS))), "market_price": np.zeros(nb),
        }
        self.bin_prices: list[list] = [[] for _ in range(nb)]
        self.bin_waits: list[list] = [[] for _ in range(nb)]
        self.tier_tokens_total = np.zeros(len(TIERS))
        self.surge_changes = 0
        # per-worker (time, announced surge) at each tick, for small runs (tests)
        self.surge_log = {w.i: [] for w in self.workers} if cfg.custom_workers is not None else None
        self.change_anns = 0
        self.ticks = 0
        self.route_calls = 0

    # -------------------------------------------------------------- events
    def push(self, t, kind, payload=None):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def run(self):
        cfg = self.cfg
        self.push(0.0, REFRESH)
        self.push(self.rng.expovariate(max(self.rate_fn(0.0), 1e-9)), ARRIVE)
        while self.events:
            t, _, kind, p = heapq.heappop(self.events)
            if t > cfg.duration_s:
                break
            if kind == ARRIVE:
                self.arrive(t)
            elif kind == DONE:
                self.done(t, *p)
            elif kind == RETRY:
                self.dispatch(t, p)
            else:
                self.refresh(t)
        return self

    def arrive(self, t):
        cfg, rng = self.cfg, self.rng
        mt = rng.choice(cfg.max_tokens)
        actual = max(1, int(mt * rng.uniform(0.3, 1.0)))
        if rng.random() < cfg.no_limit_share:
            mp = None
        else:
            mp = rng.randint(*cfg.limit_per_1k) * mt // 1000
        it = Intent(t, rng.randrange(cfg.brokers), mt, actual, mp)
        self.ts["arrivals"][int(t)] += 1
        self.dispatch(t, it)
        self.push(t + rng.expovariate(max(self.rate_fn(t), 1e-9)), ARRIVE)

    def candidates(self, t, it):
        """The first `window` workers of the price index this broker has not marked busy."""
        marks = self.busy_marks[it.broker]
        out = []
        for n, wi in enumerate(self.index):
            if n >= self.cfg.walk_limit:
                break
            until = marks.get(wi)
            if until is not None:
                if until > t:
                    continue
                del marks[wi]
            out.append(wi)
            if len(out) >= self.cfg.window:
                break
        return out

    def dispatch(self, t, it: Intent):
        cfg = self.cfg
        br = self.broker_region[it.broker]
        offers = []
        for wi in self.candidates(t, it):
            w = self.workers[wi]
            bq = self.base_quotes.get((wi, it.max_tokens))
            if bq is None:
                bq = self.base_quotes[(wi, it.max_tokens)] = w.table.base_quote(KIND, it.max_tokens)
            offers.append(Offer(
                w.name, bq, surge=float(self.board_surge[wi]),
                rtt_ms=REGION_RTT_MS[br][w.region] + w.jitter, queue=int(self.board_queue[wi]),
                capacity=w.slots, peaking_threshold=w.peak, service_s=it.max_tokens / w.speed,
            ))
        self.route_calls += 1
        if cfg.strict:
            r = route(offers, it.max_price, kind=KIND, price_band=0, latency_band_ms=0)
        else:
            r = route(offers, it.max_price, kind=KIND, rng=self.rng)
        delay = 0.0
        if r.ok:
            for o in r.order[:cfg.k]:
                w = self.workers[int(o.peer_id[1:])]
                rtt = o.rtt_ms / 1000.0
                delay += rtt
                # the worker's own, current view (not the gossiped one)
                if w.policy is not None and not w.policy.accepts(KIND, w.surge, self.market):
                    it.last_reason = "peaking"
                    continue
                quote = w.table.quote(KIND, None, it.max_tokens, w.surge)
                moved = price_moved(it.max_price, quote)
                if moved is not None:
                    it.last_reason, it.seen_price = "price", moved
                    continue
                if len(w.queue) + w.busy >= w.limit + w.slots:
                    if cfg.refusal_signal:
                        w.meter.observe_refused(KIND, queued=len(w.queue), running=w.busy, slots=w.slots,
                                                units=it.max_tokens, now=t)
                    it.last_reason = "busy"
                    self.busy_marks[it.broker][w.i] = t + cfg.busy_mark_s
                    continue
                self.accept(t + delay, w, it, quote)
                return
        else:
            it.last_reason = "price" if r.reason == "over_max_price" else "busy"
            if r.reason == "over_max_price":
                it.seen_price = r.cheapest
        # nobody took it: retry later, or give up
        nxt = t + delay + (cfg.retry_s[it.tries] if it.tries < len(cfg.retry_s) else cfg.retry_s[-1])
        it.tries += 1
        if nxt - it.arrival > cfg.patience_s:
            self.give_up(t, it)
        else:
            self.push(nxt, RETRY, it)

    def give_up(self, t, it):
        b = min(int(t), len(self.ts["arrivals"]) - 1)
        if it.last_reason == "price":
            self.outcomes["refused_price"] += 1
            self.ts["refused"][b] += 1
        else:
            self.outcomes["timed_out"] += 1
            self.ts["timed_out"][b] += 1

    def accept(self, t, w: Worker, it: Intent, quote: int):
        w.assigned_t.append(t)
        job = (it, quote, w.surge, t)
        if w.busy < w.slots:
            self.start(t, w, job)
        else:
            w.queue.append(job)
        self.check_change(t, w)

    def check_change(self, t, w: Worker):
        full = len(w.queue) + w.busy >= w.limit + w.slots
        if full != w.full:
            w.full = full
            w.dirty = True  # announced at the next refresh at least change_min_s after the last one

    def start(self, t, w: Worker, job):
        it = job[0]
        w.busy += 1
        service = it.actual / w.speed * self.rng.uniform(0.9, 1.1)
        self.push(t + service, DONE, (w, job, t, service))

    def done(self, t, w: Worker, job, started, service):
        it, quote, q_surge, accepted = job
        w.busy -= 1
        wait = started - it.arrival
        w.meter.observe(KIND, service, started - accepted, units=it.actual, now=t)
        paid = w.table.charge(KIND, it.actual, q_surge, quoted=quote)
        per_1k = paid * 1000 / it.actual
        w.served += 1
        w.tokens += it.actual
        self.outcomes["served"] += 1
        self.waits.append(wait)
        self.prices.append(per_1k)
        b = min(int(started), len(self.bin_prices) - 1)
        self.bin_prices[b].append(per_1k)
        self.bin_waits[b].append(wait)
        self.ts["served"][b] += 1
        self.ts["tier_tokens"][b, w.tier] += it.actual
        self.tier_tokens_total[w.tier] += it.actual
        # next queued intent; ones whose requester gave up are dropped
        while w.queue:
            nxt = w.queue.popleft()
            if t - nxt[0].arrival > self.cfg.patience_s:
                self.outcomes["timed_out"] += 1
                self.ts["timed_out"][min(int(t), len(self.ts["timed_out"]) - 1)] += 1
                continue
            self.start(t, w, nxt)
            break
        self.check_change(t, w)

    def refresh(self, t):
        cfg = self.cfg
        # announcements due in (t - refresh, t]: tick the meters, send into gossip
        for w in self.workers:
            ph = (t - w.phase) % cfg.announce_s
            if not (ph < cfg.refresh_s) or t < w.phase:
                if w.dirty and t - w.last_ann >= cfg.change_min_s:  # on change: same surge, new queue
                    self.announce(t, w)
                    self.change_anns += 1
                continue
            oldest = w.queue[0] if w.queue else None
            own = w.meter.tick(t, oldest_wait_s=(t - oldest[3]) if oldest else 0.0, oldest_kind=KIND,
                               oldest_units=oldest[0].max_tokens if oldest else 1)
            new = w.policy.announced(own, self.market, cfg.surge.cap) if w.policy is not None else own
            self.ticks += 1
            if new != w.surge:
                self.surge_changes += 1
            w.surge = new
            if self.surge_log is not None:
                self.surge_log[w.i].append((t, new))
            self.announce(t, w)
        # gossip that has arrived by now updates the brokers' view
        keep = []
        for item in self.pending:
            if item[0] <= t:
                if item[4] > self.board_sent[item[1]]:  # sequence numbers: an older one never wins
                    self.board_sent[item[1]] = item[4]
                    self.board_surge[item[1]] = item[2]
                    self.board_queue[item[1]] = item[3]
            else:
                keep.append(item)
        self.pending = keep
        # the index: announced effective price per 1k tokens, peaking-below-threshold and
        # announced-full workers left out (market.route would skip the former; the latter answer busy)
        milli = np.maximum(1000, np.rint(self.board_surge * 1000)).astype(np.int64)
        eff = -(-self.base_arr * milli // 1000)
        avail = (self.board_surge >= self.peak_arr) & (self.board_queue < self.full_arr)
        order = np.argsort(eff, kind="stable")
        self.index = order[avail[order]].tolist()
        regular = self.peak_arr == 0
        self.market = float(np.median(self.board_surge[regular])) if regular.any() else 1.0
        b = min(int(t), len(self.ts["market_price"]) - 1)
        if self.index:
            self.ts["market_price"][b] = eff[self.index[0]]
        for ti in range(len(TIERS)):
            sel = self.tier_arr == ti
            if sel.any():
                self.ts["surge_tier"][b, ti] = float(self.board_surge[sel].mean())
        self.push(t + cfg.refresh_s, REFRESH)

    def announce(self, t, w: Worker):
        w.last_ann, w.dirty = t, False
        self.pending.append((t + self.rng.uniform(*self.cfg.gossip_delay_s), w.i, w.surge, len(w.queue) + w.busy, t))

    # -------------------------------------------------------------- report
    def summary(self) -> dict:
        total = sum(self.outcomes.values())
        waits = np.array(self.waits) if self.waits else np.zeros(1)
        prices = np.array(self.prices) if self.prices else np.zeros(1)
        med = [float(np.median(p)) for p in self.bin_prices if p]
        diffs = np.abs(np.diff(med)) if len(med) > 1 else np.zeros(1)
        sign = np.sign(np.diff(med)) if len(med) > 1 else np.zeros(1)
        sign = sign[sign != 0]
        reversals = int(np.sum(sign[1:] != sign[:-1])) if len(sign) > 1 else 0
        tt = self.tier_tokens_total.sum() or 1
        return {
            "intents": total,
            "served": self.outcomes["served"] / max(total, 1),
            "timed_out": self.outcomes["timed_out"] / max(total, 1),
            "refused_price": self.outcomes["refused_price"] / max(total, 1),
            "price_mean": float(prices.mean()), "price_max": float(prices.max()),
            "wait_p50": float(np.percentile(waits, 50)), "wait_p99": float(np.percentile(waits, 99)),
            "tier_share": [float(x / tt) for x in self.tier_tokens_total],
            "osc_mean_abs": float(diffs.mean()), "osc_reversals": reversals,
            "surge_changes_per_tick": self.surge_changes / max(self.ticks, 1),
            "change_anns_per_tick": self.change_anns / max(self.ticks, 1),
            "route_calls": self.route_calls,
        }


# ---------------------------------------------------------------------------------- bandwidth

def announcement_bytes() -> tuple[int, int]:
    """Size of a realistic signed caps announcement (real encoding and signature), and of the
    same with one kind only (per-kind topic)."""
    from federation.caps import sign_announcement
    from federation.keys import Signer

    signer = Signer(bytes(range(32)))
    ann = {
        "node": signer.peer_id,
        "addrs": ["/ip4/203.0.113.7/tcp/9001", "/ip4/203.0.113.7/udp/9001/quic-v1"],
        "gpus": [{"name": "NVIDIA GeForce RTX 4090", "vram_total": 25_757_220_864, "vram_free": 20_000_000_000,
                  "cuda": "12.4"}],
        "cpu": {"cores": 16, "ram": 68_719_476_736},
        "models": {"chat": ["SmolLM2-135M-Instruct", "Llama-3.1-8B-Instruct-Q4_K_M"],
                   "transcribe": ["whisper-base"], "speak": ["piper-joe"]},
        "prices": PriceTable({"chat": 1200, "transcribe": 5000, "speak": 2000}).to_announcement(),
        "surge": 1.5, "queue": 3, "capacity": 2, "version": "0.1.0", "ts": 1_760_000_000.123, "seq": 123456,
        "ttl": 30,
    }
    full = len(sign_announcement(ann, signer))
    one = dict(ann, models={"chat": ann["models"]["chat"]}, prices={"chat": 1200})
    return full, len(sign_announcement(one, signer))


def bandwidth_table(n: int, size: int, size_kind: int, changes_per_tick: float) -> str:
    """Per-node gossip bandwidth for a realm of n announcers (GossipSub, degree D=6)."""
    D, D_LAZY, HIST, ID = 6, 6, 3, 50  # mesh degree, gossip peers, IHAVE windows, message id bytes
    FRAME = 120  # pubsub envelope: from, seqno, topic, signature (64 B), key omitted
    rows = []

    def line(name, msgs_per_s, sz, share=1.0):
        m = msgs_per_s * share
        eager = m * (sz + FRAME) * D  # every node receives ~D copies (1 new + duplicates) ...
        ihave = m * ID * D_LAZY * HIST  # ... and advertises each id to D_lazy peers over 3 heartbeats
        total = eager + ihave
        rows.append(f"| {name} | {m:,.0f} | {sz + FRAME} | {eager / 1e6:,.2f} | {ihave / 1e6:,.2f} | "
                    f"{total / 1e6:,.2f} | {total * 8 / 1e6:,.1f} |")

    line("every 5 s, all kinds on one topic", n / 5, size)
    line("every 30 s + on change (change rate from the sim)", n / 30 + n / 5 * changes_per_tick, size)
    line("every 5 s, per-kind topics, broker of 1 kind (workers: 1.5 kinds, 5 kinds)", n / 5, size_kind, 1.5 / 5)
    line("every 30 s + on change, per-kind topic, 1 kind", n / 30 + n / 5 * changes_per_tick, size_kind, 1.5 / 5)
    head = ("| announcements | msgs/s received (unique) | bytes each on the wire | eager push MB/s | IHAVE MB/s | "
            "total MB/s in (≈ out) | Mbit/s |\n|---|---:|---:|---:|---:|---:|---:|")
    return head + "\n" + "\n".join(rows)


# ---------------------------------------------------------------------------------- main

SCENARIOS = ("normal", "viral", "launch", "blackswan")


def fmt_table(results: dict) -> str:
    head = ("| scenario | intents | served | timed out | refused (max price) | mean price | max price | "
            "p50 wait s | p99 wait s | work share 3060 / 4090 / A100 / H100 | osc. mean abs Δ | reversals | "
            "surge changes/ann. |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    rows = []
    for name, s in results.items():
        share = " / ".join(f"{x * 100:.0f}%" for x in s["tier_share"])
        rows.append(f"| {name} | {s['intents']:,} | {s['served'] * 100:.1f}% | {s['timed_out'] * 100:.1f}% | "
                    f"{s['refused_price'] * 100:.1f}% | {s['price_mean']:,.0f} | {s['price_max']:,.0f} | "
                    f"{s['wait_p50']:.2f} | {s['wait_p99']:.1f} | {share} | {s['osc_mean_abs']:,.0f} | "
                    f"{s['osc_reversals']} | {s['surge_changes_per_tick']:.3f} |")
    return head + "\n" + "\n".join(rows)


def plot(sims: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (name, sim) in zip(axes.flat, sims.items()):
        med = [np.median(p) if p else np.nan for p in sim.bin_prices]
        p90 = [np.percentile(p, 90) if p else np.nan for p in sim.bin_prices]
        ax.plot(med, label="median price paid")
        ax.plot(p90, label="p90 price paid", alpha=0.7)
        ax.plot(np.where(sim.ts["market_price"] > 0, sim.ts["market_price"], np.nan), label="cheapest announced", alpha=0.7)
        ax2 = ax.twinx()
        ax2.plot(sim.ts["arrivals"], color="grey", alpha=0.3, label="arrivals/s")
        ax2.set_ylabel("arrivals/s", color="grey")
        ax.set_title(name)
        ax.set_ylabel("µ-tokens per 1k tokens")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    p = outdir / "economy_price.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (name, sim) in zip(axes.flat, sims.items()):
        p50 = [np.percentile(w, 50) if w else np.nan for w in sim.bin_waits]
        p99 = [np.percentile(w, 99) if w else np.nan for w in sim.bin_waits]
        ax.plot(p50, label="p50 wait")
        ax.plot(p99, label="p99 wait")
        ax.plot(sim.ts["timed_out"], label="timed out /s", alpha=0.6)
        ax.plot(sim.ts["refused"], label="refused (max price) /s", alpha=0.6)
        ax.set_title(name)
        ax.set_ylabel("seconds (waits), count/s")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p = outdir / "economy_wait.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (name, sim) in zip(axes.flat, sims.items()):
        tt = sim.ts["tier_tokens"]
        # 5-s smoothing for readability
        k = np.ones(5) / 5
        series = [np.convolve(tt[:, i], k, mode="same") / 1000 for i in range(len(TIERS))]
        ax.stackplot(np.arange(len(tt)), *series, labels=[t.name for t in TIERS])
        ax2 = ax.twinx()
        for i, t in enumerate(TIERS):
            ax2.plot(sim.ts["surge_tier"][:, i], lw=0.8, ls="--")
        ax2.set_ylabel("mean announced surge (dashed)")
        ax.set_title(name)
        ax.set_ylabel("k tokens/s started, by tier")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p = outdir / "economy_share.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--quick", action="store_true", help="2,000 workers")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--strict", action="store_true", help="strict routing order (ablation: no tie bands)")
    ap.add_argument("--no-refusal-signal", action="store_true", help="ablation: refusals do not raise the surge")
    ap.add_argument("--img", default=str(ROOT / "docs" / "img"))
    a = ap.parse_args(argv)
    if a.quick:
        a.workers, a.duration = 2000, 180.0
    results, sims = {}, {}
    for name in a.scenarios.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        sim = Sim(Config(workers=a.workers, duration_s=a.duration, seed=a.seed, strict=a.strict,
                         refusal_signal=not a.no_refusal_signal), name).run()
        results[name], sims[name] = sim.summary(), sim
        print(fmt_table({name: results[name]}).splitlines()[-1], file=sys.stderr)
        print(f"# {name}: {a.workers} workers, capacity {sim.capacity:,.0f} intents/s, {sim.route_calls:,} route calls, "
              f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU", file=sys.stderr)
    print("## Scenarios\n")
    print("Prices are what requesters paid, in micro-tokens per 1k output tokens; waits are arrival → start.\n")
    print(fmt_table(results))
    full, one = announcement_bytes()
    # on-change announcements: surge changes (at ticks) + queue full <-> not full flips
    changes = max(s["surge_changes_per_tick"] + s["change_anns_per_tick"] for s in results.values())
    print(f"\n## Gossip bandwidth per node, {a.workers:,} announcers (signed announcement {full} B, "
          f"one-kind {one} B; worst on-change rate {changes:.3f} per 5-s announcement)\n")
    print(bandwidth_table(a.workers, full, one, changes))
    if a.workers != 10_000:
        print(f"\n(10,000-node realm)\n\n{bandwidth_table(10_000, full, one, changes)}")
    if not a.no_plots:
        for p in plot(sims, Path(a.img)):
            print(f"wrote {p}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
