"""Address helpers: pure functions over multiaddrs, IPs and interfaces (docs/nat.md).

No state, no host: PEX, mDNS, AutoNAT, relay and the Federation share them. Interface addresses
come from `ifaddr` (which zeroconf brings; no fcntl ioctl, so Windows starts too).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import multiaddr

from .conn import conn_is_relayed

MAX_ADDR_LEN = 256  # longest multiaddr string accepted from a peer (PEX, mDNS)


def ips_of(ma: multiaddr.Multiaddr) -> list[str]:
    """The /ip4 and /ip6 values of a multiaddr, in that order."""
    out = []
    for proto in ("ip4", "ip6"):
        try:
            v = ma.value_for_protocol(proto)
        except Exception:  # py-libp2p's multiaddr raises several types for "not there"
            v = None
        if v:
            out.append(v)
    return out


def ip_of(addr: str | multiaddr.Multiaddr) -> str | None:
    """The /ip4 or /ip6 value of a multiaddr, or None."""
    try:
        ma = addr if isinstance(addr, multiaddr.Multiaddr) else multiaddr.Multiaddr(addr)
        return next(iter(ips_of(ma)), None)
    except Exception:
        return None


def tcp_port_of(addr: str | multiaddr.Multiaddr) -> int | None:
    """The /tcp port of a multiaddr, or None."""
    try:
        ma = addr if isinstance(addr, multiaddr.Multiaddr) else multiaddr.Multiaddr(addr)
        return int(ma.value_for_protocol("tcp"))
    except Exception:
        return None


def conn_remote_ip(conn: Any) -> str | None:
    """The remote IP of a direct connection (None for a relayed one or when unknown)."""
    if conn_is_relayed(conn):
        return None
    for getter in (
        lambda: conn.muxed_conn.secured_conn.get_remote_address(),
        lambda: conn.get_remote_address(),
    ):
        try:
            ra = getter()
            if ra:
                return str(ra[0])
        except Exception:
            continue
    try:
        addrs = conn.get_transport_addresses() or []
    except Exception:
        addrs = []
    for a in addrs:
        ip = ip_of(a)
        if ip:
            return ip
    return None


def valid_peer_addr(addr: Any, *, allow_local: bool = True) -> str | None:
    """A multiaddr string we accept from a peer (PEX, mDNS): parsable, short, TCP or circuit."""
    if not isinstance(addr, str) or not addr or len(addr) > MAX_ADDR_LEN:
        return None
    try:
        ma = multiaddr.Multiaddr(addr)
    except Exception:
        return None
    names = [p.name for p in ma.protocols()]
    if "tcp" not in names and "p2p-circuit" not in names:
        return None
    ip = ip_of(ma)
    if ip:
        a = ipaddress.ip_address(ip)
        if a.is_unspecified or a.is_multicast or (a.is_loopback and not allow_local):
            return None
    return str(ma)


def ipv4s_by_iface() -> dict[str, list[str]]:
    """Interface name -> IPv4 addresses, on every OS. Windows adapters answer to their friendly
    name as well."""
    import ifaddr

    out: dict[str, list[str]] = {}
    for ad in ifaddr.get_adapters():
        ips = [ip.ip for ip in ad.ips if isinstance(ip.ip, str)]
        for name in dict.fromkeys([ad.name, ad.nice_name]):
            out.setdefault(name, []).extend(ips)
    return out


def iface_ipv4(name: str) -> str | None:
    """IPv4 address of a network interface by name, or None."""
    try:
        ips = ipv4s_by_iface().get(name) or []
    except OSError:
        return None
    return ips[0] if ips else None


def resolve_listen(items: list[str]) -> list[str]:
    """Listen entries are IP addresses or interface names; names become their IPv4 address.
    An unknown name is an error (listening somewhere else than asked is worse than not starting)."""
    out = []
    for item in items or []:
        try:
            ipaddress.ip_address(item)
            out.append(item)
            continue
        except ValueError:
            pass
        ip = iface_ipv4(item)
        if ip is None:
            raise ValueError(f"p2p.listen: {item!r} is neither an IP address nor an interface with an IPv4 address")
        out.append(ip)
    return out


def local_ipv4s() -> list[str]:
    """IPv4 addresses of this machine's interfaces, loopback last."""
    out = []
    try:
        by_iface = ipv4s_by_iface()
    except OSError:
        by_iface = {}
    for ips in by_iface.values():
        for ip in ips:
            if ip not in out:
                out.append(ip)
    return sorted(out, key=lambda ip: ipaddress.ip_address(ip).is_loopback)


def expand_unspecified(addrs: list[str]) -> list[str]:
    """/ip4/0.0.0.0/... means every interface: announce each interface address instead
    (loopback only when there is nothing else)."""
    out = []
    ips = None
    for a in addrs:
        if "/ip4/0.0.0.0/" not in a:
            out.append(a)
            continue
        if ips is None:
            ips = local_ipv4s()
            non_lo = [ip for ip in ips if not ipaddress.ip_address(ip).is_loopback]
            ips = non_lo or ips
        out += [a.replace("/ip4/0.0.0.0/", f"/ip4/{ip}/") for ip in ips]
    return list(dict.fromkeys(out))
