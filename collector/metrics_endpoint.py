"""An optional Prometheus `/metrics` endpoint serving the agent's last collection as gauges.

Names are `virtwatch_<measurement>_<field>`; tags become labels, escaped per the text exposition format
(backslash, double quote and line feed). String fields and events are not exported.
"""

from __future__ import annotations

import http.server
import re
import threading

from tsdb import Point

EXPORTED = ("libvirtd", "host", "collector", "domain")
_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def render(points: list[Point]) -> str:
    """Return the text exposition of the numeric fields of the exported measurements."""
    samples: dict[str, list[str]] = {}
    for point in points:
        if point.measurement not in EXPORTED:
            continue
        labels = ",".join(f'{_NAME_INVALID.sub("_", key)}="{value.translate(_LABEL_ESCAPES)}"'
                          for key, value in sorted(point.tags.items()))
        for field, value in point.fields.items():
            if isinstance(value, str):
                continue
            name = "virtwatch_" + _NAME_INVALID.sub("_", f"{point.measurement}_{field}")
            samples.setdefault(name, []).append(f"{name}{{{labels}}} {float(value)!r}")
    lines = []
    for name in sorted(samples):
        lines.append(f"# TYPE {name} gauge")
        lines += samples[name]
    return "\n".join(lines) + "\n"


class MetricsEndpoint:
    """Serves GET /metrics from a background thread; `update()` replaces what it serves."""

    def __init__(self, host: str, port: int):
        self._body = b""
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = endpoint._body
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="virtwatch-metrics", daemon=True).start()

    def update(self, points: list[Point]) -> None:
        """Serve the given collection from now on."""
        self._body = render(points).encode("utf-8")

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
