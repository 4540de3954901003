"""The exposure grid: hosts x steps, each cell holding every signal's mean over the step and its failure count.

A cell is one host during one step (for example 5 minutes): one unit of exposure. A cell where a signal has
no value (the host sent nothing for it in that step) is not exposure for that signal. A failure is counted in
the cell of its host and of the step in which it happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.signals import Signal

NS = 10**9


@dataclass(frozen=True)
class Inputs:
    """What the analysis reads: each signal's per-host step means and the failure events, over whole steps.

    `frames` maps a measurement to a frame with columns time (the step's start, UTC), host, and one column per
    signal of that measurement, named as the signal ("libvirtd.job_queue_depth"), NaN where a step has no value;
    `events` has columns time, host, kind (failures only, of the kinds asked). `hosts` is the scope: None for the
    whole fleet, else the hosts asked for (a host with no data in the range has no exposure).
    """

    start_ns: int
    end_ns: int
    step_seconds: int
    hosts: tuple[str, ...] | None
    signals: tuple[Signal, ...]
    kinds: tuple[str, ...]
    frames: dict[str, pd.DataFrame]
    events: pd.DataFrame

    @property
    def steps(self) -> int:
        """The number of steps in the range."""
        return (self.end_ns - self.start_ns) // (self.step_seconds * NS)


@dataclass
class Grid:
    """Signals and failures on hosts x steps; `values[name][h, s]` is NaN where host h sent nothing in step s."""

    start_ns: int
    step_seconds: int
    hosts: tuple[str, ...]
    values: dict[str, np.ndarray]
    failures: np.ndarray
    #: one row per failure placed on the grid: host_index, step_index, time_ns, kind
    failure_events: pd.DataFrame
    #: failures of hosts that sent no signal at all in the range (no exposure to put them on)
    unplaced_failures: int = 0
    kinds: tuple[str, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> int:
        """The number of steps."""
        return self.failures.shape[1]

    @property
    def step_ns(self) -> int:
        """A step in nanoseconds."""
        return self.step_seconds * NS

    def observed(self, name: str) -> np.ndarray:
        """Return the cells where signal `name` has a value."""
        return ~np.isnan(self.values[name])


def build_grid(inputs: Inputs) -> Grid:
    """Place the inputs' step means and failures on the hosts x steps grid."""
    step_ns = inputs.step_seconds * NS
    steps = inputs.steps
    seen: set[str] = set()
    for frame in inputs.frames.values():
        seen.update(str(h) for h in frame["host"].unique())
    if inputs.hosts is not None:
        seen &= set(inputs.hosts)
    hosts = tuple(sorted(seen))
    values = {signal.name: np.full((len(hosts), steps), np.nan) for signal in inputs.signals}
    for frame in inputs.frames.values():
        present = [name for name in values if name in frame.columns]
        if not len(frame) or not present:
            continue
        h, s, keep = _cells(frame, hosts, inputs.start_ns, step_ns, steps)
        for name in present:
            values[name][h[keep], s[keep]] = frame[name].to_numpy(dtype="float64")[keep]
    failures, placed, unplaced = _place_events(inputs.events, hosts, inputs.start_ns, step_ns, steps)
    return Grid(inputs.start_ns, inputs.step_seconds, hosts, values, failures, placed, unplaced, inputs.kinds)


def _place_events(events: pd.DataFrame, hosts: tuple[str, ...], start_ns: int, step_ns: int, steps: int):
    """Return (failure counts per cell, one row per placed failure, failures of hosts not on the grid)."""
    failures = np.zeros((len(hosts), steps), dtype="int64")
    if not len(events):
        placed = pd.DataFrame({"host_index": np.zeros(0, dtype="int64"), "step_index": np.zeros(0, dtype="int64"),
                               "time_ns": np.zeros(0, dtype="int64"), "kind": np.zeros(0, dtype=object)})
        return failures, placed, 0
    h, s, keep = _cells(events, hosts, start_ns, step_ns, steps)
    np.add.at(failures, (h[keep], s[keep]), 1)
    placed = pd.DataFrame({"host_index": h[keep], "step_index": s[keep], "time_ns": _times_ns(events)[keep],
                           "kind": np.asarray(events["kind"].to_numpy(dtype=object))[keep]})
    return failures, placed, int((h < 0).sum())


def grid_from_arrays(start_ns: int, step_seconds: int, hosts, values: dict[str, np.ndarray], events: pd.DataFrame,
                     kinds) -> Grid:
    """Return a Grid from hosts x steps arrays (NaN where a host sent nothing) and events (time, host, kind).

    For data that never went through a store (a simulation's own arrays); only events of `kinds` count.
    """
    hosts = tuple(hosts)
    steps = {np.shape(v) for v in values.values()}
    if len(steps) != 1 or len(next(iter(steps))) != 2 or next(iter(steps))[0] != len(hosts):
        raise ValueError(f"values: expected arrays of one shape (hosts, steps) with {len(hosts)} hosts, got {steps}")
    n_steps = next(iter(steps))[1]
    kinds = tuple(sorted(set([kinds] if isinstance(kinds, str) else kinds)))
    events = events[events["kind"].isin(kinds)]
    failures, placed, unplaced = _place_events(events, hosts, start_ns, step_seconds * NS, n_steps)
    arrays = {name: np.asarray(v, dtype="float64") for name, v in values.items()}
    return Grid(start_ns, step_seconds, hosts, arrays, failures, placed, unplaced, kinds)


def _times_ns(frame: pd.DataFrame) -> np.ndarray:
    """Return a frame's time column as int64 nanoseconds since the epoch (naive times are UTC)."""
    times = pd.DatetimeIndex(frame["time"])
    if times.tz is None:
        times = times.tz_localize("UTC")
    return times.as_unit("ns").asi8


def _cells(frame: pd.DataFrame, hosts: tuple[str, ...], start_ns: int, step_ns: int, steps: int):
    """Return (host index, step index, in-grid mask) of each row of a frame with time and host columns.

    Hosts are factorized first (a few distinct names over many rows), so the names are compared once each.
    """
    codes, names = pd.factorize(frame["host"])
    lookup = pd.Index(hosts, dtype=object).get_indexer(np.asarray(names, dtype=object))
    h = np.where(codes >= 0, np.append(lookup, -1)[codes], -1)
    s = (_times_ns(frame) - start_ns) // step_ns
    keep = (h >= 0) & (s >= 0) & (s < steps)
    return h, s, keep
