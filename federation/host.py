"""libp2p host construction: Noise-only, Yamux, one connection per peer, optional pnet PSK.

Why each setting (see docs/protocol.md §1 "Transport and identity", §2 "Realms"):
- sec_opt is given explicitly: py-libp2p's default also offers plaintext, secio and TLS.
- max_connections_per_peer=1: otherwise every dial waits ~250 ms for a second connection.
- upgrade timeouts are short (default 3 s instead of 10 s): with a wrong pnet key the
  handshake never completes, and the upgrade timeout is the only signal py-libp2p gives.
- every stream handler is wrapped (`safe_handler`): an exception escaping a handler ends
  the whole host.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

log = logging.getLogger(__name__)

DEFAULT_UPGRADE_TIMEOUT = 3.0


def keypair_from_seed(seed: bytes) -> KeyPair:
    """Deterministic libp2p Ed25519 key pair from the node's 32-byte seed."""
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise ValueError("seed must be 32 bytes")
    return create_new_key_pair(bytes(seed))


def peer_id_from_seed(seed: bytes) -> str:
    return ID.from_pubkey(keypair_from_seed(seed).public_key).to_base58()


def make_host(
    seed: bytes,
    *,
    psk: bytes | None = None,
    upgrade_timeout: float = DEFAULT_UPGRADE_TIMEOUT,
    max_connections: int = 300,
) -> IHost:
    key_pair = keypair_from_seed(seed)
    if psk is not None and len(psk) != 32:
        raise ValueError("psk must be 32 bytes")
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    config = ConnectionConfig(
        max_connections_per_peer=1,
        max_connections=max_connections,
        high_watermark=max_connections,
        # py-libp2p's auto-connector dials up to min_connections peers from the peerstore
        # on its own; we decide whom to dial (realm probe, airgap), so turn it off.
        low_watermark=0,
        min_connections=0,
        dial_timeout=upgrade_timeout + 2.0,
        inbound_upgrade_timeout=upgrade_timeout,
        outbound_upgrade_timeout=upgrade_timeout,
        outbound_stream_protocol_negotiation_timeout=upgrade_timeout + 2.0,
        inbound_stream_protocol_negotiation_timeout=upgrade_timeout + 2.0,
    )
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        connection_config=config,
        # py-libp2p wants the PSK as 64 hex chars
        psk=psk.hex() if psk is not None else None,
    )
    reuse_open_connections_first(host.get_network())
    return host


def reuse_open_connections_first(swarm: Any) -> None:
    """py-libp2p 0.8.1's Swarm.dial_peer consults its negative dial cache before it looks for an
    open connection, so once a direct dial to a NATed peer failed, every stream over the relayed
    connection we then made fails with "recently failed all addresses" (docs/nat.md). Reuse an open
    connection first, as go-libp2p does."""
    original = swarm.dial_peer

    async def dial_peer(peer_id: ID) -> Any:
        live = [c for c in swarm.get_connections(peer_id) if not c.is_closed]
        return live if live else await original(peer_id)

    swarm.dial_peer = dial_peer


def listen_multiaddr(host: str, port: int) -> multiaddr.Multiaddr:
    family = "ip6" if ":" in host else "ip4"
    return multiaddr.Multiaddr(f"/{family}/{host}/tcp/{int(port)}")


StreamHandler = Callable[[INetStream], Awaitable[None]]


def safe_handler(name: str, handler: StreamHandler) -> StreamHandler:
    """Wrap a stream handler so that no exception can escape into the host."""

    @functools.wraps(handler)
    async def wrapped(stream: INetStream) -> None:
        try:
            await handler(stream)
        except trio.Cancelled:
            raise
        except BaseException as exc:  # noqa: BLE001 - the host must survive anything
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            log.warning("stream handler %s failed: %r", name, exc)
            try:
                await stream.reset()
            except BaseException:  # noqa: BLE001
                pass

    return wrapped


def set_safe_handler(host: IHost, protocol: str, handler: StreamHandler) -> None:
    host.set_stream_handler(TProtocol(protocol), safe_handler(protocol, handler))


def full_addrs(host: IHost) -> list[str]:
    pid = host.get_id().to_base58()
    out = []
    for a in host.get_addrs():
        s = str(a)
        out.append(s if "/p2p/" in s else f"{s}/p2p/{pid}")
    return out


def info_from_addr(addr: str) -> Any:
    from libp2p.peer.peerinfo import info_from_p2p_addr

    return info_from_p2p_addr(multiaddr.Multiaddr(addr))
