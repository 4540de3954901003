"""The frames every backend returns, built one way so that InfluxDB and DuckDB answers compare equal.

Columns: `time` (datetime64[ns, UTC]), then the group-by tags (pandas' `str` dtype, "" where a series
lacks the tag), then the fields in the order asked (with several aggregates, one column per field and aggregate,
`<aggregate>_<field>`: tsdb.query.Query.outputs). Numeric fields are float64 (NaN where missing;
integers above 2**53 lose precision), string fields pandas' `str` dtype (NaN where missing), boolean
fields objects (None where missing). Rows are sorted by the
group-by tags, then time, then the field values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _field_column(values: Sequence) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype("float64")
    values = list(values)
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if present and all(isinstance(v, (str, bool, np.bool_)) for v in present):
        return np.array([None if v is None or (isinstance(v, float) and v != v) else
                         (bool(v) if isinstance(v, np.bool_) else v) for v in values], dtype=object)
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


def make_frame(
    times_ns: Sequence[int],
    tags: dict[str, Sequence],
    fields: dict[str, Sequence],
) -> pd.DataFrame:
    """Return the standard frame from a time column, tag columns and field columns (equal lengths)."""
    data: dict[str, object] = {
        "time": pd.to_datetime(np.asarray(times_ns, dtype="int64"), unit="ns", utc=True)
    }
    for name, values in tags.items():
        data[name] = np.array(["" if v is None else v for v in values], dtype=object)
    for name, values in fields.items():
        data[name] = _field_column(values)
    frame = pd.DataFrame(data)
    if len(frame) > 1:
        frame = _sorted(frame, list(tags), list(fields))
    return frame


def _sorted(frame: pd.DataFrame, tags: list[str], fields: list[str]) -> pd.DataFrame:
    """Sort rows by tags then time; by the field values too only where tags and time tie (rare, and slow to sort).

    Tags sort through their codes (pd.factorize with sort=True), which is many times faster than sorting strings.
    """
    keys = [pd.factorize(frame[tag], sort=True)[0] for tag in tags]
    times = np.asarray(frame["time"].array.asi8)
    order = np.lexsort([times, *reversed(keys)])
    frame = frame.take(order).reset_index(drop=True)
    if fields:
        same = np.ones(len(frame) - 1, dtype=bool)
        for column in [*(key[order] for key in keys), times[order]]:
            same &= column[1:] == column[:-1]
        if same.any():  # rows that tie on tags and time: order them by their fields, as every backend must
            frame = frame.sort_values([*tags, "time", *fields], kind="mergesort", na_position="last",
                                      ignore_index=True)
    return frame


def empty_frame(group_by: Sequence[str], fields: Sequence[str]) -> pd.DataFrame:
    """Return the standard frame with no rows."""
    return make_frame([], {t: [] for t in group_by}, {f: [] for f in fields})
