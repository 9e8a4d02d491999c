"""The node against an independent libp2p (issue 19): 5 js-libp2p Kademlia servers
(`@libp2p/kad-dht`, server mode, `/ipfs/kad/1.0.0` -- the implementation family that serves the
public Amino DHT) play the public bootstrap peers, behind a DNS server on 127.0.0.1 that answers
`_dnsaddr` TXT records shaped like bootstrap.libp2p.io's (a top-level name listing one nested
/dnsaddr name per peer). Two grid nodes whose only bootstrap is those /dnsaddr names find each
other through the rendezvous key on the js DHT, and the js servers store and serve every key
the node uses (ADD_PROVIDER from py, read back from each js node's own provider store; py's
GET_PROVIDERS answered by js).

tests/interop/js holds the script and package.json; .ci/run installs its node_modules.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID

from federation import Federation
from federation.dht import RENDEZVOUS_KEY
from federation.config import FederationConfig, ReachConfig

from .dns_server import LocalDns

JS = Path(__file__).parent / "js"
CAPS = {"models": {"chat": ["echo"]}, "prices": {"chat": 10}, "cpu": {"cores": 2, "ram": 2**30}}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (JS / "node_modules" / "@libp2p" / "kad-dht").is_dir() or not shutil.which("node"),
                       reason="js-libp2p not installed: run `npm ci --prefix tests/interop/js` (.ci/run does)"),
]


class JsDht:
    """The js process: N DHT servers; ask it which providers each server stores for a key."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.buf = b""
        self.nodes: list[dict] = []

    async def line(self, timeout: float = 30.0) -> dict:
        with trio.fail_after(timeout):
            while b"\n" not in self.buf:
                chunk = await self.proc.stdout.receive_some(65536)
                if not chunk:
                    raise AssertionError("the js DHT process exited")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        return json.loads(raw)

    async def providers(self, key: bytes) -> dict:
        await self.proc.stdin.send_all((json.dumps({"op": "providers", "key": key.hex()}) + "\n").encode())
        msg = await self.line()
        assert msg["op"] == "providers", msg
        return msg


async def wait_until(cond, timeout: float, interval: float = 0.1):
    with trio.fail_after(timeout):
        while not await cond():
            await trio.sleep(interval)  # polling a condition, bounded by fail_after


async def test_js_dht_is_the_bootstrap_behind_dnsaddr_and_stores_every_key(nursery):
    proc = await trio.lowlevel.open_process(["node", str(JS / "dht_servers.mjs"), "5"], stdin=-1, stdout=-1,
                                            cwd=str(JS))
    js = JsDht(proc)
    try:
        ready = await js.line(timeout=60)
        js.nodes = ready["nodes"]
        assert len(js.nodes) == 5
        zone = {"_dnsaddr.bootstrap.test": [("TXT", f"dnsaddr=/dnsaddr/js{i}.bootstrap.test/p2p/{n['id']}")
                                            for i, n in enumerate(js.nodes)]}
        for i, n in enumerate(js.nodes):
            zone[f"_dnsaddr.js{i}.bootstrap.test"] = [("TXT", f"dnsaddr={a}") for a in n["addrs"]]
        dns = LocalDns(zone)
        await nursery.start(dns.serve)
        boot = [f"/dnsaddr/bootstrap.test/p2p/{n['id']}" for n in js.nodes]  # as the default list is

        def grid_node() -> Federation:
            return Federation(os.urandom(32), FederationConfig(rendezvous=True, rendezvous_bootstrap=boot, dns_servers=[dns.server],
                              announce_interval=0.5, reach=ReachConfig(pex=False)))  # met only through the DHT

        x, y = grid_node(), grid_node()
        x.set_capabilities(CAPS)
        for fed in (x, y):
            with trio.fail_after(20):
                await nursery.start(fed.run)

        async def met() -> bool:
            return x.peer_id in y.reachability()["rendezvous"]["found"] and y.candidates("chat", "echo") == [x.peer_id]

        try:
            await wait_until(met, 60)
        except trio.TooSlowError:
            raise AssertionError(f"x: {x.reachability()['rendezvous']} conns {len(x.host.get_network().connections)}\n"
                                 f"y: {y.reachability()['rendezvous']} candidates {y.candidates('chat', 'echo')}")
        assert y.reachability()["rendezvous"]["grid_reachable"] is True
        assert any(q[0] == "_dnsaddr.bootstrap.test" for q in dns.queries)

        cap_key = x.dht._key("chat", "echo")
        for key, who in ((RENDEZVOUS_KEY, {x.peer_id, y.peer_id}), (cap_key, {x.peer_id})):
            async def stored() -> bool:
                st = (await js.providers(key))["stored"]
                return who <= {p for per_node in st for p in per_node}

            try:
                await wait_until(stored, 30, interval=0.5)
            except trio.TooSlowError:
                raise AssertionError(f"{key.hex()} wanted {who}: {await js.providers(key)}") from None
        # the js servers serve them: py's GET_PROVIDERS to each js server that stores the key
        answer = await js.providers(cap_key)
        assert answer["cid"].startswith("Qm")  # js decoded the key as a CIDv0
        holders = [js.nodes[i]["id"] for i, per_node in enumerate(answer["stored"]) if x.peer_id in per_node]
        assert holders
        for holder in holders:
            with trio.fail_after(10):
                providers, _ = await y.dht.kad.provider_store._get_providers_from_peer_with_closers(
                    ID.from_base58(holder), cap_key)
            assert x.peer_id in {p.peer_id.to_base58() for p in providers}
        found = {p["id"] for p in answer["found"]}
        assert x.peer_id in found  # and a js lookup through the js DHT finds it too
        nursery.cancel_scope.cancel()
    finally:
        proc.kill()
        await proc.wait()
