"""Test-only guard: no process the test suite starts may reach an address off this machine.

tests/conftest.py puts this folder on PYTHONPATH and sets MTOR_NETGUARD_LOG, so every Python process
the suite starts (pytest itself, `mtor-node start` children, helper scripts) imports it at start-up.
A connect or a datagram to an address outside loopback is refused with ENETUNREACH and written to the
log, and conftest fails the test that caused it. Processes inside a network namespace the suite made
itself (tests/chaos, tests/nat) may use that namespace's private addresses: those exist only there.
Multicast (mDNS) stays on the interfaces the node chose and is allowed, and so are the lab subnets
in MTOR_NETGUARD_ALLOW (conftest sets the ones tests/chaos/netns.py and tests/nat/lab.py create:
they exist only on veth links and bridges of the suite's own namespaces).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("MTOR_NETGUARD_LOG")
_LABS = [ipaddress.ip_network(n) for n in os.environ.get("MTOR_NETGUARD_ALLOW", "").split(",") if n.strip()]


def _in_own_netns() -> bool:
    """True inside a namespace the suite made: conftest records the pytest process's own netns."""
    home = os.environ.get("MTOR_NETGUARD_NETNS")
    try:
        return bool(home) and str(os.stat("/proc/self/ns/net").st_ino) != home
    except OSError:
        return False


def _allowed(address) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths, netlink, ...
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return str(host) in ("localhost", "")
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_multicast or ip.is_unspecified or any(ip in net for net in _LABS)


def _refuse(address) -> None:
    stack = "".join(traceback.format_stack(limit=12)[:-2])
    line = f"pid {os.getpid()} tried to reach {address!r}\n{stack}\n"
    try:
        with open(_LOG, "a") as f:
            f.write(line)
    except OSError:
        pass
    raise OSError(errno.ENETUNREACH, f"test guard: {address!r} is off this machine")


def install() -> None:
    if getattr(socket.socket, "_mtor_guarded", False) or _in_own_netns():
        return
    connect, connect_ex, sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def guarded_connect(self, address):
        if not _allowed(address):
            _refuse(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if not _allowed(address):
            _refuse(address)
        return connect_ex(self, address)

    def guarded_sendto(self, data, *args):
        address = args[-1]
        if not _allowed(address):
            _refuse(address)
        return sendto(self, data, *args)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.socket.sendto = guarded_sendto
    socket.socket._mtor_guarded = True


if _LOG:
    install()
