"""In-process (127.0.0.1) tests of the discovery pieces that need no NAT: the public rendezvous
against a local stand-in for the public DHT, peer exchange, connection limits, validation."""

from __future__ import annotations

import os

import multiaddr
import trio
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service

from federation import Federation
from federation.host import full_addrs, listen_multiaddr, make_host
from federation.addrs import valid_peer_addr
from federation.config import FederationConfig, ReachConfig

CAPS = {"models": {"chat": ["echo"]}, "prices": {"chat": 10}, "cpu": {"cores": 2, "ram": 2**30}}


async def wait_until(cond, timeout: float, interval: float = 0.05):
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(interval)  # polling a condition, bounded by fail_after


def connected(a: Federation, b: Federation) -> bool:
    from libp2p.peer.id import ID

    return bool(a.host.get_network().connections.get(ID.from_base58(b.peer_id)))


async def standin_bootstrap(nursery: trio.Nursery, n: int) -> list[str]:
    """n plain py-libp2p Kademlia servers (no mtor code) playing the public bootstrap peers."""
    hosts = []

    async def one(task_status=trio.TASK_STATUS_IGNORED):
        h = make_host(os.urandom(32))
        async with h.run([listen_multiaddr("127.0.0.1", 0)]):
            kad = KadDHT(h, DHTMode.SERVER, enable_random_walk=False)
            async with background_trio_service(kad):
                hosts.append((h, kad))
                task_status.started()
                await trio.sleep_forever()

    for _ in range(n):
        await nursery.start(one)
    # the bootstrap peers know each other
    for i, (h, kad) in enumerate(hosts):
        for h2, _ in hosts[i + 1:]:
            await h.connect(info_from_p2p_addr(multiaddr.Multiaddr(full_addrs(h2)[0])))
            await kad.add_peer(h2.get_id(), skip_server_mode_check=True)
    for h, kad in hosts:
        for h2, _ in hosts:
            if h2 is not h:
                await kad.add_peer(h2.get_id(), skip_server_mode_check=True)
    return [full_addrs(h)[0] for h, _ in hosts]


async def start(nursery, fed):
    with trio.fail_after(15):
        await nursery.start(fed.run)
    return fed


async def test_rendezvous_on_standin_public_dht():
    async with trio.open_nursery() as nursery:
        boot = await standin_bootstrap(nursery, 3)
        # x knows only the first bootstrap peer, y only the last; neither knows the other
        x = Federation(os.urandom(32), FederationConfig(rendezvous=True, rendezvous_bootstrap=[boot[0]], announce_interval=0.5,
                       reach=ReachConfig(pex=False)))
        y = Federation(os.urandom(32), FederationConfig(rendezvous=True, rendezvous_bootstrap=[boot[2]], announce_interval=0.5,
                       reach=ReachConfig(pex=False)))
        x.set_capabilities(CAPS)
        await start(nursery, x)
        await start(nursery, y)
        t0 = trio.current_time()
        await wait_until(lambda: connected(y, x) or connected(x, y), 30)
        met = trio.current_time() - t0
        # each finds the other as a provider of the rendezvous key
        await wait_until(lambda: x.peer_id in y.reachability()["rendezvous"]["found"]
                         and y.peer_id in x.reachability()["rendezvous"]["found"], 30)
        print(f"\nrendezvous: connected after {met:.1f} s; both found as providers after "
              f"{trio.current_time() - t0:.1f} s")
        # and the realm works between them: y learns x's capabilities
        await wait_until(lambda: y.candidates("chat", "echo") == [x.peer_id], 15)
        nursery.cancel_scope.cancel()


async def test_private_realm_and_airgap_never_use_the_rendezvous():
    from federation import new_realm

    a = Federation(os.urandom(32), FederationConfig(realm=new_realm("lab"), rendezvous=True, rendezvous_bootstrap=["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEYYGNCZRkzf1PvgmTDXdZBqyJ8HZtnKohu3aFMtbL8qJ"]))
    b = Federation(os.urandom(32), FederationConfig(airgap=True, rendezvous=True, rendezvous_bootstrap=["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEYYGNCZRkzf1PvgmTDXdZBqyJ8HZtnKohu3aFMtbL8qJ"]))
    assert not a.rendezvous_enabled and a.rendezvous_bootstrap == []
    assert not b.rendezvous_enabled and b.rendezvous_bootstrap == []


