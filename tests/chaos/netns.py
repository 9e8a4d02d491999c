"""Network namespaces for the chaos suite: one per node, veth pairs to bridges in a namespace of
our own, and HTTP to each node's loopback without any address outside the namespaces.

Layout of one run (RUN is unique per run, names <= 15 chars where the kernel needs it):

    mtor-chaos-RUN-br      bridge namespace: bridges br0 and br1 (br1 is the "other side" of a
                           partition), and the host end vI of every node's veth pair
    mtor-chaos-RUN-I       node I: lo, and eth0 = 10.77.0.(I+1)/24 (peer of vI)

Nothing is created in the root namespace: the veth pair is created inside the bridge namespace
with its peer end born in the node namespace. The test process talks to a node's HTTP API on
127.0.0.1 *inside* the node's namespace: a helper thread enters the namespace (setns(2) changes
only the calling thread's network namespace), creates a socket there and hands it back; the
socket stays in that namespace whatever thread uses it afterwards.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import secrets
import socket
import subprocess
import threading
from pathlib import Path

SUBNET = "10.77.0"  # used ONLY inside the namespaces created here
PREFIX = "mtor-chaos"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class NetnsUnavailable(Exception):
    pass


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc={r.returncode}: {r.stderr.strip()}")
    return r


def can_create_namespaces() -> str | None:
    """None if this process can create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (the chaos suite runs each node in its own namespace)"
    for tool in ("ip", "tc"):
        if sh("which", tool, check=False).returncode != 0:
            return f"`{tool}` is not installed (apt-get install -y iproute2)"
    name = f"{PREFIX}-probe-{secrets.token_hex(3)}"
    r = sh("ip", "netns", "add", name, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    sh("ip", "netns", "del", name, check=False)
    return None


class Fabric:
    """The namespaces and links of one run; `close()` removes all of them (idempotent)."""

    def __init__(self, run: str | None = None):
        self.run = run or secrets.token_hex(3)
        self.br_ns = f"{PREFIX}-{self.run}-br"
        self.nodes: dict[int, str] = {}
        self.side: dict[int, str] = {}
        self._closed = False
        try:
            sh("ip", "netns", "add", self.br_ns)
            self._br("link", "set", "lo", "up")
            for br in ("br0", "br1"):
                self._br("link", "add", br, "type", "bridge")
                self._br("link", "set", br, "up")
        except Exception:
            self.close()
            raise

    def _br(self, *args: str, check: bool = True):
        return sh("ip", "-n", self.br_ns, *args, check=check)

    def ns(self, i: int) -> str:
        return f"{PREFIX}-{self.run}-{i}"

    @staticmethod
    def ip(i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def add_node(self, i: int) -> str:
        name = self.ns(i)
        sh("ip", "netns", "add", name)
        self.nodes[i] = name
        self._br("link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", name)
        self._br("link", "set", f"v{i}", "master", "br0")
        self._br("link", "set", f"v{i}", "up")
        self.side[i] = "br0"
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        return name

    # ---- faults ---------------------------------------------------------------------------

    def partition(self, group_b: list[int]) -> None:
        """Split the realm: the nodes in group_b move to bridge br1; each half still talks inside."""
        for i in group_b:
            self._br("link", "set", f"v{i}", "master", "br1")
            self.side[i] = "br1"

    def heal(self) -> None:
        for i, side in list(self.side.items()):
            if side != "br0":
                self._br("link", "set", f"v{i}", "master", "br0")
                self.side[i] = "br0"

    def link(self, i: int, up: bool) -> None:
        self._br("link", "set", f"v{i}", "up" if up else "down")

    def netem(self, i: int, loss_pct: int | None, delay_ms: int = 100) -> str:
        """Impair node i's eth0: `tc ... netem loss L% delay Dms` where the kernel has netem.
        This kernel may be built without sch_netem (CONFIG_NET_SCH_NETEM unset: "Specified
        qdisc kind is unknown"); then the same loss comes from iptables' statistic match on
        eth0 in both directions, and tbf rate-limits the link to 1 mbit/s (queueing delay under
        load instead of a fixed delay). loss_pct None removes the impairment. Returns what was
        applied, for the report."""
        ns = self.nodes[i]
        if loss_pct is None:
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
            for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
                sh("ip", "netns", "exec", ns, "iptables", "-F", chain, check=False)
            return "removed"
        r = sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
               "loss", f"{loss_pct}%", "delay", f"{delay_ms}ms", check=False)
        if r.returncode == 0:
            return f"netem loss {loss_pct}% delay {delay_ms}ms"
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            sh("ip", "netns", "exec", ns, "iptables", "-A", chain, flag, "eth0", "-m", "statistic", "--mode", "random",
               "--probability", f"{loss_pct / 100:.2f}", "-j", "DROP")
        sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "1mbit",
           "burst", "16kb", "latency", f"{delay_ms}ms")
        return (f"no netem in this kernel ({r.stderr.strip()}): iptables statistic drop {loss_pct}% both ways "
                f"+ tbf 1mbit latency {delay_ms}ms")

    # ---- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in list(self.nodes.values()) + [self.br_ns]:
            sh("ip", "netns", "del", name, check=False)  # deleting a namespace deletes its veth ends

    @staticmethod
    def leftovers(run: str) -> list[str]:
        out = sh("ip", "netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}-{run}-")]


