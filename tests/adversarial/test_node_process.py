"""The hostile-peer suite against a real `mtor-node start` process (echo model, p2p on
127.0.0.1): garbage on every protocol its identify lists, a small Sybil swarm, a frame flood;
after each the process is alive, answers a chat through its broker (HTTP API), and its peak RSS
stays under a stated bound."""

import json
import os
import struct

import httpx
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from federation.realm import public_realm
from hostile import connect, forged_announcement, garbage, gossip_flood, hostile_host, send_on, sybil_seeds
from tests.conftest import ECHO_MODELS, free_port, write_config
from tests.test_cli import RunningNode, cli

RSS_GROWTH_MIB = 250  # bound on the node's peak RSS growth over the whole suite
KNOWN = ["/meshsub/1.1.0", "/meshsub/1.0.0", "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0",
         "/ipfs/kad/1.0.0", "/libp2p/circuit/relay/0.2.0/stop", "/mtor/intent/2", "/mtor/msg/1", "/mtor/pex/1",
         public_realm().dht_protocol]


def rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


@pytest.fixture
def node(tmp_path):
    d = tmp_path / "node"
    write_config(d, ECHO_MODELS, http={"port": free_port()},
                 p2p={"port": 0, "host": "127.0.0.1", "airgap": True, "rendezvous": False})
    n = RunningNode(d)
    try:
        n.wait_ready()
        st = json.loads(cli("status", "--json", data_dir=d, check=True).stdout)
        n.peer_id, n.addr, n.url = st["peer_id"], st["listen_addrs"][0], st["http"]
        yield n
    finally:
        n.stop()


async def chat_ok(node, text):
    assert node.proc.poll() is None, node.output()[-3000:]
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as c:
        r = await c.post("/api/v1/intents", json={"kind": "chat", "messages": [{"role": "user", "content": text}]})
    body = r.json()
    assert r.status_code == 200 and text in body.get("text", ""), body


@pytest.mark.slow
async def test_hostile_peers_against_a_node_process(node):
    pid = node.proc.pid
    base = rss_kib(pid, "VmRSS")
    await chat_ok(node, "before")

    # 1. garbage on every protocol the node speaks (as its identify says), one identity each
    async with hostile_host() as h:
        await connect(h, node.addr)
        with trio.move_on_after(5):
            while not h.get_peerstore().has_peer(ID.from_base58(node.peer_id)) or \
                    not h.get_peerstore().get_protocols(ID.from_base58(node.peer_id)):
                await trio.sleep(0.05)  # identify's answer, bounded
        try:
            listed = list(h.get_peerstore().get_protocols(ID.from_base58(node.peer_id)))
        except Exception:
            listed = []
    protocols = sorted(set(listed) | set(KNOWN))
    for proto in protocols:
        async with hostile_host() as h:
            await connect(h, node.addr)
            await send_on(h, node.addr, proto, garbage(100))
            await send_on(h, node.addr, proto, os.urandom(4096))
    await chat_ok(node, "after garbage")

    # 2. a Sybil swarm (smaller than tests/adversarial/test_sybil.py's: one process is slower)
    topic = public_realm().caps_topic
    msgs = [forged_announcement(s, topic, {"models": {"chat": ["echo-chat"]}, "prices": {"chat": 0}},
                                addrs_for=lambda p: [f"/ip4/127.0.0.9/tcp/9/p2p/{p}"]) for s in sybil_seeds(300, 9)]
    async with hostile_host() as h:
        await connect(h, node.addr)
        try:
            await gossip_flood(h, node.addr, topic, msgs)
        except Exception:
            pass  # the node may cut a flooding peer off: fine
    await chat_ok(node, "after the swarm")

    # 3. a frame flood: 40 streams each announcing a 16 MiB frame and sending 4 MiB of it
    async with hostile_host() as h:
        await connect(h, node.addr)
        target = ID.from_base58(node.peer_id)

        async def one():
            with trio.move_on_after(20):
                try:
                    s = await h.new_stream(target, [TProtocol("/mtor/intent/2")])
                    await s.write(struct.pack(">I", 16 * 1024 * 1024 - 16))
                    block = os.urandom(1 << 20)
                    for _ in range(4):
                        await s.write(block)
                except Exception:
                    pass

        async with trio.open_nursery() as n:
            for _ in range(40):
                n.start_soon(one)
    await chat_ok(node, "after the flood")

    peak = rss_kib(pid, "VmHWM")
    print(f"mtor-node RSS {base // 1024} MiB -> peak {peak // 1024} MiB over the suite")
    assert (peak - base) / 1024 < RSS_GROWTH_MIB
