"""SurgeMeter: rises under overload, capped, rate-limited, on the 0.5 grid, back to 1; peaking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.pricing import SurgeMeter, accepts_work, market_surge, peaking_surge, round_half


def feed(m: SurgeMeter, t: float, wait: float, n: int = 5, service: float = 1.0) -> float:
    for i in range(n):
        m.observe("chat", service, wait, units=1, now=t + i * 0.1)
    return t + n * 0.1


def test_unloaded_stays_at_one():
    m = SurgeMeter()
    t = 0.0
    for k in range(20):
        t = feed(m, t, 0.0)
        assert m.tick(t) == 1.0
    assert m.value() == 1.0


def test_rises_under_overload_rate_limited_and_capped():
    m = SurgeMeter(baseline={"chat": 1.0})
    t, seen = 0.0, [1.0]
    for _ in range(30):
        t = feed(m, t, wait=30.0)  # 31 s per 1-s job: 31x, capped at 10
        seen.append(m.tick(t))
    assert seen[1] == 2.0  # rate limit: +1.0 per announcement
    assert all(b - a <= 1.0 for a, b in zip(seen, seen[1:]))
    assert max(seen) == 10.0 and seen[-1] == 10.0
    assert all(s * 2 == int(s * 2) for s in seen)


def test_falls_back_to_one_when_load_goes_away():
    m = SurgeMeter(baseline={"chat": 1.0})
    t = 0.0
    for _ in range(12):
        t = feed(m, t, wait=20.0)
        m.tick(t)
    assert m.value() == 10.0
    trace = []
    for _ in range(40):  # no work at all: idle decay, 5 s announcements
        t += 5
        trace.append(m.tick(t))
    assert trace[-1] == 1.0
    assert all(a - b <= 1.0 for a, b in zip([10.0] + trace, trace))
    # and with unloaded work coming back, it stays at 1
    t = feed(m, t, 0.0)
    assert m.tick(t) == 1.0


def test_baseline_learned_from_low_percentile():
    m = SurgeMeter()
    for i in range(50):
        m.observe("chat", 0.01 * (100 + i), 0.0, units=100, now=i)  # 0.010..0.0149 s per token
    assert abs(m.baseline("chat") - 0.0105) < 1e-9
    assert m.baseline("imagine") is None
    assert m.ratio("imagine", 100.0) == 1.0  # no evidence for a kind: no surge from it


def test_calibration_gives_a_baseline_from_the_start():
    m = SurgeMeter()
    m.calibrate("chat", 0.02)
    assert m.baseline("chat") == 0.02
    assert m.ratio("chat", 4.0, units=100) == 2.0
    for i in range(5):
        m.observe("chat", 3.0, 0.0, units=100, now=i)  # slower live samples do not raise it
    assert m.baseline("chat") == 0.02
    for i in range(5):
        m.observe("chat", 1.0, 0.0, units=100, now=i)
    assert m.baseline("chat") == 0.01  # a lower live p10 wins


def test_refusals_count_as_load():
    m = SurgeMeter(baseline={"chat": 1.0})
    for i in range(10):
        m.observe_refused("chat", queued=1, running=1, slots=1, now=i * 0.1)
    assert 2.5 < m.load(1.0) <= 3.0
    assert m.tick(1.0) == 2.0  # rate-limited like everything else
    assert SurgeMeter().observe_refused("chat", queued=9, running=1, slots=1) == 1.0  # no baseline yet


def test_pending_queue_raises_before_anything_finishes():
    m = SurgeMeter(baseline={"chat": 0.01})
    assert m.tick(1.0, oldest_wait_s=10.0, oldest_kind="chat", oldest_units=100) == 2.0  # 11x, +1 limit
    assert m.tick(6.0, oldest_wait_s=15.0, oldest_kind="chat", oldest_units=100) == 3.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 500), st.floats(0.1, 10)), min_size=1, max_size=60))
def test_invariants_under_any_load(events):
    m = SurgeMeter(baseline={"chat": 1.0})
    t, prev = 0.0, 1.0
    for service, wait, gap in events:
        t += gap
        m.observe("chat", service, wait, now=t)
        v = m.tick(t)
        assert 1.0 <= v <= 10.0 and v == round_half(v) and abs(v - prev) <= 1.0
        prev = v


def test_peaking():
    assert accepts_work(1.0, None) and accepts_work(1.0, 1.0)
    assert not accepts_work(1.5, 2.0)
    assert accepts_work(2.0, 2.0) and accepts_work(3.5, 2.0)
    assert market_surge([1, 1, 3, 4, 4]) == 3 and market_surge([]) == 1.0 and market_surge([1, 2]) == 1.5
    assert peaking_surge(1.0, 2.7) == 2.5
    assert peaking_surge(3.0, 1.0) == 3.0
    assert peaking_surge(1.0, 40.0) == 10.0
