"""Domain names and daemon log lines with hostile characters arrive in a real InfluxDB exactly."""

from __future__ import annotations

from xml.sax.saxutils import escape

import libvirt
import pytest

from collector.agent import Agent
from collector.daemon_health import DaemonHealth
from collector.libvirt_source import LibvirtSource
from tsdb import open_store

pytestmark = pytest.mark.influxdb
HOSTILE_DOMAIN = 'db "ünï" \\x,y=z 😀\tend'  # see tsdb.point for the one rule (a backslash before a space)
HOSTILE_MESSAGE = ('Timed out during operation: cannot acquire state change lock (held by monitor=remote'
                   'DispatchDomainGetInfo) for «vm "ünï", a\\b=c» 😀')


def test_a_hostile_domain_name_and_log_line_round_trip_exactly(tmp_path, influxdb_database):
    server, database = influxdb_database
    conn = libvirt.open("test:///default")  # the test driver's state is shared by every connection of a process
    conn.defineXML(f"<domain type='test'><name>{escape(HOSTILE_DOMAIN)}</name><memory>65536</memory>"
                   "<os><type>hvm</type></os></domain>")
    source = LibvirtSource("test:///default")
    log_file = tmp_path / "libvirtd.log"
    log_file.write_text("")
    health = DaemonHealth(None, None, log_file=log_file)
    with open_store(f"influxdb://127.0.0.1:{server.port}/{database}") as store:
        agent = Agent(store, source, 'hv "north", 1', daemon_health=health)
        agent.collect_and_write()
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(f"2026-11-23 20:02:49.561+0000: 21473: error : virDomainObjBeginJobInternal:468 : "
                         f"{HOSTILE_MESSAGE}\n")
        try:
            assert agent.collect_and_write()
        finally:
            conn.lookupByName(HOSTILE_DOMAIN).undefine()
            conn.close()
        names = store.tag_values("domain", "domain")
        assert HOSTILE_DOMAIN in names
        frame = store.query("domain", ["state_code"], 0, 2**62, where={"domain": HOSTILE_DOMAIN, "host": 'hv "north", 1'})
        assert len(frame) == 2
        events = store.events(0)
        assert events["kind"].tolist() == ["log_lock_timeout"]
        assert events["message"].iloc[0].endswith(HOSTILE_MESSAGE)
        assert events["host"].iloc[0] == 'hv "north", 1'
    health.close()
