"""/dnsaddr resolution (federation/dnsaddr.py) against a real DNS server on 127.0.0.1.

The server (tests/interop/dns_server.py) stands in for the public DNS that serves
`_dnsaddr.bootstrap.libp2p.io`; the records have the shape that zone has (a top-level name
listing one nested /dnsaddr name per peer, each listing that peer's addresses)."""

from __future__ import annotations

import pytest
import trio

from federation.dnsaddr import MAX_ADDRS, MAX_QUERIES, DnsaddrResolver, ResolveError, parse_server

from .dns_server import LocalDns

A = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
B = "QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa"

ZONE = {
    "_dnsaddr.bootstrap.test": [("TXT", f"dnsaddr=/dnsaddr/am6.bootstrap.test/p2p/{A}"),
                                ("TXT", f"dnsaddr=/dnsaddr/sg1.bootstrap.test/p2p/{B}"),
                                ("TXT", "v=spf1 -all"), ("TXT", "dnsaddr=not a multiaddr")],
    "_dnsaddr.am6.bootstrap.test": [("TXT", f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{A}"),
                                    ("TXT", f"dnsaddr=/dns4/h.bootstrap.test/tcp/4002/p2p/{A}"),
                                    ("TXT", f"dnsaddr=/ip4/127.0.0.9/tcp/9/p2p/{B}")],  # another peer: filtered
    "_dnsaddr.sg1.bootstrap.test": [("TXT", f"dnsaddr=/ip4/127.0.0.2/tcp/4001/p2p/{B}")],
    "h.bootstrap.test": [("A", "127.0.0.3")],
    "_dnsaddr.loop.test": [("TXT", f"dnsaddr=/dnsaddr/loop.test/p2p/{A}")],
    "_dnsaddr.fan.test": [("TXT", f"dnsaddr=/ip4/127.0.{i // 250}.{i % 250 + 1}/tcp/1/p2p/{A}") for i in range(200)],
}


@pytest.fixture
async def dns(nursery):
    server = LocalDns(ZONE)
    await nursery.start(server.serve)
    return server


async def test_resolves_nested_dnsaddr_with_the_peer_id_filter_and_caches(dns):
    r = DnsaddrResolver([dns.server], timeout=2.0)
    with trio.fail_after(10):
        got = await r.resolve(f"/dnsaddr/bootstrap.test/p2p/{A}")
    assert sorted(got) == [f"/ip4/127.0.0.1/tcp/4001/p2p/{A}", f"/ip4/127.0.0.3/tcp/4002/p2p/{A}"]  # an RRset has no order
    with trio.fail_after(10):
        got_b = await r.resolve(f"/dnsaddr/bootstrap.test/p2p/{B}")
    assert got_b == [f"/ip4/127.0.0.2/tcp/4001/p2p/{B}"]
    asked = len(dns.queries)
    with trio.fail_after(10):
        assert await r.resolve(f"/dnsaddr/bootstrap.test/p2p/{A}") == got
    assert len(dns.queries) == asked and r.stats["cache_hits"] >= 3  # answered from the cache
    # without a peer id every peer's addresses come back
    with trio.fail_after(10):
        everyone = await r.resolve("/dnsaddr/bootstrap.test")
    assert set(everyone) >= set(got) | set(got_b) and f"/ip4/127.0.0.9/tcp/9/p2p/{B}" in everyone
    # plain addresses pass through, a bootstrap list resolves in one call
    out, errors = await r.resolve_all([f"/ip4/127.0.0.5/tcp/1/p2p/{A}", f"/dnsaddr/sg1.bootstrap.test/p2p/{B}",
                                       f"/dnsaddr/nowhere.test/p2p/{A}"])
    assert out == [f"/ip4/127.0.0.5/tcp/1/p2p/{A}", f"/ip4/127.0.0.2/tcp/4001/p2p/{B}"]
    assert list(errors) == [f"/dnsaddr/nowhere.test/p2p/{A}"]


async def test_bounded_loops_fan_out_and_unreachable_dns(dns):
    r = DnsaddrResolver([dns.server], timeout=1.0)
    with trio.fail_after(10):  # a record that points at itself
        with pytest.raises(ResolveError):
            await r.resolve(f"/dnsaddr/loop.test/p2p/{A}")
    assert len(dns.queries) <= MAX_QUERIES
    with trio.fail_after(10):
        fan = await r.resolve(f"/dnsaddr/fan.test/p2p/{A}")
    assert len(fan) == MAX_ADDRS
    dns.silent = True
    quiet = DnsaddrResolver([dns.server], timeout=0.5)
    with trio.fail_after(10):
        with pytest.raises(ResolveError, match="Timeout|timed out|LifetimeTimeout"):
            await quiet.resolve(f"/dnsaddr/other.test/p2p/{A}")
    asked = dns.received
    with trio.fail_after(10), pytest.raises(ResolveError):  # the failure is cached: no second wait
        await quiet.resolve(f"/dnsaddr/other.test/p2p/{A}")
    assert dns.received == asked and quiet.stats["cache_hits"] == 1


def test_parse_server():
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_server("[::1]:53") == ("::1", 53)
