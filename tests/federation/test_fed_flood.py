"""Flood publishing (federation/gossip.py): a node's own announcement goes to every directly
connected subscriber, a forwarded one only to the mesh. Real nodes on 127.0.0.1; the source has
more direct peers (9) than the mesh degree (6)."""

from __future__ import annotations

import os

import trio
from libp2p.peer.id import ID

from federation import Federation
from federation.config import FederationConfig, ReachConfig

from fed_helpers import wait_until  # noqa: E402  (tests/federation is on sys.path via conftest)


async def test_own_messages_flood_forwarded_ones_follow_the_mesh():
    async with trio.open_nursery() as nursery:
        src = Federation(os.urandom(32), FederationConfig(reach=ReachConfig(pex=False), enable_dht=False))
        await nursery.start(src.run)
        others = []
        for _ in range(9):
            f = Federation(os.urandom(32), FederationConfig(peers=[src.listen_addrs[0]], reach=ReachConfig(pex=False), enable_dht=False))
            await nursery.start(f.run)
            others.append(f)
        topic = src.realm.caps_topic
        ids = {ID.from_base58(f.peer_id) for f in others}
        await wait_until(lambda: ids <= set(src.pubsub.peer_topics.get(topic, ())), 20)
        me = src.pubsub.my_id
        # incoming GRAFTs may have put all 9 into the mesh: make it a degree-3 mesh for the check
        # (the calls below are synchronous, no heartbeat runs in between)
        src.gossip.mesh[topic] = set(list(ids)[:3])
        own = set(src.gossip._get_peers_to_send([topic], me, me))
        assert own == ids
        forwarder = next(iter(ids - src.gossip.mesh[topic]))
        forwarded = set(src.gossip._get_peers_to_send([topic], forwarder, forwarder))
        assert forwarded == src.gossip.mesh[topic]
        src.gossip.flood_publish = False
        assert set(src.gossip._get_peers_to_send([topic], me, me)) == src.gossip.mesh[topic]
        nursery.cancel_scope.cancel()
