"""`mtor-node start` with the public grid out of reach (issue 19): a person can read the log.

Offline is made here, not faked: the node's DNS server is a UDP socket on 127.0.0.1 that never
answers (as when there is no network), and the one /ip4 bootstrap peer is a closed local port.
The bootstrap list is the default one (4 x /dnsaddr/bootstrap.libp2p.io + one /ip4), with the
/ip4 entry moved to loopback so nothing leaves this machine.

Why OFFLINE_S and not 60 s: in its first minute the node retries the bootstrap at 0, 3, 6, 9, 12
and 15 s, then not before 75 s; a run of OFFLINE_S seconds holds every retry of that minute, and
with the default 60-s repeat window each cause is printed as often as in a full minute. The
window itself is tested with an injected clock over a simulated minute of py-libp2p's spam
(tests/interop/test_netlog.py).
"""

from __future__ import annotations

import os
import re
import socket
import time

from mtor_node.config import KEYS
from tests.conftest import ECHO_MODELS, free_port, write_config
from tests.test_cli import ENV, RunningNode

OFFLINE_S = 18.0
DEFAULT_BOOT = next(k.default for k in KEYS if k.section == "p2p" and k.name == "rendezvous_bootstrap")
NET_LINE = re.compile(r" (WARNING|ERROR|CRITICAL) (libp2p|multiaddr|federation|mtor\.network)")


def test_offline_start_says_once_that_the_grid_is_unreachable_and_stays_quiet(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead_dns:
        dead_dns.bind(("127.0.0.1", 0))
        closed = free_port()
        boot = [a if a.startswith("/dnsaddr/") else re.sub(r"^/ip4/[^/]+/tcp/\d+", f"/ip4/127.0.0.1/tcp/{closed}", a)
                for a in DEFAULT_BOOT]
        assert sum(a.startswith("/dnsaddr/") for a in boot) == 4
        d = tmp_path / "node"
        write_config(d, ECHO_MODELS, http={"port": free_port()},
                     p2p={"port": 0, "host": "127.0.0.1", "rendezvous_bootstrap": boot,
                          "dns_servers": [f"127.0.0.1:{dead_dns.getsockname()[1]}"]})
        node = RunningNode(d, env={k: v for k, v in ENV.items() if k != "MTOR_LOG_REPEAT_WINDOW_S"})
        try:
            node.wait_ready()
            t0 = time.monotonic()
            while time.monotonic() - t0 < OFFLINE_S and node.proc.poll() is None:
                time.sleep(0.5)  # the node runs offline this long; nothing to synchronise with
            assert node.proc.poll() is None, node.output()
        finally:
            node.stop()
    out = node.output()
    net = [line for line in out.splitlines() if NET_LINE.search(line)]
    unreachable = [line for line in out.splitlines() if "public grid is unreachable" in line]
    assert len(unreachable) == 1, out
    assert "still working" in unreachable[0] and "DNS" in unreachable[0]
    assert len(net) <= 10, "\n".join(net)
    assert not any(line and line[0].isalpha() for line in out.splitlines() if "Failed" in line), out  # no bare lines
    assert not any(line.rstrip().endswith(":") for line in net), "\n".join(net)
