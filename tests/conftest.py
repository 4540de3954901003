"""Shared pytest fixtures: private InfluxDB 1.6 and VictoriaMetrics servers on 127.0.0.1."""

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `servers` importable however pytest imports this file

from servers import InfluxDBServer, MissingBinary, VictoriaMetricsServer  # noqa: E402


def _started(server):
    """Start a server, failing (never skipping) the test when its binary is missing."""
    try:
        return server.start()
    except MissingBinary as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def influxdb_server(tmp_path_factory):
    """A private InfluxDB 1.6 server for the whole session."""
    server = _started(InfluxDBServer(tmp_path_factory.mktemp("influxdb")))
    yield server
    server.stop()


@pytest.fixture
def influxdb_database(influxdb_server):
    """A fresh, uniquely named database on the session's InfluxDB, dropped afterwards: (server, name)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb_server.create_database(name)
    yield influxdb_server, name
    influxdb_server.drop_database(name)


@pytest.fixture(scope="session")
def victoriametrics_server(tmp_path_factory):
    """A private VictoriaMetrics server for the whole session."""
    server = _started(VictoriaMetricsServer(tmp_path_factory.mktemp("victoriametrics")))
    yield server
    server.stop()
