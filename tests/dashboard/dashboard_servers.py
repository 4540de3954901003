"""`virtwatch dashboard` subprocesses for the tests: start one on a free loopback port and wait until it answers."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from servers import free_port, http

SERVER_START_SECONDS = 60.0
VIRTWATCH = Path(sys.executable).parent / "virtwatch"


def planted_now() -> dt.datetime:
    """Return the planted data's end: the start of the current minute, UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


@dataclass
class DashboardServer:
    """A `virtwatch dashboard` subprocess: its base URL, files, and the planted data's end."""

    url: str
    process: subprocess.Popen
    log_path: Path
    state_dir: Path
    now: dt.datetime

    def planted_range(self, hours: int = 3) -> str:
        """Return the query string of a custom range ending at the planted data's end."""
        start = self.now - dt.timedelta(hours=hours)
        return f"range=custom&start={start:%Y-%m-%dT%H:%M}&end={self.now:%Y-%m-%dT%H:%M}"

    def log(self) -> str:
        """Return the server's output so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(path: Path, store_url: str, state_dir: Path, slo_file: Path, auth: tuple[str, str] | None = None
                 ) -> Path:
    """Write a virtwatch config for the dashboard."""
    text = (f'[store]\nurl = "{store_url}"\n\n[alerts]\nstate_dir = "{state_dir}"\nslo_file = "{slo_file}"\n\n'
            '[dashboard]\nlisten = "127.0.0.1:1"\n')
    if auth:
        text += f'basic_auth_username = "{auth[0]}"\nbasic_auth_password = "{auth[1]}"\n'
    path.write_text(text)
    return path


def start_server(config: Path, work_dir: Path, state_dir: Path, now: dt.datetime,
                 ready_statuses: tuple[int, ...] = (200,)) -> DashboardServer:
    """Start `virtwatch dashboard --config` on a free loopback port and wait until it answers."""
    port = free_port()
    log_path = work_dir / "dashboard.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(VIRTWATCH), "dashboard", "--config", str(config), "--listen",
                                    f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    server = DashboardServer(f"http://127.0.0.1:{port}", process, log_path, state_dir, now)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"virtwatch dashboard exited with {process.returncode}:\n{server.log()}")
        try:
            status, _ = http("GET", server.url + "/", timeout=2.0)
            if status in ready_statuses:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"virtwatch dashboard did not answer on {server.url}:\n{server.log()}")
