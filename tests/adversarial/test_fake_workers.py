"""Issue 12 finding 3: three identities announce the chat model at price 0 with an address nobody
answers at; one real worker asks more. A real broker Node (broker, fair queue, Network.plan,
market.route) must answer the chat with the real worker, and the fakes must drop out of rotation
after one try each at most."""

import httpx
import trio

from fed_helpers import seed, wait_until
from federation import Federation
from federation.config import FederationConfig, ReachConfig
from tests.conftest import free_port, running_node

P2P = {"enabled": True, "port": 0, "host": "127.0.0.1", "airgap": True, "rendezvous": False, "mdns": False}
FAKE_CAPS = {"models": {"chat": ["echo-chat"]}, "prices": {"chat": 0}, "cpu": {"cores": 64, "ram": 2**36},
             "capacity": 64}


async def test_three_fakes_do_not_stop_chat(tmp_path, network):
    async with running_node(tmp_path / "broker", models={}, node={"roles": ["broker"]}, p2p=dict(P2P),
                            ledger={"dev_grant": 10_000_000}) as broker:
        async with running_node(tmp_path / "worker", p2p=dict(P2P, peers=broker.federation.listen_addrs),
                                prices={"chat": 5}) as worker, network() as net:
            fed = broker.federation
            dead = free_port()  # nothing listens here
            fakes = []
            for i in range(3):
                f = Federation(seed(200 + i), FederationConfig(peers=fed.listen_addrs, announce_interval=0.3, enable_dht=False,
                               reach=ReachConfig(announce=[f"/ip4/127.0.0.1/tcp/{dead}"], pex=False)))
                f.set_capabilities(FAKE_CAPS)
                fakes.append(await net.start(f))
            ids = [f.peer_id for f in fakes]
            await wait_until(lambda: all(fed.peers.known(p) and fed.peers.get(p).announcement for p in ids)
                             and fed.peers.known(worker.peer_id) and fed.peers.get(worker.peer_id).announcement,
                             timeout=20)
            for f in fakes:  # they leave; their free offers stay fresh in the broker's table for a while
                for listener in list(f.host.get_network().listeners.values()):
                    with trio.fail_after(5):  # py-libp2p leaves the TCP listener open after the host stops
                        await listener.close()
                await net.stop(f)
            await wait_until(lambda: not any(fed.peers.get(p).connected for p in ids), timeout=10)
            assert all(fed.peers.get(p).trusted and not fed.peers.is_proven(fed.peers.get(p)) for p in ids)
            async with httpx.AsyncClient(base_url=broker.http_url, timeout=30) as c:
                for k in range(3):
                    r = await c.post("/api/v1/intents", json={"kind": "chat", "timeout": 20,
                                                              "messages": [{"role": "user", "content": f"hi {k}"}]})
                    body = r.json()
                    assert r.status_code == 200, body
                    assert body.get("peer") == worker.peer_id and f"hi {k}" in body.get("text", ""), body
            tried = [p for p in ids if fed.peers.get(p).failures]
            assert len(tried) <= 3  # at most one try each over three intents ...
            assert all(fed.peers.get(p).health == 0 for p in tried)  # ... and out of rotation after it


def test_route_puts_at_most_one_unproven_offer_before_the_proven():
    from federation.market import Offer, route

    fakes = [Offer(f"fake{i}", base_price=0, proven=False, rtt_ms=1.0) for i in range(3)]
    real = Offer("real", base_price=50, rtt_ms=5.0)
    stranger = Offer("stranger", base_price=0, proven=False, reachable=False)
    first = route([*fakes, real, stranger], None, price_band=0, latency_band_ms=0)
    assert first.peers[:2] == ["fake0", "real"] and "stranger" not in first.peers
    assert first.excluded == {"unreachable": 1}
    # after one unproven offer was tried, the proven ones come first
    second = route([*fakes, real, stranger], None, exclude=["fake0"], price_band=0, latency_band_ms=0)
    assert second.peers == ["real", "fake1", "fake2"]
