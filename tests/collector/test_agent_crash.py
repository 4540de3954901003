"""The real `virtwatch agent` process is SIGKILLed while the store is down: after a restart, every point it
collected during the outage arrives in InfluxDB, in order, counted exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.spool import decode_points
from servers import InfluxDBServer
from tsdb import open_store

pytestmark = [pytest.mark.influxdb, pytest.mark.slow]


def spooled_points(spool_dir: Path) -> list:
    points = []
    for segment in sorted(spool_dir.glob("*.jsonl")):
        points += decode_points(segment.read_bytes())
    return points


def test_an_agent_killed_during_an_outage_delivers_every_spooled_point_in_order_after_restart(tmp_path):
    server = InfluxDBServer(tmp_path / "influxdb").start()
    port = server.port
    server.stop()  # the store is down from the agent's first collection
    spool_dir = tmp_path / "spool"
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{port}/outage"
max_retries = 0
timeout_seconds = 1

[agent]
libvirt_uri = "test:///default"
host_name = "hv crash,1"
interval_seconds = 0.2
spool_dir = "{spool_dir}"
""")
    command = [sys.executable, "-m", "virtwatch", "agent", "--config", str(config)]
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            if len(list(spool_dir.glob("*.jsonl"))) >= 5:
                break
            time.sleep(0.05)
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
    expected = spooled_points(spool_dir)
    assert len(expected) >= 5 * 3  # at least libvirtd, host and collector points of five collections
    collected = sorted(p.time_ns for p in expected if p.measurement == "collector")
    assert len(collected) >= 0.95 * (round((collected[-1] - collected[0]) / 0.2e9) + 1)  # the cadence held

    server.start(port=port)
    try:
        once = subprocess.run(command + ["--once"], capture_output=True, text=True, timeout=120)
        assert once.returncode == 0, once.stderr
        assert list(spool_dir.glob("*.jsonl")) == []
        with open_store(f"influxdb://127.0.0.1:{port}/outage") as store:
            for measurement in ("libvirtd", "host", "collector"):
                field = {"libvirtd": "up", "host": "load1", "collector": "scrape_duration_ms"}[measurement]
                times = store.query(measurement, [field], 0, 2**62, where={"host": "hv crash,1"})["time"]
                spooled = [p.time_ns for p in expected if p.measurement == measurement]
                arrived = times.astype("int64").tolist()
                assert arrived[:len(spooled)] == spooled  # every spooled point, in order
                assert len(arrived) == len(spooled) + 1  # plus the --once collection itself
    finally:
        server.stop()


def test_sigterm_makes_the_agent_finish_its_collection_and_exit_0_serving_metrics_until_then(tmp_path):
    from servers import free_port, http

    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[store]
url = "duckdb://{tmp_path}/store.duckdb"

[agent]
libvirt_uri = "test:///default"
interval_seconds = 0.2
spool_dir = "{tmp_path / 'spool'}"
metrics_listen = "127.0.0.1:{port}"
""")
    agent = subprocess.Popen([sys.executable, "-m", "virtwatch", "agent", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    body = b""
    try:
        for _ in range(200):
            try:
                status, body = http("GET", f"http://127.0.0.1:{port}/metrics", timeout=1)
                if status == 200 and b"virtwatch_libvirtd_up" in body:
                    break
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=60)
    assert b'virtwatch_domain_state_code{domain="test"' in body
    assert agent.returncode == 0, stderr
    assert "agent stopping" in stderr
    with open_store(f"duckdb://{tmp_path}/store.duckdb") as store:
        assert len(store.query("collector", ["scrape_duration_ms"], 0, 2**62)) >= 1


def agent_config(tmp_path: Path, store_url: str, libvirt_uri: str = "test:///default", interval: float = 0.2,
                 extra: str = "") -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[store]
url = "{store_url}"
timeout_seconds = 2

[agent]
libvirt_uri = "{libvirt_uri}"
host_name = "hv crash,1"
interval_seconds = {interval}
spool_dir = "{tmp_path / 'spool'}"
{extra}
""")
    return config


def test_an_agent_killed_while_the_store_never_answers_delivers_every_point_in_order_at_its_cadence(tmp_path):
    from servers import BlackholeServer

    blackhole = BlackholeServer()
    port = blackhole.port
    spool_dir = tmp_path / "spool"
    config = agent_config(tmp_path, f"influxdb://127.0.0.1:{port}/blackhole")
    command = [sys.executable, "-m", "virtwatch", "agent", "--config", str(config)]
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while len([p for p in spooled_points(spool_dir) if p.measurement == "collector"]) < 30:
            time.sleep(0.1)  # writes time out after 2 s, one attempt per interval: the points go to the spool
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
        blackhole.close()
    expected = spooled_points(spool_dir)
    collected = sorted(p.time_ns for p in expected if p.measurement == "collector")
    # the cadence held: a collector point every 0.2 s although every write hung for 2 s
    spanned = round((collected[-1] - collected[0]) / 0.2e9) + 1
    assert len(collected) >= 0.95 * spanned
    server = InfluxDBServer(tmp_path / "influxdb").start(port=port)
    try:
        once = subprocess.run(command + ["--once"], capture_output=True, text=True, timeout=120)
        assert once.returncode == 0, once.stderr
        assert list(spool_dir.glob("*.jsonl")) == []
        with open_store(f"influxdb://127.0.0.1:{port}/blackhole") as store:
            times = store.query("collector", ["scrape_duration_ms"], 0, 2**62, where={"host": "hv crash,1"})["time"]
            arrived = times.astype("int64").tolist()
            assert arrived[:len(collected)] == collected  # every point collected before the kill, in order
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_hang_exits_0_at_once_and_loses_nothing(tmp_path, libvirtd):
    config = agent_config(tmp_path, f"duckdb://{tmp_path}/store.duckdb", libvirtd.uri_test, interval=0.5,
                          extra=f'daemon_pidfile = "{libvirtd.pidfile}"\nadmin_uri = "{libvirtd.admin_uri}"\n'
                                f'probe_timeout_seconds = 1')
    agent = subprocess.Popen([sys.executable, "-m", "virtwatch", "agent", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        libvirtd.kill(signal.SIGSTOP)
        time.sleep(4)  # hung: the probe, an admin read and libvirt's close of nothing are stuck in the daemon
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
        still_stopped = libvirtd.pid is not None and open(f"/proc/{libvirtd.pid}/stat").read().split(") ")[1][0] == "T"
    finally:
        libvirtd.kill(signal.SIGCONT)
    assert agent.returncode == 0, stderr
    assert still_stopped  # it exited while every call into the daemon was still stuck
    assert "libvirtd up -> hung" in stderr and "agent stopping" in stderr
    with open_store(f"duckdb://{tmp_path}/store.duckdb") as store:
        collector = store.query("collector", ["scrape_duration_ms"], 0, 2**62)
        rows = store.query("libvirtd", ["hung"], 0, 2**62)
        assert rows["hung"].iloc[-1] == 1 and len(rows) == len(collector) >= 10
        assert store.events(0)["kind"].tolist() == ["hang_start"]
