"""Benchmark of the lean install: the core (`pip install virtwatch`) against everything (`virtwatch[all]`).

Run it from the repository root (needs libvirtd and influxd, see `make setup-test`; root, as for tests/libvirtd.py;
pip reaches the package index, its cache keeps the wheels):

    .venv/bin/python benchmarks/bench_lean_agent.py [--collections 5] [--interval 1] [--work-dir DIR]

It builds two fresh venvs from this checkout (tests/lean_venv.py; with --work-dir they are kept there and reused by
the next run), starts a private libvirtd (tests/libvirtd.py) and a private InfluxDB 1.6 (tests/servers.py), and
for each venv measures:

    install MB        du of the venv's site-packages
    without pip MB    the same without pip and setuptools, which every venv brings
    agent import s    importing the agent's modules (virtwatch.cli, virtwatch.wiring, collector.agent, tsdb.influx,
                      libvirt) in a fresh interpreter, median of 5
    agent VmRSS MB    the `virtwatch agent` process (its admin-API helper subprocess not included) once InfluxDB holds
                      `--collections` of its collections, through the daemon's test driver, every `--interval` s
    agent VmHWM MB    its peak RSS until then
    extras mapped     files of the extras' packages (pandas, numpy, pyarrow, duckdb, scipy, dash, plotly) the agent
                      process has mapped: the agent never imports them, installed or not
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from lean_venv import disk_mb, install, site_packages  # noqa: E402
from libvirtd import PrivateLibvirtd  # noqa: E402
from servers import InfluxDBServer  # noqa: E402
from table import print_columns  # noqa: E402
from tsdb import open_store  # noqa: E402

INSTALLS = (("core", ""), ("full", "all"))
AGENT_IMPORTS = "virtwatch.cli, virtwatch.wiring, collector.agent, tsdb.influx, libvirt"
EXTRA_PACKAGES = ("pandas", "numpy", "pyarrow", "duckdb", "scipy", "dash", "plotly")
IMPORT_RUNS = 5
#: what `python -m venv` puts in every site-packages, whatever is installed
VENV_OWN = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")
POLL_SECONDS = 0.2


def environment(tmp: Path) -> dict[str, str]:
    """Return the environment the venvs' programs run in: no VIRTWATCH_*/PYTHON* variables, data under tmp."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTWATCH_", "PYTHON"))}
    environ.update(XDG_DATA_HOME=str(tmp / "data"), XDG_CONFIG_HOME=str(tmp / "config"))
    return environ


def import_seconds(bin_dir: Path, environ: dict[str, str], cwd: Path) -> float:
    """Return the median time a fresh interpreter of the venv takes to import the agent's modules."""
    code = f"import time; t = time.perf_counter(); import {AGENT_IMPORTS}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([str(bin_dir / "python"), "-c", code], env=environ, cwd=cwd, capture_output=True,
                             text=True, check=True).stdout)
        for _ in range(IMPORT_RUNS))


def status_mb(pid: int, key: str) -> float:
    """Return a kB line of /proc/PID/status (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def extras_mapped(pid: int, packages_dir: Path) -> int:
    """Return how many distinct files of the extras' packages the process has mapped."""
    prefixes = tuple(f"{packages_dir}/{name}" for name in EXTRA_PACKAGES)
    paths = {line.split(maxsplit=5)[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
             if len(line.split(maxsplit=5)) == 6}
    return sum(path.startswith(prefixes) for path in paths)


def agent_memory(bin_dir: Path, packages_dir: Path, environ: dict[str, str], tmp: Path, daemon: PrivateLibvirtd,
                 influx_url: str, host: str, collections: int, interval_seconds: float) -> tuple[float, float, int]:
    """Run `virtwatch agent` until InfluxDB holds `collections` of its collections; return VmRSS, VmHWM (MB) and
    the extras' files it mapped."""
    config = tmp / f"{host}.toml"
    config.write_text(f"""
[store]
url = "{influx_url}"

[agent]
libvirt_uri = "{daemon.uri_test}"
admin_uri = "{daemon.admin_uri}"
daemon_pidfile = "{daemon.pidfile}"
host_name = "{host}"
interval_seconds = {interval_seconds}
spool_dir = "{tmp / host / 'spool'}"
forensics_dir = "{tmp / host / 'forensics'}"
""")
    agent = subprocess.Popen([str(bin_dir / "virtwatch"), "agent", "--config", str(config)], env=environ, cwd=tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with open_store(influx_url) as store:
            while len(store.query("collector", ["scrape_duration_ms"], 0, 2**62, where={"host": host})) < collections:
                if agent.poll() is not None:
                    raise RuntimeError(f"the {host} agent exited with {agent.returncode}: {agent.stderr.read()}")
                time.sleep(POLL_SECONDS)
        return status_mb(agent.pid, "VmRSS"), status_mb(agent.pid, "VmHWM"), extras_mapped(agent.pid, packages_dir)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def venv_bin(work_dir: Path, name: str, extras: str) -> Path:
    """Return the bin/ of the venv `name` under work_dir, installing it unless a run before left it there."""
    venv_dir = work_dir / name
    if (venv_dir / "bin" / "virtwatch").exists():
        return venv_dir / "bin"
    print(f"installing the {name} venv (virtwatch{f'[{extras}]' if extras else ''}) ...", file=sys.stderr, flush=True)
    return install(venv_dir, extras)


def main() -> None:
    """Measure both installs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", type=int, default=5, help="collections before the RSS is read")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between the agent's collections")
    parser.add_argument("--work-dir", type=Path, help="keep the venvs here and reuse them (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lean-") as tmp_name:
        tmp = Path(tmp_name)
        work_dir = args.work_dir.resolve() if args.work_dir else tmp / "venvs"
        work_dir.mkdir(parents=True, exist_ok=True)
        bins = {name: venv_bin(work_dir, name, extras) for name, extras in INSTALLS}
        environ = environment(tmp)
        daemon = PrivateLibvirtd(tmp / "libvirtd").start()
        influx = InfluxDBServer(tmp / "influxdb").start()
        try:
            influx.create_database("lean")
            influx_url = f"influxdb://127.0.0.1:{influx.port}/lean"
            rows = []
            for name, _ in INSTALLS:
                packages_dir = site_packages(work_dir / name)
                rss, hwm, mapped = agent_memory(bins[name], packages_dir, environ, tmp, daemon, influx_url,
                                                f"lean-{name}", args.collections, args.interval)
                own = sum(disk_mb(path) for path in packages_dir.iterdir() if path.name.startswith(VENV_OWN))
                rows.append((name, f"{disk_mb(packages_dir):.0f}", f"{disk_mb(packages_dir) - own:.0f}",
                             f"{rss:.1f}", f"{hwm:.1f}",
                             f"{import_seconds(bins[name], environ, tmp):.3f}", str(mapped)))
        finally:
            influx.stop()
            daemon.stop()
    print(f"virtwatch agent, {args.collections} collections every {args.interval:g} s through a private libvirtd's "
          f"test driver into InfluxDB 1.6; Python {sys.version.split()[0]}")
    print_columns(("install", "install MB", "without pip MB", "agent VmRSS MB", "agent VmHWM MB", "agent import s", "extras mapped"),
                  rows)


if __name__ == "__main__":
    main()
