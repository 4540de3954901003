"""Fixtures for the store tests: a faulty HTTP proxy in front of a real InfluxDB or VictoriaMetrics."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request

import pytest



class FaultyProxy:
    """A real HTTP proxy on 127.0.0.1 that answers with planned faults, then forwards to a real server.

    `faults` is a list consumed one per request: an int status to answer with, "timeout" to hold the
    request past the client's timeout, or None to forward. When the list is empty every request forwards.
    """

    def __init__(self, target_base_url: str, hold_seconds: float = 3.0):
        self.target = target_base_url
        self.hold_seconds = hold_seconds
        self.faults: list = []
        self.requests: list[dict] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "timeout":
                    time.sleep(proxy.hold_seconds)
                    fault = 503
                if isinstance(fault, int):
                    payload = b'{"error":"planned fault"}'
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                forwarded = urllib.request.Request(proxy.target + self.path, data=body or None, method=self.command,
                                                   headers={k: v for k, v in self.headers.items()
                                                            if k.lower() not in ("host", "content-length")})
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    response = opener.open(forwarded, timeout=30)
                    status, payload = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def writes(self) -> list[dict]:
        """Return the requests that were writes."""
        return [r for r in self.requests if "write" in r["path"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty_proxy(influxdb_server):
    """A FaultyProxy in front of the session's real InfluxDB."""
    proxy = FaultyProxy(influxdb_server.base_url)
    yield proxy
    proxy.close()


@pytest.fixture
def faulty_proxy_for_vm(victoriametrics_server):
    """A FaultyProxy in front of the session's real VictoriaMetrics: (proxy, server)."""
    proxy = FaultyProxy(victoriametrics_server.base_url)
    yield proxy, victoriametrics_server
    proxy.close()
