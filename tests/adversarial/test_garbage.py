"""Issue 12 finding 1: one stream must not kill a node. Garbage on every protocol the node
registers (py-libp2p's meshsub, kad, identify, ping, relay, and ours) from real hostile libp2p
peers; the node stays up, still serves a chat, and a repeat offender is disconnected and
backed off."""

import os

import trio

from fed_helpers import route_order, wait_until
from hostile import connect, garbage, hostile_host, send_on

PAYLOADS = [
    garbage(100),                                  # varint + 100 random bytes (the original kill)
    b"\xff\xff\xff\xff\x0f" + os.urandom(64),      # a 4 GiB varint / length prefix
    b"\x00\x00\x00\x08" + os.urandom(8),           # a 4-byte prefix and a short non-msgpack body
    os.urandom(2048),                              # no framing at all
]


async def chat(client, text="still here"):
    with trio.fail_after(20):
        # the first choice of federation.market.route must be the real worker: no failover needed
        peer = route_order(client, "chat", "echo").best.peer_id
        res = await client.request_intent(peer, {"kind": "chat", "model": "echo", "inputs": {"text": text}}, timeout=15)
    return res["output"]["text"]


async def test_garbage_on_every_protocol_leaves_the_node_serving(network):
    async with network() as net:
        node, client = await net.spawn(2)
        await wait_until(lambda: client.candidates("chat", "echo") == [node.peer_id], timeout=15)
        protocols = sorted(node.host.get_mux().handlers)
        assert {"/meshsub/1.1.0", "/meshsub/1.0.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/kad/1.0.0",
                "/mtor/intent/2"} <= set(protocols)
        addr = node.listen_addrs[0]
        opened = 0
        for proto in protocols:
            # one fresh identity per protocol: a repeat offender is cut off before it tries them all
            async with hostile_host() as h:
                await connect(h, addr)
                for payload in PAYLOADS[:2] if proto.startswith("/meshsub") else PAYLOADS[:1]:
                    opened += await send_on(h, addr, proto, payload)
        assert opened >= len(protocols)
        assert node._running
        # the pubsub reader's DecodeError was caught, and counted against the sender
        assert node.guard.stats["offences"] >= 2
        assert await chat(client) == "still here"


async def test_big_gossip_messages_are_dropped_not_fatal(network):
    async with network() as net:
        node, client = await net.spawn(2)
        [bad] = await net.spawn(1, first_seed=60)
        topic = node.realm.caps_topic
        await wait_until(lambda: bad.pubsub.peer_topics.get(topic), timeout=15)
        bad.pubsub.remove_topic_validator(topic)  # a hostile node publishes what it likes
        for size in (70 * 1024, 300 * 1024, 1100 * 1024):
            try:
                await bad.pubsub.publish(topic, os.urandom(size))
            except Exception:
                pass  # py-libp2p may refuse to send the biggest one; the node must survive either way
        await wait_until(lambda: node.validator.rejected.get("oversized", 0) + node.guard.stats["failed"] >= 1, 15)
        assert node._running
        await wait_until(lambda: node.peer_id in client.candidates("chat", "echo"), timeout=15)
        assert await chat(client) == "still here"


async def test_repeat_offender_is_disconnected_and_backed_off(network):
    async with network() as net:
        node, client = await net.spawn(2)
        addr = node.listen_addrs[0]
        async with hostile_host() as h:
            offender = h.get_id().to_base58()
            await connect(h, addr)
            for _ in range(node.guard.strikes):
                await send_on(h, addr, "/meshsub/1.1.0", garbage(100))
            await wait_until(lambda: node.guard.is_banned(offender), timeout=10)
            assert node.peers.get(offender).health == 0  # out of rotation as well
            await wait_until(lambda: not node.host.get_network().connections.get(h.get_id()), timeout=10)
            # it comes back at once: the connection is refused while the back-off lasts
            try:
                await connect(h, addr, timeout=5)
            except Exception:
                pass
            await wait_until(lambda: not node.host.get_network().connections.get(h.get_id()), timeout=10)
            assert node.guard.banned_for(offender) > 0
        assert await chat(client) == "still here"
        # an honest peer that merely closes its streams collects no strikes
        assert node.guard.is_banned(client.peer_id) is False


async def test_garbage_intent_frames_count_as_offences(network):
    async with network() as net:
        node, client = await net.spawn(2)
        addr = node.listen_addrs[0]
        async with hostile_host() as h:
            await connect(h, addr)
            for _ in range(node.guard.strikes):
                await send_on(h, addr, "/mtor/intent/2", b"\x00\x00\x00\x08" + os.urandom(8))
            await wait_until(lambda: node.guard.is_banned(h.get_id().to_base58()), timeout=10)
        assert node.server.stats["bad_frames"] >= node.guard.strikes
        await wait_until(lambda: node.peer_id in client.candidates("chat", "echo"), timeout=15)
        assert await chat(client) == "still here"


async def test_garbage_on_mtor_msg_counts_as_an_offence(network):
    from federation.messages import Messenger

    async with network() as net:
        node, client = await net.spawn(2)
        Messenger(node.host)  # as mtor_node/network.py registers it
        addr = node.listen_addrs[0]
        async with hostile_host() as h:
            await connect(h, addr)
            for _ in range(node.guard.strikes):
                await send_on(h, addr, "/mtor/msg/1", b"\x00\x00\x00\x08" + b"\xc1" * 8)
            await wait_until(lambda: node.guard.is_banned(h.get_id().to_base58()), timeout=10)
        assert await chat(client) == "still here"
