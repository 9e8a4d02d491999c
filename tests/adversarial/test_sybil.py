"""Issue 12 findings 2 and 4: a Sybil swarm of 2,000 fresh identities, each with one valid signed
announcement (relayed by one connected hostile peer, under every rate limit), must not evict the
node's own key, must not grow the peer table or peerstore without bound, and must never make the
node dial the addresses those strangers announce."""

import time

import trio
from libp2p.peer.id import ID

from fed_helpers import route_order, wait_until
from hostile import DialCounter, connect, forged_announcement, gossip_flood, hostile_host, sybil_seeds

SYBIL_CAPS = {"models": {"chat": ["echo"]}, "prices": {"chat": 0}, "cpu": {"cores": 64, "ram": 2**36}}


async def chat(client, text="after the swarm"):
    with trio.fail_after(20):
        # the first choice of federation.market.route must be the real worker: no failover needed
        peer = route_order(client, "chat", "echo").best.peer_id
        res = await client.request_intent(peer, {"kind": "chat", "model": "echo", "inputs": {"text": text}}, timeout=15)
    return res


async def test_sybil_swarm_of_2000_identities(network):
    async with network() as net, trio.open_nursery() as nursery:
        trap = DialCounter()
        await nursery.start(trap.run)
        node, client = await net.spawn(2)
        await wait_until(lambda: client.candidates("chat", "echo") == [node.peer_id], timeout=15)
        topic = node.realm.caps_topic
        seeds = sybil_seeds(2000)
        # every Sybil says: "I serve chat for free, dial me at the trap" (127.0.0.1:<trap>/p2p/<me>)
        msgs = [forged_announcement(s, topic, SYBIL_CAPS,
                                    addrs_for=lambda pid: [f"/ip4/127.0.0.1/tcp/{trap.port}/p2p/{pid}"]) for s in seeds]
        async with hostile_host() as h:
            await connect(h, node.listen_addrs[0])
            await gossip_flood(h, node.listen_addrs[0], topic, msgs)
            await wait_until(lambda: node.validator.accepted >= 1500, timeout=60)
            ps = node.host.get_peerstore()
            # bounded, with the node's own key and its real peer pinned
            assert len(node.peers) <= node.peers.max_peers and node.peers.evicted > 0
            assert len(ps.peer_ids()) <= node.peers.max_peers
            assert ps.pubkey(node.host.get_id()) is not None
            assert node.peers.known(client.peer_id)
            # the node still announces (its own key signs), and the realm still hears it
            seq = client.peers.get(node.peer_id).last_seq
            await wait_until(lambda: client.peers.get(node.peer_id).last_seq > seq, timeout=15)
            t0 = time.perf_counter()
            rows = node.peers.snapshot()
            snapshot_s = time.perf_counter() - t0
            assert len(rows) <= node.peers.max_peers
            print(f"peer table {len(node.peers)} rows, peerstore {len(ps.peer_ids())}, snapshot {snapshot_s*1000:.1f} ms")
            # the swarm's free offers capture nothing: the node's chat goes to the real worker
            res = await chat(client)
            assert res["peer_id"] == node.peer_id
            # and the strangers' addresses were never dialed, neither by the node nor by the client
            assert trap.accepted == 0
            nursery.cancel_scope.cancel()


async def test_an_unconnected_identity_announcing_127_0_0_9_is_never_dialed(network):
    async with network() as net:
        node, client = await net.spawn(2)
        await wait_until(lambda: client.candidates("chat", "echo") == [node.peer_id], timeout=15)
        topic = node.realm.caps_topic
        [s] = sybil_seeds(1, tag=7)
        msg = forged_announcement(s, topic, SYBIL_CAPS, addrs_for=lambda pid: [f"/ip4/127.0.0.9/tcp/9/p2p/{pid}"])
        dials = []
        real_dial = node.host.get_network().dial_peer

        async def spy(peer_id, *a, **kw):  # records, then dials for real
            dials.append(peer_id.to_base58())
            return await real_dial(peer_id, *a, **kw)

        node.host.get_network().dial_peer = spy
        async with hostile_host() as h:
            await connect(h, node.listen_addrs[0])
            await gossip_flood(h, node.listen_addrs[0], topic, [msg])
            from federation.keys import Signer
            stranger = Signer(s).peer_id
            await wait_until(lambda: node.peers.known(stranger) and node.peers.get(stranger).announcement, timeout=10)
            assert not node.peers.get(stranger).trusted
            ps, spid = node.host.get_peerstore(), ID.from_base58(stranger)
            assert not ps.has_peer(spid) or ps.addrs(spid) == []  # its address was not even stored
            # price 0 and "serves chat": still the real worker answers, and the stranger is not dialed
            for _ in range(4):
                res = await chat(node)
                assert res["peer_id"] == client.peer_id
            assert not await node.ensure_connected(stranger, timeout=2)
        assert stranger not in dials


def test_bounded_peerstore_keeps_own_key_and_pinned_peers():
    """py-libp2p's own peerstore, with federation.budget's bound: 2,000 identities with addresses
    (as the DHT or identify would add them) never evict the node's own key or a pinned peer."""
    import multiaddr
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerstore import PeerStore

    from federation.budget import bound_peerstore

    ps = PeerStore()
    me = create_new_key_pair(b"\x01" * 32)
    me_id = ID.from_pubkey(me.public_key)
    ps.add_key_pair(me_id, me)  # as new_host does: a key, no address
    friend = ID.from_pubkey(create_new_key_pair(b"\x02" * 32).public_key)
    ps.add_addrs(friend, [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/4001")], 3600)
    seen = {}
    bound_peerstore(ps, max_peers=500, pinned=lambda pid: pid in (me_id, friend),
                    last_seen=lambda pid: seen.get(pid, 0.0))
    for i, s in enumerate(sybil_seeds(2000, tag=3)):
        pid = ID.from_pubkey(create_new_key_pair(s).public_key)
        seen[pid] = float(i)
        ps.add_addrs(pid, [multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{10000 + i}")], 3600)
    assert len(ps.peer_ids()) <= 500
    assert ps.pubkey(me_id) == me.public_key and ps.privkey(me_id) == me.private_key
    assert ps.addrs(friend)
    assert pid in ps.peer_ids()  # the newest stays; the oldest went
