"""Shards: a fleet too big for one alert engine is split over N engines, each owning the hosts of its shard.

A host belongs to shard `crc32(host) % N` (stable across processes, machines and Python versions, unlike
`hash()`); the fleet-wide SLO alerts belong to shard 0 alone, so a fleet page is sent once. Every engine still
reads the fleet-wide figures it needs (one query per piece, grouped by host): a shard splits the evaluation,
the alert state and the notifications, not the store's work.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): `Shard(0, 1)` owns everything."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1):
            raise ValueError(f"shard count must be a whole number >= 1, got {self.count!r}")
        if not (isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ValueError(f"shard index must be a whole number from 0 to {self.count - 1}, got {self.index!r}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """Read "I/N" (shard I of N, I from 0): "0/2", "1/2"; ValueError saying what is wrong."""
        match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"shard {text!r}: expected I/N, the shard's index from 0 and the number of shards, "
                             "e.g. 0/2")
        index, count = int(match[1]), int(match[2])
        if count < 1 or index >= count:
            raise ValueError(f"shard {text!r}: the index must be below the number of shards (0/{max(count, 1)} to "
                             f"{max(count, 1) - 1}/{max(count, 1)})")
        return cls(index, count)

    @property
    def whole(self) -> bool:
        """True for the single shard that owns everything."""
        return self.count == 1

    @property
    def owns_fleet(self) -> bool:
        """True for the shard that evaluates the fleet-wide alerts (shard 0)."""
        return self.index == 0

    def owns(self, host: str) -> bool:
        """True when this shard evaluates and notifies for `host`."""
        return self.count == 1 or zlib.crc32(host.encode("utf-8", "surrogatepass")) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard()
