"""A small run of the market simulation (real pricing + routing code): 50 workers, 30 s.

1. Overloading the cheapest worker raises its surge and traffic shifts away from it.
2. A peaking worker gets no work until its (market-following) surge reaches its threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from sim_market import Config, Sim  # noqa: E402

from federation.pricing import SurgeConfig  # noqa: E402


def small(workers, rate, duration=30.0, **kw):
    cfg = Config(custom_workers=workers, brokers=5, duration_s=duration, announce_s=2.0, no_limit_share=1.0,
                 max_tokens=(64,), patience_s=20.0, queue_limit_per_slot=4, seed=3, **kw)
    return Sim(cfg, rate_fn=lambda t: rate(t)).run()


def test_overloaded_cheapest_worker_surges_and_traffic_shifts_away():
    # worker 0: an H100 (2 slots) 17 % cheaper than the cheapest of 49 RTX 4090s; 20 intents/s is
    # about 7x what it can do alone
    workers = [(3, 1000, None)] + [(1, 1200 + 5 * i, None) for i in range(49)]
    sim = small(workers, lambda t: 20.0)
    cheap = sim.workers[0]
    peak = max(s for _, s in sim.surge_log[0])
    assert peak >= 2.0  # overloaded: its surge went up (rate-limited per tick)
    def share(lo, hi):  # its share of all intents accepted in [lo, hi)
        mine = sum(1 for t in cheap.assigned_t if lo <= t < hi)
        return mine / max(1, sum(1 for w in sim.workers for t in w.assigned_t if lo <= t < hi))

    # before its surge rises it is the first choice of every broker; afterwards it only gets the
    # spill-over when cheaper workers are full
    assert share(0, 2) > 2 * share(4, 30)
    assert sum(w.served for w in sim.workers[1:]) > 3 * cheap.served  # ... to the others


def test_peaking_worker_waits_for_its_threshold():
    # 10 regular 4090s, one cheap peaker with threshold 2.0; demand grows to ~3x their capacity
    workers = [(1, 1200, None) for _ in range(10)] + [(0, 100, 2.0)]
    sim = small(workers, lambda t: 2.0 + 1.5 * t, surge=SurgeConfig())
    peaker = sim.workers[-1]
    assert peaker.assigned_t, "the peaker never worked although the market surged"
    first = min(peaker.assigned_t)
    # its surge history: it follows the market median; it may work only once that is >= 2.0
    surges = sim.surge_log[peaker.i]
    before = [s for t, s in surges if t < first]
    assert before and max(before) >= 2.0
    crossed = min(t for t, s in surges if s >= 2.0)
    assert first >= crossed
    assert all(s < 2.0 for t, s in surges if t < crossed)
    # the cheap peaker got nothing before that although it is by far the cheapest
    assert crossed > 2.0
