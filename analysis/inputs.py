"""Reading the analysis' inputs through tsdb's query interface: step means of each signal and failure events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import pandas as pd

from analysis.exposure import NS, Inputs
from analysis.signals import Signal, parse_kinds, parse_signals
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store

STEP_SECONDS_MIN = 10
#: reads in flight at once (a measurement each, and the events)
READERS_MAX = 4


def parse_scope(scope) -> tuple[str, ...] | None:
    """Return the hosts of a scope: None (the whole fleet), one host's name, or a list of host names."""
    if scope is None:
        return None
    if isinstance(scope, str):
        scope = [scope]
    try:
        hosts = tuple(dict.fromkeys(scope))
    except TypeError:
        raise ValueError(f"scope = {scope!r}: expected None (the fleet), a host name or a list of host names") \
            from None
    if not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ValueError(f"scope = {scope!r}: expected None (the fleet), a host name or a list of host names")
    return hosts


def whole_steps(start: TimeLike, end: TimeLike, step_seconds: int) -> tuple[int, int]:
    """Return [start, end) in ns shrunk to whole epoch-aligned steps (as the store's windows align)."""
    if isinstance(step_seconds, bool) or not isinstance(step_seconds, int) or step_seconds < STEP_SECONDS_MIN:
        raise ValueError(f"step_seconds = {step_seconds!r}: expected a whole number of seconds, at least "
                         f"{STEP_SECONDS_MIN}")
    try:
        start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    except Exception as error:  # tsdb's QueryError already names the argument
        raise ValueError(str(error)) from None
    step_ns = step_seconds * NS
    first = -(-start_ns // step_ns) * step_ns
    last = end_ns // step_ns * step_ns
    if last - first < step_ns:
        raise ValueError(f"start {start!r} to end {end!r}: shorter than one whole step of {step_seconds} s")
    return first, last


def load_inputs(store: Store, scope, start: TimeLike, end: TimeLike, signals: Sequence | None = None,
                kinds="restart", step_seconds: int = 300) -> Inputs:
    """Read each signal's per-host step means and the failure events of `kinds` in [start, end) from a store.

    `scope` is None (the fleet), a host name or a list of them; `signals` "measurement.field" names (the
    defaults when None); `kinds` one event kind or a list. The range shrinks to whole steps.
    """
    hosts = parse_scope(scope)
    parsed = parse_signals(signals)
    kinds = parse_kinds(kinds)
    start_ns, end_ns = whole_steps(start, end, step_seconds)
    where = {"host": list(hosts)} if hosts else None
    by_measurement: dict[str, list[Signal]] = {}
    for signal in parsed:
        by_measurement.setdefault(signal.measurement, []).append(signal)
    event_where = {"kind": list(kinds), **(where or {})}
    # one read per measurement and one of events, in parallel: both stores serve concurrent reads (DuckDB with a
    # cursor each, InfluxDB over a pool of connections) and much of a read runs outside the GIL
    with ThreadPoolExecutor(max_workers=min(READERS_MAX, len(by_measurement) + 1),
                            thread_name_prefix="analysis-read") as pool:
        reads = {measurement: pool.submit(store.query, measurement,
                                          list(dict.fromkeys(f for s in group for f in s.sources)), start_ns,
                                          end_ns, where=where, window_seconds=step_seconds, aggregate="mean",
                                          group_by=["host"])
                 for measurement, group in by_measurement.items()}
        events_read = pool.submit(store.events, start_ns, end_ns, where=event_where)
        frames = {measurement: signal_frame(read.result(), by_measurement[measurement])
                  for measurement, read in reads.items()}
        events = events_read.result()
    return Inputs(start_ns, end_ns, step_seconds, hosts, parsed, kinds, frames,
                  events[["time", "host", "kind"]].reset_index(drop=True))


def signal_frame(frame: pd.DataFrame, signals: Sequence[Signal]) -> pd.DataFrame:
    """Return (time, host, one column per signal) from a frame holding the signals' source fields."""
    out = {"time": frame["time"], "host": frame["host"]}
    for signal in signals:
        value = frame[signal.sources[0]]
        if len(signal.sources) == 2:
            value = value - frame[signal.sources[1]]
        out[signal.name] = value.astype("float64")
    return pd.DataFrame(out)
