"""Quotes, charges, units and --price parsing (federation/pricing.py): integer math only."""

from __future__ import annotations

import io
import wave
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.pricing import (
    DEFAULT_PRICES, KINDS, PEAK_KEY, PER_UNITS, PriceError, PriceTable, apply_surge, estimate_units,
    parse_price, parse_prices, peaking_threshold_from_announcement, surge_milli,
)

surges = st.integers(min_value=2, max_value=20).map(lambda h: h / 2)  # 1.0 .. 10.0 on the 0.5 grid
prices = st.integers(min_value=0, max_value=10**9)
units = st.integers(min_value=0, max_value=10**8)


def test_defaults_cover_every_kind():
    t = PriceTable()
    for kind in KINDS:
        assert t.base(kind) == DEFAULT_PRICES[kind]
    assert t.fixed("vision") == DEFAULT_PRICES["vision.request"]
    assert t.fixed("chat") == 0


def test_chat_per_1k_tokens_rounds_up():
    t = PriceTable({"chat": 1000})
    assert t.quote("chat", {"max_tokens": 1000}) == 1000
    assert t.quote("chat", {"max_tokens": 1}) == 1  # 1000 * 1 / 1000 = 1 exactly
    assert PriceTable({"chat": 999}).price("chat", 1) == 1  # 0.999 -> 1 (up)
    assert t.quote("chat", {"max_tokens": 256}, surge=1.5) == 384
    assert PriceTable({"chat": 333}).price("chat", 10, 2.5) == 9  # 8.325 -> 9
    assert isinstance(t.quote("chat", {"max_tokens": 77}, surge=3.5), int)


def test_vision_request_plus_tokens():
    t = PriceTable({"vision": 1000, "vision.request": 2000})
    assert t.quote("vision", {"max_tokens": 500}) == 2500
    assert t.quote("vision", {"max_tokens": 500}, surge=2.0) == 5000
    assert t.price("vision", 0) == 2000  # zero units pay only the request


def test_imagine_scales_with_pixels_times_steps():
    t = PriceTable({"imagine": 20_000})
    ref = t.quote("imagine", {"width": 512, "height": 512, "steps": 20})
    assert ref == 20_000
    assert t.quote("imagine", {"width": 1024, "height": 1024, "steps": 20}) == 80_000  # 4x pixels
    assert t.quote("imagine", {"width": 512, "height": 512, "steps": 40}) == 40_000  # 2x steps
    assert t.quote("imagine", {"width": 256, "height": 256, "steps": 10}) == 2_500  # 1/8
    assert t.quote("imagine", {"width": 512, "height": 512, "steps": 20, "n": 2}, surge=1.5) == 60_000
    assert estimate_units("imagine", {}) == 512 * 512 * 20


@settings(max_examples=200, deadline=None)
@given(w=st.integers(8, 128).map(lambda x: x * 8), h=st.integers(8, 128).map(lambda x: x * 8),
       steps=st.integers(1, 100), base=prices, surge=surges)
def test_imagine_quote_is_exact_ceiling(w, h, steps, base, surge):
    q = PriceTable({"imagine": base}).quote("imagine", {"width": w, "height": h, "steps": steps}, surge=surge)
    exact = Fraction(base * w * h * steps, PER_UNITS["imagine"]) * Fraction(surge_milli(surge), 1000)
    assert isinstance(q, int) and exact <= q < exact + 1


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), base=prices, fixed=prices, est=units, actual=units, surge=surges)
def test_charge_never_above_quote(kind, base, fixed, est, actual, surge):
    t = PriceTable({kind: base, "vision.request": fixed})
    q = t.quote(kind, estimated_units=est, surge=surge)
    c = t.charge(kind, actual, surge, quoted=q)
    assert isinstance(c, int) and 0 <= c <= q
    if actual <= est:
        assert c == t.price(kind, actual, surge)  # fewer units than quoted: pay what was used


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), base=prices, u=units, surge=surges)
def test_price_is_monotone_and_matches_apply_surge(kind, base, u, surge):
    t = PriceTable({kind: base})
    p = t.price(kind, u, surge)
    assert p >= t.price(kind, u, 1.0)
    assert p <= t.price(kind, u + 1, surge)
    if kind != "vision" and base * u % PER_UNITS[kind] == 0:
        # whole base quotes: the router's apply_surge(base_quote) equals the worker's quote
        assert apply_surge(t.base_quote(kind, u), surge) == p


