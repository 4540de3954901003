"""Writing to a real InfluxDB 1.6 through faults: 5xx, 429, timeouts, refused connections, 4xx, a lost server."""

from __future__ import annotations

import gzip

import pytest

from servers import InfluxDBServer, free_port
from tsdb import Point, StoreRejected, StoreUnavailable
from tsdb.influx import InfluxStore
from tsdb.retry import Backoff
from tsdb.urls import parse_store_url

pytestmark = pytest.mark.influxdb
T0 = 1_700_000_000_000_000_000
QUICK = Backoff(max_retries=3, base_seconds=0.01, max_seconds=0.05)


def points(n: int, host: str = "hv1") -> list[Point]:
    return [Point("host", {"host": host}, {"load1": float(i), "cpus": 8}, T0 + i * 10**9) for i in range(n)]


def stored_count(server, database: str) -> int:
    answer = server.query('SELECT count("load1") FROM "host"', db=database)
    series = answer["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def store_via(port: int, database: str, **options) -> InfluxStore:
    options.setdefault("backoff", QUICK)
    return InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{port}/{database}"), **options)


@pytest.mark.parametrize("faults", [[500], [503, 502], [429], ["timeout"], [500, "timeout", 504]])
def test_retryable_faults_are_retried_and_every_point_arrives_exactly_once(faulty_proxy, influxdb_database, faults):
    server, database = influxdb_database
    faulty_proxy.faults = list(faults)
    store = store_via(faulty_proxy.port, database, timeout_seconds=0.5)
    assert store.write(points(50)) == 50
    assert len(faulty_proxy.writes()) == len(faults) + 1
    assert stored_count(server, database) == 50
    store.close()


def test_a_4xx_is_not_retried_and_carries_the_servers_message(faulty_proxy, influxdb_database):
    server, database = influxdb_database
    store = store_via(faulty_proxy.port, database)
    store.write([Point("host", {"host": "hv1"}, {"cpus": 8}, T0)])
    with pytest.raises(StoreRejected) as caught:
        store.write([Point("host", {"host": "hv1"}, {"cpus": "eight"}, T0 + 1)])
    assert caught.value.status == 400
    assert "field type conflict" in str(caught.value)
    assert len(faulty_proxy.writes()) == 2
    store.close()


def test_retries_give_up_with_store_unavailable_after_the_configured_attempts(faulty_proxy, influxdb_database):
    _, database = influxdb_database
    faulty_proxy.faults = [503] * 10
    slept: list[float] = []
    store = store_via(faulty_proxy.port, database, sleep=slept.append)
    with pytest.raises(StoreUnavailable) as caught:
        store.write(points(3))
    assert "after 4 attempts" in str(caught.value) and "503" in str(caught.value)
    assert len(faulty_proxy.writes()) == 4
    assert len(slept) == 3 and slept == sorted(slept)  # backoff grows
    store.close()


def test_a_refused_connection_is_retried_then_reported_unavailable():
    slept: list[float] = []
    store = store_via(free_port(), "db", sleep=slept.append)
    with pytest.raises(StoreUnavailable) as caught:
        store.write(points(1))
    assert "refused" in str(caught.value).lower()
    assert len(slept) == QUICK.max_retries
    store.close()


def test_writes_are_gzip_compressed_and_in_nanoseconds(faulty_proxy, influxdb_database):
    _, database = influxdb_database
    store = store_via(faulty_proxy.port, database)
    store.write(points(2))
    request = faulty_proxy.writes()[0]
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert "precision=ns" in request["path"]
    assert gzip.decompress(request["body"]).decode().startswith("host,host=hv1 load1=0.0,cpus=8i")
    store.close()


def test_large_writes_go_in_batches_of_the_configured_size(faulty_proxy, influxdb_database):
    server, database = influxdb_database
    store = store_via(faulty_proxy.port, database, batch_size=1000)
    assert store.write(points(4500)) == 4500
    assert len(faulty_proxy.writes()) == 5
    assert stored_count(server, database) == 4500
    store.close()


def test_a_missing_database_is_created_on_first_write(influxdb_server):
    store = store_via(influxdb_server.port, "created_by_virtwatch")
    try:
        assert store.write(points(5)) == 5
        assert stored_count(influxdb_server, "created_by_virtwatch") == 5
    finally:
        influxdb_server.drop_database("created_by_virtwatch")
        store.close()


def test_a_store_that_disappears_is_unavailable_and_writes_work_again_when_it_returns(tmp_path):
    server = InfluxDBServer(tmp_path).start()
    try:
        store = store_via(server.port, "lost")
        assert store.write(points(10)) == 10
        server.stop()
        with pytest.raises(StoreUnavailable):
            store.write(points(10, host="hv2"))
        server.start(port=server.port)
        assert store.write(points(10, host="hv2")) == 10
        assert sorted(store.tag_values("host", "host")) == ["hv1", "hv2"]
    finally:
        server.stop()


def test_an_answer_the_server_cuts_short_is_read_again_in_chunks(tmp_path):
    server = InfluxDBServer(tmp_path, max_row_limit=100).start()
    try:
        store = store_via(server.port, "limited")
        store.write(points(1000))
        frame = store.query("host", ["load1"], T0, T0 + 2000 * 10**9)
        assert len(frame) == 1000
        assert frame["load1"].tolist() == [float(i) for i in range(1000)]
        store.close()
    finally:
        server.stop()
