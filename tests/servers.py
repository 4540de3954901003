"""Private InfluxDB 1.6 and VictoriaMetrics servers for tests: loopback only, everything in a temp dir; and hostile
peers on loopback: one that accepts and never answers (BlackholeServer), one that drips (DripServer), one that
floods (FloodServer)."""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0

# No proxy, whatever the environment says: test traffic stays on loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MissingBinary(RuntimeError):
    """A server binary is not installed."""


def started(server):
    """Start a server, failing (never skipping) the test when its binary is missing."""
    import pytest

    try:
        return server.start()
    except MissingBinary as err:
        pytest.fail(str(err), pytrace=False)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def http(method: str, url: str, data: bytes | str | None = None, timeout: float = 10.0,
         headers: dict | None = None) -> tuple[int, bytes]:
    """Send one HTTP request without any proxy; return (status, body), also for 4xx/5xx answers."""
    if isinstance(data, str):
        data = data.encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class _Server:
    """A server binary run as a child process on 127.0.0.1:<free port>, its data and log in data_dir."""

    binary = ""
    package = ""
    ready_path = ""
    ready_status = 200

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir / f"{self.binary}.log"
        self.port: int | None = None
        self.url = self.base_url = ""
        self.process: subprocess.Popen | None = None

    def command(self, binary: str) -> list[str]:
        """Return the command line that starts the server on self.port."""
        raise NotImplementedError

    def start(self, port: int | None = None) -> "_Server":
        """Start the server (on `port`, or a free one) and wait until it answers; retry on a port taken."""
        binary = shutil.which(self.binary)
        if binary is None:
            raise MissingBinary(f"`{self.binary}` is not installed (Debian package {self.package}): "
                                f"run `make setup-test`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = port if port and attempt == 0 else free_port()
            self.url = self.base_url = f"http://{LOOPBACK}:{self.port}"
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.command(binary), stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2 or "address already in use" not in self.log_tail().lower():
                    raise
        return self

    def _wait_ready(self) -> None:
        """Poll the readiness URL until it answers as expected; raise with the log's tail if it never does."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"{self.binary} exited with status {code} while starting; "
                                   f"last lines of {self.log_path}:\n{self.log_tail()}")
            try:
                status, _ = http("GET", self.url + self.ready_path, timeout=1.0)
                if status == self.ready_status:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.binary} did not answer {self.ready_path} on {self.url} within "
                           f"{START_TIMEOUT_SECONDS:.0f} s; last lines of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class InfluxDBServer(_Server):
    """InfluxDB 1.6 (`influxd run`) with a private config: no reporting, no monitor store, loopback only."""

    binary = "influxd"
    package = "influxdb"
    ready_path = "/ping"
    ready_status = 204

    def __init__(self, data_dir: str | Path, max_row_limit: int = 0):
        super().__init__(data_dir)
        self.max_row_limit = max_row_limit

    def command(self, binary: str) -> list[str]:
        config = self.data_dir / "influxdb.conf"
        config.write_text(self._config(rpc_port=free_port()))
        return [binary, "run", "-config", str(config), "-pidfile", str(self.data_dir / "influxd.pid")]

    def _config(self, rpc_port: int) -> str:
        """Return the config file text for self.port and rpc_port."""
        d = self.data_dir
        return f"""\
reporting-enabled = false
bind-address = "{LOOPBACK}:{rpc_port}"

[meta]
  dir = "{d / 'meta'}"

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "{LOOPBACK}:{self.port}"
  log-enabled = false
  max-row-limit = {self.max_row_limit}

[logging]
  suppress-logo = true

[ifql]
  enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""

    def query(self, q: str, db: str | None = None, **params) -> dict:
        """Run InfluxQL with POST /query and return the parsed JSON answer (extra params e.g. epoch="ns")."""
        form = {"q": q, **params}
        if db is not None:
            form["db"] = db
        status, body = http("POST", self.url + "/query", urllib.parse.urlencode(form),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError(f"InfluxDB /query answered {status}: {body.decode(errors='replace')}")
        return json.loads(body)

    def write(self, db: str, lines: str | bytes, precision: str = "ns") -> None:
        """Write line protocol with POST /write; raise unless InfluxDB answers 204."""
        query = urllib.parse.urlencode({"db": db, "precision": precision})
        status, body = http("POST", f"{self.url}/write?{query}", lines)
        if status != 204:
            raise RuntimeError(f"InfluxDB /write answered {status}: {body.decode(errors='replace')}")

    def _statement(self, q: str) -> None:
        """Run one statement and raise if InfluxDB reports an error for it."""
        result = self.query(q)["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxDB: {q}: {result['error']}")

    def create_database(self, name: str) -> None:
        """Create a database."""
        self._statement(f"CREATE DATABASE {quote_identifier(name)}")

    def drop_database(self, name: str) -> None:
        """Drop a database."""
        self._statement(f"DROP DATABASE {quote_identifier(name)}")


def quote_identifier(name: str) -> str:
    """Quote an InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class VictoriaMetricsServer(_Server):
    """VictoriaMetrics single-node: a real server for the /api/v2/write path."""

    binary = "victoria-metrics"
    package = "victoria-metrics"
    ready_path = "/health"
    ready_status = 200

    def command(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr={LOOPBACK}:{self.port}",
                f"-storageDataPath={self.data_dir / 'data'}", "-retentionPeriod=100y",
                "-search.latencyOffset=0s"]

    def force_flush(self) -> None:
        """Make recently written samples searchable (GET /internal/force_flush)."""
        status, body = http("GET", self.url + "/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"VictoriaMetrics force_flush answered {status}: {body.decode(errors='replace')}")

    def export(self, match: str) -> list[dict]:
        """Return the series matching a selector, one parsed JSON line each (GET /api/v1/export)."""
        query = urllib.parse.urlencode({"match[]": match})
        status, body = http("GET", f"{self.url}/api/v1/export?{query}")
        if status != 200:
            raise RuntimeError(f"VictoriaMetrics export answered {status}: {body.decode(errors='replace')}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def wait_for_series(self, match: str, timeout_seconds: float = 30) -> list[dict]:
        """Force-flush and poll export until the selector matches something; return what it matched."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            self.force_flush()
            rows = self.export(match)
            if rows:
                return rows
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no series matched {match} within {timeout_seconds} s")
            time.sleep(0.2)


class BlackholeServer:
    """A TCP port on 127.0.0.1 that accepts connections and never answers: a store that is there and is not."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._held: list = []
        self.connections_total = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections_total += 1
            self._held.append(connection)  # read nothing, answer nothing, close nothing

    def close(self) -> None:
        """Stop listening and drop every held connection."""
        self._listener.close()
        for connection in self._held:
            connection.close()

    def __enter__(self) -> "BlackholeServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _read_request(connection: socket.socket) -> bytes:
    """Read one HTTP request (headers, then Content-Length bytes of body) from a connection; return its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = connection.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        piece = connection.recv(min(65536, length - len(body)))
        if not piece:
            break
        body += piece
    return head


class _LoopbackPeer:
    """A TCP listener on 127.0.0.1 that serves each connection on its own thread with `serve(connection)`."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.connections_total = 0
        self.open_connections = 0
        self.request_lines: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, self.port))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections_total += 1
                self.open_connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(10.0)  # a guard for reading the request; serve() sets its own
            head = _read_request(connection)
            with self._lock:
                self.request_lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            self.serve(connection)
        except OSError:
            pass  # the client went away: what these peers wait for
        finally:
            connection.close()
            with self._lock:
                self.open_connections -= 1

    def serve(self, connection: socket.socket) -> None:
        """Answer the request just read."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening and end every connection."""
        self._closed.set()
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class DripServer(_LoopbackPeer):
    """An HTTP peer that reads a request, sends `head` at once, then one byte every `interval_seconds`, forever.

    With no head it drips the status line and then an endless header, so a client is stuck before the body; with
    a head holding a status and headers (say Content-Length: 1000000000) it drips the body. Every read a client
    makes returns before any per-read timeout longer than the interval. It notices at once when the client goes.
    """

    DRIPPED_HEAD = b"HTTP/1.1 200 OK\r\nX-Drip: "

    def __init__(self, head: bytes = b"", interval_seconds: float = 0.5, port: int | None = None):
        self.head = head
        self.interval_seconds = interval_seconds
        self.bytes_sent = 0
        super().__init__(port)

    def serve(self, connection: socket.socket) -> None:
        connection.settimeout(None)
        if self.head:
            connection.sendall(self.head)
        dripped = iter(self.DRIPPED_HEAD if not self.head else b"")
        while not self._closed.is_set():
            readable, _, _ = select.select([connection], [], [], self.interval_seconds)
            if readable and not connection.recv(65536):
                return  # the client closed or shut down its side
            connection.sendall(bytes([next(dripped, ord("x"))]))
            self.bytes_sent += 1


class FloodServer(_LoopbackPeer):
    """An HTTP peer that answers every request with `status` and a body of `body_bytes` bytes, made as it is sent.

    The body is `head` and then `unit` repeated (from one block of about 64 KiB: nothing of the size of the body is
    ever allocated); `bytes_sent` says how much of it the client let through before it closed the connection.
    """

    def __init__(self, status: int = 500, body_bytes: int = 400 * 10**6, head: bytes = b"", unit: bytes = b"x",
                 port: int | None = None):
        self.status = status
        self.body_bytes = body_bytes
        self.head = head
        self.block = unit * max(1, 65536 // len(unit))
        self.bytes_sent = 0
        super().__init__(port)

    def serve(self, connection: socket.socket) -> None:
        connection.settimeout(None)
        connection.sendall(f"HTTP/1.1 {self.status} Flood\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {self.body_bytes}\r\n\r\n".encode())
        head = self.head[:self.body_bytes]
        connection.sendall(head)
        self.bytes_sent += len(head)
        left = self.body_bytes - len(head)
        while left > 0 and not self._closed.is_set():
            piece = memoryview(self.block)[:left]
            connection.sendall(piece)
            left -= len(piece)
            self.bytes_sent += len(piece)
