"""Planetary reach through NAT: a public relay, two workers each behind their own home router
(MASQUERADE + drop of unsolicited inbound), a broker behind a third. The broker's chat intent
reaches a NATed worker through the relay; status says what each node is; the hole punch says
whether it upgraded the relayed connection to a direct one, or why not."""

from __future__ import annotations

import time

import pytest

from .harness import P2P_PORT, NsNode, wait_until

SLOW_ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}


@pytest.fixture
def natted_realm(lab, tmp_path):
    nodes: list[NsNode] = []
    t0 = time.monotonic()
    try:
        relay_ns, _ = lab.inet, None
        relay = NsNode(relay_ns, tmp_path / "relay", "--roles", "broker", "--relay", "auto", models={},
                       listen=lab.relay_ip, ledger={"enabled": False})
        nodes.append(relay)
        relay.wait_ready()
        relay_addr = f"/ip4/{lab.relay_ip}/tcp/{P2P_PORT}/p2p/{relay.peer_id}"
        out = {"relay": relay, "relay_addr": relay_addr}
        for name, i, extra in (("w1", 1, ()), ("w2", 2, ()), ("b", 3, ("--roles", "broker"))):
            ns, ip, wan = lab.add_natted_host(name, i)
            node = NsNode(ns, tmp_path / name, "--peer", relay_addr, *extra,
                          models={} if name == "b" else SLOW_ECHO, ledger={"enabled": False})
            node.wan = wan
            nodes.append(node)
            out[name] = node
        for n in nodes[1:]:
            n.wait_ready()
        out["startup_s"] = round(time.monotonic() - t0, 1)
        yield out
    finally:
        failed = []
        for n in nodes:
            n.stop()
            failed.append(f"--- {n.data_dir.name}\n{n.output()[-2500:]}" if hasattr(n, "output") else "")
        # logs are printed by pytest when the test failed (captured stdout)
        print("\n".join(failed))


def test_intent_reaches_natted_worker_through_relay(natted_realm):
    relay, w1, w2, b = (natted_realm[k] for k in ("relay", "w1", "w2", "b"))
    timings = {"startup_s": natted_realm["startup_s"]}
    t0 = time.monotonic()

    # AutoNAT: the relay is public (offers relay service); the NATed nodes are not, and reserve a slot
    wait_until(lambda: relay.reach().get("mode") == "public" and relay.reach()["relay_service"]["offering"],
               30, "relay public and offering relay service")
    for n in (w1, w2, b):
        r = wait_until(lambda: n.reach() if n.reach().get("mode") == "relayed" else None, 40,
                       f"{n.data_dir.name} relayed via the relay")
        assert r["autonat"]["status"] == "private", r["autonat"]
        assert r["relays"][0]["peer"] == relay.peer_id
        assert r["summary"] == f"relayed via {relay.peer_id}"
        assert any("/p2p-circuit/p2p/" + n.peer_id in a for a in r["announce_addrs"]), r["announce_addrs"]
        # the relay saw the router's public address, not the private one
        assert n.wan in r["autonat"]["observed_ips"], r["autonat"]
    timings["reachability_s"] = round(time.monotonic() - t0, 1)

    # gossip crosses the relay: the broker learns both workers' capabilities
    wait_until(lambda: all(p in b.peers() and b.peers()[p]["models"].get("chat") for p in (w1.peer_id, w2.peer_id)),
               30, "broker sees both workers' announcements")
    # the workers are unreachable directly: the broker must not have a direct connection to them
    assert w1.peer_id not in b.reach().get("connections", {}) or b.reach()["connections"][w1.peer_id] != "direct"

    t1 = time.monotonic()
    answer = b.chat("hello through the relay")
    timings["first_chat_s"] = round(time.monotonic() - t1, 2)
    assert answer["text"] == "hello through the relay"
    assert answer["peer"] in (w1.peer_id, w2.peer_id)
    served = w1 if answer["peer"] == w1.peer_id else w2

    conns = b.reach()["connections"]
    kind = conns.get(served.peer_id)
    assert kind in ("relayed", "direct-hole-punched"), conns
    t2 = time.monotonic()
    again = b.chat("and again")
    timings["second_chat_s"] = round(time.monotonic() - t2, 2)
    assert again["text"] == "and again"

    # hole punch: report which happened (upgraded, or stayed relayed and why)
    hp = wait_until(lambda: b.reach()["hole_punch"]["attempts"].get(served.peer_id), 30, "a hole punch outcome")
    print(f"\nHOLE PUNCH broker->{served.data_dir.name}: {hp}")
    print(f"connection now: {b.reach()['connections'].get(served.peer_id)}")
    print(f"TIMINGS {timings}")
    assert hp["result"] in ("direct", "stayed-relayed")
    if hp["result"] == "direct":
        assert b.reach()["connections"].get(served.peer_id) == "direct-hole-punched"
        assert "direct after a hole punch" in b.reach()["summary"]
        # the worker saw the same punch, and intents keep flowing on the direct connection
        assert served.reach()["hole_punch"]["attempts"][b.peer_id]["result"] == "direct"
        assert served.reach()["connections"][b.peer_id] == "direct-hole-punched"
        t3 = time.monotonic()
        assert b.chat("straight through now")["text"] == "straight through now"
        timings["chat_after_punch_s"] = round(time.monotonic() - t3, 2)
        print(f"TIMINGS {timings}")
    else:
        assert hp["reason"]
    # the relay's limits are what the operator set and it holds the reservations
    rs = relay.reach()["relay_service"]
    assert rs["active_reservations"] >= 3 and rs["max_reservations"] == 32
