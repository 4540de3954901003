"""Real things the alert engine's notifiers talk to in tests: a scripted HTTP receiver and a private Alertmanager."""

from __future__ import annotations

import http.server
import json
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from servers import LOOPBACK, _Server

TIMEOUT = "timeout"  # a script step: read the request, then answer nothing until the client has given up


@dataclass
class Request:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None  # the status answered, None when the step was a timeout

    def json(self):
        """Return the body parsed as JSON."""
        return json.loads(self.body)


class HTTPReceiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records requests and answers a programmable script.

    Each request takes the next step of the script: a status code (answered with `reply_body`, or the request
    body echoed back when `echo` is set) or TIMEOUT (hold the connection until `stop`, never answer). An
    exhausted script answers 200.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.requests: list[Request] = []
        self.echo = False
        self.reply_body = b"ok"
        self._script: deque = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *steps) -> None:
        """Answer the next requests with these steps, in order."""
        with self._lock:
            self._script.extend(steps)

    def start(self) -> None:
        """Start listening on the port."""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    step = receiver._script.popleft() if receiver._script else 200
                    receiver.requests.append(Request("POST", self.path, dict(self.headers), body,
                                                     None if step == TIMEOUT else step))
                if step == TIMEOUT:
                    receiver._release.wait()
                    self.close_connection = True
                    return
                reply = body if receiver.echo else receiver.reply_body
                self.send_response(step)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Release held requests and stop listening."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def delivered(self) -> list[Request]:
        """Return the requests answered with a 2xx status."""
        return [r for r in self.requests if r.answered is not None and 200 <= r.answered <= 299]


class AlertmanagerServer(_Server):
    """Prometheus Alertmanager with a route to a receiver that sends nowhere; clustering off; loopback only."""

    binary = "prometheus-alertmanager"
    package = "prometheus-alertmanager"
    ready_path = "/-/ready"

    def command(self, binary: str) -> list[str]:
        config = Path(self.data_dir) / "alertmanager.yml"
        config.write_text("route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n")
        return [binary, f"--config.file={config}", f"--storage.path={Path(self.data_dir) / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}", "--cluster.listen-address="]