# ---- sockets and HTTP inside a namespace ------------------------------------------------------

def ns_socket(ns: str, family=socket.AF_INET) -> socket.socket:
    """A new TCP socket that lives in network namespace `ns`."""
    box: dict = {}

    def enter():
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({ns})")
            finally:
                os.close(fd)
            box["sock"] = socket.socket(family, socket.SOCK_STREAM)
        except BaseException as e:  # handed to the caller
            box["err"] = e
        # this thread ends here; its namespace goes with it

    t = threading.Thread(target=enter, daemon=True)
    t.start()
    t.join(10)
    if "err" in box:
        raise box["err"]
    if "sock" not in box:
        raise TimeoutError(f"could not enter namespace {ns}")
    return box["sock"]


class NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, ns: str, port: int, timeout: float):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self.ns = ns

    def connect(self):
        s = ns_socket(self.ns)
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        self.sock = s


class NsHTTP:
    """Tiny JSON client for a node's HTTP API on 127.0.0.1:port inside namespace `ns`."""

    def __init__(self, ns: str, port: int):
        self.ns, self.port = ns, port

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, dict]:
        c = NsHTTPConnection(self.ns, self.port, timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw or b"{}")
            except ValueError:
                return r.status, {"raw": raw[:500].decode("utf-8", "replace")}
        finally:
            c.close()

    def get(self, path: str, timeout: float = 10.0) -> dict:
        status, body = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def post(self, path: str, body: dict, timeout: float = 10.0) -> dict:
        status, out = self.request("POST", path, body, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"POST {path}: {status} {out}")
        return out

    def stream_intent(self, body: dict, read_timeout: float):
        """POST an intent with ?stream=1 and yield its NDJSON events (each read bounded)."""
        c = NsHTTPConnection(self.ns, self.port, read_timeout)
        try:
            c.request("POST", "/api/v1/intents?stream=1", body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                yield {"type": "error", "code": f"http_{r.status}", "message": r.read()[:300].decode("utf-8", "replace")}
                return
            while True:
                line = r.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield json.loads(line)
        finally:
            c.close()


def proc_sockets(pid: int) -> list[dict]:
    """TCP/UDP sockets of the network namespace process `pid` is in, from /proc/PID/net/*.
    Rows: proto, local (ip, port), remote (ip, port), state (hex)."""
    rows = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        p = Path(f"/proc/{pid}/net/{proto}")
        try:
            lines = p.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            rows.append({"proto": proto, "local": _addr(f[1]), "remote": _addr(f[2]), "state": f[3]})
    return rows


def _addr(s: str) -> tuple[str, int]:
    ip_hex, port_hex = s.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc prints IPv6 as four little-endian 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return ip, int(port_hex, 16)
