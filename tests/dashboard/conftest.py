"""Fixtures of the dashboard tests: stores holding the planted fleet, `virtwatch dashboard` servers, Chromium."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from planted import SLO_TOML, plant, plant_alert_state, roll_up_slis, to_ns  # noqa: E402
from servers import free_port, http  # noqa: E402

SERVER_START_SECONDS = 60.0
VIRTWATCH = Path(sys.executable).parent / "virtwatch"


def planted_now() -> dt.datetime:
    """Return the planted data's end: the start of the current minute, UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


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

@dataclass
class DashboardServer:
    """A `virtwatch dashboard` subprocess: its base URL, files, and the planted data's end."""

    url: str
    process: subprocess.Popen
    log_path: Path
    state_dir: Path
    now: dt.datetime

    def planted_range(self, hours: int = 3) -> str:
        """Return the query string of a custom range ending at the planted data's end."""
        start = self.now - dt.timedelta(hours=hours)
        return f"range=custom&start={start:%Y-%m-%dT%H:%M}&end={self.now:%Y-%m-%dT%H:%M}"

    def log(self) -> str:
        """Return the server's output so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(path: Path, store_url: str, state_dir: Path, slo_file: Path, auth: tuple[str, str] | None = None
                 ) -> Path:
    """Write a virtwatch config for the dashboard."""
    text = (f'[store]\nurl = "{store_url}"\n\n[alerts]\nstate_dir = "{state_dir}"\nslo_file = "{slo_file}"\n\n'
            '[dashboard]\nlisten = "127.0.0.1:1"\n')
    if auth:
        text += f'basic_auth_username = "{auth[0]}"\nbasic_auth_password = "{auth[1]}"\n'
    path.write_text(text)
    return path


def start_server(config: Path, work_dir: Path, state_dir: Path, now: dt.datetime,
                 ready_statuses: tuple[int, ...] = (200,)) -> DashboardServer:
    """Start `virtwatch dashboard --config` on a free loopback port and wait until it answers."""
    port = free_port()
    log_path = work_dir / "dashboard.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(VIRTWATCH), "dashboard", "--config", str(config), "--listen",
                                    f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    server = DashboardServer(f"http://127.0.0.1:{port}", process, log_path, state_dir, now)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"virtwatch dashboard exited with {process.returncode}:\n{server.log()}")
        try:
            status, _ = http("GET", server.url + "/", timeout=2.0)
            if status in ready_statuses:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"virtwatch dashboard did not answer on {server.url}:\n{server.log()}")


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
def auth_dashboard_server(tmp_path_factory):
    """`virtwatch dashboard` with basic auth (user "operator", a password with a colon and a space)."""
    work = tmp_path_factory.mktemp("dashboard-auth")
    url = f"duckdb://{work}/store.duckdb"
    server = _planted_server(work, url, url, auth=("operator", "s3cret:p4ss w0rd"))
    yield server
    server.stop()
