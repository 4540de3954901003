"""A live fleet: simulated agents writing what real ones write into a real store, each on its own schedule.

Each host collects every `period_ns` (10 s, the agent's default interval) at its own phase and stamps its points
with the collection time: a `libvirtd` point (up, hung, probe_ok, probe_latency_ms), a `host` point (load1) and a
`collector` point (scrape_duration_ms), plus a daemon_down or daemon_up `event` when its daemon changes state
(tsdb.schema). A shipper writes a collection a random lag of up to `max_lag_seconds` (1 s) after its stamp, in
one batch with every other collection of its hosts due by then, as an agent's shipper does.

Two ways to drive it, both through `Shipper`s (one per writer, each owning some hosts):

- `LiveWriters`: K threads, each shipping its hosts in real time (time.time_ns) until stopped;
- `Fleet.ship_until(store, now_ns)`: write everything due by a simulated time, for a test that moves its own clock
  (and for history: points written with explicit timestamps, no waiting).

Faults are time ranges, so both drivers see them the same way: `daemon_down` (one host: probe_ok = 0, up = 0 and
a daemon_down event at its first collection inside), `probes_fail` (every host's probes late: probe_ok = 0), and
`silent` (a host writes nothing: its collections are missed).

The engine's side: `fleet_engine` builds it as `virtwatch alerts` does (the shipped SLOs, rules and storm gate);
`running` runs its own loop on a thread; `RoundLog` records its rounds; `SlowStore` is a seam that makes every read
it makes take longer (its reads take long while the writers write). For simulated time: `SimClock`,
`prefill_days` (a fleet the engine has watched for days: its rollups), `simulate_outage` and `starting_rounds`
(in which rounds an outage's hosts start burning). `notices` and `alert_key`: what a receiver got.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from alerts.burn import evaluation_end
from alerts.engine import Engine, RoundReport
from alerts.notify import Backoff
from alerts.rollups import HOUR_NS, MINUTE_NS, Coverage
from alerts.slo import SLO, load_slos
from alerts.windows import SETTLED_LAG_SECONDS
from collector.event_points import event_point
from tsdb import Point
from tsdb.store import Store
from virtwatch.config import AlertsConfig, ReceiverConfig
from virtwatch.wiring import engine_from_config

S = 10**9
SLO_FILE = Path(__file__).resolve().parents[2] / "deploy" / "slos.toml"  # the shipped SLOs
INTERVAL_SECONDS = 10       # [agent] interval_seconds, the default
MAX_LAG_SECONDS = 1.0       # a collection is written up to a second after it is stamped
PROBE_TIMEOUT_MS = 5000.0   # [agent] probe_timeout_seconds: a late probe is reported with this latency
DAEMON_DOWN, PROBES_FAIL, SILENT = "daemon_down", "probes_fail", "silent"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Host:
    """One agent's schedule: it collects at `first_ns + k * period_ns` for every whole k."""

    name: str
    first_ns: int
    period_ns: int = INTERVAL_SECONDS * S

    def next_collection(self, at_ns: int) -> int:
        """Return its first collection at or after `at_ns`."""
        steps = -(-(at_ns - self.first_ns) // self.period_ns)
        return self.first_ns + steps * self.period_ns


@dataclass(frozen=True)
class Fault:
    """A fault of `kind` on `hosts` (None: every host) over [start_ns, end_ns); end None: until further notice."""

    kind: str
    hosts: frozenset[str] | None
    start_ns: int
    end_ns: int | None = None

    def active(self, host: str, at_ns: int) -> bool:
        """True when the fault holds for this host at this time."""
        return ((self.hosts is None or host in self.hosts) and self.start_ns <= at_ns
                and (self.end_ns is None or at_ns < self.end_ns))


class Fleet:
    """Hosts with their schedules and faults; `collect` returns the points an agent writes at one collection."""

    def __init__(self, hosts: Sequence[Host], *, seed: int = 1, writers: int = 4,
                 max_lag_seconds: float = MAX_LAG_SECONDS) -> None:
        self.hosts = list(hosts)
        self.seed = seed
        self.max_lag_ns = int(max_lag_seconds * S)
        self.writers = max(1, min(writers, len(self.hosts)))
        self._faults: tuple[Fault, ...] = ()
        self._fault_lock = threading.Lock()
        self._down: dict[str, bool] = {}  # each host's daemon state as its agent last saw it
        self.shippers: list[Shipper] = []

    @classmethod
    def healthy(cls, count: int, *, seed: int = 1, writers: int = 4, prefix: str = "hv-",
                interval_seconds: int = INTERVAL_SECONDS, max_lag_seconds: float = MAX_LAG_SECONDS) -> Fleet:
        """Return `count` hosts, each on a schedule of `interval_seconds` at its own random phase."""
        rng = random.Random(seed)
        period = interval_seconds * S
        hosts = [Host(f"{prefix}{i:04d}", rng.randrange(period), period) for i in range(count)]
        return cls(hosts, seed=seed, writers=writers, max_lag_seconds=max_lag_seconds)

    @property
    def names(self) -> list[str]:
        """The hosts' names."""
        return [host.name for host in self.hosts]

    # --- faults --------------------------------------------------------------------------------------------

    def add_fault(self, kind: str, start_ns: int, end_ns: int | None = None,
                  hosts: Iterable[str] | None = None) -> Fault:
        """Switch a fault on over [start_ns, end_ns) for `hosts` (None: every host); return it."""
        fault = Fault(kind, None if hosts is None else frozenset(hosts), start_ns, end_ns)
        with self._fault_lock:
            self._faults = (*self._faults, fault)
        return fault

    def daemon_down(self, host: str, start_ns: int, end_ns: int | None = None) -> Fault:
        """Take one host's libvirtd down over [start_ns, end_ns): probe_ok = 0, up = 0, and the agent's events."""
        return self.add_fault(DAEMON_DOWN, start_ns, end_ns, [host])

    def probes_fail(self, start_ns: int, end_ns: int | None = None, hosts: Iterable[str] | None = None) -> Fault:
        """Make the probes of `hosts` (every host: None) late over [start_ns, end_ns): probe_ok = 0."""
        return self.add_fault(PROBES_FAIL, start_ns, end_ns, hosts)

    def silent(self, host: str, start_ns: int, end_ns: int) -> Fault:
        """Make one host write nothing over [start_ns, end_ns): its collections there are missed."""
        return self.add_fault(SILENT, start_ns, end_ns, [host])

    def _faulted(self, kind: str, host: str, at_ns: int) -> bool:
        return any(f.kind == kind and f.active(host, at_ns) for f in self._faults)

    # --- what an agent writes ------------------------------------------------------------------------------

    def collect(self, host: str, at_ns: int, rng: random.Random) -> list[Point]:
        """Return the points the agent of `host` writes for its collection at `at_ns` (none when silent)."""
        if self._faulted(SILENT, host, at_ns):
            return []
        down = self._faulted(DAEMON_DOWN, host, at_ns)
        daemon: dict = {"up": 0 if down else 1, "hung": 0}
        if down:
            daemon["probe_ok"] = 0
        elif self._faulted(PROBES_FAIL, host, at_ns):
            daemon.update(probe_ok=0, probe_latency_ms=PROBE_TIMEOUT_MS + rng.uniform(0, 50))
        else:
            daemon.update(probe_ok=1, probe_latency_ms=round(rng.uniform(2, 40), 3))
        points = [Point("libvirtd", {"host": host}, daemon, at_ns),
                  Point("host", {"host": host}, {"load1": round(rng.uniform(0.1, 4.0), 2)}, at_ns),
                  Point("collector", {"host": host}, {"scrape_duration_ms": round(rng.uniform(10, 60), 3)}, at_ns)]
        if down != self._down.get(host, False):
            self._down[host] = down
            kind, message = (("daemon_down", "libvirtd down: connection closed (eof)") if down
                             else ("daemon_up", "libvirtd answers again"))
            points.append(event_point(host, kind, message, at_ns))
        return points

    # --- shipping ------------------------------------------------------------------------------------------

    def start(self, start_ns: int) -> None:
        """Start every host's schedule at `start_ns`: `writers` shippers, each owning every writers-th host."""
        self.shippers = [Shipper(self, self.hosts[i::self.writers], start_ns, random.Random(self.seed * 1000 + i))
                         for i in range(self.writers)]

    def ship_until(self, store: Store, now_ns: int, step_ns: int = 60 * S) -> int:
        """Write every collection whose write falls at or before `now_ns` (`step_ns` of them at a time, so
        history never sits in memory); return the points written."""
        if not self.shippers:
            raise RuntimeError("start the fleet first (Fleet.start)")
        written = 0
        first = min(shipper.next_write_ns() for shipper in self.shippers)
        for moment in [*range(first + step_ns, now_ns, step_ns), now_ns]:
            points = [p for shipper in self.shippers for p in shipper.due(moment)[0]]
            if points:
                store.write(points)
                written += len(points)
        return written


class Shipper:
    """One writer's hosts: the next collection of each, in the order their writes fall due."""

    def __init__(self, fleet: Fleet, hosts: Sequence[Host], start_ns: int, rng: random.Random) -> None:
        self.fleet, self.rng = fleet, rng
        self._queue: list[tuple[int, int, int]] = []  # (write at, stamp, index into hosts)
        self._hosts = list(hosts)
        for index, host in enumerate(self._hosts):
            self._push(index, host.next_collection(start_ns))

    def _push(self, index: int, stamp: int) -> None:
        heapq.heappush(self._queue, (stamp + self.rng.randrange(self.fleet.max_lag_ns + 1), stamp, index))

    def next_write_ns(self) -> int:
        """When the next write falls due."""
        return self._queue[0][0] if self._queue else 2**62

    def due(self, now_ns: int) -> tuple[list[Point], int]:
        """Return the points of every collection whose write falls due by `now_ns`, and the oldest stamp among
        them (now_ns when none): the next collection of each is queued."""
        points: list[Point] = []
        oldest = now_ns
        while self._queue and self._queue[0][0] <= now_ns:
            _, stamp, index = heapq.heappop(self._queue)
            host = self._hosts[index]
            points += self.fleet.collect(host.name, stamp, self.rng)
            oldest = min(oldest, stamp)
            self._push(index, stamp + host.period_ns)
        return points, oldest


class LiveWriters:
    """K threads writing a started fleet in real time, one per shipper, until `stop`, through one store or a store
    each (as agents each have their own connection).

    A failed write is counted and its points dropped (an agent would spool them; here it would only hide the
    failure): `errors` holds the messages. `max_lag_ns` is the largest delay seen between a stamp and the start
    of its write, which stays under the fleet's max lag while the store keeps up.
    """

    def __init__(self, fleet: Fleet, store: Store | Sequence[Store]) -> None:
        self.fleet = fleet
        self.stores = [store] if isinstance(store, Store) else list(store)  # one per thread, or shared
        self.points = self.batches = 0
        self.max_lag_ns = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> LiveWriters:
        """Start one thread per shipper (the fleet must be started)."""
        if not self.fleet.shippers:
            raise RuntimeError("start the fleet first (Fleet.start)")
        self._threads = [threading.Thread(target=self._run, args=(shipper, self.stores[i % len(self.stores)]),
                                          name=f"fleet-writer-{i}", daemon=True)
                         for i, shipper in enumerate(self.fleet.shippers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> LiveWriters:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, shipper: Shipper, store: Store) -> None:
        while not self._stop.is_set():
            now = time.time_ns()
            points, oldest = shipper.due(now)
            if points:
                try:
                    store.write(points)
                except Exception as error:  # noqa: BLE001 - counted and shown by the test
                    with self._lock:
                        self.errors.append(f"{type(error).__name__}: {error}")
                with self._lock:
                    self.points += len(points)
                    self.batches += 1
                    self.max_lag_ns = max(self.max_lag_ns, now - oldest)
            self._stop.wait(max(0.0, min(0.5, (shipper.next_write_ns() - time.time_ns()) / S)))


# --- the engine's side ---------------------------------------------------------------------------------------


def fleet_engine(store: Store, receivers: dict[str, str], state_dir, **options) -> Engine:
    """Build the engine as `virtwatch alerts` does (virtwatch.wiring): the shipped SLOs (deploy/slos.toml), the
    default rules and storm gate of [alerts], and one webhook receiver per name and URL; `options` are the
    engine's (intervals, clock, backfill_seconds)."""
    config = AlertsConfig(slo_file=SLO_FILE, state_dir=Path(state_dir),
                          receivers=tuple(ReceiverConfig(name=name, type="webhook", url=url, timeout_seconds=5.0)
                                          for name, url in receivers.items()))
    options.setdefault("backoff", Backoff(base_seconds=0.05, max_seconds=0.2, max_attempts=3))
    return engine_from_config(config, store, **options)


def shipped_slos() -> dict[str, SLO]:
    """The shipped SLOs by name."""
    return {slo.name: slo for slo in load_slos(SLO_FILE)}


@dataclass(frozen=True)
class Round:
    """One round the engine ran: its clock when it began, whether it evaluated the SLOs, and its report."""

    began_ns: int
    slos: bool
    report: RoundReport

    def window_end_ns(self, slo: SLO) -> int:
        """Where this round's windows of `slo` ended (alerts.burn.evaluation_end)."""
        return evaluation_end(slo, self.began_ns)


class RoundLog:
    """Records every round an engine runs, however it is run (Engine.run calls run_round on the instance)."""

    def __init__(self, engine: Engine, clock_ns) -> None:
        self.rounds: list[Round] = []
        self._lock = threading.Lock()
        original = engine.run_round

        def run_round(slos: bool = True, rules: bool = True, deliver: bool = True, leaks: bool = True
                      ) -> RoundReport:
            began = clock_ns()
            report = original(slos, rules, deliver, leaks)
            with self._lock:
                self.rounds.append(Round(began, slos, report))
            return report

        engine.run_round = run_round

    def slo_rounds(self, slo: SLO, windows_end_after_ns: int = 0) -> list[Round]:
        """The rounds that evaluated the SLOs with windows of `slo` ending after `windows_end_after_ns`."""
        with self._lock:
            return [r for r in self.rounds if r.slos and r.window_end_ns(slo) > windows_end_after_ns]

    @property
    def errors(self) -> list[str]:
        """The errors of rounds that failed."""
        with self._lock:
            return [r.report.error for r in self.rounds if r.report.error]


@contextmanager
def running(engine: Engine):
    """Run the engine's own loop (Engine.run) on a thread with its real clock; stop it on leaving."""
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), name="alert-engine", daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        stop.set()
        thread.join(timeout=60)


class SlowStore(Store):
    """A store whose every read takes `pause_seconds` longer: the read is made, then the answer waits.

    Wrapped around the store the engine reads, it stretches a round while the writers keep writing, so two reads
    of one figure (good, then total) see different points unless they end at a settled edge.
    """

    def __init__(self, inner: Store, pause_seconds: float) -> None:
        self.inner, self.pause_seconds = inner, pause_seconds
        self.display_url = inner.display_url
        self.reads = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SlowStore({self.inner!r}, +{self.pause_seconds:g} s a read)"

    def _slowly(self, answer):
        with self._lock:
            self.reads += 1
        time.sleep(self.pause_seconds)
        return answer

    def write(self, points, *, retry=True):
        return self.inner.write(points, retry=retry)

    def read(self, query):
        return self._slowly(self.inner.read(query))

    def latest(self, measurement, fields, since, until=None, where=None, group_by=()):
        return self._slowly(self.inner.latest(measurement, fields, since, until, where, group_by))

    def tag_values(self, measurement, tag, where=None):
        return self._slowly(self.inner.tag_values(measurement, tag, where))


@dataclass
class SimClock:
    """A clock a test moves: timezone-aware UTC, like the engine's."""

    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    @property
    def ns(self) -> int:
        """The time in nanoseconds since the epoch."""
        return (self.now - EPOCH) // timedelta(microseconds=1) * 1000

    def advance(self, seconds: float) -> None:
        """Move the clock on."""
        self.now += timedelta(seconds=seconds)


def at(time_ns: int) -> datetime:
    """Return a time in ns as a timezone-aware UTC datetime (to the microsecond, as datetimes go)."""
    return EPOCH + timedelta(microseconds=time_ns // 1000)


#: how many events each built-in SLI counts per host per minute on this fleet (no domain points are written)
EVENTS_PER_MINUTE = {"libvirtd_availability": 60 // INTERVAL_SECONDS, "libvirtd_latency": 60 // INTERVAL_SECONDS}


def write_rollups(store: Store, slos: Sequence[SLO], hosts: Sequence[str], minute_until_ns: int,
                  hour_until_ns: int, *, minutes_back: int, hours_back: int, batch: int = 50_000) -> Coverage:
    """Write what the engine leaves of a fleet healthy for days: every SLO's minute rollups for the `minutes_back`
    minutes before `minute_until_ns`, and hour rollups for the `hours_back` hours before `hour_until_ns`, all good.
    Return that coverage (alerts.rollups). SLIs with no events on this fleet (domain stability) get none."""
    if minute_until_ns % MINUTE_NS or hour_until_ns % HOUR_NS:
        raise ValueError("rollups end on a whole minute and a whole hour")
    pending: list[Point] = []

    def put(point: Point) -> None:
        pending.append(point)
        if len(pending) >= batch:
            store.write(pending)
            pending.clear()

    for slo in slos:
        if slo.sli == "collection_freshness":
            per_minute = 60 // slo.interval_seconds
        elif slo.sli in EVENTS_PER_MINUTE:
            per_minute = EVENTS_PER_MINUTE[slo.sli]
        else:
            continue
        for host in hosts:
            tags = {"host": host, "slo": slo.name}
            for minute in range(minute_until_ns - minutes_back * MINUTE_NS, minute_until_ns, MINUTE_NS):
                put(Point("sli", {**tags, "resolution": "1m"},
                          {"good_total": float(per_minute), "valid_total": float(per_minute)}, minute))
            for hour in range(hour_until_ns - hours_back * HOUR_NS, hour_until_ns, HOUR_NS):
                put(Point("sli", {**tags, "resolution": "1h"},
                          {"good_total": 60.0 * per_minute, "valid_total": 60.0 * per_minute}, hour))
    if pending:
        store.write(pending)
    return Coverage(minute_until_ns, hour_until_ns)


def prefill_days(store: Store, fleet: Fleet, slos: Sequence[SLO], start_ns: int, *, days: int = 2) -> Coverage:
    """Write a fleet healthy for `days` before `start_ns`, as the engine leaves it: hour rollups for the days,
    minute rollups for the last 7 hours (the heads of windows under a day, up to 6 h, read minutes), and the raw
    collections of the last 15 minutes (the engine re-rolls the last 10); then the fleet ships from there.
    Return the rollups' coverage."""
    minute_until = (start_ns - 60 * S) // MINUTE_NS * MINUTE_NS
    hour_until = (minute_until - 600 * S) // HOUR_NS * HOUR_NS
    done = write_rollups(store, slos, fleet.names, minute_until, hour_until, minutes_back=7 * 60,
                         hours_back=days * 24)
    fleet.start(minute_until - 900 * S)
    fleet.ship_until(store, start_ns)
    return done


def failed_probe_stamps(fleet: Fleet, onset_ns: int, count: int) -> dict[str, int]:
    """Return when each host's `count`-th failed probe is stamped, its probes failing from `onset_ns` on."""
    return {host.name: host.next_collection(onset_ns) + (count - 1) * host.period_ns for host in fleet.hosts}


#: a host's page starts burning at its 6th failed probe: its 1h window holds ~360 good ones, and 6/366 = 1.6% of
#: the probes failed is 16x the 99.9% availability budget (the 1h/5m page's factor is 14.4x; 5/365 is 13.7x)
FAILED_TO_PAGE = 6


def starting_rounds(fleet: Fleet, onset_ns: int, first_round_ns: int, round_seconds: float,
                    failed_to_page: int = FAILED_TO_PAGE) -> list[int]:
    """How many hosts start burning in each round that starts any, in order (rounds every `round_seconds` after
    `first_round_ns`), their probes failing from `onset_ns`: a host burns from the first round whose settled edge
    (SETTLED_LAG_SECONDS before it) is past its `failed_to_page`-th failed probe."""
    step = int(round_seconds * S)
    stamps = failed_probe_stamps(fleet, onset_ns, failed_to_page).values()
    rounds = Counter((stamp + SETTLED_LAG_SECONDS * S - first_round_ns) // step for stamp in stamps)
    return [rounds[r] for r in sorted(rounds)]


def onset_where(fleet: Fleet, after_ns: int, round_seconds: float, wanted, first_round_ns: int) -> int:
    """Return the first onset from `after_ns` on, in 0.1 s steps over one round, whose starting rounds
    (starting_rounds) `wanted` accepts: the hosts' phases spread their burn over an interval, which one round or
    two may take in."""
    for tenth in range(int(round_seconds * 10)):
        onset = after_ns + tenth * S // 10
        if wanted(starting_rounds(fleet, onset, first_round_ns, round_seconds)):
            return onset
    raise ValueError("no onset within a round gives such starting rounds")


@dataclass
class OutageRun:
    """What the engine did through a simulated outage, round by round."""

    rounds: int = 0
    storm_rounds: int = 0                                  # rounds that held hosts (the fleet page active)
    held_per_round: list[int] = field(default_factory=list)  # hosts newly held, per round that held any
    held_ever: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0                                   # wall time of the rounds


def simulate_outage(store: Store, fleet: Fleet, engine: Engine, clock: SimClock, slo: SLO, *, onset_ns: int,
                    outage_seconds: float, round_seconds: float = 5.0, quiet_rounds: int = 6,
                    give_up_seconds: float = 3600.0) -> OutageRun:
    """Fail every host's probes from `onset_ns` for `outage_seconds`, and run the engine's rounds every
    `round_seconds` of simulated time, the fleet shipping up to each round, until the outage is over and `slo` has
    had no alert firing and no host held for `quiet_rounds` rounds."""
    fleet.probes_fail(onset_ns, onset_ns + int(outage_seconds * S))
    run, quiet = OutageRun(), 0
    began = time.monotonic()
    while quiet < quiet_rounds:
        clock.advance(round_seconds)
        if clock.ns > onset_ns + give_up_seconds * S:
            raise AssertionError(f"{slo.name}: still burning {give_up_seconds:g} s after the outage began")
        fleet.ship_until(store, clock.ns)
        report = engine.run_round()
        run.rounds += 1
        if report.error:
            run.errors.append(report.error)
        held = set(engine.storm.held(slo.name))
        if held:
            run.storm_rounds += 1
        if held - run.held_ever:
            run.held_per_round.append(len(held - run.held_ever))
        run.held_ever |= held
        firing = [a for a in engine.tracker.firing() if a.labels.get("slo") == slo.name]
        over = clock.ns >= onset_ns + outage_seconds * S
        quiet = quiet + 1 if over and not held and not firing else 0
    run.seconds = time.monotonic() - began
    return run


# --- what the receivers got ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One notification a receiver accepted: its status (the group's) and its alerts."""

    status: str
    group: dict
    alerts: tuple[dict, ...]


def notices(receiver) -> list[Notice]:
    """Return the notifications a receiver (tests/receivers.py) accepted, in order."""
    found = []
    for request in receiver.delivered:
        body = request.json()
        found.append(Notice(body["status"], body.get("groupLabels", {}), tuple(body["alerts"])))
    return found


def alert_key(alert: dict) -> tuple[str, str, str, str, str]:
    """(alertname, slo, severity, host or scope, status) of one alert in a notification: what tests compare."""
    labels = alert["labels"]
    return (labels.get("alertname", ""), labels.get("slo", ""), labels.get("severity", ""),
            labels.get("host") or labels.get("scope", ""), alert["status"])
