import os
import time

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import keys
from federation.caps import CAPS_DOMAIN, CapsValidator, check_capabilities, sign_announcement
from federation.frames import canonical

from fed_helpers import ECHO_CAPS


def make_ann(signer, seq=1, ts=None, **over):
    ann = check_capabilities(ECHO_CAPS)
    ann.update(node=signer.peer_id, addrs=[f"/ip4/127.0.0.1/tcp/1/p2p/{signer.peer_id}"], ts=time.time() if ts is None else ts,
               seq=seq, ttl=30)
    ann.update(over)
    return ann


def test_accepts_good_and_counts_each_rejection_reason():
    s = keys.Signer(os.urandom(32))
    other = keys.Signer(os.urandom(32))
    v = CapsValidator()
    assert v.validate(s.peer_id, sign_announcement(make_ann(s, seq=5), s))["seq"] == 5

    cases = {
        "replayed": (s.peer_id, sign_announcement(make_ann(s, seq=5), s)),
        "stale": (s.peer_id, sign_announcement(make_ann(s, seq=6, ts=time.time() - 3600), s)),
        "future": (s.peer_id, sign_announcement(make_ann(s, seq=7, ts=time.time() + 3600), s)),
        "oversized": (s.peer_id, b"\x00" * (v.max_size + 1)),
        "malformed": (s.peer_id, b"\xc1garbage"),
    }
    # forged: signed by someone else but claims s / or origin differs from node
    forged_body = canonical(make_ann(s, seq=8))
    cases["forged"] = (s.peer_id, canonical({"a": forged_body, "s": other.sign(CAPS_DOMAIN + forged_body)}))
    for reason, (origin, data) in cases.items():
        before = v.rejected[reason]
        assert v.validate(origin, data) is None, reason
        assert v.rejected[reason] == before + 1, reason
    # signer != gossip sender
    assert v.validate(other.peer_id, sign_announcement(make_ann(s, seq=9), s)) is None
    assert v.rejected["forged"] == 2
    # without the domain tag the signature does not verify
    body = canonical(make_ann(s, seq=10))
    assert v.validate(s.peer_id, canonical({"a": body, "s": s.sign(body)})) is None
    assert v.rejected["forged"] == 3


def test_absurd_values_rejected():
    s = keys.Signer(os.urandom(32))
    v = CapsValidator(burst=100)
    absurd = [
        {"prices": {"chat": -1}},
        {"prices": {"chat": 10**18}},
        {"gpus": [{"name": "x", "vram_total": 1, "vram_free": 1}] * 10**3},
        {"gpus": [{"name": "x", "vram_total": 1, "vram_free": 2}]},
        {"cpu": {"cores": 10**9, "ram": 1}},
        {"surge": 0.1},
        {"surge": float("inf")},
        {"queue": -5},
        {"models": {"chat": "not-a-list"}},
        {"seq": -1},
        {"ttl": 10**6},
    ]
    for i, over in enumerate(absurd):
        ann = make_ann(s, seq=100 + i)
        ann.update(over)
        assert v.validate(s.peer_id, sign_announcement(ann, s)) is None, over
    assert v.accepted == 0
    assert v.rejected["absurd"] + v.rejected["malformed"] == len(absurd)


def test_per_peer_rate_limit():
    s = keys.Signer(os.urandom(32))
    t = [0.0]
    v = CapsValidator(rate=1.0, burst=3, mono=lambda: t[0])
    results = [v.validate(s.peer_id, sign_announcement(make_ann(s, seq=i), s)) for i in range(1, 6)]
    assert [r is not None for r in results] == [True, True, True, False, False]
    assert v.rejected["rate_limited"] == 2
    t[0] += 2.0  # two tokens refilled
    assert v.validate(s.peer_id, sign_announcement(make_ann(s, seq=10), s)) is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_payloads(data):
    v = CapsValidator()
    assert v.validate("12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5", data) is None


SIGNER = keys.Signer(b"\x05" * 32)
values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.binary(max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["gpus", "cpu", "models", "prices", "surge", "queue", "capacity",
                                        "version", "addrs", "ts", "seq", "ttl", "node"]),
                       values | st.lists(values, max_size=3) | st.dictionaries(st.text(max_size=5), values, max_size=3),
                       max_size=6))
def test_fuzz_signed_but_mangled_announcements(over):
    ann = make_ann(SIGNER, seq=1)
    ann.update(over)
    v = CapsValidator()
    try:
        data = sign_announcement(ann, SIGNER)
    except (TypeError, ValueError, OverflowError):
        return  # not even encodable
    out = v.validate(SIGNER.peer_id, data)
    assert out is None or (out["node"] == SIGNER.peer_id and all(p >= 0 for p in out["prices"].values()))


def test_envelope_must_be_exact():
    s = keys.Signer(os.urandom(32))
    v = CapsValidator()
    body = canonical(make_ann(s))
    for env in [{"a": body}, {"a": body, "s": s.sign(CAPS_DOMAIN + body), "x": 1}, {"a": "str", "s": b"x"}, [body]]:
        assert v.validate(s.peer_id, msgpack.packb(env)) is None
