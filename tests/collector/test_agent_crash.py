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
