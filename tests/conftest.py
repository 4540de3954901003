"""Shared pytest fixtures: private InfluxDB 1.6 and VictoriaMetrics servers on 127.0.0.1."""

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `servers` importable however pytest imports this file

from servers import InfluxDBServer, VictoriaMetricsServer, started  # noqa: E402


@pytest.fixture(scope="session")
def influxdb_server(tmp_path_factory):
    """A private InfluxDB 1.6 server for the whole session."""
    server = started(InfluxDBServer(tmp_path_factory.mktemp("influxdb")))
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
    server = started(VictoriaMetricsServer(tmp_path_factory.mktemp("victoriametrics")))
    yield server
    server.stop()


# --- a private libvirtd (tests/libvirtd.py); tests using these fixtures are marked slow --------------------------

from libvirtd import MissingLibvirt, PrivateLibvirtd  # noqa: E402
from tsdb import open_store  # noqa: E402

LIBVIRTD_GUESTS = ["guest-a", 'guest 2,"b"']  # the second name is hostile on purpose: space, comma, quotes


@pytest.fixture(scope="session")
def libvirt_capabilities_cache(tmp_path_factory):
    """A dir where the first daemon leaves QEMU's capabilities cache, so later daemons skip the ~8 s probe."""
    return tmp_path_factory.mktemp("libvirt-capabilities")


@pytest.fixture
def libvirtd(tmp_path, libvirt_capabilities_cache):
    """A fresh private libvirtd for one test (fault tests kill it), stopped afterwards with all its guests."""
    daemon = PrivateLibvirtd(tmp_path / "libvirtd", capabilities_cache=libvirt_capabilities_cache)
    try:
        daemon.start()
    except MissingLibvirt as err:
        pytest.fail(str(err), pytrace=False)
    yield daemon
    daemon.stop()


@pytest.fixture
def libvirtd_with_guests(libvirtd):
    """A private libvirtd with two running QEMU guests: (daemon, ["guest-a", 'guest 2,"b"'])."""
    return libvirtd, [libvirtd.define_guest(name) for name in LIBVIRTD_GUESTS]


# ---- stores: the same test against a real InfluxDB 1.6 and the embedded DuckDB store ----


@pytest.fixture
def influxdb_store(influxdb_database):
    """An InfluxStore on a fresh database of the session's real InfluxDB 1.6."""
    server, database = influxdb_database
    store = open_store(f"influxdb://127.0.0.1:{server.port}/{database}")
    yield store
    store.close()


@pytest.fixture
def duckdb_store(tmp_path):
    """An embedded store in a fresh DuckDB file."""
    store = open_store(f"duckdb://{tmp_path}/store.duckdb")
    yield store
    store.close()


@pytest.fixture(params=["influxdb", "duckdb"])
def store(request):
    """The same test against real InfluxDB 1.6 and against the embedded DuckDB store."""
    return request.getfixturevalue(f"{request.param}_store")


# --- Debian's Chromium through Playwright (tests/browser.py) ----------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, headless, driven by Playwright (no `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (Debian package chromium): run `make setup-test`", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium):
    """A fresh browser context and page (1400x900) recording console errors."""
    from browser import Tab

    context = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console.{message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    yield Tab(page, errors)
    context.close()
