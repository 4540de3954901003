"""Storing a checked group: its kept rows staged as Arrow, then inserted, merging a (series, time) stored twice."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.embedded.catalog import Table
from tsdb.embedded.ingest import Group, Series, present


def new_columns(group: Group, series: list[Series], table: Table | None) -> tuple[set[str], dict[str, str]]:
    """Return the tag keys and the fields (with kinds) that the group's kept rows have and its table lacks."""
    tag_keys: set[str] = set()
    for sid in present(group.sids[group.keep], len(series)):
        tag_keys.update(series[sid].tags)
    known_tags, known_fields = (table.tags, table.fields) if table else ({}, {})
    fields = {key: kind for key, (kind, values) in group.fields.items() if key not in known_fields
              and (values.is_valid().to_numpy(zero_copy_only=False) & group.keep).any()}
    return tag_keys - known_tags.keys(), fields


def stage(group: Group, table: Table, series: list[Series]) -> pa.Table:
    """Return the kept rows of a group as an Arrow table named by the catalog, one row per (series, time).

    Within the batch, in order, the last value of each field wins.
    """
    keep = group.keep
    all_kept = bool(keep.all())
    sids = group.sids if all_kept else group.sids[keep]
    times = group.times if all_kept else group.times[keep]
    in_group = present(sids, len(series))
    lookup = np.zeros(len(series), dtype=np.int64)
    lookup[in_group] = np.arange(len(in_group))
    local = pa.array(lookup[sids])
    group_series = [series[s] for s in in_group]
    data = {"time_ns": pa.array(times, pa.int64()),
            "series": pa.array([s.key for s in group_series], pa.string()).take(local)}
    for key in sorted(set().union(*(s.tags for s in group_series))):
        data[table.tags[key]] = pa.array([s.tags.get(key) for s in group_series], pa.string()).take(local)
    mask = None if all_kept else pa.array(keep)
    for key, (kind, values) in group.fields.items():
        column, stored_kind = table.fields.get(key, (None, None))
        if kind == stored_kind:  # (a field without a column only had values in dropped points)
            data[column] = values if mask is None else values.filter(mask)
    staged = pa.table(data)
    if _has_duplicates(times, lookup[sids], len(in_group)):
        others = [name for name in staged.column_names if name not in ("series", "time_ns")]
        merged = staged.group_by(["series", "time_ns"], use_threads=False).aggregate(
            [(name, "last") for name in others])
        staged = merged.rename_columns([name.removesuffix("_last") for name in merged.column_names])
    return staged


def insert(cursor: duckdb.DuckDBPyConnection, table: Table, staged: pa.Table, stored_max: int | None) -> int:
    """Insert staged rows, merging a (series, time) already stored; return the table's new greatest time.

    New values win, fields the new row lacks keep their values; `stored_max` is the greatest time before.
    """
    times = staged.column("time_ns")
    low, high = pc.min(times).as_py(), pc.max(times).as_py()
    cursor.register("vw_staged", staged)
    try:
        overlap = stored_max is not None and low <= stored_max and cursor.execute(
            f"SELECT count(*) FROM {table.name} t JOIN vw_staged s USING (series, time_ns) "
            f"WHERE t.time_ns BETWEEN ? AND ?", [low, high]).fetchall()[0][0] > 0
        if overlap:
            field_columns = {column for column, _kind in table.fields.values()}
            fields = [c for c in staged.column_names if c in field_columns]
            if fields:
                assignments = ", ".join(f"{c} = COALESCE(s.{c}, {table.name}.{c})" for c in fields)
                cursor.execute(f"UPDATE {table.name} SET {assignments} FROM vw_staged s "
                               f"WHERE {table.name}.series = s.series AND {table.name}.time_ns = s.time_ns "
                               f"AND {table.name}.time_ns BETWEEN ? AND ?", [low, high])
            cursor.execute(f"INSERT INTO {table.name} BY NAME SELECT s.* FROM vw_staged s ANTI JOIN "
                           f"(SELECT series, time_ns FROM {table.name} WHERE time_ns BETWEEN ? AND ?) e "
                           f"USING (series, time_ns)", [low, high])
        else:
            cursor.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM vw_staged")
    finally:
        try:
            cursor.unregister("vw_staged")
        except duckdb.Error:
            pass  # the transaction failed: the error that matters is already on its way
    return high if stored_max is None else max(high, stored_max)


def _has_duplicates(times: np.ndarray, local: np.ndarray, series_count: int) -> bool:
    """Whether some (series, time) pair occurs twice."""
    if len(times) < 2:
        return False
    low, high = int(times.min()), int(times.max())
    if (high - low + 1) * series_count < 2**62:
        keys = (times - low) * series_count + local
        return bool(pd.Index(keys).has_duplicates)
    order = np.lexsort((times, local))
    t, s = times[order], local[order]
    return bool(np.any((t[1:] == t[:-1]) & (s[1:] == s[:-1])))
