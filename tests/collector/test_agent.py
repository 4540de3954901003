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


def test_the_probe_still_answers_when_the_domain_it_targets_is_undefined(store):
    source = LibvirtSource("test:///default")
    source.call("define", lambda conn: conn.defineXML(
        "<domain type='test'><name>short-lived</name><memory>65536</memory><os><type>hvm</type></os></domain>"))
    agent = Agent(store, source, "hv1")
    assert agent.collect_and_write()
    names = [name for name, _ in source.domain_stats()]
    target = source._probe_domain.name()
    if target != "short-lived":  # make the probe target the domain about to go away
        source._probe_domain = source.call("lookup", lambda conn: conn.lookupByName("short-lived"))
    source.call("undefine", lambda conn: conn.lookupByName("short-lived").undefine())
    assert source.probe_ms() > 0
    assert agent.collect_and_write()
    assert "short-lived" in names
    assert store.latest("libvirtd", ["probe_ok"], 0)["probe_ok"].tolist() == [1.0]


def test_the_agents_write_path_never_loads_pandas():
    """pandas and numpy cost ~86 MB of RSS; the agent only writes, so it must not import them."""
    import subprocess
    import sys

    code = ("import sys; from collector.agent import Agent; from collector.libvirt_source import LibvirtSource; "
            "from tsdb import open_store; store = open_store('influxdb://127.0.0.1:1/x', max_retries=0); "
            "Agent(store, LibvirtSource('test:///default'), 'hv').collect(); "
            "print(sorted(m for m in ('pandas', 'numpy', 'duckdb') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_unreachable_daemon_is_retried_with_backoff_while_every_interval_reports_it_down(store, tmp_path):
    now = [0.0]
    source = LibvirtSource(f"test+unix:///default?socket={tmp_path}/nobody.sock", clock=lambda: now[0])
    agent = Agent(store, source, "hv3")
    attempts = []
    for second in (0, 1, 2, 3, 4, 5, 6, 7):  # one collection a second
        now[0] = float(second)
        agent.collect_and_write()
        attempts.append(source.connect_attempts)
    assert attempts == [1, 2, 3, 3, 4, 4, 4, 4]  # at once, then after 1 s, 2 s, 4 s ...
    assert store.query("libvirtd", ["up"], 0, 2**62)["up"].tolist() == [0.0] * 8
