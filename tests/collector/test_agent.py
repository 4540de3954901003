"""The agent against libvirt's real test driver (in-process) and a daemon socket nobody listens on."""

from __future__ import annotations

import pytest

from collector.agent import Agent
from collector.libvirt_source import LibvirtSource
from tsdb import open_store


@pytest.fixture
def store(tmp_path):
    with open_store(f"duckdb://{tmp_path}/agent.duckdb") as store:
        yield store


def test_one_collection_from_the_test_driver_writes_domain_daemon_host_and_agent_points(store):
    agent = Agent(store, LibvirtSource("test:///default"), "hv 1, \"north\"")
    assert agent.collect_and_write()
    since = 0
    domains = store.latest("domain", ["state_code"], since, group_by=["host", "domain"])
    assert domains[["host", "domain", "state_code"]].values.tolist() == [['hv 1, "north"', "test", 1.0]]
    daemon = store.latest("libvirtd", ["up", "probe_ok", "probe_latency_ms"], since)
    assert daemon["up"].tolist() == [1.0] and daemon["probe_ok"].tolist() == [1.0]
    assert daemon["probe_latency_ms"].iloc[0] > 0
    host = store.latest("host", ["load1", "domains_running", "domains_defined"], since)
    assert host[["domains_running", "domains_defined"]].values.tolist() == [[1.0, 1.0]]
    assert not store.latest("collector", ["scrape_duration_ms"], since).empty


def test_an_unreachable_daemon_is_reported_down_with_an_event_and_host_load_keeps_coming(store, tmp_path):
    uri = f"test+unix:///default?socket={tmp_path}/no-daemon-here.sock"
    agent = Agent(store, LibvirtSource(uri, call_timeout_seconds=5), "hv2")
    agent.daemon_state = "up"  # it was up a moment ago
    assert agent.collect_and_write()
    daemon = store.latest("libvirtd", ["up", "probe_ok"], 0)
    assert daemon[["up", "probe_ok"]].values.tolist() == [[0.0, 0.0]]
    events = store.events(0)
    assert events["kind"].tolist() == ["daemon_down"]
    assert "no-daemon-here.sock" in events["message"].iloc[0]
    assert not store.latest("host", ["load1"], 0).empty


def test_configured_metadata_becomes_tags_on_the_domain_points(store):
    import libvirt

    nova = "http://openstack.org/xmlns/libvirt/nova/1.1"
    source = LibvirtSource("test:///default")
    source.call("set metadata", lambda conn: conn.lookupByName("test").setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<instance><owner><project>ops, "blue"</project></owner></instance>',
        "nova", nova, libvirt.VIR_DOMAIN_AFFECT_LIVE))
    agent = Agent(store, source, "hv1", metadata_tags={"nova_project": f"{nova} owner/project"})
    assert agent.collect_and_write()
    frame = store.latest("domain", ["state_code"], 0, group_by=["domain", "nova_project"])
    assert frame[["domain", "nova_project"]].values.tolist() == [["test", 'ops, "blue"']]
