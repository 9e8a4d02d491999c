"""The edge's Prometheus metrics, counted in the API layer from the events each intent produces
(docs/api.md, /metrics).

The broker's own counters cover every intent (peers' too); these add what only the edge sees:
outcome by kind and the latency a client experienced, queue wait included. They are kept here and
read at scrape time by a prometheus-client collector on the node's one registry (the node's own
gauges are mtor_node/node_metrics.py); the text format is the library's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Seconds. Echo answers take milliseconds, real models seconds to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Outcomes and latency per kind, and broadcasts sent; changed only through its methods."""

    def __init__(self, registry: CollectorRegistry, connections: Callable[[], int]):
        self.registry = registry
        self.outcomes: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.broadcasts = 0
        self._connections = connections
        registry.register(_EdgeCollector(self))

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

    def broadcast_sent(self) -> None:
        self.broadcasts += 1

    @property
    def ws_connections(self) -> int:
        return self._connections()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (Accept header): (body, content type)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class _EdgeCollector(Collector):
    def __init__(self, metrics: Metrics):
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        outcomes = CounterMetricFamily("mtor_intents", "Intents finished through the HTTP/WebSocket APIs, by kind and outcome.",
                                       labels=["kind", "outcome"])
        for (kind, outcome), count in sorted(m.outcomes.items()):
            outcomes.add_metric([kind, outcome], count)
        yield outcomes
        latency = HistogramMetricFamily("mtor_intent_latency_seconds",
                                        "Time from submission to the final event, queue wait included.", labels=["kind"])
        for kind in sorted(m.latency_count):
            buckets = [(floatToGoString(le), n) for le, n in zip(LATENCY_BUCKETS, m.latency_buckets[kind])]
            latency.add_metric([kind], buckets + [("+Inf", m.latency_count[kind])], sum_value=m.latency_sum[kind])
        yield latency
        yield GaugeMetricFamily("mtor_ws_connections", "Open WebSocket connections.", value=m.ws_connections)
        yield CounterMetricFamily("mtor_broadcasts", "Sysop broadcasts sent.", value=m.broadcasts)
