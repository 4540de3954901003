"""The shipper (collector.shipper) against real stores: a store that never answers delays no collection and
loses nothing; a store that comes back receives everything, in order."""

from __future__ import annotations

import time

import pytest

from collector.shipper import Shipper
from collector.spool import Spool
from servers import BlackholeServer, InfluxDBServer
from tsdb import Point
from tsdb.influx import InfluxStore
from tsdb.urls import parse_store_url

pytestmark = [pytest.mark.influxdb, pytest.mark.slow]
BASE_NS = 1_700_000_000 * 10**9


def batch(number: int) -> list[Point]:
    """One interval's points: a collector point stamped `number` seconds after BASE_NS."""
    return [Point("collector", {"host": "hv 1"}, {"scrape_duration_ms": float(number)}, BASE_NS + number * 10**9)]


def spooled_times(spool: Spool) -> list[int]:
    from collector.spool import decode_points

    return [p.time_ns for segment in sorted(spool.directory.glob("*.jsonl"))
            for p in decode_points(segment.read_bytes())]


def test_a_store_that_never_answers_delays_no_put_and_stop_spools_everything_in_order(tmp_path):
    with BlackholeServer() as blackhole, Spool(tmp_path / "spool", 2**20) as spool:
        store = InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{blackhole.port}/agent"), timeout_seconds=30)
        shipper = Shipper(store, spool, interval_seconds=1.0).start()
        shipper.put(batch(0))
        while blackhole.connections_total == 0:  # the first write is on the wire, and will not come back
            time.sleep(0.01)
        for number in range(1, 6):
            shipper.put(batch(number))  # each returns at once: the queue holds them
        assert shipper.queued_points == 5
        assert shipper.stop(timeout=0.2) is False  # the write is still stuck in the store
        assert spooled_times(spool) == [BASE_NS + n * 10**9 for n in range(6)]


def test_points_spooled_while_the_store_was_refused_arrive_in_order_when_it_returns(tmp_path):
    server = InfluxDBServer(tmp_path / "influxdb").start()
    port = server.port
    server.stop()
    try:
        store = InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{port}/agent"), timeout_seconds=2)
        with Spool(tmp_path / "spool", 2**20) as spool:
            shipper = Shipper(store, spool, interval_seconds=0.2).start()
            for number in range(5):
                shipper.put(batch(number))
            while spool.spooled_total < 5:
                time.sleep(0.01)
            assert not shipper.store_reachable
            server.start(port=port)
            shipper.put(batch(5))
            while spool.pending_segments or shipper.queued_points:
                time.sleep(0.05)
            assert shipper.stop() is True
            frame = store.query("collector", ["scrape_duration_ms"], 0, 2**62)
            assert frame["time"].astype("int64").tolist() == [BASE_NS + n * 10**9 for n in range(6)]
            assert shipper.store_reachable and shipper.points_written_total == 6
        store.close()
    finally:
        server.stop()
