"""Fixtures of the dashboard tests: stores holding the planted fleet, `virtwatch dashboard` servers, Chromium."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_servers import DashboardServer, planted_now, start_server, write_config  # noqa: E402,F401
from planted import SLO_TOML, plant, plant_alert_state, roll_up_slis, to_ns  # noqa: E402


@pytest.fixture
def fixed_now() -> dt.datetime:
    """The planted data's end for unit tests (a whole minute in the past hour of the wall clock)."""
    return planted_now()


@pytest.fixture
def slo_file(tmp_path) -> Path:
    """An SLO file with the availability and latency SLOs."""
    path = tmp_path / "slos.toml"
    path.write_text(SLO_TOML)
    return path


@pytest.fixture
def slos(slo_file):
    """The SLOs of slo_file."""
    from alerts.slo import load_slos

    return load_slos(slo_file)


@pytest.fixture
def planted_store(store, slos, fixed_now):
    """The `store` fixture (InfluxDB 1.6 and DuckDB) holding the planted fleet and its SLI rollups."""
    plant(store, to_ns(fixed_now))
    roll_up_slis(store, slos, to_ns(fixed_now))
    return store


# ---- servers ----

def _planted_server(work_dir: Path, store_url: str, open_store_url: str,
                    auth: tuple[str, str] | None = None) -> DashboardServer:
    """Plant the fleet into a store, leave an alert state, and serve the dashboard over them."""
    from alerts.slo import load_slos
    from tsdb import open_store

    now = planted_now()
    slo_path = work_dir / "slos.toml"
    slo_path.write_text(SLO_TOML)
    state_dir = work_dir / "alerts"
    store = open_store(open_store_url)
    try:
        plant(store, to_ns(now))
        roll_up_slis(store, load_slos(slo_path), to_ns(now))
    finally:
        store.close()
    plant_alert_state(state_dir, now)
    config = write_config(work_dir / "virtwatch.toml", store_url, state_dir, slo_path, auth)
    return start_server(config, work_dir, state_dir, now, (401,) if auth else (200,))


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the planted fleet (one for the session)."""
    work = tmp_path_factory.mktemp("dashboard-duckdb")
    url = f"duckdb://{work}/store.duckdb"
    server = _planted_server(work, url, url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb_dashboard_server(tmp_path_factory, influxdb_server):
    """`virtwatch dashboard` over a database of the session's InfluxDB 1.6 holding the planted fleet."""
    work = tmp_path_factory.mktemp("dashboard-influxdb")
    database = f"dash_{uuid.uuid4().hex[:10]}"
    influxdb_server.create_database(database)
    url = f"influxdb://127.0.0.1:{influxdb_server.port}/{database}"
    server = _planted_server(work, url, url)
    yield server
    server.stop()
    influxdb_server.drop_database(database)


@pytest.fixture(scope="session")
def fleet_dashboard_server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the large planted fleet (planted_fleet: 300 hosts and the
    hostile ones) and the SLOs, for paging, sorting and filtering in the browser."""
    from planted_fleet import plant_fleet

    from tsdb import open_store

    work = tmp_path_factory.mktemp("dashboard-fleet")
    url = f"duckdb://{work}/store.duckdb"
    now = planted_now()
    store = open_store(url)
    try:
        plant_fleet(store, to_ns(now), 300)
    finally:
        store.close()
    slo_path = work / "slos.toml"
    slo_path.write_text(SLO_TOML)
    config = write_config(work / "virtwatch.toml", url, work / "alerts", slo_path)
    server = start_server(config, work, work / "alerts", now)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_dashboard_server(tmp_path_factory):
    """`virtwatch dashboard` with basic auth (user "operator", a password with a colon and a space)."""
    work = tmp_path_factory.mktemp("dashboard-auth")
    url = f"duckdb://{work}/store.duckdb"
    server = _planted_server(work, url, url, auth=("operator", "s3cret:p4ss w0rd"))
    yield server
    server.stop()
