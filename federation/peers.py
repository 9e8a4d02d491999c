"""Peer table: announcements, RTT EWMA, health score, back-off bans, manual blocks.

Health is 0-100 in the spirit of the original RENT-A-HAL: +10 per success (max 100), -10 per
failure. At 0 a peer is out of rotation and banned with exponential back-off (base * 2^n, capped);
a successful probe/ping after the ban puts it back in at 50.

Bounded (issue 12 #2): at most `max_peers` entries. Past the bound the least recently used entries
go, except pinned ones: the node itself, connected peers, blocked or banned peers (a flood of
fresh ids must not wash out a ban), and peers that delivered work recently.

Unproven peers (issue 12 #3): a peer that never delivered work and is not connected has not shown
that it can be reached. Its first failure takes it to 0 (out of rotation, back-off ban).

No routing here: the table keeps peers and their standing and never orders them. `views()` is the
typed view the broker builds market offers from; `federation.market.route` is the only routing
policy (docs/protocol.md §6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Iterator

from .market import Ask, Offer

HEALTH_MAX = 100
HEALTH_START = 100
HEALTH_RECOVERED = 50
HEALTH_STEP = 10
MAX_PEERS = 1024
USEFUL_FOR_S = 600.0  # a peer that delivered work within this long stays pinned


@dataclass
class PeerState:
    peer_id: str
    announcement: dict | None = None
    announced_at: float = 0.0  # local monotonic time of the last accepted announcement
    last_seq: int = -1
    rtt_ms: float | None = None
    successes: int = 0
    failures: int = 0
    health: int = HEALTH_START
    ban_until: float = 0.0
    ban_count: int = 0
    blocked: bool = False
    connected: bool = False
    last_error: str = ""
    # learned in a way this node trusts (bootstrap, DHT, PEX, mDNS) or seen on a connection:
    # only then are its announced addresses dialed (issue 12 #4)
    trusted: bool = False
    last_used: float = 0.0  # monotonic; LRU order for the bound
    last_success: float = -1e18
    extra: dict = field(default_factory=dict)
    ask: Ask | None = None  # the announcement's prices, surge and load, read once per announcement


@dataclass(frozen=True)
class PeerView:
    """One announcing peer as the market needs it now: what it asks and how it stands."""

    peer_id: str
    ask: Ask
    health: int
    rtt_ms: float | None
    fresh: bool
    blocked: bool  # blocked by the operator, or banned for now
    proven: bool  # connected now, or delivered work before
    reachable: bool  # connected, or its addresses learned in a trusted way (issue 12 #4)

    def offer(self, kind: str, model: str | None, units: int) -> Offer:
        """This peer's offer for one intent, for `federation.market.route`."""
        return self.ask.offer(self.peer_id, kind, model, units, health=self.health, rtt_ms=self.rtt_ms,
                              fresh=self.fresh, blocked=self.blocked, proven=self.proven, reachable=self.reachable)


