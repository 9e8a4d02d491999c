"""Signed capability announcements (GossipSub payloads) and their validator.

Envelope on the wire (msgpack map): {"a": <bytes>, "s": <64 bytes>}
  a = canonical msgpack of the announcement map (sorted keys)
  s = Ed25519(node key, b"mtor-caps-v1" + a)
The announcement's `node` must equal the gossip message's origin (`from` field, which
GossipSub strict signing already authenticates), and `s` must verify against `node`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from typing import Any

from . import frames, keys
from .frames import FrameError, canonical

log = logging.getLogger(__name__)

CAPS_DOMAIN = b"mtor-caps-v1"
MAX_ANNOUNCEMENT = 64 * 1024  # far below GossipSub's silent 1 MiB drop
MAX_AGE = 60.0  # seconds an announcement may be old when it arrives
MAX_SKEW = 30.0  # seconds an announcement may be in the future (clock skew)


class CapsError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def check_capabilities(caps: dict) -> dict:
    """Normalise and bound-check the application fields; raises CapsError('malformed'|'absurd').
    The bounds are the `Capabilities` Struct's (federation/frames.py)."""
    if not isinstance(caps, dict):
        raise CapsError("malformed", "capabilities must be a map")
    try:
        typed = frames.capabilities_from(caps)
    except FrameError as exc:
        raise CapsError(exc.reason, str(exc)) from None
    return _caps_dict(typed)


def _caps_dict(c: frames.Capabilities) -> dict:
    return {
        "gpus": [{"name": g.name, "vram_total": g.vram_total, "vram_free": g.vram_free, "cuda": g.cuda or ""}
                 for g in c.gpus],
        "cpu": {"cores": c.cpu.cores, "ram": c.cpu.ram},
        "models": {k: list(v) for k, v in c.models.items()},
        "prices": dict(c.prices),
        "surge": float(c.surge),
        "queue": c.queue,
        "capacity": c.capacity,
        "version": c.version,
    }


def _checked(ann: frames.Announcement) -> dict:
    for a in ann.addrs:  # every address must be a multiaddr of the announcer itself (issue 12 #4)
        problem = _addr_problem(a, ann.node)
        if problem:
            raise CapsError("bad_addr", f"{a[:80]}: {problem}")
    out = _caps_dict(ann)
    out.update(node=ann.node, addrs=list(ann.addrs), ts=float(ann.ts), seq=ann.seq, ttl=ann.ttl)
    return out


def check_announcement(ann: Any) -> dict:
    if not isinstance(ann, dict):
        raise CapsError("malformed", "announcement must be a map")
    try:
        return _checked(frames.capabilities_from(ann, frames.Announcement))
    except FrameError as exc:
        raise CapsError(exc.reason, str(exc)) from None


def _addr_problem(addr: str, node: str) -> str | None:
    import multiaddr

    try:
        text = str(multiaddr.Multiaddr(addr))
    except Exception:
        return "not a multiaddr"
    if not text.endswith(f"/p2p/{node}"):
        return "does not end in /p2p/<node>"
    return None


def sign_announcement(ann: dict, signer: keys.Signer) -> bytes:
    body = canonical(ann)
    return canonical({"a": body, "s": signer.sign(CAPS_DOMAIN + body)})


class CapsValidator:
    """Checks an incoming announcement; counts each rejection by reason.

    Per-peer rate limit (token bucket, by gossip origin) replaces GossipSub's own spam
    protection, which drops silently above 10 msg/s per link.
    """

    def __init__(
        self,
        *,
        max_size: int = MAX_ANNOUNCEMENT,
        max_age: float = MAX_AGE,
        max_skew: float = MAX_SKEW,
        rate: float = 5.0,
        burst: float = 20.0,
        clock=time.time,
        mono=time.monotonic,
    ) -> None:
        self.max_size = max_size
        self.max_age = max_age
        self.max_skew = max_skew
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.mono = mono
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.last_seq: OrderedDict[str, int] = OrderedDict()  # LRU, bounded by max_origins
        self.max_origins = 10_000
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _allow(self, peer: str) -> bool:
        now = self.mono()
        tokens, last = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1, now)
        self._buckets.move_to_end(peer)
        while len(self._buckets) > self.max_origins:  # bounded LRU: a flood of fresh ids evicts
            self._buckets.popitem(last=False)         # the idlest buckets, not a busy flooder's
        return True

    def _reject(self, origin: str, reason: str, detail: str = "") -> None:
        self.rejected[reason] += 1
        log.info("caps: rejected announcement from %s: %s %s", origin[:16], reason, detail)

    def validate(self, origin: str, data: bytes) -> dict | None:
        """The announcement if acceptable, else None (rejection counted and logged)."""
        try:
            return self._validate(origin, data)
        except CapsError as exc:
            self._reject(origin, exc.reason, str(exc))
        except Exception as exc:  # never let a validator crash gossip
            self._reject(origin, "malformed", repr(exc)[:100])
        return None

    def _validate(self, origin: str, data: bytes) -> dict:
        if not isinstance(data, (bytes, bytearray)) or len(data) > self.max_size:
            raise CapsError("oversized", str(len(data)))
        if not self._allow(origin):
            raise CapsError("rate_limited")
        try:
            env = frames.decode_caps(bytes(data), frames.CapsEnvelope, self.max_size)
            body, sig = env.a, env.s
            ann = _checked(frames.decode_caps(body, frames.Announcement, self.max_size))
        except FrameError as exc:
            raise CapsError(exc.reason, str(exc)) from None
        if ann["node"] != origin:
            raise CapsError("forged", "node != gossip origin")
        if not keys.verify(origin, CAPS_DOMAIN + body, sig):
            raise CapsError("forged", "bad signature")
        now = self.clock()
        if ann["ts"] < now - self.max_age:
            raise CapsError("stale", f"{now - ann['ts']:.1f}s old")
        if ann["ts"] > now + self.max_skew:
            raise CapsError("future", f"{ann['ts'] - now:.1f}s ahead")
        last = self.last_seq.get(origin, -1)
        if ann["seq"] <= last:
            raise CapsError("replayed", f"seq {ann['seq']} <= {last}")
        self.last_seq[origin] = ann["seq"]
        self.last_seq.move_to_end(origin)
        if len(self.last_seq) > self.max_origins:  # a forgotten origin's replays are stale by ts anyway
            self.last_seq.popitem(last=False)
        self.accepted += 1
        return ann
