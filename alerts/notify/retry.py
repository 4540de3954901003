"""The one place that decides whether a failed delivery is worth another try, and how long to wait first.

Retry when the receiver never answered (timed out, refused, reset: `status_code` None), answered 5xx (its own
trouble) or 429 (it asked us to slow down). Any other 4xx means the request itself is wrong (bad key, bad
payload, unknown URL) and will be as wrong next time, so it is reported instead. The waits follow "full jitter"
exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): attempt n waits a uniform
random time in [0, min(max_seconds, base_seconds * 2**n)], so replicas hitting the same outage spread out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOO_MANY_REQUESTS = 429


def is_retryable(status_code: int | None) -> bool:
    """Say whether a delivery that got status_code (None: no answer at all) may succeed if sent again."""
    if status_code is None:
        return True
    return status_code == TOO_MANY_REQUESTS or 500 <= status_code <= 599


@dataclass
class Backoff:
    """Exponential backoff with full jitter; sleep and rng are injected so tests control time and chance."""

    base_seconds: float = 1.0
    max_seconds: float = 60.0
    max_attempts: int = 5
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("base_seconds and max_seconds must not be negative")

    def delay(self, attempt: int) -> float:
        """Return the wait after failed attempt number `attempt` (0 for the first): uniform in [0, cap]."""
        cap = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempt, 62))
        return self.rng.uniform(0.0, cap)

    def wait(self, attempt: int) -> float:
        """Sleep for delay(attempt) and return how long that was."""
        seconds = self.delay(attempt)
        self.sleep(seconds)
        return seconds
