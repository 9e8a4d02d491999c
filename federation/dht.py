"""Kademlia provider records per capability, so a fresh broker finds workers before gossip.

Keys: `dht_key("/mtor/<realm>/cap/<kind>/<model>")`, a sha2-256 multihash of the namespaced name
(0x12 0x20 + 32 bytes, a CIDv0): the only key shape the public (Amino) DHT takes provider records
for -- go and js Kademlia servers decode the key as a CID/multihash and reset the stream
otherwise (the raw UTF-8 names were refused by js-libp2p's kad-dht, issue 19). Every key this
module puts or asks for goes through `dht_key`. A private realm's DHT never meets the public one:
its connections are pnet-encrypted, and it never runs the rendezvous.

py-libp2p 0.8.1 traps handled here:
- `find_providers` answers from the local store alone as soon as it has any record (a
  broker that was sent one ADD_PROVIDER would never see the others): `find_workers` always
  asks the network too and merges.
- results contain duplicates (same peer via several paths): deduplicated by peer id.
- connecting to a peer does not put it in the routing table: `on_connected` adds it.
- `protocol_prefix` is stored but the wire protocol id stays `/ipfs/kad/1.0.0` (hard-coded
  in every kad module), so realm separation of the DHT rests on the pnet key and the
  realm-prefixed keys, not on the protocol id. Documented in docs/protocol.md.
- ADD_PROVIDER carries `host.get_addrs()`: the listen addresses only, never our relayed
  (/p2p-circuit) ones, so a NATed provider was found but could not be dialed by anyone
  (js-libp2p's kad-dht keeps the addresses of the ADD_PROVIDER message and hands them out in
  GET_PROVIDERS; go-libp2p's host lists relay addresses when private). With `advertised`, the
  provider store sees the addresses the node announces (`Federation.announce_addrs`: public,
  listen, relayed), tests/interop/test_js_grid.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import multiaddr
import trio
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service

from .realm import Realm

log = logging.getLogger(__name__)


def dht_key(name: str) -> bytes:
    """A sha2-256 multihash of `name`: the shape of key the Amino DHT takes provider records for."""
    return b"\x12\x20" + hashlib.sha256(name.encode()).digest()


def is_dht_key(key: bytes) -> bool:
    return isinstance(key, bytes) and len(key) == 34 and key[:2] == b"\x12\x20"


REPROVIDE_S = 12 * 3600.0
REPROVIDE_DEBOUNCE_S = 1.0
REPROVIDE_MIN_GAP_S = 10.0  # new peers trigger a re-provide at most this often

# The public rendezvous key of the `grid` realm (as edgevpn does).
RENDEZVOUS_KEY = dht_key("mtor-node/grid/rendezvous/v1")


class _AdvertisingHost:
    """The host as the provider store sees it: `get_addrs()` is what the node announces."""

    def __init__(self, host: Any, advertised: Callable[[], list[str]]) -> None:
        self._host = host
        self._advertised = advertised

    def get_addrs(self) -> list[multiaddr.Multiaddr]:
        out = []
        for a in self._advertised():
            try:
                out.append(multiaddr.Multiaddr(a))
            except Exception:
                continue
        return out or self._host.get_addrs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


class RealmDHT:
    def __init__(self, host: Any, realm: Realm, *, airgap: bool = False,
                 advertised: Callable[[], list[str]] | None = None) -> None:
        self.host = host
        self.realm = realm
        self.kad = KadDHT(host, DHTMode.SERVER, enable_random_walk=False, protocol_prefix=realm.dht_prefix)
        if advertised is not None:  # provider records carry our relayed addresses too (module doc)
            self.kad.provider_store.host = _AdvertisingHost(host, advertised)
        self._send, self._recv = trio.open_memory_channel[ID](1024)
        self.provided: set[str] = set()
        self._caps: dict | None = None  # what provide_caps last announced, provided again below
        self._peer_added = trio.Event()

    def on_connected(self, pid: ID) -> None:
        try:
            self._send.send_nowait(pid)
        except trio.WouldBlock:
            pass

    async def _adder(self) -> None:
        async for pid in self._recv:
            try:
                with trio.move_on_after(5):
                    await self.kad.add_peer(pid, skip_server_mode_check=True)
                self._peer_added.set()
            except Exception:
                log.debug("dht add_peer failed", exc_info=True)

    async def _reprovider(self) -> None:
        """Provide the capability keys again when new DHT peers arrived (the first provide at
        start usually reaches nobody: the bootstrap connects later) and every REPROVIDE_S
        (provider records expire on public servers: 24-48 h)."""
        last = -REPROVIDE_S
        while True:
            with trio.move_on_after(REPROVIDE_S):
                await self._peer_added.wait()
            await trio.sleep(REPROVIDE_DEBOUNCE_S)  # let a burst of connections land first
            self._peer_added = trio.Event()
            if self._caps is not None and (trio.current_time() - last >= REPROVIDE_MIN_GAP_S or not self.provided):
                last = trio.current_time()
                await self.provide_caps(self._caps)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with background_trio_service(self.kad):
            async with trio.open_nursery() as n:
                n.start_soon(self._adder)
                n.start_soon(self._reprovider)
                task_status.started()
                await trio.sleep_forever()

    def _key(self, kind: str, model: str) -> bytes:
        return dht_key(self.realm.cap_key(kind, model))

    async def provide_caps(self, caps: dict) -> None:
        """Announce provider records for every kind/model we serve (best effort, bounded)."""
        self._caps = caps
        keys = [(k, m) for k, models in caps.get("models", {}).items() for m in models]
        with trio.move_on_after(10):
            for kind, model in keys:
                try:
                    await self.kad.provider_store.provide(self._key(kind, model))
                    self.provided.add(f"{kind}/{model}")
                except Exception:
                    log.debug("dht provide failed", exc_info=True)

    async def provide_key(self, key: bytes) -> None:
        if not is_dht_key(key):
            raise ValueError("DHT keys are sha2-256 multihashes (dht_key)")
        with trio.move_on_after(10):
            await self.kad.provider_store.provide(key)

    async def find_providers_of(self, key: bytes, *, timeout: float = 3.0) -> dict[str, list]:
        return await self._find(key, count=20, timeout=timeout)

    async def find_workers(self, kind: str, model: str, *, count: int = 20, timeout: float = 3.0) -> dict[str, list]:
        """Peer id -> multiaddrs of providers of kind/model: local records + a network query."""
        return await self._find(self._key(kind, model), count=count, timeout=timeout)

    async def _find(self, key: bytes, *, count: int, timeout: float) -> dict[str, list]:
        if not is_dht_key(key):
            raise ValueError("DHT keys are sha2-256 multihashes (dht_key)")
        store = self.kad.provider_store
        found: dict[str, list] = {}

        def add(infos: list) -> None:
            for info in infos or []:
                pid = info.peer_id.to_base58()
                if pid == self.host.get_id().to_base58():
                    continue
                addrs = found.setdefault(pid, [])
                for a in info.addrs:
                    if a not in addrs:
                        addrs.append(a)

        add(store.get_providers(key))
        with trio.move_on_after(timeout):
            peers = list(self.host.get_network().connections)
            try:
                peers += [p for p in self.kad.routing_table.find_local_closest_peers(key, 20) if p not in peers]
            except Exception:
                pass
            queried: set[ID] = set()
            for _round in range(2):
                batch = [p for p in peers if p not in queried][:20]
                if not batch or len(found) >= count:
                    break
                closer_all: list[ID] = []

                async def ask(pid: ID) -> None:
                    queried.add(pid)
                    try:
                        with trio.move_on_after(timeout / 2):
                            providers, closer = await store._get_providers_from_peer_with_closers(pid, key)
                            add(providers)
                            closer_all.extend(closer or [])
                    except Exception:
                        log.debug("dht get_providers from %s failed", pid, exc_info=True)

                async with trio.open_nursery() as n:
                    for pid in batch:
                        n.start_soon(ask, pid)
                peers = [p for p in closer_all if p != self.host.get_id()]
        return found
