"""`virtwatch demo`: the whole product in one process on the embedded store, with nothing else to install.

The first start simulates a fleet (simulator/, seeded) from `--days` ago until a day ahead and writes its newest
hour into `<data dir>/demo.duckdb` (column batches, simulator.columns), so the dashboard serves every host at once,
with a banner showing the progress of the rest: the older history, then its SLI rollups computed inside DuckDB
(simulator.rollups). The alert engine and the feeder start once the history is complete. In one process:

- a feeder writes the simulated fleet's later points as their time comes, so the fleet stays alive;
- the collector agent watches libvirt's built-in test driver (`test:///default`) as one more, real host;
- the alert engine evaluates the SLOs and rules and prints pages to the console;
- the dashboard serves on 127.0.0.1:PORT.

Ctrl-C (or SIGTERM) stops them all and exits 0. A second start reuses the data directory: it simulates only the
time since the data ends (a new segment of the same fleet) and starts at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "demo.json"
STORE_FILE = "demo.duckdb"
LIVE_AHEAD_SECONDS = 86400  # each simulated segment runs this far ahead of now; the feeder writes it as time comes
STATE_EVERY_SECONDS = 60.0  # how often the feeder records how far it has written
NEWEST_FIRST_SECONDS = 3600  # the first start writes this much of the newest history before serving the dashboard
HISTORY_PATH = "/_demo/history"  # the banner polls the history's progress here (JSON)
MAX_HOSTS = 1000  # the most simulated hosts: a bigger fleet takes hours to backfill
MIN_INCIDENT_DAYS = 2  # the simulator scripts its incidents only over spans this long
DEMO_BASE_RATES = {"restart": 0.3, "hang_start": 0.1}  # per host per day: enough for the analysis to say something
#: the demo's SLOs: deploy/slos.toml's, with freshness counted per minute (the simulated agents write each minute)
DEMO_SLOS = """
[[slo]]
name = "libvirtd-availability"
description = "The libvirt daemon answers the agent's timed stats probe."
objective = 99.9
period = "30d"
sli = "libvirtd_availability"

[[slo]]
name = "libvirtd-latency"
description = "Stats probes succeed within one second."
objective = 99.0
period = "30d"
sli = "libvirtd_latency"
threshold_ms = 1000

[[slo]]
name = "domain-stability"
description = "Guests neither fail (QEMU killed or crashed) nor wedge (partial stats: a held job lock)."
objective = 99.9
period = "30d"
sli = "domain_stability"

[[slo]]
name = "collection-freshness"
description = "Every host's agent reports every minute."
objective = 99.0
period = "30d"
sli = "collection_freshness"
interval_seconds = 60
"""


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the demo's arguments."""
    parser.add_argument("--port", type=int, default=8050, help="dashboard port on 127.0.0.1 (default 8050)")
    parser.add_argument("--data-dir", metavar="DIR", type=Path,
                        help="where the demo keeps its store and state (default: 'demo' in the user's data dir)")
    parser.add_argument("--hosts", type=int, default=24, help="simulated hosts (default 24; first start only)")
    parser.add_argument("--days", type=float, default=14.0, help="days of history to simulate (default 14; first "
                        "start only)")
    parser.add_argument("--seed", type=int, default=1, help="the simulation's seed (default 1; first start only)")
    parser.add_argument("--libvirt-uri", default="test:///default",
                        help="what the live agent watches (default: libvirt's built-in test driver)")


@dataclass
class DemoState:
    """What the data directory holds: the fleet simulated, and how far its points are written."""

    hosts: int
    seed: int
    written_until_ns: int
    segments: int = 1

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        """Read the state file; None when there is none (a first start)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return cls(int(data["hosts"]), int(data["seed"]), int(data["written_until_ns"]), int(data["segments"]))

    def save(self, path: Path) -> None:
        """Write the state file atomically and durably."""
        from tsdb.durable import write_durably

        write_durably(path, json.dumps(self.__dict__).encode("utf-8"))


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise."""

    def __init__(self, what: str, stream=None) -> None:
        self.what, self.stream = what, stream or sys.stderr
        self.began = time.monotonic()
        self._shown = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: float, total: float) -> None:
        """Show `done` of `total`."""
        share = min(1.0, done / total) if total else 1.0
        elapsed = time.monotonic() - self.began
        if self._tty:
            bar = "#" * int(share * 30)
            print(f"\r{self.what} [{bar:<30}] {share * 100:5.1f}% {elapsed:5.0f} s", end="", file=self.stream,
                  flush=True)
        elif int(share * 10) > self._shown:
            self._shown = int(share * 10)
            print(f"{self.what}: {share * 100:3.0f}% ({elapsed:.0f} s)", file=self.stream, flush=True)

    def finish(self, note: str = "") -> None:
        """End the bar with a line of its own."""
        elapsed = time.monotonic() - self.began
        end = "\n" if self._tty else ""
        print(f"{end}{self.what}: done in {elapsed:.0f} s{'; ' + note if note else ''}", file=self.stream, flush=True)


