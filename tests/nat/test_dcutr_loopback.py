"""DCUtR in one process on 127.0.0.1: A dials B through a relay, B (who accepted the relayed
connection) opens /libp2p/dcutr, CONNECT/CONNECT/SYNC with the binary multiaddrs, and both
punch from their bound ports at the addresses the other sent.

There is no NAT here, so two things a NAT lab gives are supplied: our "public IP" (AutoNAT's
observation) is 127.0.0.1 for both, and the peer's loopback address is accepted as the target
(pick_target refuses loopback and our own IP otherwise). tests/nat/test_relay.py is the NAT run."""

from __future__ import annotations

import os

import trio

from federation import Federation, dcutr
from federation.autonat import AutoNAT
from federation.config import FederationConfig, ReachConfig

from .test_discovery import connected, start, wait_until


async def test_dcutr_upgrades_a_relayed_connection_to_direct(monkeypatch):
    monkeypatch.setattr(AutoNAT, "public_ip", lambda self: "127.0.0.1")
    real_pick = dcutr.pick_target

    def pick(addrs, my_ip):
        import multiaddr

        for raw in addrs:
            ma = multiaddr.Multiaddr(raw)
            return (ma.value_for_protocol("ip4"), int(ma.value_for_protocol("tcp"))), ""
        return real_pick(addrs, my_ip)

    monkeypatch.setattr(dcutr, "pick_target", pick)
    async with trio.open_nursery() as nursery:
        relay = await start(nursery, Federation(os.urandom(32), FederationConfig(reach=ReachConfig(relay_service="on", pex=False))))
        raddr = relay.listen_addrs[0]
        b = await start(nursery, Federation(os.urandom(32), FederationConfig(peers=[raddr], reach=ReachConfig(pex=False, relays=[raddr]))))
        a = await start(nursery, Federation(os.urandom(32), FederationConfig(reach=ReachConfig(pex=False, relay_client=False))))
        with trio.fail_after(20):  # AutoNAT calls B public on loopback, so it would not reserve by itself
            assert await b.reach.relay.reserve(raddr)
        with trio.fail_after(20):
            assert await a.reach.dial_relayed(b.peer_id, [f"{raddr}/p2p-circuit/p2p/{b.peer_id}"])
        try:
            await wait_until(lambda: b.reach.holepunch.get(a.peer_id) and a.reach.holepunch.get(b.peer_id), 20)
        except trio.TooSlowError:
            raise AssertionError(f"B: {b.reach.holepunch} A: {a.reach.holepunch} "
                                 f"B sees A as {b.reach.connection_kind(a.peer_id)}") from None
        hb, ha = b.reach.holepunch[a.peer_id], a.reach.holepunch[b.peer_id]
        # B got A's CONNECT back (it measured the RTT) and A got SYNC (it punched): the whole
        # spec exchange ran. Whether loopback's TCP simultaneous open succeeds is timing: with no
        # NAT to drop the first SYN, the kernel answers it with a RST (the NAT lab is the real run).
        assert "rtt_ms" in hb and "TCP simultaneous open to 127.0.0.1:" in hb["reason"], hb
        assert ha["result"] == "direct" or "TCP simultaneous open to 127.0.0.1:" in ha["reason"], ha
        if hb["result"] == "direct":
            await wait_until(lambda: a.reach.connection_kind(b.peer_id) == "direct-hole-punched", 20)
        # either way the two still talk
        with trio.fail_after(10):
            await a.ping(b.peer_id, timeout=5)
        nursery.cancel_scope.cancel()
