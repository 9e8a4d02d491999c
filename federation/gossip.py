"""GossipSub with flood publishing of our own messages (as go-libp2p's `floodPublish`, on by
default there): a node's own announcement goes to every connected peer subscribed to the topic,
not only to its mesh (degree 6), so a price change reaches all direct peers in one hop instead of
waiting for mesh forwarding and heartbeat gossip. Forwarded messages still follow the mesh.
py-libp2p 0.8.1 has no such option. Cost: one copy per direct peer of each own announcement
(announcements are small and rate-limited: docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub


class FloodPublishGossipSub(GossipSub):
    def __init__(self, *args: Any, flood_publish: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flood_publish = flood_publish

    def _get_peers_to_send(self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID,
                           msg_id: bytes | None = None) -> Iterable[ID]:
        topic_ids = list(topic_ids)
        peers = set(super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id))
        ps = self.pubsub
        if self.flood_publish and ps is not None and origin == ps.my_id and msg_forwarder == origin:
            for topic in topic_ids:
                for pid in ps.peer_topics.get(topic, ()):
                    if pid != origin and (msg_id is None or msg_id not in self.dont_send_message_ids.get(pid, ())):
                        peers.add(pid)
        yield from peers
