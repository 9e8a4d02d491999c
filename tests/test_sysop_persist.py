"""Sysop bans (users) and blocks (peers) survive a restart of the node: same data dir, new process
state, still banned and still blocked. Real node, real SQLite, real libp2p host on 127.0.0.1."""

from __future__ import annotations

import httpx

from tests.conftest import running_node

PEER = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"  # a well-formed id nobody runs
P2P = {"enabled": True, "port": 0, "host": "127.0.0.1", "airgap": True, "rendezvous": False}


async def test_ban_and_block_survive_a_restart(tmp_path):
    d = tmp_path / "node"
    async with running_node(d, p2p=dict(P2P)) as node:
        sysop = {"X-Sysop-Token": node.sysop_token}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=20) as c:
            assert (await c.post("/api/v1/users/mallory/ban", headers=sysop)).status_code == 200
            assert (await c.post(f"/api/v1/peers/{PEER}/block", headers=sysop)).status_code == 200
            assert (await c.post(f"/api/v1/peers/{PEER}x/block")).status_code == 403  # not without the token
        assert node.federation.peers.is_blocked(PEER)
    async with running_node(d, p2p=dict(P2P)) as node:
        assert node.store.is_banned("mallory")
        assert node.federation.peers.is_blocked(PEER)
        async with httpx.AsyncClient(base_url=node.http_url, timeout=20) as c:
            r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi", "user": "mallory"})
            assert r.status_code == 403, r.text
            peers = (await c.get("/api/v1/peers")).json()["peers"]
            assert [p["blocked"] for p in peers if p["peer_id"] == PEER] == [True]
            sysop = {"X-Sysop-Token": node.sysop_token}
            assert (await c.post(f"/api/v1/peers/{PEER}/unblock", headers=sysop)).status_code == 200
    async with running_node(d, p2p=dict(P2P)) as node:
        assert not node.federation.peers.is_blocked(PEER)  # the unblock lasted too
        assert node.peer_blocks.all() == []
