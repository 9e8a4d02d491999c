"""LAN discovery by mDNS, bound to allowed interfaces: two nodes on one LAN find each other with
no --peer; a third node on the same LAN whose mDNS is restricted to another interface does not."""

from __future__ import annotations

import pytest

from .harness import NsNode, wait_until


def test_mdns_finds_lan_peers_only_on_allowed_interfaces(lab, tmp_path):
    members = lab.add_lan("lan", [("a", 11), ("b", 12), ("c", 13)], extra_iface={"c": "10.89.0.13"})
    nodes = []
    try:
        for name in ("a", "b"):
            ns, _ = members[name]
            nodes.append(NsNode(ns, tmp_path / name, "--mdns-interface", "eth0", ledger={"enabled": False}))
        ns_c, _ = members["c"]
        c = NsNode(ns_c, tmp_path / "c", "--mdns-interface", "other0", ledger={"enabled": False})
        nodes.append(c)
        a, b = nodes[0], nodes[1]
        for n in nodes:
            n.wait_ready()
        # a and b find each other (no --peer), connect, and see each other's capabilities
        wait_until(lambda: b.peer_id in a.reach().get("mdns", {}).get("found", []), 30, "a finds b by mDNS")
        wait_until(lambda: a.peer_id in b.peers() and b.peers()[a.peer_id]["models"].get("chat"), 30,
                   "b receives a's announcement")
        ra = a.reach()["mdns"]
        assert ra["bound"] == ["10.88.0.11"], ra
        # mDNS started off the event loop: it cannot have stalled startup (measured for the docs)
        print(f"\nmDNS start (in a thread): a {ra['started_in_s']} s")
        # c listens on mDNS only on other0: it never hears a or b, and they never hear it
        rc = c.reach()["mdns"]
        assert rc["bound"] == ["10.89.0.13"], rc
        assert not rc["found"], rc
        assert c.peer_id not in a.reach()["mdns"]["found"] and c.peer_id not in b.reach()["mdns"]["found"]
        assert c.peer_id not in a.peers() and a.peer_id not in c.peers()
    finally:
        for n in nodes:
            n.stop()
        for n in nodes:
            if n.peer_id is None:
                print(n.output()[-2000:])
