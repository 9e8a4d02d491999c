"""The chaos realm: 6 real `mtor-node` processes (brokers b1, b2; echo workers w1..w4) and one
rogue worker, each in its own network namespace. Module-scoped: the faults of test_chaos.py run
one after the other on the same realm, each followed by the invariant checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from .harness import ENV, HTTP_PORT, P2P_PORT, PRICE, SLOW_ECHO, Realm, RssSampler, ns_exec, peer_id_of, wait_until
from .netns import SUBNET, Fabric, can_create_namespaces

LONG = os.environ.get("MTOR_CHAOS_LONG") == "1"


class Rogue:
    """A rogue worker process (tests/chaos/rogue.py) in its own namespace, driven by a control file."""

    def __init__(self, realm: Realm, i: int):
        self.i = i
        self.ns = realm.fabric.add_node(i)
        self.ip = Fabric.ip(i)
        self.dir = realm.base / "rogue"
        self.dir.mkdir(exist_ok=True)
        self.control = self.dir / "control.json"
        self.seed = os.urandom(32)
        self.peer_id = peer_id_of(self.seed)
        self.addr = f"/ip4/{self.ip}/tcp/{P2P_PORT}/p2p/{self.peer_id}"
        self.set("good", 5000)  # out of the way: dearer than every real worker
        self.log = open(realm.base / "rogue.log", "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "tests.chaos.rogue", "worker", str(self.control),
             self.seed.hex(), self.ip, str(P2P_PORT), realm.secret, *realm.seeds],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, env=ENV, cwd=str(realm.base.parent))

    def set(self, mode: str, price: int) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mode": mode, "price": price}))
        tmp.replace(self.control)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the rogue exits when its stdin closes
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    why = can_create_namespaces()
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("chaos")
    fabric = Fabric()
    realm = rogue = sampler = None
    try:
        realm = Realm(base, fabric)
        realm.add("w1", ["broker", "worker"], SLOW_ECHO, {"chat": PRICE})
        realm.add("w2", ["broker", "worker"], SLOW_ECHO, {"chat": PRICE})
        realm.add("w3", ["broker", "worker"], SLOW_ECHO, {"chat": PRICE})
        realm.add("w4", ["broker", "worker"], SLOW_ECHO, {"chat": PRICE})
        realm.add("b1", ["broker"], {}, dev_grant=1_000_000)
        realm.add("b2", ["broker"], {}, dev_grant=1_000_000)
        # count every packet b2's namespace sends anywhere but loopback and the realm's subnet
        # (a capture filter without tshark: an iptables rule with no target only counts)
        ns_exec(realm.nodes["b2"].ns, "iptables", "-A", "OUTPUT", "!", "-o", "lo", "!", "-d", f"{SUBNET}.0/24")
        t0 = time.monotonic()
        realm.start_all(timeout=150)
        realm.started_in = time.monotonic() - t0
        rogue = Rogue(realm, len(realm.nodes))
        realm.rogue = rogue
        sampler = RssSampler(realm, interval=2.0 if not LONG else 10.0).start()
        realm.sampler = sampler
        realm.wait_mesh(timeout=90)
        ids = [rogue.peer_id]
        for b in realm.brokers:
            wait_until(lambda: realm.sees(b, ids), 60, f"{b.name} to see the rogue worker's announcement")
        realm.report = {"faults": {}, "impairment": None}
        yield realm
    finally:
        if sampler:
            sampler.stop()
        if rogue:
            rogue.close()
        if realm:
            realm.close()
        fabric.close()
        left = Fabric.leftovers(fabric.run)
        assert not left, f"namespaces left behind: {left}"
