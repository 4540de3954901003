"""Store URLs: every form the README documents parses, and every mistake is named."""

import pytest

from tsdb import StoreURLError, open_store
from tsdb.urls import parse_store_url


@pytest.mark.parametrize("url, expected", [
    ("influxdb://influx.example.internal:8086/virtwatch",
     dict(kind="influxdb1", tls=False, host="influx.example.internal", port=8086, database="virtwatch")),
    ("influxdb://ops@127.0.0.1/vw?rp=month", dict(kind="influxdb1", username="ops", port=8086, retention_policy="month")),
    ("influxdbs://h:8443/db", dict(kind="influxdb1", tls=True, port=8443)),
    ("influxdb2://h:8086/bucket?org=acme", dict(kind="influxdb2", database="bucket", org="acme")),
    ("influxdb2s://h/bucket", dict(kind="influxdb2", tls=True, org=None)),
    ("influxdb://h/my%20db", dict(database="my db")),
    ("duckdb:///var/lib/virtwatch/store.duckdb", dict(kind="duckdb", path="/var/lib/virtwatch/store.duckdb")),
])
def test_documented_store_urls_parse(url, expected):
    parsed = parse_store_url(url)
    for key, value in expected.items():
        assert getattr(parsed, key) == value


@pytest.mark.parametrize("url, words", [
    ("localhost:8086/db", "expected SCHEME://"),
    ("postgres://h/db", "unknown scheme 'postgres'"),
    ("influxdb://h:notaport/db", "port"),
    ("influxdb://h:8086/", "database name"),
    ("influxdb2://h:8086/", "bucket name"),
    ("influxdb://h/a/b", "exactly one database"),
    ("influxdb://h/db?bucket=x", "unknown parameter 'bucket'"),
    ("duckdb://relative/path", "absolute file path"),
])
def test_a_bad_store_url_is_refused_naming_what_is_wrong(url, words):
    with pytest.raises(StoreURLError) as caught:
        parse_store_url(url)
    assert words in str(caught.value)


def test_a_password_in_the_url_is_refused_without_being_echoed():
    with pytest.raises(StoreURLError) as caught:
        parse_store_url("influxdb://ops:hunter2@h:8086/db")
    assert "hunter2" not in str(caught.value)
    assert "VIRTWATCH_STORE_PASSWORD" in str(caught.value)


def test_the_display_url_never_holds_a_secret():
    store = open_store("influxdb://ops@127.0.0.1:8086/db", password="hunter2", token=None)
    assert store.display_url == "influxdb://ops@127.0.0.1:8086/db"
    store.close()
