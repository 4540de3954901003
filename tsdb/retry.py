"""When a request is sent again: the statuses worth another try and the backoff between tries (the store client,
tsdb.influx, and the agent's shipper use it; how ONE request is bounded is tsdb.http)."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: statuses worth another try: the server is overloaded or broken, not the request
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

def is_retryable_status(status: int) -> bool:
    """Return True for answers that a later identical request may turn into a success."""
    return status in RETRYABLE_STATUSES or status >= 500


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: try `max_retries` more times, waiting base*2**n (capped) between."""

    max_retries: int = 5
    base_seconds: float = 0.2
    max_seconds: float = 10.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Return the wait before retry number `retry` (0-based): half fixed, half random."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** retry))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