async def test_peer_exchange_connects_peers_of_peers():
    async with trio.open_nursery() as nursery:
        b = await start(nursery, Federation(os.urandom(32), FederationConfig(announce_interval=0.5)))
        a = await start(nursery, Federation(os.urandom(32), FederationConfig(peers=[b.listen_addrs[0]], announce_interval=0.5)))
        c = await start(nursery, Federation(os.urandom(32), FederationConfig(peers=[b.listen_addrs[0]], announce_interval=0.5)))
        assert not connected(a, c)
        # the first PEX round runs 2 s after start, then every 5 s
        await wait_until(lambda: connected(a, c) or connected(c, a), 20)
        assert b.reach.counters["pex_learned"] + a.reach.counters["pex_learned"] + c.reach.counters["pex_learned"] > 0
        nursery.cancel_scope.cancel()


async def test_max_per_ip_refuses_extra_connections():
    async with trio.open_nursery() as nursery:
        hub = await start(nursery, Federation(os.urandom(32), FederationConfig(reach=ReachConfig(max_per_ip=2, limit_loopback=True, pex=False))))
        others = []
        for _ in range(4):
            others.append(await start(nursery, Federation(os.urandom(32), FederationConfig(reach=ReachConfig(pex=False)))))
        for o in others:
            await o.connect(hub.listen_addrs[0])
        # everything comes from 127.0.0.1: the hub keeps at most 2 connections from it
        await wait_until(lambda: sum(1 for c in hub.host.get_network().connections.values() if c) <= 2, 10)
        st = hub.reachability()
        assert st["limits"] == {"max_peers": 200, "max_per_ip": 2}
        assert st["counters"]["refused_per_ip"] >= 2
        nursery.cancel_scope.cancel()


def test_peer_addresses_are_validated():
    assert valid_peer_addr("/ip4/10.0.0.1/tcp/4001") == "/ip4/10.0.0.1/tcp/4001"
    assert valid_peer_addr("/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWEYYGNCZRkzf1PvgmTDXdZBqyJ8HZtnKohu3aFMtbL8qJ/p2p-circuit")
    for bad in (None, 5, "", "garbage", "/ip4/10.0.0.1/udp/5", "/ip4/1.2.3.4/tcp/1" + "/tcp/1" * 60):
        assert valid_peer_addr(bad) is None
    assert valid_peer_addr("/ip4/127.0.0.1/tcp/1", allow_local=False) is None


async def test_relayed_connection_in_a_private_realm():
    """py-libp2p applies the realm PSK to inbound relayed connections only: ours adds it on the
    outbound side, so a private realm works through a relay (no NAT needed to show it)."""
    from federation import new_realm

    realm = new_realm("lab")

    async def echo(peer_id, request, send):
        await send({"type": "accepted", "price": 0})
        await send({"type": "result", "output": {"text": request["inputs"]["text"]}, "units": 1})

    async with trio.open_nursery() as nursery:
        relay = await start(nursery, Federation(os.urandom(32), FederationConfig(realm=realm, reach=ReachConfig(relay_service="on", pex=False))))
        w = Federation(os.urandom(32), FederationConfig(realm=realm, peers=[relay.listen_addrs[0]], reach=ReachConfig(pex=False)))
        w.set_capabilities(CAPS)
        w.set_intent_handler(echo)
        await start(nursery, w)
        b = await start(nursery, Federation(os.urandom(32), FederationConfig(realm=realm, peers=[relay.listen_addrs[0]],
                                            reach=ReachConfig(pex=False, hole_punch=False))))
        assert await w.reach.relay.reserve(relay.listen_addrs[0])
        circuit = w.reach.relayed_addrs()
        assert circuit and "/p2p-circuit/p2p/" + w.peer_id in circuit[0]
        assert await b.reach.dial_relayed(w.peer_id, circuit)
        # a relayed connection to w now exists and went through the PSK (on loopback b may
        # also hold a direct one, found through the DHT: all nodes here are reachable)
        from libp2p.peer.id import ID

        from federation.conn import conn_is_relayed

        conns = b.host.get_network().connections.get(ID.from_base58(w.peer_id)) or []
        assert any(conn_is_relayed(c) for c in conns), conns
        if all(conn_is_relayed(c) for c in conns):
            assert b.reach.connection_kind(w.peer_id) == "relayed"
        await wait_until(lambda: w.peer_id in b.candidates("chat", "echo"), 15)
        out = await b.request_intent(w.peer_id, {"id": "r1", "kind": "chat", "model": "echo",
                                                 "inputs": {"text": "via relay"}}, timeout=15)
        assert out["output"]["text"] == "via relay"
        nursery.cancel_scope.cancel()