def _segment(state: DemoState, start_ns: int, incidents: bool, now_ns: int | None = None):
    """Simulate one segment of the demo fleet: from start_ns until a day after now (`now_ns`, the clock's by
    default: a segment's points depend on its length, so a fixed now makes the same fleet every time)."""
    from simulator import DEFAULT_BASE_RATES, Effect, FleetSpec, simulate

    DEMO_EFFECTS = (Effect("libvirtd.job_queue_depth", "restart", factor=5.0),  # the demo fleet's hidden truth,
                    Effect("host.load1", "hang_start", factor=3.0))             # for the Correlation page to find

    step_ns = 60 * 10**9
    end_ns = ((time.time_ns() if now_ns is None else now_ns) + LIVE_AHEAD_SECONDS * 10**9) // step_ns * step_ns
    start_ns = start_ns // step_ns * step_ns
    days = (end_ns - start_ns) / 86400e9
    spec = FleetSpec(hosts=state.hosts, days=days, seed=state.seed + state.segments - 1, end_ns=end_ns,
                     incidents=incidents and days >= MIN_INCIDENT_DAYS, effects=DEMO_EFFECTS,
                     base_rate_per_day={**DEFAULT_BASE_RATES, **DEMO_BASE_RATES})
    return simulate(spec)


class Feeder:
    """Write a simulation's points: those up to now at once (with progress), the rest as their time comes."""

    def __init__(self, store, state: DemoState, state_path: Path) -> None:
        self.store, self.state, self.state_path = store, state, state_path
        self._held: list = []  # points of the current batch still in the future, oldest first
        self._batches = None
        self._saved_at = 0.0
        #: whether the state file may say how far the points are written (not while older history is missing)
        self.recording = True

    def start_segment(self, simulation, progress: Progress | None = None) -> int:
        """Begin writing a simulation: write its past now (column batches); return how many points that was."""
        from simulator import write_simulation

        now_step = simulation.step_at(time.time_ns())
        written = write_simulation(self.store, simulation, progress, stop_step=now_step)
        self.resume(simulation, now_step)
        return written

    def resume(self, simulation, from_step: int) -> None:
        """Write a simulation's points from step `from_step` on as their time comes (the earlier ones are written)."""
        self._batches = simulation.points(batch_steps=60, from_step=from_step)
        self._held = []
        boundary = simulation.start_ns + from_step * simulation.spec.step_seconds * 10**9
        self.state.written_until_ns = max(self.state.written_until_ns, boundary)
        self._record(force=True)

    def _next_batch(self) -> bool:
        if self._held:
            return True
        batch = next(self._batches, None)
        if batch is None:
            return False
        self._held = sorted(batch, key=lambda p: p.time_ns)
        return True

    def _due(self, now_ns: int) -> list:
        """Take the held points whose time has come."""
        index = 0
        while index < len(self._held) and self._held[index].time_ns <= now_ns:
            index += 1
        due, self._held = self._held[:index], self._held[index:]
        if due:
            self.state.written_until_ns = max(self.state.written_until_ns, due[-1].time_ns + 1)
        return due

    def _record(self, force: bool = False) -> None:
        if not self.recording:
            return
        if force or time.monotonic() - self._saved_at >= STATE_EVERY_SECONDS:
            self.state.save(self.state_path)
            self._saved_at = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        """Write points as their time comes until stopped; simulate the next segment when one runs out."""
        while not stop.is_set():
            if not self._next_batch():  # the segment is over: the fleet lives on in a new one
                self.state.segments += 1
                self.start_segment(_segment(self.state, self.state.written_until_ns, incidents=False))
                continue
            due = self._due(time.time_ns())
            if due:
                try:
                    self.store.write(due)
                except Exception as error:
                    log.error("demo feeder: could not write %d simulated points: %s", len(due), error)
            self._record()
            stop.wait(1.0)
        self._record(force=True)


class HistoryStatus:
    """How far the first start's history has loaded: the dashboard's banner polls it (see watch_history)."""

    def __init__(self, complete: bool = False) -> None:
        self._lock = threading.Lock()
        self.complete = complete
        self.message = "" if complete else "Loading the simulated history"

    def update(self, message: str) -> None:
        """Say what is being loaded."""
        with self._lock:
            self.message = message

    def finish(self) -> None:
        """Say the history is complete."""
        with self._lock:
            self.complete, self.message = True, "The simulated history is loaded"

    def as_dict(self) -> dict:
        with self._lock:
            return {"complete": self.complete, "message": self.message}


