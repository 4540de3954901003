"""Losing the store loses nothing: the agent spools while a real InfluxDB is down and replays in order."""

from __future__ import annotations

import time

import pytest

from collector.agent import Agent
from collector.libvirt_source import LibvirtSource
from collector.spool import Spool
from servers import InfluxDBServer
from tsdb.influx import InfluxStore
from tsdb.retry import Backoff
from tsdb.urls import parse_store_url

pytestmark = pytest.mark.influxdb


def collector_times(store) -> list[int]:
    frame = store.query("collector", ["scrape_duration_ms"], 0, 2**62)
    return frame["time"].astype("int64").tolist()


def test_points_collected_while_the_store_is_down_arrive_in_order_when_it_returns(tmp_path):
    server = InfluxDBServer(tmp_path / "influxdb").start()
    try:
        store = InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{server.port}/agent"),
                            backoff=Backoff(max_retries=1, base_seconds=0.01), timeout_seconds=2)
        clock = iter(range(1_700_000_000, 1_700_001_000, 10))
        with Spool(tmp_path / "spool", 10 * 2**20) as spool:
            agent = Agent(store, LibvirtSource("test:///default"), "hv1", spool=spool, clock=lambda: next(clock))
            assert agent.collect_and_write()
            server.stop()
            assert not agent.collect_and_write()
            assert not agent.collect_and_write()
            assert spool.pending_segments == 2
            server.start(port=server.port)
            assert agent.collect_and_write()
            assert spool.pending_segments == 0 and spool.replayed_total > 0
            assert agent.collect_and_write()  # its collector point counts what the recovery spooled and replayed
            expected = [(1_700_000_000 + 10 * i) * 10**9 for i in range(5)]
            assert collector_times(store) == expected
            last = store.latest("collector", ["points_spooled_total", "points_replayed_total"], 0)
            assert last["points_spooled_total"].iloc[0] == spool.spooled_total
        store.close()
    finally:
        server.stop()


def test_points_the_store_refuses_are_counted_not_spooled_forever(tmp_path, influxdb_database):
    server, database = influxdb_database
    store = InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{server.port}/{database}"))
    # load1 becomes a string field in this week's shard (InfluxDB keeps field types per shard)
    server.write(database, f"host,host=hv1 load1=\"not a number\" {time.time_ns() - 10**9}\n")
    with Spool(tmp_path / "spool", 2**20) as spool:
        agent = Agent(store, LibvirtSource("test:///default"), "hv1", spool=spool)
        assert agent.collect_and_write()
        assert spool.pending_segments == 0
        assert agent.shipper.points_rejected_total > 0
    store.close()


def test_a_full_spool_drops_the_oldest_points_and_says_so_with_an_event(tmp_path):
    server = InfluxDBServer(tmp_path / "influxdb").start()
    port = server.port
    server.stop()
    store = InfluxStore(parse_store_url(f"influxdb://127.0.0.1:{port}/agent"),
                        backoff=Backoff(max_retries=0), timeout_seconds=1)
    clock = iter(range(1_700_000_000, 1_700_001_000, 10))
    with Spool(tmp_path / "spool", 3000) as spool:  # room for about two collections
        agent = Agent(store, LibvirtSource("test:///default"), "hv1", spool=spool, clock=lambda: next(clock))
        for _ in range(5):
            assert not agent.collect_and_write()
        assert spool.dropped_total > 0 and spool.size_bytes <= 3000
        server.start(port=port)
        assert agent.collect_and_write()
        assert agent.collect_and_write()  # its collector point counts what the recovery dropped
        events = store.events(0)
        dropped = events[events["kind"] == "points_dropped"]
        assert len(dropped) >= 1 and all("oldest points dropped" in m for m in dropped["message"])
        # the exact count travels in the agent's own measurement (drop events can be dropped too)
        last = store.latest("collector", ["points_dropped_total"], 0)
        assert last["points_dropped_total"].iloc[0] == spool.dropped_total
    store.close()
    server.stop()
