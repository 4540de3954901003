"""simulate() builds a Simulation (signals, failures, consequences, the agent's diagnoses); write_simulation()
stores its points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from simulator.columns import ColumnBuilder
from simulator.diagnoses import Diagnoses, diagnose_incidents
from simulator.fleet import Fleet, make_fleet
from simulator.hazard import draw_failures, resolve_thresholds
from simulator.incidents import script_incidents
from simulator.points import PointBuilder
from simulator.signals import Signals, simulate_signals
from simulator.spec import EFFECT_SIGNALS, FAILURE_KINDS, Effect, FleetSpec
from simulator.timeline import STATE_UP, Candidate, HostHistory, TimelineBuilder, state_grid
from tsdb.point import Point

if TYPE_CHECKING:
    import pandas as pd

    from tsdb.store import Store

#: seeds of the independent random streams: (spec.seed, stream, ...); the hazard uses 3 and 4 per kind, render 6
FLEET_STREAM, SIGNAL_STREAM, TIMELINE_STREAM, INCIDENT_STREAM, CAUSE_STREAM, DIAGNOSIS_STREAM = 1, 2, 5, 7, 8, 9


@dataclass
class Simulation:
    """A simulated fleet: the truth (failures, thresholds) and its points, rendered batch by batch on demand."""

    spec: FleetSpec
    hosts: list[str]
    thresholds: dict[Effect, float]          # the signal value each effect's threshold_quantile resolved to
    failures: pd.DataFrame                   # the truth: time_ns, host, kind, cause, domain, step
    events: pd.DataFrame = field(repr=False)  # every event point: time_ns, host, kind, severity, domain, message,
    #                                           duration_seconds (NaN where none)
    diagnoses: Diagnoses = field(default=None, repr=False)  # the `diagnosis` and `forensics` points
    start_ns: int = 0                        # the first step's time; every point is in [start_ns, end_ns)
    end_ns: int = 0
    fleet: Fleet = field(default=None, repr=False)
    signals: Signals = field(default=None, repr=False)
    histories: list[HostHistory] = field(default_factory=list, repr=False)
    state: np.ndarray = field(default=None, repr=False)  # (H, N) STATE_UP, STATE_HUNG or STATE_DOWN per step

    @property
    def steps(self) -> int:
        """Return the number of steps."""
        return self.spec.steps

    def step_times_ns(self) -> np.ndarray:
        """Return the time of every step (N,)."""
        return self.start_ns + np.arange(self.steps, dtype=np.int64) * (self.spec.step_seconds * 10**9)

    def signal(self, name: str) -> np.ndarray:
        """Return an effect-able signal's values as written, per host and step (H, N), read-only."""
        if name not in EFFECT_SIGNALS:
            raise ValueError(f"signal {name!r}: not a simulated load signal; choose one of {', '.join(EFFECT_SIGNALS)}")
        values = self.signals.values[name].view()
        values.flags.writeable = False
        return values

    @property
    def daemon_up(self) -> np.ndarray:
        """Return where the daemon answered (H, N): its `libvirtd` point has probe_ok = 1 (guests are read)."""
        return self.state == STATE_UP

    @property
    def exposed(self) -> np.ndarray:
        """Return where the hazard's draws count (H, N): the daemon is up at the step's point, outside incident
        windows (see HAZARD_MODEL)."""
        exposed = self.state == STATE_UP
        times = self.step_times_ns()
        for h, history in enumerate(self.histories):
            for start, end in history.windows:
                exposed[h, np.searchsorted(times, start):np.searchsorted(times, end)] = False
        return exposed

    def points(self, batch_steps: int = 60, from_step: int = 0) -> Iterator[list[Point]]:
        """Yield time-ordered batches of Points, each holding `batch_steps` steps (the last may hold fewer), of the
        steps from `from_step` on (the points of earlier steps, events included, are not made)."""
        if isinstance(batch_steps, bool) or not isinstance(batch_steps, int) or batch_steps < 1:
            raise ValueError(f"batch_steps {batch_steps!r}: must be an int >= 1")
        return PointBuilder(self).batches(batch_steps, from_step)

    def step_at(self, time_ns: int) -> int:
        """Return how many steps end at or before `time_ns` (0 to steps): every point of those steps, their
        events too, is older than `time_ns`."""
        step_ns = self.spec.step_seconds * 10**9
        return max(0, min(self.steps, (time_ns - self.start_ns) // step_ns))

    def point_count(self) -> int:
        """Return how many points points() yields, without rendering them."""
        hosts = len(self.hosts)
        return (3 * hosts * self.steps + self.fleet.domains * int(self.daemon_up.sum()) + len(self.events)
                + len(self.diagnoses.rows))


def simulate(spec: FleetSpec) -> Simulation:
    """Simulate a fleet: signals, thresholds, failures and their consequences (deterministic for a seed)."""
    if not isinstance(spec, FleetSpec):
        raise ValueError(f"spec {spec!r}: must be a FleetSpec")
    step_ns = spec.step_seconds * 10**9
    end_ns = spec.resolved_end_ns()
    start_ns = end_ns - spec.steps * step_ns
    fleet = make_fleet(spec, start_ns, np.random.default_rng([spec.seed, FLEET_STREAM]))
    signals = simulate_signals(fleet, start_ns, spec.steps, spec.step_seconds,
                               np.random.default_rng([spec.seed, SIGNAL_STREAM]))
    thresholds = resolve_thresholds(spec.effects, signals)
    draws = draw_failures(spec, signals, thresholds, start_ns)
    scripts = script_incidents(spec, fleet, start_ns, end_ns, np.random.default_rng([spec.seed, INCIDENT_STREAM]))

    builder = TimelineBuilder(spec, fleet, start_ns, end_ns, np.random.default_rng([spec.seed, TIMELINE_STREAM]),
                              np.random.default_rng([spec.seed, CAUSE_STREAM]))
    bounds = np.searchsorted(draws.host, np.arange(spec.hosts + 1), side="left")
    histories = []
    for h in range(spec.hosts):
        lo, hi = bounds[h], bounds[h + 1]
        candidates = [Candidate(int(t), FAILURE_KINDS[k]) for t, k in zip(draws.time_ns[lo:hi], draws.kind[lo:hi])]
        history = HostHistory(process_start_ns=[int(fleet.first_start_ns[h])], pids=[int(fleet.first_pid[h])])
        script = scripts.get(h)
        if script is not None:
            candidates += script.candidates
            history.windows = [(a, b) for a, b, _name in script.windows]
            history.leaks = list(script.leaks)
        histories.append(builder.run_host(h, candidates, history))
    events, failures = builder.frames()
    diagnoses = diagnose_incidents(fleet, signals, histories, start_ns, end_ns, step_ns, [spec.seed, DIAGNOSIS_STREAM])
    events["message"] = diagnoses.messages(events["host"], events["kind"], events["time_ns"].tolist(),
                                           events["message"])
    return Simulation(spec=spec, hosts=list(fleet.names), thresholds=thresholds, failures=failures, events=events,
                      diagnoses=diagnoses, start_ns=start_ns, end_ns=end_ns, fleet=fleet, signals=signals,
                      histories=histories, state=state_grid(histories, start_ns, step_ns, spec.steps))


#: steps per write: each store.write has a fixed cost per measurement (about 6 ms in the embedded store), so
#: fewer, larger batches are faster; 240 steps of 24 hosts with 6 guests are about 52,000 points (~100 MB)
WRITE_BATCH_STEPS = 240


def write_simulation(store: Store, simulation: Simulation, progress: Callable[[int, int], None] | None = None,
                     batch_steps: int = WRITE_BATCH_STEPS, stop_step: int | None = None, start_step: int = 0) -> int:
    """Write a simulation's points into a store batch by batch; return how many the store stored.

    A store that takes whole columns (`write_columns`, the embedded store) gets each chunk's measurements as
    column batches (simulator.columns), any other store Points. `start_step` and `stop_step` write only the
    steps [start_step, stop_step) (their events too; see Simulation.step_at): the demo writes its last hour
    first, then the rest, and leaves the future to `points(from_step=stop_step)`.
    `progress(done, total)` is called with 0 first and after each batch, counting points (total is
    simulation.point_count() when every step is written, else an estimate in proportion to the steps).
    """
    if not isinstance(simulation, Simulation):
        raise ValueError(f"simulation {simulation!r}: must be a Simulation (from simulate)")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress {progress!r}: must be a callable taking (done, total) or None")
    total = simulation.point_count()
    partial = start_step > 0 or (stop_step is not None and stop_step < simulation.steps)
    if partial:
        stop = simulation.steps if stop_step is None else max(0, min(stop_step, simulation.steps))
        total = int(total * max(0, stop - max(0, start_step)) / simulation.steps)
    done = written = 0
    if progress is not None:
        progress(0, total)
    if callable(getattr(store, "write_columns", None)):
        for batch in ColumnBuilder(simulation).batches(stop_step, start_step=start_step):
            if batch.points is not None:
                written += store.write(batch.points)
            else:
                written += store.write_columns(batch.measurement, batch.columns, batch.tags)
            done += len(batch)
            if progress is not None:
                progress(min(done, total) if partial else done, total)
        return written
    if partial:
        raise ValueError("start_step, stop_step: only a store taking column batches (write_columns) writes part "
                         "of the steps")
    batches = simulation.points(batch_steps)
    while (batch := next(batches, None)) is not None:
        written += store.write(batch)
        done += len(batch)
        batch = None  # released before the next batch is built: one batch in memory at a time
        if progress is not None:
            progress(done, total)
    return written