class PeerTable:
    def __init__(
        self,
        *,
        ttl: float = 30.0,
        ban_base: float = 5.0,
        ban_max: float = 600.0,
        rtt_alpha: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = MAX_PEERS,
    ) -> None:
        self.ttl = ttl
        self.ban_base = ban_base
        self.ban_max = ban_max
        self.rtt_alpha = rtt_alpha
        self.clock = clock
        self.max_peers = max_peers
        self._peers: dict[str, PeerState] = {}
        self._pinned: set[str] = set()  # the node's own id, configured peers
        self.evicted = 0

    # ------------------------------------------------------------ access
    def get(self, peer_id: str) -> PeerState:
        st = self._peers.get(peer_id)
        if st is None:
            st = self._peers[peer_id] = PeerState(peer_id, last_used=self.clock())
            if len(self._peers) > self.max_peers:
                self._evict()
        return st

    def touch(self, peer_id: str) -> None:
        self.get(peer_id).last_used = self.clock()

    def pin(self, peer_id: str) -> None:
        self._pinned.add(peer_id)

    def is_pinned(self, st: PeerState) -> bool:
        return (st.peer_id in self._pinned or st.connected or st.blocked or self.is_banned(st)
                or self.clock() - st.last_success < USEFUL_FOR_S)

    def _evict(self) -> None:
        """Down to 90 % of the bound in one pass: the least recently used unpinned entries."""
        target = self.max_peers * 9 // 10
        victims = sorted((st for st in self._peers.values() if not self.is_pinned(st)), key=lambda s: s.last_used)
        for st in victims[: max(0, len(self._peers) - target)]:
            del self._peers[st.peer_id]
            self.evicted += 1

    def last_seen(self, peer_id: str) -> float:
        st = self._peers.get(peer_id)
        return st.last_used if st is not None else -1e18

    def useful(self, peer_id: str) -> bool:
        """For the peerstore's bound: keep what this table keeps pinned."""
        st = self._peers.get(peer_id)
        return st is not None and self.is_pinned(st)

    def is_proven(self, st: PeerState) -> bool:
        """Reachability shown: connected now, or it delivered work."""
        return st.connected or st.successes > 0

    def known(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def __iter__(self):
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)

    # ------------------------------------------------------------ announcements
    def record_announcement(self, peer_id: str, ann: dict) -> None:
        st = self.get(peer_id)
        st.announcement = ann
        st.ask = Ask.from_announcement(ann)
        st.announced_at = st.last_used = self.clock()
        st.last_seq = ann.get("seq", st.last_seq)

    def is_fresh(self, st: PeerState) -> bool:
        if st.announcement is None:
            return False
        ttl = min(self.ttl, float(st.announcement.get("ttl") or self.ttl))
        return self.clock() - st.announced_at <= ttl

    # ------------------------------------------------------------ health
    def record_success(self, peer_id: str, rtt_ms: float | None = None) -> None:
        st = self.get(peer_id)
        st.successes += 1
        st.last_success = st.last_used = self.clock()
        st.health = min(HEALTH_MAX, st.health + HEALTH_STEP)
        st.ban_count = 0
        if rtt_ms is not None:
            self.record_rtt(peer_id, rtt_ms)

    def record_failure(self, peer_id: str, reason: str = "") -> None:
        st = self.get(peer_id)
        unproven = not self.is_proven(st)
        st.failures += 1
        st.last_error = reason
        # one try for a peer that never showed it can be reached: a fake costs one attempt
        st.health = 0 if unproven else max(0, st.health - HEALTH_STEP)
        if st.health == 0:
            st.ban_until = self.clock() + min(self.ban_max, self.ban_base * (2**st.ban_count))
            st.ban_count += 1

    def record_misbehaviour(self, peer_id: str, reason: str = "") -> None:
        """A peer that broke the protocol (garbage frames, a forged receipt) is not merely slow:
        out of rotation at once, with the same exponential back-off ban as reaching health 0."""
        st = self.get(peer_id)
        st.failures += 1
        st.last_error = reason
        st.health = 0
        st.ban_until = self.clock() + min(self.ban_max, self.ban_base * (2**st.ban_count))
        st.ban_count += 1

    def record_probe(self, peer_id: str, ok: bool, rtt_ms: float | None = None) -> None:
        """A ping/probe result: a successful probe brings a peer at 0 back to 50."""
        st = self.get(peer_id)
        if ok:
            if rtt_ms is not None:
                self.record_rtt(peer_id, rtt_ms)
            if st.health == 0 and self.clock() >= st.ban_until:
                st.health = HEALTH_RECOVERED
        else:
            self.record_failure(peer_id, "probe failed")

    def record_rtt(self, peer_id: str, rtt_ms: float) -> None:
        st = self.get(peer_id)
        a = self.rtt_alpha
        st.rtt_ms = rtt_ms if st.rtt_ms is None else (1 - a) * st.rtt_ms + a * rtt_ms

    def ban(self, peer_id: str, seconds: float, reason: str = "") -> None:
        st = self.get(peer_id)
        st.ban_until = max(st.ban_until, self.clock() + seconds)
        st.last_error = reason or st.last_error

    def is_banned(self, st: PeerState) -> bool:
        return self.clock() < st.ban_until

    def needs_probe(self, st: PeerState) -> bool:
        """Out of rotation (health 0), ban expired: ready for a recovery probe."""
        return st.health == 0 and not st.blocked and not self.is_banned(st)

    # ------------------------------------------------------------ manual blocks
    def block(self, peer_id: str) -> None:
        self.get(peer_id).blocked = True

    def unblock(self, peer_id: str) -> None:
        self.get(peer_id).blocked = False

    def is_blocked(self, peer_id: str) -> bool:
        st = self._peers.get(peer_id)
        return bool(st and st.blocked)

    # ------------------------------------------------------------ selection
    def usable(self, st: PeerState) -> bool:
        # (connected or trusted): a stranger heard only on gossip is not dialed, so not a candidate
        return (st.health > 0 and not st.blocked and not self.is_banned(st) and self.is_fresh(st)
                and (st.connected or st.trusted))

    def serving(self, kind: str, model: str, exclude: set[str] | None = None) -> list[PeerState]:
        """Usable peers that announced kind/model, in no particular order (membership, not routing)."""
        return [st for st in self._peers.values()
                if not (exclude and st.peer_id in exclude) and self.usable(st)
                and st.ask is not None and st.ask.serves(kind, model)]

    def views(self, kind: str | None = None, exclude: set[str] | None = None) -> Iterator[PeerView]:
        """Every peer with an announcement (serving `kind`, if given), as the market sees it. Stale,
        blocked or unhealthy ones are included: the market counts why each is out."""
        now = self.clock()
        for st in self._peers.values():
            ask = st.ask
            if ask is None or (exclude and st.peer_id in exclude) or (kind is not None and not ask.models.get(kind)):
                continue
            yield PeerView(st.peer_id, ask, st.health, st.rtt_ms, self.is_fresh(st),
                           st.blocked or now < st.ban_until, self.is_proven(st), st.connected or st.trusted)

    def expire(self) -> None:
        """Forget announcements past their TTL (the peer entry and its history stay)."""
        for st in self._peers.values():
            if st.announcement is not None and not self.is_fresh(st):
                st.announcement = st.ask = None

    # ------------------------------------------------------------ display
    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock()
        rows = []
        for st in self._peers.values():
            ann = st.announcement or {}
            rows.append(
                {
                    "peer_id": st.peer_id,
                    "connected": st.connected,
                    "fresh": self.is_fresh(st),
                    "age_s": round(now - st.announced_at, 3) if st.announcement else None,
                    "health": st.health,
                    "rtt_ms": round(st.rtt_ms, 3) if st.rtt_ms is not None else None,
                    "successes": st.successes,
                    "failures": st.failures,
                    "banned_for_s": round(max(0.0, st.ban_until - now), 3),
                    "blocked": st.blocked,
                    "trusted": st.trusted,
                    "proven": self.is_proven(st),
                    "last_error": st.last_error,
                    "addrs": list(ann.get("addrs", [])),
                    "gpus": list(ann.get("gpus", [])),
                    "cpu": dict(ann.get("cpu", {})),
                    "models": {k: list(v) for k, v in ann.get("models", {}).items()},
                    "prices": dict(ann.get("prices", {})),
                    "surge": ann.get("surge"),
                    "queue": ann.get("queue"),
                    "capacity": ann.get("capacity"),
                    "version": ann.get("version"),
                    "seq": ann.get("seq"),
                }
            )
        rows.sort(key=lambda r: (-r["health"], r["peer_id"]))
        return rows
