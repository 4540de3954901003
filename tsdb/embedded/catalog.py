"""The file's layout: which table and columns hold each measurement, its tags and its typed fields.

`vw_meta` holds the format version; `vw_catalog` maps each measurement to a table `m_<n>` and each of its tags
and fields to a column `c_<n>` (fields with their type). Names are arbitrary unicode and DuckDB identifiers are
case-insensitive, so identifiers come only from this catalog, and every value (names, tag values, times) is
passed to SQL as a parameter. A table holds `time_ns BIGINT`, `series VARCHAR` (the JSON of the sorted,
cleaned, non-empty tag pairs), one VARCHAR per tag and one DOUBLE/BIGINT/BOOLEAN/VARCHAR per field. There is
no primary key: (series, time) stays unique because the single writer merges duplicates itself (an index made
writes 3-5x slower and the file twice as large).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from tsdb.errors import StoreUnavailable

FORMAT_VERSION = 1

SQL_TYPES = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "str": "VARCHAR"}
ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
INFLUX_TYPE_NAMES = {"float": "float", "int": "integer", "bool": "boolean", "str": "string"}


@dataclass
class Table:
    """What the catalog knows of one measurement: its table, tag columns and typed field columns."""

    measurement: str
    name: str
    tags: dict[str, str]
    fields: dict[str, tuple[str, str]]
    next_column: int

    def copy(self) -> "Table":
        """Return a copy a write can change without readers seeing it before it commits."""
        return Table(self.measurement, self.name, dict(self.tags), dict(self.fields), self.next_column)


def load_catalog(cursor: duckdb.DuckDBPyConnection, path: str) -> tuple[dict[str, Table], int]:
    """Create the catalog if new, check its format; return the tables by measurement and the next table number."""
    cursor.execute("CREATE TABLE IF NOT EXISTS vw_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    cursor.execute("CREATE TABLE IF NOT EXISTS vw_catalog (measurement VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
                   "key VARCHAR NOT NULL, name VARCHAR NOT NULL, type VARCHAR)")
    rows = cursor.execute("SELECT value FROM vw_meta WHERE key = ?", ["format"]).fetchall()
    if not rows:
        cursor.execute("INSERT INTO vw_meta VALUES (?, ?)", ["format", str(FORMAT_VERSION)])
    elif rows[0][0] != str(FORMAT_VERSION):
        raise StoreUnavailable(f"embedded store {path}: format {rows[0][0]} is not the format this "
                               f"version of virtwatch reads ({FORMAT_VERSION})")
    tables: dict[str, Table] = {}
    next_table = 1
    catalog = cursor.execute("SELECT measurement, kind, key, name, type FROM vw_catalog").fetchall()
    for measurement, kind, _key, name, _type in catalog:
        if kind == "table":
            tables[measurement] = Table(measurement, name, {}, {}, 1)
            next_table = max(next_table, int(name[2:]) + 1)
    for measurement, kind, key, name, type_ in catalog:
        if kind == "table":
            continue
        table = tables[measurement]
        if kind == "tag":
            table.tags[key] = name
        else:
            table.fields[key] = (name, type_)
        table.next_column = max(table.next_column, int(name[2:]) + 1)
    return tables, next_table


def ensure_table(cursor: duckdb.DuckDBPyConnection, tables: dict[str, Table], measurement: str,
                 tag_keys: set[str], fields: dict[str, str], next_table: int) -> tuple[Table, int]:
    """Add a measurement's table and missing columns (in the caller's transaction); return it and the next number.

    The entry put in `tables` is a copy: readers see the change once the write commits and the store swaps them.
    """
    table = tables.get(measurement)
    if table is None:
        table = Table(measurement, f"m_{next_table}", {}, {}, 1)
        next_table += 1
        cursor.execute(f"CREATE TABLE {table.name} (time_ns BIGINT NOT NULL, series VARCHAR NOT NULL)")
        cursor.execute("INSERT INTO vw_catalog VALUES (?, 'table', '', ?, NULL)", [measurement, table.name])
    else:
        table = table.copy()
    tables[measurement] = table
    for key in sorted(tag_keys - table.tags.keys()):
        column = _add_column(cursor, table, "VARCHAR")
        cursor.execute("INSERT INTO vw_catalog VALUES (?, 'tag', ?, ?, NULL)", [measurement, key, column])
        table.tags[key] = column
    for key, kind in fields.items():
        if key in table.fields:
            continue
        column = _add_column(cursor, table, SQL_TYPES[kind])
        cursor.execute("INSERT INTO vw_catalog VALUES (?, 'field', ?, ?, ?)", [measurement, key, column, kind])
        table.fields[key] = (column, kind)
    return table, next_table


def _add_column(cursor: duckdb.DuckDBPyConnection, table: Table, sql_type: str) -> str:
    column = f"c_{table.next_column}"
    table.next_column += 1
    cursor.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} {sql_type}")
    return column
