"""Signed capability announcements (GossipSub payloads) and their validator.

Envelope on the wire (msgpack map): {"a": <bytes>, "s": <64 bytes>}
  a = canonical msgpack of the announcement map (sorted keys)
  s = Ed25519(node key, b"mtor-caps-v1" + a)
The announcement's `node` must equal the gossip message's origin (`from` field, which
GossipSub strict signing already authenticates), and `s` must verify against `node`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, OrderedDict
from typing import Any

from . import keys
from .frames import canonical
from .wire import unpack

log = logging.getLogger(__name__)

CAPS_DOMAIN = b"mtor-caps-v1"
MAX_ANNOUNCEMENT = 64 * 1024  # far below GossipSub's silent 1 MiB drop
MAX_AGE = 60.0  # seconds an announcement may be old when it arrives
MAX_SKEW = 30.0  # seconds an announcement may be in the future (clock skew)


class CapsError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _str(v: Any, hi: int, lo: int = 0) -> bool:
    return isinstance(v, str) and lo <= len(v) <= hi


# The application part of an announcement (what Federation.set_capabilities takes).
CAP_DEFAULTS: dict[str, Any] = {
    "gpus": [],
    "cpu": {"cores": 0, "ram": 0},
    "models": {},
    "prices": {},
    "surge": 1.0,
    "queue": 0,
    "capacity": 1,
    "version": "",
}


def check_capabilities(caps: dict) -> dict:
    """Normalise and bound-check the application fields; raises CapsError('malformed'|'absurd')."""
    if not isinstance(caps, dict):
        raise CapsError("malformed", "capabilities must be a map")
    out = {k: caps.get(k, v) for k, v in CAP_DEFAULTS.items()}
    gpus = out["gpus"]
    if not isinstance(gpus, list):
        raise CapsError("malformed", "gpus")
    if len(gpus) > 64:
        raise CapsError("absurd", f"{len(gpus)} gpus")
    clean_gpus = []
    for g in gpus:
        if not isinstance(g, dict) or not _str(g.get("name"), 128):
            raise CapsError("malformed", "gpu entry")
        vt, vf = g.get("vram_total", 0), g.get("vram_free", 0)
        if not _int(vt, 0, 2**44) or not _int(vf, 0, 2**44) or vf > vt:  # bytes, < 16 TiB
            raise CapsError("absurd", "gpu vram")
        cuda = g.get("cuda", "")
        if not (cuda is None or _str(cuda, 32)):
            raise CapsError("malformed", "gpu cuda")
        clean_gpus.append({"name": g["name"], "vram_total": vt, "vram_free": vf, "cuda": cuda or ""})
    out["gpus"] = clean_gpus
    cpu = out["cpu"]
    if not isinstance(cpu, dict):
        raise CapsError("malformed", "cpu")
    cores, ram = cpu.get("cores", 0), cpu.get("ram", 0)
    if not _int(cores, 0, 4096) or not _int(ram, 0, 2**50):
        raise CapsError("absurd", "cpu")
    out["cpu"] = {"cores": cores, "ram": ram}
    models = out["models"]
    if not isinstance(models, dict) or len(models) > 16:
        raise CapsError("malformed", "models")
    for kind, names in models.items():
        if not _str(kind, 64, 1) or not isinstance(names, list) or len(names) > 256:
            raise CapsError("malformed", "models entry")
        if not all(_str(n, 256, 1) for n in names):
            raise CapsError("malformed", "model name")
    out["models"] = {k: list(v) for k, v in models.items()}
    prices = out["prices"]
    if not isinstance(prices, dict) or len(prices) > 16:
        raise CapsError("malformed", "prices")
    for kind, p in prices.items():
        if not _str(kind, 64, 1) or not isinstance(p, int) or isinstance(p, bool):
            raise CapsError("malformed", "price")
        if not 0 <= p <= 10**12:  # micro-tokens; 10^6 tokens per unit is already absurd
            raise CapsError("absurd", f"price {kind}={p}")
    out["prices"] = dict(prices)
    if not _num(out["surge"], 1.0, 100.0):
        raise CapsError("absurd", "surge")
    out["surge"] = float(out["surge"])
    if not _int(out["queue"], 0, 10**6) or not _int(out["capacity"], 0, 10**5):
        raise CapsError("absurd", "queue/capacity")
    if not _str(out["version"], 64):
        raise CapsError("malformed", "version")
    return out


def check_announcement(ann: Any) -> dict:
    if not isinstance(ann, dict):
        raise CapsError("malformed", "announcement must be a map")
    out = check_capabilities(ann)
    if not _str(ann.get("node"), 128, 1):
        raise CapsError("malformed", "node")
    addrs = ann.get("addrs", [])
    if not isinstance(addrs, list) or len(addrs) > 16 or not all(_str(a, 256, 1) for a in addrs):
        raise CapsError("malformed", "addrs")
    if not _num(ann.get("ts"), 0, 2**40):
        raise CapsError("malformed", "ts")
    if not _int(ann.get("seq"), 0, 2**63 - 1):
        raise CapsError("malformed", "seq")
    ttl = ann.get("ttl", 30)
    if not _int(ttl, 1, 3600):
        raise CapsError("malformed", "ttl")
    for a in addrs:  # every address must be a multiaddr of the announcer itself (issue 12 #4)
        if _addr_problem(a, ann["node"]):
            raise CapsError("bad_addr", f"{a[:80]}: {_addr_problem(a, ann['node'])}")
    out.update(node=ann["node"], addrs=list(addrs), ts=float(ann["ts"]), seq=ann["seq"], ttl=ttl)
    return out


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
        env = unpack(bytes(data), self.max_size) if data else None
        if not isinstance(env, dict) or set(env) != {"a", "s"}:
            raise CapsError("malformed", "envelope")
        body, sig = env["a"], env["s"]
        if not isinstance(body, bytes) or not isinstance(sig, bytes):
            raise CapsError("malformed", "envelope types")
        ann = check_announcement(unpack(body, self.max_size))
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
