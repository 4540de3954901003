"""When a request is sent again: the statuses worth another try, and the backoff between tries.

The one place for both: the store client (tsdb.influx; the agent's shipper writes with one attempt, its retry is
the spool) and the alert notifiers (alerts.notify.delivery) use it. How ONE request is bounded is
tsdb.bounded_http.

Retry when nothing answered (timed out, refused, reset: status None), the answer was 5xx (the server's own
trouble) or 429 (it asked us to slow down). Any other 4xx means the request itself is wrong (bad key, bad
payload, unknown database) and will be as wrong next time.

The waits grow exponentially: retry n (0 for the first) waits up to cap = min(max_seconds, base_seconds * 2**n),
with one of two jitters ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015):
- "equal": uniform in [cap/2, cap], so waits grow and never shrink to nothing (the store client's);
- "full": uniform in [0, cap], so replicas hitting the same outage spread out most (the notifiers').
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

TOO_MANY_REQUESTS = 429
JITTERS = ("equal", "full")


def is_retryable(status: int | None) -> bool:
    """Say whether a request that got `status` (None: no answer at all) may succeed if sent again."""
    return status is None or status == TOO_MANY_REQUESTS or status >= 500


class Backoff:
    """Exponential backoff with jitter; `sleep` and `rng` are injected so tests control time and chance.

    Say how many tries as `max_retries` (after the first) or `max_attempts` (in all), not both; the default is
    the store client's: 5 retries, 0.2 s doubling up to 10 s, equal jitter.
    """

    def __init__(self, max_retries: int | None = None, base_seconds: float = 0.2, max_seconds: float = 10.0, *,
                 max_attempts: int | None = None, jitter: str = "equal",
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        if max_retries is not None and max_attempts is not None:
            raise ValueError("give max_retries or max_attempts, not both")
        attempts = 6 if max_retries is None and max_attempts is None else (
            max_attempts if max_attempts is not None else max_retries + 1)
        if attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (max_retries at least 0), got {attempts}")
        if base_seconds < 0 or max_seconds < 0:
            raise ValueError("base_seconds and max_seconds must not be negative")
        if jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
        self.max_attempts = attempts
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.jitter = jitter
        self.sleep = sleep
        self.rng = rng or random.Random()

    def __repr__(self) -> str:
        return (f"Backoff(max_attempts={self.max_attempts}, base_seconds={self.base_seconds}, "
                f"max_seconds={self.max_seconds}, jitter={self.jitter!r})")

    @property
    def max_retries(self) -> int:
        """Return how many tries follow the first."""
        return self.max_attempts - 1

    def delay(self, retry: int) -> float:
        """Return the wait before retry number `retry` (0 for the one after the first failure)."""
        cap = min(self.max_seconds, self.base_seconds * 2.0 ** min(retry, 62))
        low = cap / 2 if self.jitter == "equal" else 0.0
        return self.rng.uniform(low, cap)

    def wait(self, retry: int) -> float:
        """Sleep for delay(retry) and return how long that was."""
        seconds = self.delay(retry)
        self.sleep(seconds)
        return seconds
