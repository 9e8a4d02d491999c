import os

import pytest
import trio

from federation.host import keypair_from_seed, make_host, peer_id_from_seed
from federation.realm import (
    Realm,
    RealmSecretError,
    format_secret,
    new_realm,
    parse_secret,
    probe_realm,
    public_realm,
)


def test_peer_id_is_deterministic_from_seed():
    s = os.urandom(32)
    assert peer_id_from_seed(s) == peer_id_from_seed(s)
    assert peer_id_from_seed(s) != peer_id_from_seed(os.urandom(32))
    with pytest.raises(ValueError):
        keypair_from_seed(b"short")


def test_host_offers_noise_only():
    host = make_host(os.urandom(32))
    secure = host.get_network().upgrader.security_multistream.transports
    assert list(secure) == ["/noise"]


def test_secret_round_trip_and_names():
    r = new_realm("lab-7")
    s = format_secret(r)
    assert s.startswith("mtor-realm:lab-7:")
    assert parse_secret(s) == r
    assert parse_secret("  " + s + "\n") == r
    assert r.caps_topic == "/mtor/lab-7/caps/1"
    assert r.dht_protocol == "/mtor/lab-7/kad/1.0.0"
    assert r.cap_key("chat", "m") == "/mtor/lab-7/cap/chat/m"
    assert public_realm().name == "grid" and public_realm().psk is None
    with pytest.raises(ValueError):
        format_secret(public_realm())


def test_secret_typos_are_caught():
    s = format_secret(new_realm("lab"))
    prefix, name, key, check = s.split(":")
    flipped = key[:5] + ("A" if key[5] != "A" else "B") + key[6:]
    bad = [
        "",
        "nonsense",
        f"{prefix}:{name}:{flipped}:{check}",
        f"{prefix}:lab2:{key}:{check}",
        f"{prefix}:{name}:{key}:00000000",
        f"{prefix}:{name}:{key[:-2]}:{check}",
        f"{prefix}:{name}:!!!:{check}",
        f"{prefix}:BAD NAME:{key}:{check}",
    ]
    for b in bad:
        with pytest.raises(RealmSecretError):
            parse_secret(b)


def test_realm_validation():
    with pytest.raises(ValueError):
        Realm("", None)
    with pytest.raises(ValueError):
        Realm("x", b"short")
    with pytest.raises(ValueError):
        Realm("a/b", None)


async def test_probe_tells_key_match_in_one_round_trip():
    k1, k2 = os.urandom(32), os.urandom(32)
    hosts = [make_host(os.urandom(32), psk=k1), make_host(os.urandom(32))]
    from federation.host import listen_multiaddr

    async with hosts[0].run([listen_multiaddr("127.0.0.1", 0)]), hosts[1].run([listen_multiaddr("127.0.0.1", 0)]):
        ports = [int(h.get_addrs()[0].value_for_protocol("tcp")) for h in hosts]
        with trio.fail_after(3):
            assert await probe_realm("127.0.0.1", ports[0], k1) is True
            assert await probe_realm("127.0.0.1", ports[0], k2) is False
            assert await probe_realm("127.0.0.1", ports[0], None) is False
            assert await probe_realm("127.0.0.1", ports[1], None) is True
            assert await probe_realm("127.0.0.1", ports[1], k1) is False
