"""`/dnsaddr` (and `/dns4`, `/dns6`, `/dns`) resolution for bootstrap addresses, on trio.

py-libp2p 0.8.1 has no transport for `/dnsaddr/...` ("no transport found"), so 4 of the 5 public
libp2p bootstrap peers could not be dialed. The libp2p spec (multiaddr/protocols/DNSADDR.md):
look up TXT records of `_dnsaddr.<host>`; each `dnsaddr=<multiaddr>` string is an address, which
may itself be `/dnsaddr/...` (resolve again) or `/dns4|6/...` (A/AAAA). When the address asked
for ends in `/p2p/<id>`, only entries ending in that same id are kept.

Bounded: recursion depth (MAX_DEPTH), DNS queries per top-level name (MAX_QUERIES), addresses
returned (MAX_ADDRS), TXT bytes looked at; a cache (TTL from the answers, clamped; failures
cached for a short time) so a node that retries its bootstrap every few seconds does not query
each time. DNS goes through dnspython's asyncresolver, which runs on trio; the name servers
can be configured (`p2p.dns_servers`, tests point it at a server on 127.0.0.1).

multiaddr 0.2.0 ships a resolver too, but it is unbounded in fan-out (depth 32, no count
limit, no cache) and reads only the first string of a TXT record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import multiaddr
import trio

log = logging.getLogger(__name__)

MAX_DEPTH = 4  # /dnsaddr nesting (bootstrap.libp2p.io uses 2)
MAX_QUERIES = 32  # DNS lookups (cached or not) for one top-level address: no fan-out bomb
MAX_ADDRS = 64  # addresses one top-level address may expand to
MAX_TXT_RECORDS = 64
MAX_ENTRY_LEN = 512
MIN_TTL_S, MAX_TTL_S, NEGATIVE_TTL_S = 30.0, 3600.0, 30.0
CACHE_SIZE = 256
DNS_PROTOCOLS = ("dnsaddr", "dns4", "dns6", "dns")
PREFIX = "dnsaddr="


class ResolveError(Exception):
    """Why a DNS address could not be resolved (for the person reading the log)."""


def is_dns_addr(addr: str) -> bool:
    return any(addr.startswith(f"/{p}/") for p in DNS_PROTOCOLS)


def _peer_id_of(addr: str) -> str | None:
    parts = addr.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "p2p" else None


def parse_server(item: str) -> tuple[str, int]:
    """'1.2.3.4', '1.2.3.4:5353', '[::1]:5353' -> (host, port)."""
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if item.count(":") == 1:
        host, port = item.split(":")
        return host, int(port)
    return item, 53


@dataclass
class _Budget:
    queries: int = MAX_QUERIES
    errors: list[str] = field(default_factory=list)


class DnsaddrResolver:
    def __init__(self, servers: list[str] | None = None, *, timeout: float = 3.0,
                 clock=time.monotonic) -> None:
        """servers: 'host[:port]' name servers; empty = the system's (resolv.conf, the Windows registry)."""
        self.servers = [parse_server(s) for s in servers or []]
        self.timeout = timeout
        self.clock = clock
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._cache: dict[tuple[str, str], tuple[float, list[str], str | None]] = {}
        self.stats = {"queries": 0, "cache_hits": 0, "failures": 0}

    @property
    def servers_are_local(self) -> bool:
        return bool(self.servers) and all(h in ("127.0.0.1", "::1", "localhost") or h.startswith("127.")
                                          for h, _ in self.servers)

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self.servers:
                r = dns.asyncresolver.Resolver(configure=False)
                r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.servers]
            else:
                r = dns.asyncresolver.Resolver()
            r.lifetime = self.timeout
            r.timeout = min(self.timeout, 2.0)
            self._resolver = r
        return self._resolver

    async def _query(self, name: str, rdtype: str, budget: _Budget) -> tuple[list, float]:
        """(rdata list, ttl) from the cache or one DNS query; [] for NXDOMAIN / no answer."""
        if budget.queries <= 0:
            raise ResolveError(f"more than {MAX_QUERIES} DNS lookups for one address")
        budget.queries -= 1
        key = (name.lower(), rdtype)
        now = self.clock()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            self.stats["cache_hits"] += 1
            if hit[2]:
                raise ResolveError(hit[2])
            return list(hit[1]), hit[0] - now
        self.stats["queries"] += 1
        err = None
        values: list = []
        ttl = NEGATIVE_TTL_S
        try:
            ans = await self._get_resolver().resolve(name, rdtype, raise_on_no_answer=False)
            if ans.rrset is not None:
                values = list(ans.rrset)
                ttl = min(MAX_TTL_S, max(MIN_TTL_S, float(ans.rrset.ttl)))
        except dns.resolver.NXDOMAIN:
            pass
        except (dns.exception.DNSException, OSError) as e:  # timeout, no servers, refused
            self.stats["failures"] += 1
            err = f"{name} {rdtype}: {type(e).__name__}" + (f" ({e})" if str(e) else "")
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        stored = [str(v) if rdtype != "TXT" else b"".join(v.strings) for v in values]
        self._cache[key] = (now + ttl, stored, err)
        if err:
            raise ResolveError(err[:300])
        return stored, ttl

    async def resolve(self, addr: str) -> list[str]:
        """Every dialable address (`/ip4|6/...`) that `addr` stands for; `addr` itself when it
        has no DNS component. Raises ResolveError when DNS itself failed (not for "no records")."""
        if not is_dns_addr(addr):
            return [addr]
        budget = _Budget()
        out: list[str] = []
        await self._expand(addr, _peer_id_of(addr), MAX_DEPTH, budget, out)
        if not out and budget.errors:
            raise ResolveError("; ".join(dict.fromkeys(budget.errors))[:300])
        return out

    async def _expand(self, addr: str, want: str | None, depth: int, budget: _Budget, out: list[str]) -> None:
        if len(out) >= MAX_ADDRS:
            return
        try:
            ma = multiaddr.Multiaddr(addr)
            first = next(iter(ma.protocols()))
            host = ma.value_for_protocol(first.code)
        except Exception:
            budget.errors.append(f"not a multiaddr: {addr[:80]}")
            return
        rest = addr[len(f"/{first.name}/{host}"):]
        try:
            if first.name == "dnsaddr":
                if depth <= 0:
                    budget.errors.append(f"/dnsaddr nested deeper than {MAX_DEPTH}")
                    return
                records, _ = await self._query(f"_dnsaddr.{host}", "TXT", budget)
                for raw in records[:MAX_TXT_RECORDS]:
                    entry = raw[:MAX_ENTRY_LEN].decode("utf-8", "replace").strip() if isinstance(raw, bytes) else ""
                    if not entry.startswith(PREFIX):
                        continue
                    entry = entry[len(PREFIX):].strip()
                    pid = _peer_id_of(entry)
                    if want is not None and pid != want:
                        continue  # the spec's peer id filter
                    await self._expand(entry, want, depth - 1, budget, out)
            elif first.name in ("dns4", "dns6", "dns"):
                kinds = {"dns4": ["A"], "dns6": ["AAAA"], "dns": ["A", "AAAA"]}[first.name]
                for rdtype in kinds:
                    ips, _ = await self._query(host, rdtype, budget)
                    for ip in ips:
                        self._add(out, f"/{'ip4' if rdtype == 'A' else 'ip6'}/{ip}{rest}", want)
            else:
                self._add(out, addr, want)
        except ResolveError as e:
            budget.errors.append(str(e))

    @staticmethod
    def _add(out: list[str], addr: str, want: str | None) -> None:
        if len(out) >= MAX_ADDRS or addr in out:
            return
        try:
            multiaddr.Multiaddr(addr)
        except Exception:
            return
        if want is not None and _peer_id_of(addr) is None:
            addr = f"{addr}/p2p/{want}"
        out.append(addr)

    async def resolve_all(self, addrs: list[str], *, timeout: float = 8.0) -> tuple[list[str], dict[str, str]]:
        """Resolve a bootstrap list concurrently: (addresses, {input address: why it failed})."""
        results: dict[int, list[str]] = {}
        errors: dict[str, str] = {}

        async def one(i: int, a: str) -> None:
            try:
                results[i] = await self.resolve(a)
                if not results[i]:
                    errors[a] = "no dnsaddr records for this peer"
            except ResolveError as e:
                errors[a] = str(e)

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as n:
                for i, a in enumerate(addrs):
                    n.start_soon(one, i, a)
        for i, a in enumerate(addrs):
            if i not in results and a not in errors:
                errors[a] = "DNS timeout"
        out = []
        for i in sorted(results):
            out += [a for a in results[i] if a not in out]
        return out, errors
