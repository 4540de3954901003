"""The field type rule: a field keeps the first type written to its measurement; points of another type are dropped.

A dropped point is dropped whole, and the write reports it in InfluxDB's words (see tsdb.embedded for how this
differs from InfluxDB, which keeps types per shard).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.embedded.catalog import ARROW_TYPES, INFLUX_TYPE_NAMES
from tsdb.embedded.ingest import Group


class Conflict(NamedTuple):
    """A point dropped for a field type conflict."""

    measurement: str
    field: str
    kind: str
    existing: str
    position: int  # the point's index in the batch


def settle_types(group: Group, existing: dict[str, str]) -> list[Conflict]:
    """Drop the group's points that give a field another type than its first; return one Conflict per point.

    The first type is the stored one or, for a new field, the first kept point's in batch order. Leaves one typed
    column per field in `group.fields` and sets `group.keep` (the rows left with a field).
    """
    drop = np.zeros(len(group.times), dtype=bool)
    conflicts: list[Conflict] = []
    for key, (kind, values) in group.fields.items():
        known = existing.get(key)
        if known is not None and known != kind:
            bad = _valid(values) & ~drop
            conflicts += [Conflict(group.measurement, key, kind, known, group.position(i))
                          for i in np.nonzero(bad)[0]]
            drop |= bad
    fields = dict(group.fields)
    if group.mixed:
        fields.update(_settle_mixed(group, existing, drop, conflicts))
    if drop.any():
        mask = pa.array(~drop)
        fields = {key: (kind, pc.if_else(mask, values, pa.scalar(None, values.type)))
                  for key, (kind, values) in fields.items()}
    keep = np.zeros(len(group.times), dtype=bool)
    for _kind, values in fields.values():
        keep |= _valid(values)
    group.fields, group.mixed, group.keep = fields, {}, keep
    return conflicts


def conflict_message(conflicts: list[Conflict]) -> str:
    """Return InfluxDB's message for a write that dropped points for type conflicts ("" when none)."""
    if not conflicts:
        return ""
    first = min(conflicts, key=lambda c: c.position)
    return (f'partial write: field type conflict: input field "{first.field}" on measurement "{first.measurement}" '
            f'is type {INFLUX_TYPE_NAMES[first.kind]}, already exists as type {INFLUX_TYPE_NAMES[first.existing]} '
            f'dropped={len(conflicts)}')


def _settle_mixed(group: Group, existing: dict[str, str], drop: np.ndarray,
                  conflicts: list[Conflict]) -> dict[str, tuple[str, pa.Array]]:
    """Settle the fields the batch gives several types, walking its points in order; return their columns."""
    established = dict(existing)
    for i in range(len(drop)):
        if drop[i]:
            continue
        new = {}
        for key, (_values, kinds) in group.mixed.items():
            kind = kinds[i]
            if kind is None:
                continue
            known = established.get(key)
            if known is None:
                new[key] = kind
            elif known != kind:
                drop[i] = True
                conflicts.append(Conflict(group.measurement, key, kind, known, group.position(i)))
                break
        if not drop[i]:
            established.update(new)
    columns = {}
    for key, (values, kinds) in group.mixed.items():
        kind = established.get(key)
        if kind is not None:
            kept = [v if (k == kind and not drop[i]) else None for i, (v, k) in enumerate(zip(values, kinds))]
            columns[key] = (kind, pa.array(kept, ARROW_TYPES[kind]))
    return columns


def _valid(values: pa.Array) -> np.ndarray:
    """Return which values are not null."""
    return values.is_valid().to_numpy(zero_copy_only=False)