_LOADING_NOTE = " (the fleet shows the newest hour; SLOs and alerts start once the history is loaded)"
_BANNER = """<div id="demo-history-banner" role="status" style="position:fixed;bottom:0;left:0;right:0;z-index:10000;
background:#fff3cd;color:#4d3800;border-top:1px solid #e0c36a;padding:6px 12px;font:14px sans-serif;
text-align:center">%s</div>
<script>(function () {
  var banner = document.getElementById("demo-history-banner");
  function poll() {
    fetch("%s").then(function (r) { return r.json(); }).then(function (s) {
      banner.textContent = s.message + (s.complete ? ": reload the page to see all of it" : %s);
      if (s.complete) { setTimeout(function () { banner.remove(); }, 20000); } else { setTimeout(poll, 1000); }
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();</script>
"""


def watch_history(server, status: HistoryStatus) -> None:
    """Serve the history's progress as JSON and, until it is complete, put a banner with it on every page.

    Added to the dashboard's Flask server from here (nothing in dashboard/ knows of the demo): a route and an
    after_request hook that inserts the banner before </body> of HTML pages."""
    import html

    from flask import jsonify

    server.add_url_rule(HISTORY_PATH, "demo_history", lambda: jsonify(status.as_dict()))

    @server.after_request
    def add_banner(response):
        state = status.as_dict()
        if state["complete"] or response.mimetype != "text/html" or response.status_code != 200 \
                or response.direct_passthrough or response.headers.get("Content-Encoding"):
            return response
        page = response.get_data(as_text=True)
        if "</body>" in page:
            banner = _BANNER % (html.escape(state["message"] + _LOADING_NOTE), HISTORY_PATH,
                                json.dumps(_LOADING_NOTE).replace("<", "\\u003c"))
            response.set_data(page.replace("</body>", banner + "</body>", 1))
        return response


class _Stopped(Exception):
    """Ctrl-C while the history was loading."""


