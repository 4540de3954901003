"""The /metrics endpoint serves the last collection in Prometheus text format over real HTTP, and holds out
against clients that connect and send nothing, drip, never read, or flood (real sockets, outcomes only)."""

import select
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from collector.metrics_endpoint import MAX_CONNECTIONS, MAX_REQUEST_BYTES, MetricsEndpoint, render
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


# --- hostile clients: the endpoint runs in a root process that any local user can connect to ---------------------

def scrape(port: int) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return answer.status, answer.read().decode()


def wait_until(condition, limit_seconds: float = 60.0) -> None:
    """Wait for `condition` (polling); the limit only keeps a broken endpoint from hanging the test."""
    deadline = time.monotonic() + limit_seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (bounded) for the server to close `sock`; True when it did (EOF or reset) without answering."""
    sock.settimeout(30)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def endpoint():
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    endpoint.update([Point("host", {"host": "hv1"}, {"load1": 0.5}, 1)])
    yield endpoint
    endpoint.close()


def test_300_half_open_connections_cost_no_thread_each_and_a_scrape_still_answers(endpoint):
    threads = threading.active_count()
    clients = []
    try:
        for n in range(300):
            sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=30)
            if n % 2:
                sock.sendall(b"GET /metr")  # half a request line, never finished
            clients.append(sock)
        assert threading.active_count() == threads  # the endpoint's one thread was there before
        status, body = scrape(endpoint.port)  # while all 300 are still connected
        assert status == 200 and 'virtwatch_host_load1{host="hv1"} 0.5' in body
        assert endpoint.connections_open <= MAX_CONNECTIONS
        assert endpoint.evicted_total >= 300 - MAX_CONNECTIONS
        assert threading.active_count() == threads
    finally:
        for sock in clients:
            sock.close()


def test_a_silent_connection_is_dropped_at_its_deadline():
    endpoint = MetricsEndpoint("127.0.0.1", 0, deadline_seconds=0.3)
    try:
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
            assert closed_by_server(sock)
        assert endpoint.timed_out_total == 1 and endpoint.connections_open == 0
    finally:
        endpoint.close()


def test_a_client_that_drips_its_request_is_dropped_at_the_deadline_of_the_whole_request():
    endpoint = MetricsEndpoint("127.0.0.1", 0, deadline_seconds=0.3)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"
    sent, answer = 0, b""
    try:
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
            for byte in request:  # one byte every 20 ms: each read is quick, the request never completes in time
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += 1
                if select.select([sock], [], [], 0.02)[0]:
                    try:
                        answer = sock.recv(1024)
                    except ConnectionResetError:
                        pass
                    break
        assert sent < len(request) and answer == b""  # closed without an answer
        assert endpoint.timed_out_total == 1
    finally:
        endpoint.close()


def test_a_client_that_never_reads_a_large_answer_is_dropped_at_the_deadline():
    endpoint = MetricsEndpoint("127.0.0.1", 0, deadline_seconds=0.3)
    endpoint.update([Point("domain", {"host": "hv1", "domain": f"guest-{n:06d}"}, {"state_code": 1}, 1)
                     for n in range(200_000)])  # several MB: more than the socket buffers hold
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
            sock.connect(("127.0.0.1", endpoint.port))
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            wait_until(lambda: endpoint.connections_open == 1)  # accepted: answering, into a full window
            wait_until(lambda: endpoint.connections_open == 0)  # given up at the deadline (or served whole)
            answer = sock.recv(1 << 20)
        assert endpoint.timed_out_total == 1 and answer.startswith(b"HTTP/1.0 200 OK")
        assert scrape(endpoint.port)[0] == 200  # and the next scrape is served
    finally:
        endpoint.close()


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
    (b"GET /other HTTP/1.1\r\n\r\n", 404),
    (b"nonsense\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"b" * (MAX_REQUEST_BYTES + 10) + b"\r\n\r\n", 431),
])
def test_requests_other_than_a_scrape_get_an_error_status(endpoint, request_bytes, status):
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
        sock.sendall(request_bytes[: MAX_REQUEST_BYTES + 1])
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(f"HTTP/1.0 {status} ".encode())


def test_head_gets_the_headers_without_the_body(endpoint):
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
        sock.sendall(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK") and b"Content-Length: " in head and body == b""


def test_closing_stops_the_thread_and_frees_the_port(endpoint):
    threads = threading.active_count()
    port = endpoint.port
    endpoint.close()
    assert threading.active_count() == threads - 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=30)
    MetricsEndpoint("127.0.0.1", port).close()  # the port can be taken again at once
