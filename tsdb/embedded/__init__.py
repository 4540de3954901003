"""The embedded store: DuckDB in one file, for one machine and ONE process (`virtwatch demo`).

Another process cannot open the same file (DuckDB holds a lock on it); a user who needs several processes, or
several machines, uses InfluxDB. Within the process the store is thread-safe (see `store`).

It keeps and answers what InfluxDB 1.x keeps and answers (measured against InfluxDB 1.6):

- names and tag values pass through `tsdb.point.clean_name`; empty tag values are dropped (absent tag);
  non-finite floats are dropped; a point left with no field is skipped and not counted.
- one point per (series, time): writing the same series and time again merges the fields, new values win,
  fields the new point lacks keep their old values (also within one batch, in order).
- a field has one type per measurement: the first type written (ints are not floats). A point with a field of
  another type is dropped whole, the rest of the batch is stored, then StoreRejected (status 400) is raised
  with InfluxDB's message: `partial write: field type conflict: input field "x" on measurement "m" is type
  integer, already exists as type float dropped=N`. InfluxDB keeps field types per 7-day shard (another week
  may hold another type, and a batch that conflicts in a new shard loses all its points there), so after a
  conflict the two stores may differ; virtwatch's schema (tsdb.schema) fixes every field's type, so this does
  not arise in practice. InfluxDB's series index also keeps the series of points it dropped; here only series
  with stored points exist.
- reads: raw rows where at least one asked field has a value; windows aligned to the epoch labelled by their
  start; fill(none) (only windows where an asked field has a value); count of a field with no value in such a
  window is null; first/last take the earliest/latest value and, between equal times, the largest value
  (for booleans, first prefers false), as InfluxDB does; mean and sum refuse string and boolean fields,
  min and max refuse string fields. Unknown fields read as null; unknown tags read as "". Several aggregates
  are computed by one statement, so from one snapshot (a read never sees part of a write's transaction).

Modules: `catalog` (the file's layout), `ingest` (checking a batch), `conflicts` (the field type rule),
`merging` (staging and storing rows), `reading` (SQL for reads), `store` (EmbeddedStore, which wires them).
"""

from tsdb.embedded.store import EmbeddedStore

__all__ = ["EmbeddedStore"]
