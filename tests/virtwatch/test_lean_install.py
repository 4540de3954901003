"""`pip install virtwatch` without extras: the agent runs against a private libvirtd into a real InfluxDB, and every
command that needs an extra says which one to install, without a traceback. The venv is fresh, from this checkout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lean_venv import IndexUnreachable, install
from tsdb import open_store

pytestmark = [pytest.mark.influxdb, pytest.mark.slow]

#: what the core leaves out (the extras' packages)
NOT_IN_CORE = ("pandas", "numpy", "scipy", "duckdb", "pyarrow", "dash", "plotly", "dash_ag_grid", "gunicorn",
               "influxdb_client")


@pytest.fixture(scope="module")
def core_bin(tmp_path_factory) -> Path:
    """The bin/ of a fresh venv holding only virtwatch's core (`pip install CHECKOUT`, no extras)."""
    try:
        return install(tmp_path_factory.mktemp("lean") / "venv")
    except IndexUnreachable as error:
        pytest.skip(f"the core venv cannot be built here: {error}")


@pytest.fixture
def run_in(core_bin, tmp_path):
    """Run a program of the core venv, away from the checkout and the developer's config and data."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTWATCH_", "PYTHON"))}
    environ.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))

    def run(program: str, *args: str) -> subprocess.CompletedProcess:
        """Run bin/PROGRAM ARGS of the core venv and return what it printed and its status."""
        return subprocess.run([str(core_bin / program), *args], cwd=tmp_path, env=environ, capture_output=True,
                              text=True, timeout=120)

    return run


def test_the_core_holds_no_package_of_an_extra(run_in):
    pandas = run_in("python", "-c", "import pandas")
    assert pandas.returncode != 0 and "No module named 'pandas'" in pandas.stderr
    found = run_in("python", "-c", "import importlib.util, sys; "
                                   f"print(' '.join(m for m in {NOT_IN_CORE!r} if importlib.util.find_spec(m)))")
    assert (found.returncode, found.stdout) == (0, "\n")


def test_agent_once_writes_a_collection_from_a_private_libvirtd_into_influxdb(run_in, libvirtd, influxdb_database,
                                                                              tmp_path):
    server, database = influxdb_database
    url = f"influxdb://127.0.0.1:{server.port}/{database}"
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[store]
url = "{url}"

[agent]
libvirt_uri = "{libvirtd.uri_test}"
admin_uri = "{libvirtd.admin_uri}"
daemon_pidfile = "{libvirtd.pidfile}"
host_name = "lean hv,1"
spool_dir = "{tmp_path / 'spool'}"
forensics_dir = "{tmp_path / 'forensics'}"
""")
    once = run_in("virtwatch", "agent", "--once", "--config", str(config))
    assert once.returncode == 0, once.stderr
    assert "Traceback" not in once.stderr
    with open_store(url) as store:
        daemon = store.latest("libvirtd", ["up", "probe_ok"], 0, where={"host": "lean hv,1"})
        assert daemon[["up", "probe_ok"]].values.tolist() == [[1.0, 1.0]]
        host = store.latest("host", ["domains_defined"], 0, where={"host": "lean hv,1"})
        assert host["domains_defined"].tolist() == [1.0]  # the test driver's one domain, "test"
        assert len(store.latest("collector", ["scrape_duration_ms"], 0, where={"host": "lean hv,1"})) == 1


@pytest.mark.parametrize("args, extra", [
    (["dashboard"], "dashboard"),
    (["alerts", "--once", "--store", "influxdb://127.0.0.1:9/unused"], "alerts"),
    (["soak", "--store", "influxdb://127.0.0.1:9/unused"], "soak"),
    (["demo"], "dashboard,embedded"),
    (["agent", "--once", "--libvirt-uri", "test:///default", "--store", "duckdb:///{tmp}/store.duckdb"], "embedded"),
    (["agent", "--once", "--libvirt-uri", "test:///default"], "embedded"),  # no store configured: the embedded one
], ids=["dashboard", "alerts", "soak", "demo", "agent-duckdb-url", "agent-default-store"])
def test_a_command_whose_extra_is_missing_names_it_without_a_traceback(run_in, tmp_path, args, extra):
    result = run_in("virtwatch", *(arg.replace("{tmp}", str(tmp_path)) for arg in args))
    assert result.returncode == 2
    assert f"pip install 'virtwatch[{extra}]'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
