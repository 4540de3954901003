"""`virtwatch demo`: the whole product in one process on the embedded store, with nothing else to install.

The first start simulates a fleet (simulator/, seeded) from `--days` ago until a day ahead, writes everything up
to now into `<data dir>/demo.duckdb` with a progress bar, and rolls up its SLIs. Then, in one process:

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
STATE_EVERY_SECONDS = 60.0
MAX_HOSTS = 1000  # the most simulated hosts: a bigger fleet takes hours to backfill
MIN_INCIDENT_DAYS = 2  # the simulator scripts its incidents only over spans this long
DEMO_BASE_RATES = {"restart": 0.3, "hang_start": 0.1}  # per host per day: enough for the analysis to say something  # how often the feeder records how far it has written
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
description = "Guests neither crash nor wedge (partial stats: a held job lock)."
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
        from alerts.durable import write_durably

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


def _segment(state: DemoState, start_ns: int, incidents: bool):
    """Simulate one segment of the demo fleet: from start_ns until a day after now."""
    from simulator import DEFAULT_BASE_RATES, Effect, FleetSpec, simulate

    DEMO_EFFECTS = (Effect("libvirtd.job_queue_depth", "restart", factor=5.0),  # the demo fleet's hidden truth,
                    Effect("host.load1", "hang_start", factor=3.0))             # for the Correlation page to find

    step_ns = 60 * 10**9
    end_ns = (time.time_ns() + LIVE_AHEAD_SECONDS * 10**9) // step_ns * step_ns
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

    def start_segment(self, simulation, progress: Progress | None = None) -> int:
        """Begin writing a simulation: write its past now; return how many points that was."""
        self._batches = simulation.points(batch_steps=60)
        past_total = simulation.point_count() * max(0.0, min(1.0, (time.time_ns() - simulation.start_ns)
                                                               / (simulation.end_ns - simulation.start_ns)))
        written = 0
        if progress:
            progress(0, past_total)
        while self._next_batch():
            due = self._due(time.time_ns())
            if due:
                self.store.write(due)
                written += len(due)
                if progress:
                    progress(written, past_total)
            if self._held:
                break  # the rest of this batch lies ahead
        self._record(force=True)
        return written

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


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or SIGTERM; return 0, or 2 when it cannot start."""
    import signal

    from alerts.engine import Engine
    from alerts.notify.console import ConsoleNotifier
    from alerts.rollups import NO_ROLLUPS, roll_up
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
        if state is None:
            state = DemoState(args.hosts, args.seed, 0)
            print(f"virtwatch demo: a first start in {data_dir}: simulating {args.hosts} hosts over "
                  f"{args.days:g} days", file=sys.stderr)
            simulation = _segment(state, now_ns - int(args.days * 86400e9), incidents=True)
            feeder = Feeder(store, state, state_path)
            points = feeder.start_segment(simulation, Progress("writing the simulated fleet"))
            print(f"virtwatch demo: {points:,} points written", file=sys.stderr)
            rolling = Progress("rolling up the SLIs")
            for index, slo in enumerate(slos):
                roll_up(store, slo, time.time_ns(), NO_ROLLUPS, backfill_seconds=int(args.days * 86400) + 3600,
                        chunk_seconds=86400,
                        progress=lambda done, total, i=index: rolling(i + done / max(total, 1), len(slos)))
            rolling.finish()
        else:
            gap_seconds = max(0.0, (now_ns - state.written_until_ns) / 1e9)
            print(f"virtwatch demo: reusing {data_dir} ({state.hosts} simulated hosts; "
                  f"{gap_seconds / 3600:.1f} h to catch up)", file=sys.stderr)
            state.segments += 1
            feeder = Feeder(store, state, state_path)
            feeder.start_segment(_segment(state, state.written_until_ns, incidents=False),
                                 Progress("catching up") if gap_seconds > 600 else None)
        threads.append(threading.Thread(target=feeder.run, args=(stop,), name="demo-feeder", daemon=True))

        agent = agent_from_config(AgentConfig(), store, libvirt_uri=args.libvirt_uri,
                                  host_name=socket.gethostname() + " (test driver)", interval_seconds=10.0)
        threads.append(threading.Thread(target=agent.run, args=(stop,), name="demo-agent", daemon=True))

        alerts_config = AlertsConfig(state_dir=data_dir / "alerts", agent_silent_after_seconds=180.0)
        engine = Engine(store, slos, rules_from_config(alerts_config), {"console": ConsoleNotifier()},
                        alerts_config.state_dir, external_url=f"http://127.0.0.1:{args.port}")
        threads.append(threading.Thread(target=engine.run, args=(stop,), name="demo-alerts", daemon=True))
        logging.getLogger("alerts.engine").setLevel(logging.ERROR)  # the console receiver prints the pages
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

        server = _dashboard_server(listener, store, slos, alerts_config.state_dir)
        threads.append(threading.Thread(target=server.serve_forever, name="demo-dashboard", daemon=True))
        for thread in threads:
            thread.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        print(f"virtwatch demo: open http://127.0.0.1:{args.port}/  (the agent watches {args.libvirt_uri}; "
              "pages print here; Ctrl-C stops)", flush=True)
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


def _dashboard_server(listener: socket.socket, store, slos, state_dir: Path):
    """Return a threaded WSGI server serving the dashboard on an already bound socket."""
    from werkzeug.serving import make_server

    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(store=store, slos=slos, state_dir=state_dir))
    host, port = listener.getsockname()[:2]
    return make_server(host, port, app.server, threaded=True, fd=listener.fileno())
