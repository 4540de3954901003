"""Points: a simulation's rendered Tables, its events and diagnoses as time-ordered batches of tsdb Points."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Iterator

import numpy as np

from simulator.render import CHUNK_STEPS, Renderer, Table
from simulator.timeline import SECOND_NS
from tsdb.point import Point

if TYPE_CHECKING:
    from simulator.simulation import Simulation

#: the order of points that share a time: host, libvirtd, collector, then guests, then events and what explains them
MEASUREMENT_RANK = {"host": 0, "libvirtd": 1, "collector": 2, "domain": 3, "event": 4, "diagnosis": 5,
                    "forensics": 6}


def _completed(template: dict, names: list[str], values: tuple) -> dict:
    """Return a copy of a series' constant fields with the row's varying fields added.

    Copying a small dict and updating it costs about half of building every field anew (measured).
    """
    fields = template.copy()
    fields.update(zip(names, values))
    return fields


class PointBuilder:
    """Turns rendered tables and the events frame into time-ordered batches of Points."""

    def __init__(self, sim: Simulation):
        self.sim = sim
        fleet = sim.fleet
        self.step_ns = sim.spec.step_seconds * SECOND_NS
        self.host_tags = [{"host": name} for name in fleet.names]
        self.domain_tags = [{"host": name, "domain": dom} for name, doms in zip(fleet.names, fleet.domain_names)
                            for dom in doms]
        self.slots = max(1, fleet.domains) + 1
        self.templates: dict[tuple[str, int], dict[int, dict]] = {}
        events = sim.events
        self.event_times = events["time_ns"].to_numpy(np.int64)
        self.event_rows = list(events.itertuples(index=False))
        index = {name: i for i, name in enumerate(fleet.names)}
        self.event_hosts = np.array([index[h] for h in events["host"]], dtype=np.int64)

    def batches(self, batch_steps: int, from_step: int = 0) -> Iterator[list[Point]]:
        """Yield batches of `batch_steps` steps' points (the last may be shorter), each ordered by time, of the
        steps from `from_step` on (earlier chunks are rendered, for their counters, but make no Points).

        The cyclic garbage collector is paused while a batch is built (never across a yield): a batch is tens of
        thousands of acyclic objects, and the full collections their churn triggers cost a third of the time.
        """
        inner = self._batches(batch_steps, from_step)
        while True:
            collecting = gc.isenabled()
            gc.disable()
            try:
                batch = next(inner, None)
            finally:
                if collecting:
                    gc.enable()
            if batch is None:
                return
            yield batch
            batch = None  # not kept alive while the next batch is built

    def _batches(self, batch_steps: int, from_step: int) -> Iterator[list[Point]]:
        steps = self.sim.steps
        pending: list[list[Point]] = []
        keys: list[tuple[np.ndarray, np.ndarray]] = []
        for c0, tables in Renderer(self.sim).chunks():
            c1 = min(c0 + CHUNK_STEPS, steps)
            if c1 <= from_step:
                continue
            a = max(c0, from_step)
            while a < c1:
                b = min(c1, (a // batch_steps + 1) * batch_steps)
                for table in tables:
                    points, times, ranks = self._table_points(table, a - c0, b - c0, c0)
                    pending.append(points)
                    keys.append((times, ranks))
                for extra in (self._event_points(a, b), self._diagnosis_points(a, b)):
                    points, times, ranks = extra
                    pending.append(points)
                    keys.append((times, ranks))
                if b % batch_steps == 0 or b == steps:
                    yield self._ordered(pending, keys)
                    pending, keys = [], []
                a = b

    @staticmethod
    def _ordered(pending: list[list[Point]], keys: list) -> list[Point]:
        points = [p for part in pending for p in part]
        times = np.concatenate([k[0] for k in keys])
        ranks = np.concatenate([k[1] for k in keys])
        order = np.lexsort((ranks, times))
        return [points[i] for i in order.tolist()]

    def _table_points(self, table: Table, a: int, b: int, c0: int):
        """Return the Points of a table's rows for local steps [a, b), their times and tie-breaking ranks."""
        lo, hi = np.searchsorted(table.steps, [a, b], side="left")
        if lo == hi:
            return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        series = table.series[lo:hi]
        variants = table.variants[lo:hi]
        times = self.sim.start_ns + (c0 + table.steps[lo:hi].astype(np.int64)) * self.step_ns
        measurement = table.measurement
        tags = self.domain_tags if measurement == "domain" else self.host_tags
        points: list[Point] = []
        order_parts = []
        for v, names in enumerate(table.variant_fields):
            rows = np.nonzero(variants == v)[0] if len(table.variant_fields) > 1 else np.arange(hi - lo)
            if len(rows) == 0:
                continue
            constants = table.variant_constants[v]
            varying = [name for name in names if name not in constants]
            templates = self._templates(table, v, lo + rows, series[rows])
            values = [table.columns[name][lo:hi][rows].tolist() for name in varying]
            points += [Point(measurement, dict(tags[s]), _completed(templates[s], varying, row), t)
                       for s, t, row in zip(series[rows].tolist(), times[rows].tolist(), zip(*values))]
            order_parts.append(rows)
        order = np.concatenate(order_parts)
        ranks = MEASUREMENT_RANK[measurement] * 2**40 + series[order] * self.slots
        if measurement == "domain":  # series is host * D + guest
            per_host = max(1, self.sim.fleet.domains)
            ranks = MEASUREMENT_RANK[measurement] * 2**40 + (series[order] // per_host) * self.slots + \
                series[order] % per_host + 1
        return points, times[order], ranks

    def _templates(self, table: Table, variant: int, rows: np.ndarray, series: np.ndarray) -> dict[int, dict]:
        """Return the constant fields of each series of a table's variant (built from the first row seen)."""
        cache = self.templates.setdefault((table.measurement, variant), {})
        unique, first = np.unique(series, return_index=True)
        constants = table.variant_constants[variant]
        for s, row in zip(unique.tolist(), rows[first].tolist()):
            if s not in cache:
                cache[s] = {name: table.columns[name][row].item() for name in constants}
        return cache

    def _event_points(self, a: int, b: int):
        """Return the event Points in steps [a, b), their times and ranks."""
        start = self.sim.start_ns
        lo, hi = np.searchsorted(self.event_times, [start + a * self.step_ns, start + b * self.step_ns], side="left")
        points = []
        for row in self.event_rows[lo:hi]:
            tags = {"host": row.host, "kind": row.kind, "severity": row.severity}
            if row.domain:
                tags["domain"] = row.domain
            fields = {"message": row.message, "count": 1}
            if row.duration_seconds == row.duration_seconds:  # not NaN
                fields["duration_seconds"] = float(row.duration_seconds)
            points.append(Point("event", tags, fields, int(row.time_ns)))
        ranks = MEASUREMENT_RANK["event"] * 2**40 + self.event_hosts[lo:hi] * self.slots
        return points, self.event_times[lo:hi], ranks

    def _diagnosis_points(self, a: int, b: int):
        """Return the diagnosis and forensics Points in steps [a, b), their times and ranks."""
        diagnoses, start = self.sim.diagnoses, self.sim.start_ns
        lo, hi = np.searchsorted(diagnoses.times, [start + a * self.step_ns, start + b * self.step_ns], side="left")
        points = diagnoses.points(lo, hi)
        ranks = np.array([MEASUREMENT_RANK[p.measurement] for p in points], dtype=np.int64) * 2**40 + \
            diagnoses.hosts[lo:hi] * self.slots
        return points, diagnoses.times[lo:hi], ranks
