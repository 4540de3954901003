"""Tallies of the calls a soak made: per call kind per interval (the soak points) and per concurrency step."""

from __future__ import annotations

import array
import collections
import math
import threading
from dataclasses import dataclass, field

from collector.soak.driver import TIMEOUT, UNANSWERED
from tsdb import Point


def percentile(sorted_values, fraction: float) -> float:
    """Return the nearest-rank percentile of sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass
class Tally:
    """Calls finished, how each failed, and the times of those the daemon answered (ms)."""

    calls: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    answered_ms: array.array = field(default_factory=lambda: array.array("d"))

    def add(self, milliseconds: float, error: str | None) -> None:
        """Count one finished call."""
        self.calls += 1
        if error is not None:
            self.errors[error] += 1
        if error not in UNANSWERED:
            self.answered_ms.append(milliseconds)

    @property
    def errors_total(self) -> int:
        """Return how many calls failed."""
        return sum(self.errors.values())

    @property
    def answered(self) -> int:
        """Return how many calls the daemon answered (a result or a libvirt error)."""
        return len(self.answered_ms)

    def latencies_ms(self) -> tuple[float, float, float]:
        """Return the p50, p99 and max of the answered calls' times (NaN when none was answered)."""
        ordered = sorted(self.answered_ms)
        return percentile(ordered, 0.50), percentile(ordered, 0.99), (ordered[-1] if ordered else math.nan)


@dataclass
class StepTally:
    """One concurrency step: its clients, its wall-clock range and the calls started in it."""

    index: int
    clients: int
    start_ns: int
    end_ns: int = 0
    elapsed_seconds: float = 0.0
    tally: Tally = field(default_factory=Tally)

    def calls_per_second(self) -> float:
        """Return calls finished per second of the step."""
        return self.tally.calls / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class Recorder:
    """Thread-safe tallies: clients record each call; the runner takes intervals and opens steps."""

    def __init__(self, calls: tuple[str, ...] = ()):
        self._lock = threading.Lock()
        self._calls = list(calls)
        self._interval: dict[str, Tally] = {}
        self._totals: dict[str, list[int]] = {}  # call -> [calls, errors, timeouts] since the start
        self.steps: list[StepTally] = []
        self.calls_total = 0
        self.errors_total = 0
        #: the first failure of each kind: kind -> (call, message), for the report
        self.first_errors: dict[str, tuple[str, str]] = {}

    def open_step(self, clients: int, start_ns: int) -> int:
        """Start a new step and return its index."""
        with self._lock:
            self.steps.append(StepTally(len(self.steps), clients, start_ns))
            return len(self.steps) - 1

    def close_step(self, index: int, end_ns: int, elapsed_seconds: float) -> None:
        """Mark when a step ended."""
        with self._lock:
            self.steps[index].end_ns, self.steps[index].elapsed_seconds = end_ns, elapsed_seconds

    def record(self, call: str, step_index: int, seconds: float, error: str | None, message: str = "") -> None:
        """Count one finished call of kind `call`, started in step `step_index`; error is None on success."""
        milliseconds = seconds * 1000.0
        with self._lock:
            tally = self._interval.get(call)
            if tally is None:
                tally = self._interval[call] = Tally()
                if call not in self._calls:
                    self._calls.append(call)
            tally.add(milliseconds, error)
            self.steps[step_index].tally.add(milliseconds, error)
            totals = self._totals.setdefault(call, [0, 0, 0])
            totals[0] += 1
            self.calls_total += 1
            if error is not None:
                totals[1] += 1
                totals[2] += error == TIMEOUT
                self.errors_total += 1
                self.first_errors.setdefault(error, (call, message))

    def interval_calls(self) -> int:
        """Return how many calls finished since the last take_points."""
        with self._lock:
            return sum(tally.calls for tally in self._interval.values())

    def take_points(self, host: str, run_id: str, clients: int, seconds: float, time_ns: int) -> list[Point]:
        """Return one soak point per call kind for the interval of `seconds` ending now, and start a new one."""
        with self._lock:
            interval, self._interval = self._interval, {}
            calls = list(self._calls)
            totals = {call: list(values) for call, values in self._totals.items()}
        points = []
        for call in calls:
            tally = interval.get(call, Tally())
            done, errors, timeouts = totals.get(call, (0, 0, 0))
            p50, p99, top = tally.latencies_ms()
            fields = {"clients": clients, "calls_total": done, "errors_total": errors, "timeouts_total": timeouts,
                      "calls_per_second": tally.calls / seconds if seconds > 0 else 0.0,
                      "errors_per_second": tally.errors_total / seconds if seconds > 0 else 0.0,
                      "latency_p50_ms": p50, "latency_p99_ms": p99, "latency_max_ms": top}
            points.append(Point("soak", {"host": host, "call": call, "run": run_id}, fields, time_ns))
        return points