def test_per_model_override():
    t = PriceTable({"chat": 1000, "chat@big-70b": 5000, "vision.request@llava": 1})
    assert t.base("chat", "small") == 1000
    assert t.base("chat", "big-70b") == 5000
    assert t.quote("chat", {"max_tokens": 1000}, model="big-70b") == 5000
    assert t.fixed("vision", "llava") == 1


def test_units_estimates():
    assert estimate_units("chat", {"max_tokens": 512}) == 512
    assert estimate_units("chat", {}) == 256
    assert estimate_units("speak", {}, {"prompt": "hello world"}) == 11
    assert estimate_units("transcribe", {}, {"audio_seconds": 61.2}) == 62
    assert estimate_units("transcribe", {"max_seconds": 30}, {"audio_seconds": 100}) == 30
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000 * 3)  # 3 s
    assert estimate_units("transcribe", {}, {"audio": buf.getvalue()}) == 3
    assert estimate_units("transcribe", {}, {"audio": b"\x1a\x45" * 6000}) == 3  # 12000 B / 4000 B/s
    with pytest.raises(PriceError):
        estimate_units("dance", {})
    with pytest.raises(PriceError):
        estimate_units("chat", {"max_tokens": -1})


def test_bad_prices_rejected():
    with pytest.raises(PriceError):
        PriceTable({"chat": -1})
    with pytest.raises(PriceError):
        PriceTable({"chat": 1.5})
    with pytest.raises(PriceError):
        PriceTable({"cooking": 1})
    with pytest.raises(PriceError):
        PriceTable({"chat.request": 1})
    with pytest.raises(PriceError, match="surge"):
        PriceTable().price("chat", 1, float("nan"))


def test_parse_price():
    assert parse_price("chat=1500") == ("chat", 1500)
    assert parse_price(" imagine = 20_000 ") == ("imagine", 20000)
    assert parse_price("vision.request=10") == ("vision.request", 10)
    assert parse_price("chat@llama-3-8b=900") == ("chat@llama-3-8b", 900)
    assert parse_prices(["chat=1", "speak=2", "chat=3"]) == {"chat": 3, "speak": 2}
    for bad, msg in [("chat", "KIND=MICROTOKENS"), ("=5", "kind is missing"), ("chat=", "price is missing"),
                     ("chat=1.5", "whole number"), ("chat=-3", "out of range"), ("chat=abc", "whole number"),
                     ("dance=5", "unknown price key"), ("chat@=5", "empty model"),
                     (f"chat={10**13}", "out of range")]:
        with pytest.raises(PriceError, match=msg):
            parse_price(bad)


def test_announcement_roundtrip_and_peak():
    t = PriceTable({"chat": 1200, "chat@m": 1500})
    ann = t.to_announcement(peaking_threshold=2.5)
    assert ann[PEAK_KEY] == 2500 and all(isinstance(v, int) for v in ann.values())
    assert PriceTable.from_announcement(ann) == t
    assert peaking_threshold_from_announcement(ann) == 2.5
    assert peaking_threshold_from_announcement(t.to_announcement()) is None
    from federation.caps import check_capabilities  # the gossip validator accepts the map

    assert check_capabilities({"prices": ann, "surge": 2.5})["prices"] == ann


def test_max_charge_bounds_a_receipt_by_the_accepted_quote():
    """What a broker pays at most for `units` of work it accepted at `quoted` for `estimated`
    units (issue 12 finding 7): never above the quote, scaled down when less work was delivered,
    whatever surge the worker applied."""
    t = PriceTable({"chat": 3000})
    est = 500
    for surge in (1.0, 1.5, 4.0, 10.0):
        quoted = t.price("chat", est, surge)
        assert t.max_charge("chat", quoted, est, est) == quoted
        assert t.max_charge("chat", quoted, est * 3, est) == quoted  # more units than quoted: still the quote
        for units in (0, 1, 2, 37, 499):
            bound = t.max_charge("chat", quoted, units, est)
            assert t.price("chat", units, surge) <= bound <= quoted
        assert t.max_charge("chat", quoted, 2, est) < quoted // 100  # 2 tokens of 500: ~0.4 % of the quote
    assert t.max_charge("chat", 1, 10**6, est) == 1  # accepted at 1: 1 at most, whatever is claimed
