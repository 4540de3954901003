"""Store URLs: every form the README documents parses, and every mistake is named."""

import pytest

from tsdb import StoreURLError, open_store
from tsdb.urls import parse_store_url, redact_store_url, store_url_problem


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


@pytest.mark.parametrize("url, words", [
    ("influxdb://u:pw@[::1/db", "the host is not a name or an address (Invalid IPv6 URL)"),
    ("influxdb://[zz]/db", "the host is not a name or an address"),
    ("influxdb://h:0/db", "the port is not a number from 1 to 65535"),
    ("influxdb://h\x00/db", "contains a control character"),
    ("influxdb://h\n/db", "contains a control character"),
    ("duckdb:///var/lib/a\x00b", "contains a control character"),
    ("influxdb://h/db#part", "a fragment (#...) has no meaning"),
    ("influxdb:// /db", "no host"),
])
def test_what_urlsplit_refuses_or_lets_through_is_a_store_url_error(url, words):
    with pytest.raises(StoreURLError) as caught:
        parse_store_url(url)
    assert words in str(caught.value)


@pytest.mark.parametrize("url, shown", [
    ("influxdb://ops:hunter2@[::1/db", "influxdb://ops:<redacted>@[::1/db"),
    ("influxdb://h/db?token=t0ken&rp=month", "influxdb://h/db?token=<redacted>&rp=month"),
    ("influxdb2://h/bucket?org=acme&auth=t0ken", "influxdb2://h/bucket?org=acme&auth=<redacted>"),
    ("influxdb://ops:pa/ss?w#rd@h/db", "influxdb://ops:<redacted>@h/db"),
    ("influxdb://h/db#t0ken", "influxdb://h/db#<redacted>"),
    ("duckdb:///var/lib/virtwatch/store.duckdb", "duckdb:///var/lib/virtwatch/store.duckdb"),
])
def test_a_secret_in_a_store_url_is_redacted_in_messages(url, shown):
    assert redact_store_url(url) == shown
    with pytest.raises(StoreURLError) as caught:
        parse_store_url(url.replace("store.duckdb", "store.duckdb/"))
    assert "hunter2" not in str(caught.value) and "t0ken" not in str(caught.value) and "w#rd" not in str(caught.value)


def test_the_reason_alone_is_what_config_checks_report():
    assert store_url_problem("influxdb://localhost:8086/") == ("expected exactly one database name after the host, "
                                                               "as in influxdb://HOST:8086/NAME")
    assert store_url_problem("duckdb://relative/path").startswith("duckdb needs an absolute file path")
    assert store_url_problem("influxdb://h:8086/db") is None
