"""Prometheus metrics of one app: requests, latencies, ingested events, the model's version.

Each app has its own registry, so several apps (tests) never share counters.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

#: Latency buckets in seconds: fine below 25 ms, where recommendations should answer.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics.

    Examples
    --------
    >>> m = Metrics()
    >>> m.events.labels(outcome="accepted").inc(3)
    >>> b"behaviorlm_events_ingested_total{outcome=\\"accepted\\"} 3.0" in m.render()
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "behaviorlm_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "behaviorlm_http_request_duration_seconds",
            "Time from receiving a request to sending its last byte, by route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "behaviorlm_events_ingested",
            "Events posted to /v1/events by outcome: accepted, duplicate, rejected, and "
            "unknown_item (accepted events whose item the model does not know), and "
            "untrained_action (accepted events whose action the model was not trained on).",
            ["outcome"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "behaviorlm_recommendation_batch_size",
            "Recommendation requests ranked together in one batched pass of the model.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.model = Gauge(
            "behaviorlm_model_info",
            "The loaded model (value 1): name and version (a digest of artifact.json).",
            ["model", "version"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)
