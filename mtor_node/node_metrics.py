"""The node's gauges for Prometheus, read from its status at scrape time (docs/api.md, /metrics).

A prometheus-client custom collector: nothing is counted here, each scrape reads the queue, the
broker's counters, peers, the wallet, models and uptime from `Node.status()`, so the numbers are
the ones /api/v1/status shows. The edge's own counters (outcomes, latency) are in ui/metrics.py;
both are registered on the one registry of the node (mtor_node/service.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class NodeCollector(Collector):
    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        q = status.get("queue") or {}
        if q:
            yield GaugeMetricFamily("mtor_queue_depth", "Intents waiting in the queue.", value=q.get("waiting", 0))
            yield GaugeMetricFamily("mtor_inflight", "Intents running now.", value=q.get("inflight", 0))
            by_state = CounterMetricFamily("mtor_broker_intents", "Intents seen by the broker, by state (all sources).",
                                           labels=["state"])
            for state, count in sorted((q.get("counters") or {}).items()):
                by_state.add_metric([state], count)
            yield by_state
        peers = status.get("peers")
        yield GaugeMetricFamily("mtor_peers", "Peers known to this node (0 without federation).",
                                value=len(peers) if isinstance(peers, list) else 0)
        balance = wallet_balance(status.get("wallet"))
        if balance is not None:
            yield GaugeMetricFamily("mtor_wallet_balance_micro", "Wallet balance in micro-tokens (1 $9000 = 10^6).",
                                    value=balance)
        yield GaugeMetricFamily("mtor_models_ready", "Local models loaded and ready.",
                                value=sum(1 for m in status.get("models") or [] if m.get("status") == "ready"))
        yield GaugeMetricFamily("mtor_uptime_seconds", "Seconds since the node started.", value=status.get("uptime_s", 0))


def wallet_balance(wallet: object) -> int | None:
    if not isinstance(wallet, dict):
        return None
    balance = wallet.get("balance")
    if isinstance(balance, (int, float)) and not isinstance(balance, bool):
        return int(balance)
    return None
