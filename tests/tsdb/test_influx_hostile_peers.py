"""The InfluxDB client against peers that drip, hang or flood: fake InfluxDB servers on 127.0.0.1, a seam at the
network (the unit under test is our client). Each costs an attempt its deadline or a capped read, and the store
raises StoreUnavailable naming which. Nothing asserts a duration; bytes read are counted through
InfluxStore.answer_bytes_read.
"""

from __future__ import annotations

import pytest

from servers import BlackholeServer, DripServer, FloodServer
from tsdb import Point, StoreUnavailable
from tsdb.influx import ERROR_ANSWER_MAX_BYTES, QUERY_ANSWER_MAX_BYTES, InfluxStore
from tsdb.retry import Backoff
from tsdb.urls import parse_store_url

DEADLINE_SECONDS = 1.0  # twice the drip interval: a per-read timeout of this would never fire
ONE_RETRY = Backoff(max_retries=1, base_seconds=0.01, max_seconds=0.01)
FLOOD_BYTES = 400 * 10**6
# what InfluxDB 1.x answers to a SELECT, its rows repeated for as long as the flood lasts
QUERY_HEAD = b'{"results":[{"statement_id":0,"series":[{"name":"host","columns":["time","value"],"values":['
QUERY_ROW = b'["hv1",1700000000000000000],'
URLS = {"influxdb 1.x": "influxdb://127.0.0.1:{port}/db", "influxdb 2.x": "influxdb2://127.0.0.1:{port}/b?org=ops"}


def store_at(port: int, url: str = URLS["influxdb 1.x"], **options) -> InfluxStore:
    return InfluxStore(parse_store_url(url.format(port=port)), token="t0ken", timeout_seconds=DEADLINE_SECONDS,
                       backoff=ONE_RETRY, sleep=lambda _: None, **options)


def one_point() -> list[Point]:
    return [Point("host", {"host": "hv1"}, {"load1": 0.5}, 1_700_000_000_000_000_000)]


def deadline_named(error: StoreUnavailable) -> bool:
    return f"within the {DEADLINE_SECONDS:g} s timeout (a deadline for the whole request)" in str(error)


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_a_write_to_a_store_dripping_a_byte_every_half_second_is_cut_at_the_deadline_of_each_attempt(url):
    with DripServer(interval_seconds=0.5) as peer:
        store = store_at(peer.port, url)
        with pytest.raises(StoreUnavailable) as caught:
            store.write(one_point())
        store.close()
    assert deadline_named(caught.value) and "write failed after 2 attempts" in str(caught.value)
    assert peer.connections_total == 2 and peer.bytes_sent >= 2  # it did drip: every read came in time
    assert "t0ken" not in str(caught.value)


def test_a_query_to_a_store_dripping_from_its_first_byte_is_cut_at_the_deadline():
    with DripServer(interval_seconds=0.5) as peer:
        store = store_at(peer.port)
        with pytest.raises(StoreUnavailable) as caught:
            store.tag_values("host", "host")
        store.close()
    assert deadline_named(caught.value) and "query failed after 2 attempts" in str(caught.value)
    assert [line.split(" ")[1].split("?")[0] for line in peer.request_lines] == ["/query", "/query"]


def test_a_query_answered_200_at_once_whose_rows_drip_is_cut_at_the_deadline():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n" + QUERY_HEAD
    with DripServer(head=head, interval_seconds=0.5) as peer:
        store = store_at(peer.port)
        with pytest.raises(StoreUnavailable) as caught:
            store.tag_values("host", "host")
        store.close()
    assert deadline_named(caught.value)


def test_a_store_that_accepts_and_never_answers_is_cut_at_the_deadline():
    with BlackholeServer() as peer:
        store = store_at(peer.port)
        with pytest.raises(StoreUnavailable) as caught:
            store.write(one_point())
        store.close()
    assert deadline_named(caught.value) and peer.connections_total == 2


def test_a_query_answer_of_400_mb_is_cut_at_the_cap_and_not_tried_again():
    with FloodServer(status=200, body_bytes=FLOOD_BYTES, head=QUERY_HEAD, unit=QUERY_ROW) as peer:
        store = store_at(peer.port, query_answer_max_bytes=1024 * 1024)
        with pytest.raises(StoreUnavailable) as caught:
            store.tag_values("host", "host")
        store.close()
    assert "query answer larger than 1048576 bytes (query_answer_max_bytes)" in str(caught.value)
    assert store.answer_bytes_read <= 1024 * 1024 and peer.connections_total == 1
    assert peer.bytes_sent < FLOOD_BYTES


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_a_write_answered_500_with_a_400_mb_body_reads_a_few_kb_of_each_answer(url):
    with FloodServer(status=500, body_bytes=FLOOD_BYTES) as peer:
        store = store_at(peer.port, url)
        with pytest.raises(StoreUnavailable) as caught:
            store.write(one_point())
        store.close()
    assert "write failed after 2 attempts: HTTP 500: xxxx" in str(caught.value)
    assert len(str(caught.value)) < 1000  # the server's message is cut short too
    assert store.answer_bytes_read <= 2 * ERROR_ANSWER_MAX_BYTES and peer.connections_total == 2


def test_a_query_answered_500_with_a_400_mb_body_reads_a_few_kb_not_the_query_cap():
    with FloodServer(status=500, body_bytes=FLOOD_BYTES, head=b'{"error":"') as peer:
        store = store_at(peer.port)
        with pytest.raises(StoreUnavailable, match="query failed after 2 attempts: HTTP 500"):
            store.tag_values("host", "host")
        store.close()
    assert store.answer_bytes_read <= 2 * ERROR_ANSWER_MAX_BYTES < QUERY_ANSWER_MAX_BYTES
