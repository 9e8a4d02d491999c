"""Prometheus text metrics, counted in the API layer from the events each intent produces.

The broker's own counters cover every intent (peers' too); these add what only the edge sees:
outcome by kind and the latency a client experienced, queue wait included.
"""

from __future__ import annotations

from collections import defaultdict

# Seconds. Echo answers take milliseconds, real models seconds to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self):
        self.outcomes: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.ws_connections = 0
        self.broadcasts = 0

    def record(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        self.outcomes[(kind, outcome)] += 1
        if seconds is None:
            return
        buckets = self.latency_buckets[kind]
        for i, le in enumerate(LATENCY_BUCKETS):
            if seconds <= le:
                buckets[i] += 1
        self.latency_sum[kind] += seconds
        self.latency_count[kind] += 1

    def render(self, status: dict) -> str:
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_num(v)}" for labels, v in samples)

        metric("mtor_intents_total", "counter", "Intents finished through the HTTP/WebSocket APIs, by kind and outcome.",
               [(_labels(kind=k, outcome=o), v) for (k, o), v in sorted(self.outcomes.items())])
        hist: list[tuple[str, float]] = []
        for kind in sorted(self.latency_count):
            for le, n in zip(LATENCY_BUCKETS, self.latency_buckets[kind]):
                hist.append((_labels(kind=kind, le=_num(le)), n))
            hist.append((_labels(kind=kind, le="+Inf"), self.latency_count[kind]))
        out.append("# HELP mtor_intent_latency_seconds Time from submission to the final event, queue wait included.")
        out.append("# TYPE mtor_intent_latency_seconds histogram")
        for labels, v in hist:
            out.append(f"mtor_intent_latency_seconds_bucket{labels} {v}")
        for kind in sorted(self.latency_count):
            out.append(f"mtor_intent_latency_seconds_sum{_labels(kind=kind)} {_num(self.latency_sum[kind])}")
            out.append(f"mtor_intent_latency_seconds_count{_labels(kind=kind)} {self.latency_count[kind]}")

        q = status.get("queue") or {}
        if q:
            metric("mtor_queue_depth", "gauge", "Intents waiting in the queue.", [("", q.get("waiting", 0))])
            metric("mtor_inflight", "gauge", "Intents running now.", [("", q.get("inflight", 0))])
            metric("mtor_broker_intents_total", "counter", "Intents seen by the broker, by state (all sources).",
                   [(_labels(state=k), v) for k, v in sorted((q.get("counters") or {}).items())])
        peers = status.get("peers")
        metric("mtor_peers", "gauge", "Peers known to this node (0 without federation).",
               [("", len(peers) if isinstance(peers, list) else 0)])
        balance = _balance(status.get("wallet"))
        if balance is not None:
            metric("mtor_wallet_balance_micro", "gauge", "Wallet balance in micro-tokens (1 $9000 = 10^6).", [("", balance)])
        metric("mtor_models_ready", "gauge", "Local models loaded and ready.",
               [("", sum(1 for m in status.get("models") or [] if m.get("status") == "ready"))])
        metric("mtor_ws_connections", "gauge", "Open WebSocket connections.", [("", self.ws_connections)])
        metric("mtor_broadcasts_total", "counter", "Sysop broadcasts sent.", [("", self.broadcasts)])
        metric("mtor_uptime_seconds", "gauge", "Seconds since the node started.", [("", status.get("uptime_s", 0))])
        return "\n".join(out) + "\n"


def _balance(wallet) -> int | None:
    if isinstance(wallet, dict) and isinstance(wallet.get("balance"), (int, float)) and not isinstance(wallet.get("balance"), bool):
        return int(wallet["balance"])
    return None


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in kv.items())
    return "{" + inner + "}"


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))
