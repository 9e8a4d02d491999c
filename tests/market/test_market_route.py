"""Routing (federation/market.py): cheapest wins, ties by latency, filters, reasons, failover."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.market import Ask, Offer, price_moved, route
from federation.pricing import PriceTable


def test_cheapest_effective_price_wins():
    offers = [Offer("a", 1000, surge=2.0), Offer("b", 1500, surge=1.0), Offer("c", 900, surge=3.0)]
    r = route(offers)
    assert r.ok and r.reason == "ok"
    assert r.peers == ["b", "a", "c"]  # 1500 < 2000 < 2700
    assert [o.price for o in r.order] == [1500, 2000, 2700]
    assert r.cheapest == 1500


def test_tie_broken_by_expected_latency():
    offers = [
        Offer("far", 1000, rtt_ms=80),
        Offer("busy", 1000, rtt_ms=5, queue=4, capacity=1, service_s=2.0),  # 5 + 8000 ms
        Offer("near", 1000, rtt_ms=10),
        Offer("self", 1000, local=True),  # own worker: rtt 0, equal terms otherwise
    ]
    assert route(offers).peers == ["self", "near", "far", "busy"]
    # strict order: a local worker gets no bonus, one micro-token decides
    strict = dict(price_band=0, latency_band_ms=0)
    assert route([Offer("self", 1001, local=True), Offer("p", 1000, rtt_ms=300)], **strict).peers == ["p", "self"]
    # default: prices within 5 % tie, so the nearer one wins; 6 % apart they do not tie
    assert route([Offer("self", 1001, local=True), Offer("p", 1000, rtt_ms=300)]).peers == ["self", "p"]
    assert route([Offer("self", 1060, local=True), Offer("p", 1000, rtt_ms=300)]).peers == ["p", "self"]


def test_rng_spreads_ties_between_brokers():
    import random

    offers = [Offer(f"p{i}", 1000 + i, rtt_ms=20 + i) for i in range(10)]  # all in one band, one 50-ms bucket
    firsts = {route(offers, rng=random.Random(seed)).peers[0] for seed in range(50)}
    assert len(firsts) >= 5
    assert route(offers).peers[0] == "p0"  # without rng: deterministic


def test_unhealthy_blocked_stale_peaking_and_non_serving_are_excluded():
    offers = [
        Offer("sick", 1, health=0), Offer("blk", 1, blocked=True), Offer("old", 1, fresh=False),
        Offer("nomodel", 1, serves=False), Offer("peaker", 1, surge=1.5, peaking_threshold=2.0),
        Offer("ok", 5000, health=10),
    ]
    r = route(offers)
    assert r.peers == ["ok"]
    assert r.excluded == {"unhealthy": 1, "blocked": 1, "stale": 1, "not_serving": 1, "peaking": 1}
    # the peaker is back once its surge reaches its threshold
    assert route([Offer("peaker", 1, surge=2.0, peaking_threshold=2.0)]).peers == ["peaker"]


def test_max_price_below_every_quote_names_the_cheapest():
    offers = [Offer("a", 1000, surge=2.5), Offer("b", 3000), Offer("c", 700, health=0)]
    r = route(offers, max_price=2000, kind="chat", model="m")
    assert not r.ok and r.reason == "over_max_price" and r.cheapest == 2500
    assert "max price 2000" in r.message and "cheapest is 2500" in r.message
    ok = route(offers, max_price=2500)
    assert ok.peers == ["a"] and ok.excluded["over_max_price"] == 1
    none = route([Offer("c", 1, health=0)], max_price=10, kind="chat")
    assert none.reason == "no_candidates" and none.cheapest is None and "no healthy worker" in none.message


def test_failover_order_and_exclude():
    offers = [Offer(p, price) for p, price in [("a", 10), ("b", 20), ("c", 30)]]
    r = route(offers, max_price=25)
    assert r.peers == ["a", "b"]
    assert route(offers, max_price=25, exclude={"a"}).peers == ["b"]
    assert route(offers, max_price=25, exclude={"a", "b"}).reason == "over_max_price"


def test_offer_from_an_ask():
    ann = {"prices": PriceTable({"chat": 2000, "chat@big": 4000}).to_announcement(peaking_threshold=3.0),
           "surge": 1.5, "queue": 3, "capacity": 2, "models": {"chat": ["big", "small"]}}
    ask = Ask.from_announcement(ann)  # once per announcement; one offer per intent from it
    o = ask.offer("p", "chat", "big", 500, health=90, rtt_ms=12.0)
    assert o.base_price == 2000 and o.price == 3000 and o.peaking_threshold == 3.0 and o.serves
    assert (o.queue, o.capacity, o.health, o.rtt_ms) == (3, 2, 90, 12.0)
    assert ask.offer("p", "chat", "small", 500).base_price == 1000
    assert ask.offer("p", "chat", None, 500).serves  # no model named: any model of the kind
    assert not ask.offer("p", "imagine", "x", 5).serves
    assert route([o]).reason == "no_candidates"  # peaking below its threshold


def test_price_moved():
    assert price_moved(None, 10**9) is None
    assert price_moved(100, 100) is None
    assert price_moved(100, 101) == 101


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(2, 20), st.integers(0, 100), st.floats(0, 500)),
                min_size=0, max_size=30),
       st.one_of(st.none(), st.integers(0, 10**7)))
def test_route_properties(specs, max_price):
    offers = [Offer(f"p{i}", b, surge=h / 2, health=hl, rtt_ms=rtt) for i, (b, h, hl, rtt) in enumerate(specs)]
    r = route(offers, max_price, price_band=0, latency_band_ms=0)
    prices = [o.price for o in r.order]
    assert prices == sorted(prices)
    banded = route(offers, max_price)
    assert banded.peers and r.peers and banded.order[0].price * 1000 <= r.order[0].price * 1050 + 1000 \
        or banded.peers == r.peers == []
    assert all(o.health > 0 for o in r.order)
    if max_price is not None:
        assert all(p <= max_price for p in prices)
    healthy = [o.price for o in offers if o.health > 0]
    if healthy:
        assert r.cheapest == min(healthy)
        if r.ok:
            assert r.order[0].price == min(p for p in healthy if max_price is None or p <= max_price)
        else:
            assert r.reason == "over_max_price" and r.cheapest > max_price
    else:
        assert r.reason == "no_candidates"
