"""Limits of the service: what one request may ask for."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Upper bounds on request size; a request beyond one gets a 4xx naming the limit.

    Attributes
    ----------
    max_body_bytes : int
        Largest request body (413 beyond it).
    max_batch : int
        Most events in one ``POST /v1/events``.
    max_timeline : int
        Most events in a timeline given in ``POST /v1/recommendations``, and most events
        an explanation attributes (the events the model reads of the user's timeline).
    max_k : int
        Longest list of recommendations, similar items or influence top-K (and most items
        named in one influence request).
    max_steps : int
        Most integrated-gradients points of one explanation: those asked for, and those its
        doubling reaches where completeness is missed.
    max_samples : int
        Most orders of events one Shapley explanation samples.
    max_shapley_rows : int
        Most timelines one Shapley explanation scores (``samples x (players - 1) + 2``, the
        players being the events and location and device where the model reads them; 64
        orders of a 50-event window are 3,266): it holds the model while it runs, so
        recommendations wait for it.
    model_batch : int
        Most recommendation requests ranked together in one batched pass of the model
        (concurrent requests are batched; see :mod:`behaviorlm.serve.batching`).
    max_pending : int
        Most recommendation requests waiting for the model, and most event posts waiting
        for the event store; beyond it a request gets 503 with ``Retry-After`` at once
        instead of queueing.

    Examples
    --------
    >>> Limits(max_k=50).max_k
    50
    """

    max_body_bytes: int = 1 << 20
    max_batch: int = 1000
    max_timeline: int = 1000
    max_k: int = 1000
    max_steps: int = 256
    max_samples: int = 256
    max_shapley_rows: int = 4096
    model_batch: int = 64
    max_pending: int = 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be at least 1, got {getattr(self, f.name)}")
