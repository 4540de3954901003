"""The test servers really start, accept writes and give them back."""

import time

import pytest

from servers import http


@pytest.mark.influxdb
def test_influxdb_write_then_query(influxdb_database):
    server, db = influxdb_database
    assert [db] in server.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
    now = time.time_ns()
    server.write(db, f"cpu,host=h\\ 1 usage=0.5,count=3i {now}\n")

    result = server.query('SELECT "usage", "count", "host" FROM "cpu"', db=db, epoch="ns")

    series = result["results"][0]["series"][0]
    assert series["columns"] == ["time", "usage", "count", "host"]
    assert series["values"] == [[now, 0.5, 3, "h 1"]]


@pytest.mark.influxdb
def test_influxdb_rejects_bad_line(influxdb_database):
    server, db = influxdb_database
    status, body = http("POST", f"{server.url}/write?db={db}", "cpu usage=\n")
    assert status == 400, body


@pytest.mark.victoriametrics
def test_victoriametrics_accepts_v2_write(victoriametrics_server):
    vm = victoriametrics_server
    now = time.time_ns()
    status, body = http("POST", f"{vm.url}/api/v2/write?bucket=x&org=y", f"m,host=a f=1 {now}\n")
    assert status == 204, body

    rows = vm.wait_for_series('m_f{host="a"}')

    assert len(rows) == 1
    assert rows[0]["metric"]["__name__"] == "m_f"
    assert rows[0]["metric"]["host"] == "a"
    assert rows[0]["values"] == [1]
    assert rows[0]["timestamps"] == [now // 1_000_000]
