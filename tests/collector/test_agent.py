"""The agent against libvirt's real test driver (in-process) and a daemon socket nobody listens on."""

from __future__ import annotations

import libvirt
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
    rounds = store.query("domain_round", ["domain_points", "wedged_points"], since, 2**62)
    assert rounds[["domain_points", "wedged_points"]].values.tolist() == [[1, 0]]  # the round's count, stamped alike
    assert rounds["time"].tolist() == domains["time"].tolist()


def test_an_unreachable_daemon_is_reported_down_with_an_event_and_host_load_keeps_coming(store, tmp_path):
    uri = f"test+unix:///default?socket={tmp_path}/no-daemon-here.sock"
    agent = Agent(store, LibvirtSource(uri, call_timeout_seconds=5), "hv2")
    assert agent.collect_and_write()
    assert agent.daemon_state == "down"
    daemon = store.latest("libvirtd", ["up", "probe_ok"], 0)
    assert daemon[["up", "probe_ok"]].values.tolist() == [[0.0, 0.0]]
    events = store.events(0)
    assert events["kind"].tolist() == ["daemon_down"]
    assert "no-daemon-here.sock" in events["message"].iloc[0]
    assert not store.latest("host", ["load1"], 0).empty


def test_configured_metadata_becomes_tags_on_the_domain_points(store):
    nova = "http://openstack.org/xmlns/libvirt/nova/1.1"
    conn = libvirt.open("test:///default")  # the test driver's state is shared by every connection of a process
    conn.lookupByName("test").setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<instance><owner><project>ops, "blue"</project></owner></instance>',
        "nova", nova, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    agent = Agent(store, LibvirtSource("test:///default"), "hv1", metadata_tags={"nova_project": f"{nova} owner/project"})
    assert agent.collect_and_write()
    frame = store.latest("domain", ["state_code"], 0, group_by=["domain", "nova_project"])
    assert frame[["domain", "nova_project"]].values.tolist() == [["test", 'ops, "blue"']]
    conn.close()


def test_the_probe_still_answers_when_the_domain_it_targets_is_undefined(store):
    conn = libvirt.open("test:///default")
    conn.defineXML("<domain type='test'><name>short-lived</name><memory>65536</memory><os><type>hvm</type></os>"
                   "</domain>")
    source = LibvirtSource("test:///default")
    agent = Agent(store, source, "hv1")
    assert agent.collect_and_write()
    source._probe_domain = source._conn.lookupByName("short-lived")  # the probe targets the domain about to go
    conn.lookupByName("short-lived").undefine()
    probe = source.probe()
    assert probe.wait(5) and probe.result() > 0
    assert agent.collect_and_write()
    domains = store.query("domain", ["state_code"], 0, 2**62, group_by=["domain"])
    assert "short-lived" in domains["domain"].tolist()
    assert store.latest("libvirtd", ["probe_ok"], 0)["probe_ok"].tolist() == [1.0]
    conn.close()


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
        attempts.append(source.connections_opened_total)
    assert attempts == [1, 2, 3, 3, 4, 4, 4, 4]  # at once, then after 1 s, 2 s, 4 s ...
    assert store.query("libvirtd", ["up"], 0, 2**62)["up"].tolist() == [0.0] * 8