def load_history(store, simulation, slos, stop_step: int, backfill_seconds: int, status: HistoryStatus,
                 stop: threading.Event) -> None:
    """Write a simulation's steps before `stop_step` and roll up their SLIs (simulator.rollups), showing progress
    on stderr and in `status`; raise _Stopped when `stop` is set meanwhile."""
    from simulator import write_simulation
    from simulator.rollups import roll_up_history

    def shown(bar: Progress, what: str):
        def progress(done: float, total: float) -> None:
            if stop.is_set():
                raise _Stopped()
            bar(done, total)
            status.update(f"{what}: {min(1.0, done / total) * 100 if total else 100:.0f}%")
        return progress

    writing = Progress("writing the simulated history")
    written = write_simulation(store, simulation, shown(writing, "Writing the simulated history"),
                               stop_step=stop_step)
    writing.finish(f"{written:,} points written")
    rolling = Progress("rolling up the SLIs")
    roll_up_history(store, slos, time.time_ns(), backfill_seconds, progress=shown(rolling, "Rolling up the SLIs"))
    rolling.finish()
    status.finish()


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or SIGTERM; return 0, or 2 when it cannot start."""
    import signal

    from alerts.engine import Engine
    from alerts.notify.console import ConsoleNotifier
    from alerts.slo import parse_slos
    from virtwatch.config import AgentConfig, AlertsConfig, ConfigError
    from virtwatch.wiring import agent_from_config, rules_from_config, setup_logging

    import tomllib

    setup_logging()
    for name, value, low, high in (("--port", args.port, 1, 65535), ("--hosts", args.hosts, 1, MAX_HOSTS)):
        if not low <= value <= high:
            print(f"{name} {value}: out of range, must be from {low} to {high}", file=sys.stderr)
            return 2
    if not 0 < args.days <= 60:
        print(f"--days {args.days:g}: must be more than 0 and at most 60", file=sys.stderr)
        return 2
    data_dir = args.data_dir or _default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"--data-dir {str(data_dir)!r}: cannot create it: {error.strerror}", file=sys.stderr)
        return 2
    try:
        listener = socket.create_server(("127.0.0.1", args.port))  # claim the port before the long backfill
    except OSError as error:
        print(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port}: {error.strerror}", file=sys.stderr)
        return 2

    from tsdb import StoreError, open_store

    try:
        store = open_store(f"duckdb://{(data_dir / STORE_FILE).resolve()}")
    except StoreError as error:
        listener.close()
        print(f"--data-dir {str(data_dir)!r}: {error}", file=sys.stderr)
        return 2
    slos = parse_slos(tomllib.loads(DEMO_SLOS))
    state_path = data_dir / STATE_FILE
    stop = threading.Event()
    threads: list[threading.Thread] = []
    agent = server = None
    try:
        state = DemoState.load(state_path)
        now_ns = time.time_ns()
        history = HistoryStatus(complete=state is not None)
        if state is None:
            state = DemoState(args.hosts, args.seed, 0)
            print(f"virtwatch demo: a first start in {data_dir}: simulating {args.hosts} hosts over "
                  f"{args.days:g} days", file=sys.stderr)
            simulation = _segment(state, now_ns - int(args.days * 86400e9), incidents=True)
            now_step = simulation.step_at(time.time_ns())
            newest = max(0, now_step - NEWEST_FIRST_SECONDS // simulation.spec.step_seconds)
            from simulator import write_simulation

            written = write_simulation(store, simulation, start_step=newest, stop_step=now_step)
            print(f"virtwatch demo: the newest hour written ({written:,} points); the rest follows with the "
                  f"dashboard up", file=sys.stderr)
            feeder = Feeder(store, state, state_path)
            feeder.recording = False  # stopped before the history is complete, it leaves no state: it begins again
            feeder.resume(simulation, now_step)
        else:
            gap_seconds = max(0.0, (now_ns - state.written_until_ns) / 1e9)
            print(f"virtwatch demo: reusing {data_dir} ({state.hosts} simulated hosts; "
                  f"{gap_seconds / 3600:.1f} h to catch up)", file=sys.stderr)
            state.segments += 1
            feeder = Feeder(store, state, state_path)
            feeder.start_segment(_segment(state, state.written_until_ns, incidents=False),
                                 Progress("catching up") if gap_seconds > 600 else None)

        logging.getLogger("alerts.engine").setLevel(logging.ERROR)  # the console receiver prints the pages
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        alerts_config = AlertsConfig(state_dir=data_dir / "alerts", agent_silent_after_seconds=180.0)
        server = _dashboard_server(listener, store, slos, alerts_config.state_dir, history)
        threads.append(threading.Thread(target=server.serve_forever, name="demo-dashboard", daemon=True))
        threads.append(threading.Thread(target=feeder.run, args=(stop,), name="demo-feeder", daemon=True))
        agent = agent_from_config(AgentConfig(), store, libvirt_uri=args.libvirt_uri,
                                  host_name=socket.gethostname() + " (test driver)", interval_seconds=10.0)
        threads.append(threading.Thread(target=agent.run, args=(stop,), name="demo-agent", daemon=True))
        for thread in threads:
            thread.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        print(f"virtwatch demo: open http://127.0.0.1:{args.port}/  (the agent watches {args.libvirt_uri}; "
              "pages print here; Ctrl-C stops)", flush=True)

        if not history.complete:
            try:
                load_history(store, simulation, slos, newest, int(args.days * 86400) + 3600, history, stop)
            except _Stopped:
                print("virtwatch demo: stopping before the history was complete; the next start begins it again",
                      file=sys.stderr, flush=True)
                return 0
            print("virtwatch demo: the history is complete", file=sys.stderr, flush=True)
            feeder.recording = True
            feeder._record(force=True)
        engine = Engine(store, slos, rules_from_config(alerts_config), {"console": ConsoleNotifier()},
                        alerts_config.state_dir, external_url=f"http://127.0.0.1:{args.port}")
        threads.append(threading.Thread(target=engine.run, args=(stop,), name="demo-alerts", daemon=True))
        threads[-1].start()
        stop.wait()
        print("virtwatch demo: stopping", file=sys.stderr, flush=True)
        return 0
    except ConfigError as error:  # cannot happen with the built-in SLOs and defaults, but say so if it does
        print("\n".join(error.problems), file=sys.stderr)
        return 2
    finally:
        stop.set()
        if server is not None:
            server.shutdown()
        for thread in threads:
            thread.join(timeout=30)
        if agent is not None:
            agent.source.close()
            agent.daemon_health.close()
        listener.close()
        store.close()


def _default_data_dir() -> Path:
    """Return 'demo' in the user's data directory (~/.local/share/virtwatch/demo)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("virtwatch")) / "demo"


def _dashboard_server(listener: socket.socket, store, slos, state_dir: Path, history: HistoryStatus):
    """Return a threaded WSGI server serving the dashboard on an already bound socket, with the history's banner."""
    from werkzeug.serving import make_server

    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(store=store, slos=slos, state_dir=state_dir))
    watch_history(app.server, history)
    host, port = listener.getsockname()[:2]
    return make_server(host, port, app.server, threaded=True, fd=listener.fileno())
