"""`mtor-node start` finds the grid through a stand-in of the public DHT built from js-libp2p
(issue 19): 5 js-libp2p nodes (`@libp2p/kad-dht` server mode on `/ipfs/kad/1.0.0`,
`@libp2p/circuit-relay-v2` relay server with its default limits, `@libp2p/dcutr`), each on its
own address of the NAT lab's public bridge (tests/nat/lab.py), are the only bootstrap of two
`mtor-node start` processes, each behind its own home router (MASQUERADE, unsolicited inbound
dropped). The nodes know the js nodes only by `/dnsaddr/bootstrap.test/p2p/<id>` names, answered
by a DNS server on 127.0.0.1 inside each node's namespace (its stub resolver), records shaped like
bootstrap.libp2p.io's. The test shows, step by step (each timed, each wait bounded):

1. each node resolves the /dnsaddr names and connects to the js nodes;
2. each reserves a slot at a js relay (the js relay's own reservation table says so);
3. they find each other through the rendezvous key on the js DHT, whose provider records carry
   their relayed addresses, and connect through the js relay;
4. the relayed connection is upgraded to a direct one by DCUtR (`/libp2p/dcutr`, our side's
   TCP simultaneous open through both NATs), the public IP coming from identify's observations
   of the js nodes (they do not speak our /mtor/autonat/1);
5. a chat from the broker is answered by the worker, over the direct connection.

js scripts: tests/interop/js (node_modules from `npm ci --prefix tests/interop/js`, .ci/run).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from federation.dht import RENDEZVOUS_KEY
from tests.nat.harness import ENV, ROOT, NsNode, wait_until
from tests.nat.lab import INET_NET, Lab, sh, why_not

JS = Path(__file__).parent / "js"
JS_IPS = [f"{INET_NET}.{201 + i}" for i in range(5)]
DNS = "127.0.0.1:53"  # each node namespace has its own loopback and its own DNS server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (JS / "node_modules" / "@libp2p" / "circuit-relay-v2").is_dir() or not shutil.which("node"),
                       reason="js-libp2p not installed: run `npm ci --prefix tests/interop/js` (.ci/run does)"),
]


class Lines:
    """A child process speaking JSON lines on stdout, read by a thread (bounded gets)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = open(log, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=ENV, cwd=str(ROOT))
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                continue
        self.q.put(None)

    def get(self, op: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {op!r} line within {timeout} s from {self.proc.args[:6]}")
            try:
                msg = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                raise AssertionError(f"{self.proc.args[:6]} exited ({self.proc.poll()}); see {self.log.name}")
            if msg.get("op") == op:
                return msg
            self.other(msg)

    def other(self, msg: dict) -> None:
        pass

    def ask(self, msg: dict, timeout: float = 15) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.get(msg["op"], timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


class DnsProc(Lines):
    def __init__(self, *args, **kw) -> None:
        self.queries: list[tuple[str, str]] = []
        super().__init__(*args, **kw)

    def other(self, msg: dict) -> None:
        if msg.get("op") == "query":
            self.queries.append((msg["name"], msg["type"]))

    def drain(self) -> list[tuple[str, str]]:
        while True:
            try:
                msg = self.q.get_nowait()
            except queue.Empty:
                return self.queries
            if msg is not None:
                self.other(msg)


@pytest.fixture
def lab():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        errors = lab.close()
        assert not errors and not lab.leftovers(), f"namespaces left behind: {errors or lab.leftovers()}"


@pytest.fixture
def js_grid(lab, tmp_path):
    """The js nodes on the lab's public bridge, a DNS server and a `mtor-node start` behind its own
    NAT for each of: a (a worker serving echo chat) and b (a broker)."""
    t0 = time.monotonic()
    procs: list[Lines] = []
    nodes: list[NsNode] = []
    try:
        for ip in JS_IPS:  # each js node its own public address (distinct identify observers)
            sh("ip", "-n", lab.inet, "addr", "add", f"{ip}/24", "dev", "br0")
        js = Lines(["ip", "netns", "exec", lab.inet, "node", str(JS / "dht_servers.mjs"), str(len(JS_IPS)),
                    "--ips=" + ",".join(JS_IPS), "--relay"], tmp_path / "js.log")
        procs.append(js)
        js_nodes = js.get("ready", 60)["nodes"]
        zone = {"_dnsaddr.bootstrap.test": [["TXT", f"dnsaddr=/dnsaddr/js{i}.bootstrap.test/p2p/{n['id']}"]
                                            for i, n in enumerate(js_nodes)]}
        for i, n in enumerate(js_nodes):
            zone[f"_dnsaddr.js{i}.bootstrap.test"] = [["TXT", f"dnsaddr={a}"] for a in n["addrs"]]
        (tmp_path / "zone.json").write_text(json.dumps(zone))
        boot = [f"/dnsaddr/bootstrap.test/p2p/{n['id']}" for n in js_nodes]  # the default list's shape
        out = {"js": js, "js_ids": [n["id"] for n in js_nodes], "dns": {}}
        for name, i, extra, models in (("a", 1, (), None), ("b", 2, ("--roles", "broker"), {})):
            ns, _ip, wan = lab.add_natted_host(name, i)
            dns = DnsProc(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.interop.dns_server",
                           "--zone", str(tmp_path / "zone.json"), "--port", DNS.split(":")[1]],
                          tmp_path / f"dns-{name}.log")
            procs.append(dns)
            dns.get("ready", 20)
            node = NsNode(ns, tmp_path / name, *extra, models=models, ledger={"enabled": False},
                          p2p={"rendezvous": True, "rendezvous_bootstrap": boot, "dns_servers": [DNS]})
            node.wan = wan
            nodes.append(node)
            out[name], out["dns"][name] = node, dns
        for n in nodes:
            n.wait_ready()
        out["startup_s"] = round(time.monotonic() - t0, 1)
        yield out
    finally:
        for n in nodes:
            n.stop()
        for p in procs:
            p.stop()
        logs = [f"--- {n.data_dir.name}\n{n.output()[-3000:]}" for n in nodes]
        logs += [f"--- {p.log.name}\n{Path(p.log.name).read_text(errors='replace')[-1500:]}" for p in procs]
        print("\n".join(logs))  # shown by pytest when the test failed


def test_two_natted_nodes_meet_through_js_dht_relay_and_dcutr(js_grid):
    a, b, js, js_ids = (js_grid[k] for k in ("a", "b", "js", "js_ids"))
    timings = {"startup_s": js_grid["startup_s"]}
    t0 = time.monotonic()

    def step(name: str) -> None:
        timings[name] = round(time.monotonic() - t0, 1)

    # 1. /dnsaddr resolved on each node's own DNS server; connected to the js nodes
    for n in (a, b):
        wait_until(lambda: n.reach().get("rendezvous", {}).get("grid_reachable") is True, 30,
                   f"{n.data_dir.name} reached the js bootstrap")
        dns = js_grid["dns"][n.data_dir.name]
        wait_until(lambda: ("_dnsaddr.bootstrap.test", "TXT") in dns.drain(), 5,
                   f"{n.data_dir.name} asked its DNS server for the bootstrap name")
    step("bootstrap_s")

    # 2. a reservation at a js relay (js's own reservation table holds it), announced as /p2p-circuit
    for n in (a, b):
        r = wait_until(lambda: n.reach() if n.reach().get("relays") else None, 30,
                       f"{n.data_dir.name} reserved at a js relay")
        assert r["relays"][0]["peer"] in js_ids, r["relays"]
        assert any("/p2p-circuit/p2p/" + n.peer_id in x for x in r["announce_addrs"]), r["announce_addrs"]
    reserved = js.ask({"op": "relays"})["reserved"]
    for n in (a, b):
        assert any(n.peer_id in per_node for per_node in reserved), reserved
    step("reserved_s")

    # 3. they find each other through the rendezvous on the js DHT and connect through a js relay
    for n, other in ((a, b), (b, a)):
        wait_until(lambda: other.peer_id in n.reach()["rendezvous"]["found"], 40,
                   f"{n.data_dir.name} found {other.data_dir.name} through the rendezvous")
    step("rendezvous_s")
    # what the js DHT hands out for the rendezvous key: both nodes, with their relayed addresses
    # (federation/dht.py: provider records carry what the node announces)
    found = {p["id"]: p["addrs"] for p in js.ask({"op": "providers", "key": RENDEZVOUS_KEY.hex()})["found"]}
    for n in (a, b):
        assert any("/p2p-circuit" in x for x in found.get(n.peer_id, [])), found

    # 4. DCUtR upgrades the relayed connection to a direct one
    def punched():
        for n, other in ((a, b), (b, a)):
            hp = n.reach()["hole_punch"]["attempts"].get(other.peer_id)
            if hp and hp["result"] == "direct":
                return n, other, hp
        return None

    who, other, hp = wait_until(punched, 40, "a DCUtR hole punch between a and b")
    step("direct_s")
    print(f"\nDCUtR by {who.data_dir.name}: {hp}")
    # punched to the other node's router (its public address, port kept by MASQUERADE)
    assert hp["reason"].startswith(f"DCUtR: TCP simultaneous open to {other.wan}:"), hp
    for n, other in ((a, b), (b, a)):
        wait_until(lambda: n.reach()["connections"].get(other.peer_id) == "direct-hole-punched", 10,
                   f"{n.data_dir.name}'s connection to {other.data_dir.name} is direct after the punch")
    # the connection the punch upgraded was made through a js relay (the only relays here)
    assert sum(n.reach()["counters"]["relay_dials"] for n in (a, b)) >= 1
    for n in (a, b):  # the public IP came from identify (the js nodes answer no /mtor/autonat/1)
        assert n.reach()["autonat"]["observed_ips"] == {}, n.reach()["autonat"]

    # 5. the broker's chat is answered by the worker
    wait_until(lambda: (b.peers().get(a.peer_id) or {}).get("models", {}).get("chat"), 30,
               "b sees a's announcement")
    t1 = time.monotonic()
    answer = b.chat("hello across two NATs")
    timings["chat_s"] = round(time.monotonic() - t1, 2)
    assert answer["text"] == "hello across two NATs" and answer["peer"] == a.peer_id, answer
    assert b.reach()["connections"].get(a.peer_id) in ("direct", "direct-hole-punched"), b.reach()["connections"]
    print(f"TIMINGS {timings}")
