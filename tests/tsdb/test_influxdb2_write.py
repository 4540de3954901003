"""The influxdb2:// write path (POST /api/v2/write, as influxdb-client's WriteApi sends it), proven against
VictoriaMetrics."""

from __future__ import annotations

import time

import pytest

from servers import free_port
from tsdb import Point, StoreUnavailable, open_store
from tsdb.influx import InfluxStore
from tsdb.retry import Backoff
from tsdb.urls import parse_store_url

pytestmark = pytest.mark.victoriametrics


def test_points_written_through_the_v2_write_api_arrive_with_their_tags_and_values(victoriametrics_server):
    now_ms = int(time.time()) * 1000
    store = open_store(f"influxdb2://127.0.0.1:{victoriametrics_server.port}/virtwatch?org=ops", token="t0ken")
    points = [Point("libvirtd", {"host": "hv 1,a=b"}, {"probe_latency_ms": 1.5 + i, "up": 1},
                    (now_ms - 60_000 + i * 1000) * 1_000_000) for i in range(30)]
    assert store.write(points) == 30
    series = victoriametrics_server.wait_for_series('libvirtd_probe_latency_ms{host="hv 1,a=b"}')
    assert len(series) == 1
    assert series[0]["metric"]["host"] == "hv 1,a=b"
    assert series[0]["values"] == [1.5 + i for i in range(30)]
    assert series[0]["timestamps"] == [now_ms - 60_000 + i * 1000 for i in range(30)]
    store.close()


def test_the_v2_path_sends_the_token_and_gzip(faulty_proxy_for_vm):
    proxy, server = faulty_proxy_for_vm
    store = open_store(f"influxdb2://127.0.0.1:{proxy.port}/bucket?org=ops", token="s3cret-token")
    store.write([Point("host", {"host": "hv9"}, {"load1": 0.25}, int(time.time() * 1e9))])
    request = proxy.writes()[0]
    assert request["path"].startswith("/api/v2/write?")
    assert "bucket=bucket" in request["path"] and "org=ops" in request["path"]
    assert request["headers"]["Authorization"] == "Token s3cret-token"
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert server.wait_for_series('host_load1{host="hv9"}')
    store.close()


def test_the_v2_path_retries_5xx_and_then_delivers(faulty_proxy_for_vm):
    proxy, server = faulty_proxy_for_vm
    proxy.faults = [503, 500]
    store = InfluxStore(parse_store_url(f"influxdb2://127.0.0.1:{proxy.port}/b"), token="t",
                        backoff=Backoff(max_retries=3, base_seconds=0.01))
    assert store.write([Point("host", {"host": "hv-retry"}, {"load1": 2.0}, int(time.time() * 1e9))]) == 1
    assert len(proxy.writes()) == 3
    assert server.wait_for_series('host_load1{host="hv-retry"}')
    store.close()


def test_the_v2_path_reports_a_refused_connection_as_unavailable():
    store = InfluxStore(parse_store_url(f"influxdb2://127.0.0.1:{free_port()}/b"), token="secret-token",
                        backoff=Backoff(max_retries=1, base_seconds=0.01))
    with pytest.raises(StoreUnavailable) as caught:
        store.write([Point("host", {"host": "x"}, {"load1": 1.0}, 1)])
    assert "secret-token" not in str(caught.value)
    store.close()
