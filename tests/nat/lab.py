"""A small internet in network namespaces: an "inet" namespace (a bridge 10.77.0.0/24 that plays
the public internet, where the public relay lives), home routers that MASQUERADE their LAN
(192.168.i.0/24) and drop unsolicited inbound connections like a home router does, and hosts
behind them. All names carry a unique run tag; `close()` removes everything (deleting a
namespace deletes its veths and iptables rules)."""

from __future__ import annotations

import os
import secrets
import subprocess

INET_NET = "10.77.0"


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def why_not() -> str | None:
    """None when this process can build namespaces with NAT, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, iptables)"
    for tool in ("ip", "iptables"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"{tool} is not installed"
    return None


class Lab:
    def __init__(self) -> None:
        self.tag = f"mtn{os.getpid() % 10000}{secrets.token_hex(2)}"
        self.namespaces: list[str] = []
        self.inet = self._ns("inet")
        sh("ip", "-n", self.inet, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.inet, "addr", "add", f"{INET_NET}.1/24", "dev", "br0")
        sh("ip", "-n", self.inet, "link", "set", "br0", "up")
        self.hosts: dict[str, str] = {}  # name -> namespace

    def _ns(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    @property
    def relay_ip(self) -> str:
        return f"{INET_NET}.1"

    def add_public_host(self, name: str, i: int) -> tuple[str, str]:
        """A host with a public address on the inet bridge (no NAT). Returns (namespace, ip)."""
        ns = self._ns(name)
        ip = f"{INET_NET}.{100 + i}"
        sh("ip", "-n", self.inet, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.inet, "link", "set", f"p{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = ns
        return ns, ip

    def add_natted_host(self, name: str, i: int) -> tuple[str, str, str]:
        """A home router (public 10.77.0.(10+i), MASQUERADE) and a host 192.168.i.2 behind it.
        Returns (host namespace, host ip, router public ip)."""
        router = self._ns(f"r{i}")
        host = self._ns(name)
        wan_ip, lan_ip, host_ip = f"{INET_NET}.{10 + i}", f"192.168.{i}.1", f"192.168.{i}.2"
        sh("ip", "-n", self.inet, "link", "add", f"w{i}", "type", "veth", "peer", "name", "wan0", "netns", router)
        sh("ip", "-n", self.inet, "link", "set", f"w{i}", "master", "br0", "up")
        sh("ip", "-n", router, "addr", "add", f"{wan_ip}/24", "dev", "wan0")
        sh("ip", "-n", router, "link", "set", "wan0", "up")
        sh("ip", "-n", router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", host)
        sh("ip", "-n", router, "addr", "add", f"{lan_ip}/24", "dev", "lan0")
        sh("ip", "-n", router, "link", "set", "lan0", "up")
        sh("ip", "-n", host, "addr", "add", f"{host_ip}/24", "dev", "eth0")
        sh("ip", "-n", host, "link", "set", "eth0", "up")
        sh("ip", "-n", host, "route", "add", "default", "via", lan_ip)
        x = ("ip", "netns", "exec", router)
        sh(*x, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(*x, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
        # a home router: nothing comes in from the WAN unless it answers something that went out
        sh(*x, "iptables", "-A", "FORWARD", "-i", "wan0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
        sh(*x, "iptables", "-A", "INPUT", "-i", "wan0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
        self.hosts[name] = host
        return host, host_ip, wan_ip

    def add_lan(self, name: str, members: list[tuple[str, int]], extra_iface: dict[str, str] | None = None) -> dict:
        """A LAN (a bridge in its own namespace, 10.88.0.0/24) with one namespace per member.
        extra_iface: member -> ip of a second interface ('other0') on another subnet."""
        lan = self._ns(name)
        sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lan, "link", "set", "br0", "up")
        out = {}
        for member, i in members:
            ns = self._ns(member)
            ip = f"10.88.0.{i}"
            sh("ip", "-n", lan, "link", "add", f"m{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", lan, "link", "set", f"m{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up", "multicast", "on")
            if extra_iface and member in extra_iface:
                # a second, separate network (a veth pair leading nowhere: no dummy module here)
                sh("ip", "-n", ns, "link", "add", "other0", "type", "veth", "peer", "name", "other1")
                sh("ip", "-n", ns, "addr", "add", f"{extra_iface[member]}/24", "dev", "other0")
                sh("ip", "-n", ns, "link", "set", "other1", "up")
                sh("ip", "-n", ns, "link", "set", "other0", "up", "multicast", "on")
            # multicast (mDNS) leaves by the interface route
            sh("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            self.hosts[member] = ns
            out[member] = (ns, ip)
        return out

    def close(self) -> list[str]:
        errors = []
        for ns in reversed(self.namespaces):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(f"{ns}: {r.stderr.strip()}")
        self.namespaces.clear()
        return errors

    def leftovers(self) -> list[str]:
        r = sh("ip", "netns", "list", check=False)
        return [line.split()[0] for line in r.stdout.splitlines() if line.startswith(self.tag)]
