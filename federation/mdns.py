"""LAN discovery by mDNS, bound to the interfaces the operator allows.

Not py-libp2p's MDNSDiscovery, because (0.8.1, discovery/mdns/mdns.py):
- it constructs `Zeroconf()` with no `interfaces`: it binds and announces on every interface,
  and there is no parameter to restrict it;
- its listener writes to the peerstore from zeroconf's threads (no hand-over to trio) and
  never dials what it found;
- constructing it and registering the service blocks the trio loop ~1.6 s (docs/nat.md §3.4).

Here: `Zeroconf(interfaces=[allowed IPv4 addresses])`, started in a worker thread after the node
is ready; browser callbacks run on zeroconf's threads and hand (peer id, addrs) to the trio loop
through a bounded memory channel with the trio token (`trio.from_thread.run_sync`); the trio side
validates and hands each new peer to the `dial` callback (the Federation probes the realm first,
as for any peer). Takes the host, the realm fingerprint and callbacks, never the Federation.

Service type `_mtor._udp.local.`, instance `<peer id>`, TXT: `realm=<realm fingerprint>`,
`id=<peer id>`, `a0..a3=<multiaddr>` (only addresses on the allowed interfaces).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.peer.id import ID

from .addrs import expand_unspecified, iface_ipv4, ip_of, valid_peer_addr
from .conn import connections_to

log = logging.getLogger(__name__)

SERVICE_TYPE = "_mtor._udp.local."
MAX_PENDING = 64


def _interface_ips(names: list[str]) -> list[str]:
    out = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            ip = n
        except ValueError:
            ip = iface_ipv4(n)
        if ip is None:
            raise ValueError(f"mdns interface {n!r} has no IPv4 address")
        if ip not in out:
            out.append(ip)
    return out


class MdnsDiscovery:
    """`listen_addrs()`: our full listen multiaddrs (announced in TXT); `should_dial(peer)`: False
    for a blocked peer; `dial(peer, addrs)`: connect to a peer found, True when connected."""

    def __init__(self, host: Any, *, peer_id: str, realm_fingerprint: str, listen_hosts: list[str],
                 listen_addrs: Callable[[], list[str]], interfaces: list[str],
                 should_dial: Callable[[str], bool], dial: Callable[[str, list[str]], Awaitable[bool]]) -> None:
        self.host = host
        self.peer_id = peer_id
        self.fingerprint = realm_fingerprint
        self.listen_hosts = list(listen_hosts)
        self.listen_addrs = listen_addrs
        self.should_dial = should_dial
        self.dial = dial
        self.interfaces = list(interfaces)
        self.bound: list[str] = []
        self.found: dict[str, float] = {}
        self.dialed: dict[str, bool] = {}
        self.error: str | None = None
        self.started_in_s: float | None = None
        self._zc = None

    def status(self) -> dict:
        return {"bound": self.bound, "found": sorted(self.found), "error": self.error,
                "started_in_s": self.started_in_s}

    def _allowed_ips(self) -> list[str]:
        if self.interfaces:
            return _interface_ips(self.interfaces)
        # default: the addresses libp2p listens on, when they are specific ones
        ips = [h for h in self.listen_hosts if h not in ("0.0.0.0", "::", "127.0.0.1", "::1")]
        return ips

    def _txt(self, ips: list[str]) -> dict:
        addrs = []
        for a in expand_unspecified(self.listen_addrs()):
            if (not ips or ip_of(a) in ips) and a not in addrs:
                addrs.append(a.split("/p2p/")[0])
        props = {"realm": self.fingerprint, "id": self.peer_id}
        for i, a in enumerate(addrs[:4]):
            props[f"a{i}"] = a
        return props

    def _start(self, ips: list[str], token: Any, send: Any) -> Any:
        """In a worker thread: zeroconf's start and service registration block for a while."""
        from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

        zc = Zeroconf(interfaces=ips or InterfaceChoice.All, ip_version=IPVersion.V4Only)
        port = 0
        for a in self.listen_addrs():
            try:
                port = int(a.split("/tcp/")[1].split("/")[0])
                break
            except Exception:
                continue
        info = ServiceInfo(SERVICE_TYPE, f"{self.peer_id}.{SERVICE_TYPE}",
                           addresses=[socket.inet_aton(ip) for ip in ips] or None, port=port,
                           properties=self._txt(ips), server=f"{self.peer_id[-20:].lower()}.local.")
        zc.register_service(info)
        me = self.peer_id
        fp = self.fingerprint

        def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
            # zeroconf's thread: never touch trio state here, only hand over
            if state_change not in (ServiceStateChange.Added, ServiceStateChange.Updated):
                return
            try:
                si = zeroconf.get_service_info(service_type, name, timeout=1500)
                if si is None:
                    return
                props = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
                         for k, v in (si.properties or {}).items() if isinstance(k, bytes)}
                if props.get("realm") != fp or props.get("id") in (None, me):
                    return
                addrs = [props[k] for k in ("a0", "a1", "a2", "a3") if k in props]
                item = (props["id"][:128], addrs)
                trio.from_thread.run_sync(send.send_nowait, item, trio_token=token)
            except (trio.WouldBlock, trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            except Exception:  # a bad record must not kill zeroconf's thread
                log.debug("mdns record handling failed", exc_info=True)

        self._browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        return zc

    def _stop(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            self._browser.cancel()
        except Exception:
            pass
        try:
            zc.unregister_all_services()
        except Exception:
            pass
        zc.close()

    async def run(self) -> None:
        try:
            ips = self._allowed_ips()
        except ValueError as exc:
            self.error = str(exc)
            log.warning("mDNS off: %s", exc)
            return
        self.bound = ips or ["all interfaces"]
        token = trio.lowlevel.current_trio_token()
        send, recv = trio.open_memory_channel[tuple](MAX_PENDING)
        t0 = time.monotonic()
        try:
            self._zc = await trio.to_thread.run_sync(self._start, ips, token, send, abandon_on_cancel=False)
        except Exception as exc:  # zeroconf's own errors (no such interface, socket options)
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("mDNS could not start: %s", self.error)
            return
        self.started_in_s = round(time.monotonic() - t0, 3)
        try:
            async with recv, trio.open_nursery() as dials:
                async for pid, addrs in recv:
                    try:
                        peer = ID.from_base58(pid)
                    except Exception:
                        continue
                    good = [a for a in (valid_peer_addr(x) for x in addrs)
                            if a and (not ips or ip_of(a) is None or _same_subnet(ip_of(a), ips))]
                    if not good:
                        continue
                    self.found[pid] = time.time()
                    if connections_to(self.host, peer) or not self.should_dial(pid):
                        continue
                    dials.start_soon(self._dial, pid, good)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(3):
                await trio.to_thread.run_sync(self._stop, abandon_on_cancel=True)

    async def _dial(self, pid: str, addrs: list[str]) -> None:
        try:
            self.dialed[pid] = await self.dial(pid, addrs)
        except Exception:  # the dial callback reports its own errors (join_errors)
            self.dialed[pid] = False


def _same_subnet(ip: str, allowed: list[str], prefix: int = 16) -> bool:
    """An mDNS answer's address should be on (roughly) the LAN of an allowed interface."""
    try:
        a = ipaddress.ip_address(ip)
        return any(a in ipaddress.ip_network(f"{x}/{prefix}", strict=False) for x in allowed)
    except ValueError:
        return False
