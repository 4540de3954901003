"""Columns: a simulation's rendered Tables and its events as column batches, for stores that take whole columns.

The same points as simulator.points makes, without a Point per row: each rendered Table of a chunk becomes one
batch (a field a row's variant lacks is null there, an absent field), the events of the chunk one more. The few
diagnosis and forensics points (nested fields, a few hundred) stay Points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pyarrow as pa

from simulator.render import CHUNK_STEPS, Renderer, Table
from simulator.timeline import SECOND_NS
from tsdb.point import Point

if TYPE_CHECKING:
    from simulator.simulation import Simulation

#: rows per column batch: a store write has a cost per transaction (a commit, about 35 ms in DuckDB) and DuckDB
#: writes an insert of whole row groups (122,880 rows) straight to the file, so 4.35M points in batches of
#: half a million take 4.5 s where one batch per measurement and 6-hour chunk took 15 s (benchmarks/bench_simulator)
BATCH_ROWS = 500_000


@dataclass
class ColumnBatch:
    """One measurement's points of a chunk as columns (`time_ns`, the tags, the fields), or a few Points."""

    measurement: str
    columns: dict[str, pa.Array] | None
    tags: tuple[str, ...]
    points: list[Point] | None = None

    def __len__(self) -> int:
        return len(self.points) if self.points is not None else len(self.columns["time_ns"])


def _joined(parts: list[ColumnBatch]) -> ColumnBatch:
    """Return consecutive batches of one measurement as one (a field missing from a part is null there)."""
    if len(parts) == 1:
        return parts[0]
    names = list(dict.fromkeys(name for part in parts for name in part.columns))
    columns = {}
    for name in names:
        kind = next(part.columns[name].type for part in parts if name in part.columns)
        columns[name] = pa.concat_arrays([part.columns[name] if name in part.columns
                                          else pa.nulls(len(part), kind) for part in parts])
    return ColumnBatch(parts[0].measurement, columns, parts[0].tags)


class ColumnBuilder:
    """Turns a simulation's rendered chunks, its events and its diagnoses into column batches, in time order."""

    def __init__(self, sim: Simulation):
        self.sim = sim
        fleet = sim.fleet
        self.step_ns = sim.spec.step_seconds * SECOND_NS
        self.host_names = pa.array(fleet.names, pa.string())
        self.domain_hosts = pa.array([name for name, doms in zip(fleet.names, fleet.domain_names) for _ in doms],
                                     pa.string())
        self.domain_names = pa.array([dom for doms in fleet.domain_names for dom in doms], pa.string())
        events = sim.events
        self.event_times = events["time_ns"].to_numpy(np.int64)

    def batches(self, stop_step: int | None = None, rows: int = BATCH_ROWS, start_step: int = 0
                ) -> Iterator[ColumnBatch]:
        """Yield the batches of steps [start_step, stop_step) (to the last step when None), each measurement's
        chunks joined until they hold at least `rows` rows, in order; the diagnoses as Points when their chunk
        is made. Earlier chunks are rendered (counters carry) but give nothing."""
        pending: dict[str, list[ColumnBatch]] = {}
        for batch in self._chunk_batches(start_step, stop_step):
            if batch.points is not None:
                yield batch
                continue
            parts = pending.setdefault(batch.measurement, [])
            parts.append(batch)
            if sum(map(len, parts)) >= rows:
                yield _joined(pending.pop(batch.measurement))
        for parts in pending.values():
            yield _joined(parts)

    def _chunk_batches(self, start_step: int, stop_step: int | None) -> Iterator[ColumnBatch]:
        """Yield each chunk's tables, then its events and diagnoses (those before the step ending the chunk)."""
        steps = self.sim.steps if stop_step is None else max(0, min(stop_step, self.sim.steps))
        for c0, tables in Renderer(self.sim).chunks():
            if c0 >= steps:
                return
            c1 = min(c0 + CHUNK_STEPS, steps)
            if c1 <= start_step:
                continue
            a = max(c0, start_step)
            for table in tables:
                batch = self._table(table, c0, a - c0, c1 - c0)
                if batch is not None:
                    yield batch
            yield from self._events(a, c1)

    def _table(self, table: Table, c0: int, local_start: int, local_stop: int) -> ColumnBatch | None:
        """Return a table's rows of local steps [local_start, local_stop) as a column batch (None when none)."""
        begin, end = (int(i) for i in np.searchsorted(table.steps, [local_start, local_stop], side="left"))
        if end == begin:
            return None
        times = self.sim.start_ns + (c0 + table.steps[begin:end].astype(np.int64)) * self.step_ns
        series = pa.array(table.series[begin:end].astype(np.int64))
        if table.measurement == "domain":
            columns = {"time_ns": pa.array(times), "host": self.domain_hosts.take(series),
                       "domain": self.domain_names.take(series)}
        else:
            columns = {"time_ns": pa.array(times), "host": self.host_names.take(series)}
        variants = table.variants[begin:end]
        names = list(dict.fromkeys(name for fields in table.variant_fields for name in fields))
        for name in names:
            having = [v for v, fields in enumerate(table.variant_fields) if name in fields]
            values = table.columns[name][begin:end]
            if len(having) == len(table.variant_fields):
                columns[name] = pa.array(values)
            else:
                columns[name] = pa.array(values, mask=~np.isin(variants, having))
        tags = ("host", "domain") if table.measurement == "domain" else ("host",)
        return ColumnBatch(table.measurement, columns, tags)

    def _events(self, a: int, b: int) -> Iterator[ColumnBatch]:
        """Yield the events, and the diagnosis and forensics points, of steps [a, b)."""
        start = self.sim.start_ns
        bounds = [start + a * self.step_ns, start + b * self.step_ns]
        lo, hi = np.searchsorted(self.event_times, bounds, side="left")
        if lo < hi:
            events = self.sim.events.iloc[lo:hi]
            yield ColumnBatch("event", {
                "time_ns": pa.array(events["time_ns"].to_numpy(np.int64)),
                "host": pa.array(events["host"].tolist(), pa.string()),
                "kind": pa.array(events["kind"].tolist(), pa.string()),
                "severity": pa.array(events["severity"].tolist(), pa.string()),
                "domain": pa.array(events["domain"].tolist(), pa.string()),  # "" is no domain: an absent tag
                "message": pa.array(events["message"].tolist(), pa.string()),
                "count": pa.array(np.ones(hi - lo, dtype=np.int64)),
                "duration_seconds": pa.array(events["duration_seconds"].to_numpy(np.float64), from_pandas=True),
            }, ("host", "kind", "severity", "domain"))
        diagnoses = self.sim.diagnoses
        lo, hi = np.searchsorted(diagnoses.times, bounds, side="left")
        if lo < hi:
            yield ColumnBatch("diagnosis", None, (), points=diagnoses.points(lo, hi))
