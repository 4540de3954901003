"""Checking a column batch: one measurement's points as whole columns (time, tags, fields), no Point objects.

A column batch means exactly what the same rows written one by one as Points mean (tsdb.embedded): names and tag
values pass through `clean_name`, a null or empty tag value is an absent tag, a null or non-finite float is an
absent field, a row left with no field is skipped. Every column is checked before anything is stored; a bad one
raises PointError naming the column and the reason. The checked batch is a `Group`, so storing it (the field type
rule, merging a (series, time) written twice) is the same code as for Points.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.embedded.ingest import Group, SeriesRegistry
from tsdb.errors import PointError
from tsdb.point import RESERVED_KEYS, Point, clean_name

TIME_COLUMN = "time_ns"
#: Arrow types a field column may have, by the kind it is stored as (ints and floats of any width are widened)
_KIND_OF = ((pa.types.is_boolean, "bool"), (pa.types.is_integer, "int"), (pa.types.is_floating, "float"),
            (pa.types.is_string, "str"), (pa.types.is_large_string, "str"))
_TARGET = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}

Columns = Mapping[str, object] | pd.DataFrame | pa.Table


def _arrays(data: Columns) -> dict[str, pa.Array]:
    """Return the batch as Arrow arrays by column name (pandas NaN and None are nulls)."""
    if isinstance(data, pa.Table):
        return {name: data.column(name).combine_chunks() for name in data.column_names}
    if isinstance(data, pd.DataFrame):
        if len(set(data.columns)) != len(data.columns):
            raise PointError(f"column batch: column names must be unique, got {list(data.columns)!r}")
        items = ((name, data[name]) for name in data.columns)
    elif isinstance(data, Mapping):
        items = data.items()
    else:
        raise PointError(f"column batch: {type(data).__name__} is not a pandas DataFrame, an Arrow table or a "
                         f"mapping of column name to values")
    arrays = {}
    for name, values in items:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not isinstance(values, pa.Array):
            try:
                values = pa.array(values, from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError, OverflowError, UnicodeEncodeError) as error:
                raise PointError(f"column {name!r}: cannot be read as one typed column ({error}); give float, "
                                 f"int, bool or str values") from None
        arrays[name] = values
    return arrays


def _check_name(what: str, name) -> str:
    """Return a column's key cleaned, or raise PointError naming it."""
    if not isinstance(name, str) or not name or name in RESERVED_KEYS:
        raise PointError(f"{what} {name!r}: must be a non-empty string other than 'time'")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise PointError(f"{what} {name!r}: is not valid unicode (no lone surrogates)") from None
    return clean_name(name)


def _field(name: str, values: pa.Array) -> tuple[str, pa.Array]:
    """Return a field column's kind and values (nulls where a row has no value), or raise PointError."""
    if isinstance(values, pa.DictionaryArray):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):  # no row has the field (a column of None): nothing to store
        return "float", pa.nulls(len(values), pa.float64())
    kind = next((kind for test, kind in _KIND_OF if test(values.type)), None)
    if kind is None:
        raise PointError(f"field column {name!r}: type {values.type} cannot be stored; give float, int, bool or "
                         f"str values (one type per column)")
    try:
        values = values.cast(_TARGET[kind])
    except pa.ArrowInvalid as error:
        raise PointError(f"field column {name!r}: {error} (ints must fit in 64 signed bits)") from None
    if kind == "float" and len(values):
        finite = pc.is_finite(values)  # null for nulls, false for NaN and infinities
        if not pc.all(pc.fill_null(finite, True)).as_py():
            values = pc.if_else(pc.fill_null(finite, False), values, pa.scalar(None, pa.float64()))
    return kind, values


def _tag(name: str, values: pa.Array) -> pa.Array:
    """Return a tag column as strings with nulls (absent), or raise PointError."""
    if isinstance(values, pa.DictionaryArray):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise PointError(f"tag column {name!r}: type {values.type}; tag values must be strings")
    return values.cast(pa.string())


def check_columns(measurement: str, data: Columns, tags: Sequence[str], registry: SeriesRegistry) -> Group:
    """Check a column batch of one measurement (PointError before anything is stored); return it as a Group."""
    if not isinstance(measurement, str) or not measurement or measurement.startswith("#"):
        raise PointError(f"measurement {measurement!r}: must be a non-empty string not starting with '#'")
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise PointError(f"{measurement}: tags {tags!r} must be a sequence of column names")
    arrays = _arrays(data)
    if TIME_COLUMN not in arrays:
        raise PointError(f"{measurement}: the column batch has no {TIME_COLUMN!r} column (int64 nanoseconds)")
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise PointError(f"{measurement}: columns differ in length: {lengths}")
    rows = lengths[TIME_COLUMN]
    times = arrays.pop(TIME_COLUMN)
    if not pa.types.is_integer(times.type) or times.null_count:
        raise PointError(f"{measurement}: column {TIME_COLUMN!r} must be integers (ns) without nulls, "
                         f"got {times.type} with {times.null_count} nulls")
    try:
        times_np = times.cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        raise PointError(f"{measurement}: column {TIME_COLUMN!r}: a time is outside the signed 64-bit range") \
            from None
    missing = [t for t in tags if t not in arrays]
    if missing:
        raise PointError(f"{measurement}: tag column(s) {missing!r} not in the batch")
    tag_arrays = {}
    for name in dict.fromkeys(tags):
        _check_name("tag column", name)
        tag_arrays[name] = _tag(name, arrays.pop(name))
    fields: dict[str, tuple[str, pa.Array]] = {}
    raw_of: dict[str, str] = {}
    for name, values in arrays.items():
        key = _check_name("field column", name)
        if key in raw_of:
            raise PointError(f"{measurement}: field columns {raw_of[key]!r} and {name!r} are one field "
                             f"({key!r}) once cleaned; give it one column")
        raw_of[key] = name
        fields[key] = _field(name, values)
    sids = _series_ids(measurement, tag_arrays, rows, registry)
    clean = registry.series[int(sids[0])].measurement if rows else clean_name(measurement)
    return Group(clean, None, times_np, sids, fields, {})


def _series_ids(measurement: str, tags: dict[str, pa.Array], rows: int, registry: SeriesRegistry) -> np.ndarray:
    """Return each row's series id, registering each distinct tag combination once."""
    if rows == 0:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(rows, dtype=np.int64)
    columns = []
    for values in tags.values():
        encoded = values.dictionary_encode()
        size = len(encoded.dictionary) + 1  # the last index: null
        indices = encoded.indices.fill_null(size - 1).to_numpy(zero_copy_only=False).astype(np.int64)
        codes = pd.factorize(codes * size + indices)[0].astype(np.int64)  # compact: never overflows
        columns.append((encoded.dictionary.to_pylist(), size, indices))
    distinct, first = np.unique(codes, return_index=True)
    sids = np.empty(len(distinct), dtype=np.int64)
    for i, row in enumerate(first.tolist()):
        combination = {name: dictionary[indices[row]] for name, (dictionary, size, indices) in zip(tags, columns)
                       if indices[row] < size - 1}
        cache_key = (measurement, *combination.items()) if combination else (measurement,)
        sid = registry.ids.get(cache_key)
        if sid is None:
            try:
                sid = registry.add(Point(measurement, combination, {}, 0), cache_key)
            except PointError as error:
                raise PointError(f"{measurement}: tags {combination!r}: {error}") from None
        sids[i] = sid
        registry.series[sid].raw_tag_keys |= set(tags)
    return sids[codes]
