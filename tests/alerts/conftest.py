"""Fixtures for the alerts tests: the same planted data in a real InfluxDB 1.6 and in the embedded DuckDB store."""

import pytest

from tsdb import open_store


@pytest.fixture
def influxdb_slo_store(influxdb_database):
    """An InfluxStore on a fresh database of the session's real InfluxDB 1.6."""
    server, database = influxdb_database
    store = open_store(f"influxdb://127.0.0.1:{server.port}/{database}")
    yield store
    store.close()


@pytest.fixture
def duckdb_slo_store(tmp_path):
    """An embedded store in a fresh DuckDB file."""
    store = open_store(f"duckdb://{tmp_path}/slo.duckdb")
    yield store
    store.close()


@pytest.fixture(params=["influxdb", "duckdb"])
def slo_store(request):
    """The same test against real InfluxDB 1.6 and against the embedded DuckDB store."""
    return request.getfixturevalue(f"{request.param}_slo_store")
