"""The /metrics endpoint serves the last collection in Prometheus text format over real HTTP."""

import urllib.error
import urllib.request

import pytest

from collector.metrics_endpoint import MetricsEndpoint, render
from tsdb import Point


def test_numeric_fields_become_gauges_with_escaped_labels():
    text = render([
        Point("libvirtd", {"host": "hv1"}, {"up": 1, "probe_latency_ms": 2.5}, 1),
        Point("domain", {"host": "hv1", "domain": 'db "1"\\x\nz'}, {"state_code": 1}, 1),
        Point("event", {"host": "hv1", "kind": "restart", "severity": "warning"}, {"message": "m", "count": 1}, 1),
    ])
    assert 'virtwatch_libvirtd_up{host="hv1"} 1.0' in text
    assert 'virtwatch_libvirtd_probe_latency_ms{host="hv1"} 2.5' in text
    assert 'virtwatch_domain_state_code{domain="db \\"1\\"\\\\x\\nz",host="hv1"} 1.0' in text
    assert "event" not in text
    assert "# TYPE virtwatch_libvirtd_up gauge" in text


def test_the_endpoint_serves_the_latest_update_and_only_metrics():
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    try:
        endpoint.update([Point("host", {"host": "hv1"}, {"load1": 0.5}, 1)])
        endpoint.update([Point("host", {"host": "hv1"}, {"load1": 0.75}, 2)])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = opener.open(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5).read().decode()
        assert 'virtwatch_host_load1{host="hv1"} 0.75' in body and "0.5" not in body
        with pytest.raises(urllib.error.HTTPError) as caught:
            opener.open(f"http://127.0.0.1:{endpoint.port}/", timeout=5)
        assert caught.value.code == 404
    finally:
        endpoint.close()
