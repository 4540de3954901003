"""A fleet of thousands of simulated hypervisor hosts for benchmarks/bench_scale.py: the history an alert engine
finds in its store after days of watching them, and the points their agents keep writing.

`ScaleFleet(hosts, domains, seed)` is deterministic: host `hv-0000`... collects every 10 s (the agent's default
interval) at its own phase, with `domains` guests. Its incidents, a few per host per day, come from a seeded
Poisson process per host (`RATES_PER_DAY`), every one ENDED at least `QUIET_SECONDS` before the history's end, so
the fleet is healthy now:

- `restart` (libvirtd's pid changed): a `restart` event and a `diagnosis` (trigger restart);
- `down` (15-35 s): `daemon_down`, then `daemon_up` and `restart`; the collections inside report up = 0,
  probe_ok = 0 and no latency;
- `hang` (10-30 s): `hang_start` with its `diagnosis`, a `diagnosis` (trigger hang) every interval, `hang_end`;
  the collections inside report hung = 1, probe_ok = 0, latency = the 5 s deadline;
- `slow`: one probe that answered in 1.5 s (bad for the latency SLI only);
- `domain_failed`: a guest (not one of the steady `domains`) stopped with reason failed.

No host restarts more than twice in any hour and no two down/hang incidents of a host overlap, so no event rule
fires from history (LibvirtdRestarting needs 3 in an hour).

`plant(fleet, writer, end_ns, ...)` writes the history in time order, hour by hour: hour rollups (`sli`,
resolution 1h) of the 4 shipped SLOs for the hours whose minutes the engine no longer rolls, minute rollups
for the minutes of the last `minute_hours` that the engine has rolled by `end_ns` (those that ended a minute
before it: alerts.rollups.LAG_SECONDS), raw `libvirtd` and `collector` points for the last `raw_hours`, raw
`domain` points for the last `domain_minutes`, and every event and diagnosis. The rollups are what the engine
would roll up from those raw points (the incidents' bad probes counted where they fell), so re-rolling a planted
minute changes nothing.
Time order keeps the embedded store on its append path; each table's batches never go back in time.

Writers: `LinesWriter` (pre-encoded line protocol POSTed to InfluxDB 1.x `/write`, no gzip, 50,000 lines a
request, sent by a thread while the next batch is made: measured 430k points/s, twice `InfluxStore.write`'s 215k
with Point objects and gzip), `ColumnsWriter` (whole columns through the embedded store's `write_columns`: ~2x
the rate of Points) and `PointsWriter` (tsdb Points through any `Store.write`).

`LiveFleet` writes what the agents write from a moment on, in real time: every host's `libvirtd`, `collector`
and `domain` points at its own phase of each 10 s, written every half second with whatever fell due (a late
start first catches up, as an agent replays its spool), and `restart`/`domain_failed` events at the history's
rates. Run it in a thread (`start`/`stop`), or as a process over InfluxDB:

    python benchmarks/scale_fleet.py live --port PORT --db NAME --hosts N [--domains 4] [--seed 1]
        --start-ns NS --report FILE      # until SIGTERM; FILE gets {"points", "batches", "errors", ...}
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import queue
import random
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.rollups import HOUR_NS, LAG_SECONDS, MINUTE_NS, REROLL_SECONDS, Coverage, floor_to  # noqa: E402
from collector.event_points import event_point  # noqa: E402
from tsdb import Point  # noqa: E402
from tsdb.lineprotocol import encode_point  # noqa: E402
from tsdb.store import Store  # noqa: E402

S = 10**9
INTERVAL_NS = 10 * S                 # [agent] interval_seconds, the default
PER_MINUTE = 60 * S // INTERVAL_NS   # collections per host per minute
PROBE_TIMEOUT_MS = 5000.0            # [agent] probe_timeout_seconds: a hung probe is reported with it
SLOW_PROBE_MS = 1500.0               # over the latency SLO's 1000 ms threshold (deploy/slos.toml)
QUIET_SECONDS = 2 * 3600             # no incident in the last 2 h of history: no window of a page burns
RESTART_SPACING_SECONDS = 31 * 60    # at most 2 restarts of a host in any hour
#: incidents per host per day (a few events per host per day in all: ~2.6)
RATES_PER_DAY = {"restart": 1.0, "down": 0.3, "hang": 0.1, "slow": 2.0, "domain_failed": 0.5}
#: the shipped SLOs (deploy/slos.toml) by SLI, and how each counts a minute of this fleet: (good, total) of a
#: healthy host with `domains` guests
SLIS = {"libvirtd_availability": "libvirtd-availability", "libvirtd_latency": "libvirtd-latency",
        "domain_stability": "domain-stability", "collection_freshness": "collection-freshness"}
BATCH_LINES = 50_000
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")  # names written unescaped into line protocol must be plain
_LATENCIES = [round(2.0 + (i * 7919 % 38000) / 1000, 3) for i in range(997)]       # 2-40 ms
_SCRAPES = [round(10.0 + (i * 104729 % 50000) / 1000, 3) for i in range(991)]      # 10-60 ms
#: (up, hung, probe_ok, probe_latency_ms) of a collection in each bad state; ok ones take a latency of _LATENCIES
_PROBE_FIELDS = {"down": (0, 0, 0, None), "hung": (1, 1, 0, PROBE_TIMEOUT_MS), "slow": (1, 0, 1, SLOW_PROBE_MS)}


@dataclass(frozen=True)
class Incident:
    """Something that happened to one host: `kind` over [start_ns, end_ns) (end == start for an instant)."""

    kind: str
    host: int
    start_ns: int
    end_ns: int


@dataclass
class History:
    """What a fleet's incidents make of its history: probe states by collection slot, bad probes per minute and
    per hour, and the event and diagnosis points."""

    slot_states: dict[int, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    bad_minute: dict[int, dict[int, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    bad_hour: dict[int, dict[int, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    points: list[Point] = field(default_factory=list)


class ScaleFleet:
    """`hosts` hosts with `domains` guests each, every host on a 10 s schedule at its own phase."""

    def __init__(self, hosts: int, domains: int = 4, seed: int = 1, prefix: str = "hv-") -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.names = [f"{prefix}{i:04d}" for i in range(hosts)]
        self.phases = [rng.randrange(INTERVAL_NS) for _ in range(hosts)]  # a collection at slot + phase
        self.domains = [[f"instance-{i * domains + d:08x}" for d in range(domains)] for i in range(hosts)]
        if not all(_NAME.match(n) for n in self.names + [d for ds in self.domains for d in ds]):
            raise ValueError("host and domain names must be plain: they are written unescaped")
        self.by_phase = sorted(range(hosts), key=self.phases.__getitem__)
        self._sorted_phases = [self.phases[i] for i in self.by_phase]

    def __len__(self) -> int:
        return len(self.names)

    def due(self, slot_ns: int, start_ns: int, end_ns: int) -> list[int]:
        """Return the hosts whose collection of this slot falls in [start_ns, end_ns)."""
        lo = bisect.bisect_left(self._sorted_phases, start_ns - slot_ns)
        hi = bisect.bisect_left(self._sorted_phases, end_ns - slot_ns)
        return self.by_phase[lo:hi]

    # --- incidents ---------------------------------------------------------------------------------------------

    def incidents(self, start_ns: int, end_ns: int) -> list[Incident]:
        """Return every host's incidents in [start_ns, end_ns), each ended before end_ns, in time order."""
        found = []
        for host in range(len(self)):
            rng = random.Random(self.seed * 1_000_003 + host)
            candidates = []
            for kind, rate in RATES_PER_DAY.items():
                t = start_ns
                while True:
                    t += int(rng.expovariate(rate) * 86400 * S)
                    if t >= end_ns:
                        break
                    length = {"down": rng.uniform(15, 35), "hang": rng.uniform(10, 30)}.get(kind, 0.0)
                    candidates.append(Incident(kind, host, t, t + int(length * S)))
            busy_until = last_restart = -(2**62)
            for incident in sorted(candidates, key=lambda i: i.start_ns):
                if incident.end_ns >= end_ns:
                    continue
                if incident.kind in ("down", "hang"):
                    if incident.start_ns < busy_until + 60 * S:
                        continue
                if incident.kind in ("down", "restart"):  # a down ends in a restart
                    if incident.end_ns < last_restart + RESTART_SPACING_SECONDS * S:
                        continue
                    last_restart = incident.end_ns
                if incident.kind in ("down", "hang"):
                    busy_until = incident.end_ns
                found.append(incident)
        return sorted(found, key=lambda i: (i.start_ns, i.host))

    def history(self, incidents: Iterable[Incident]) -> History:
        """Return what these incidents make of the history (see History)."""
        made = History()
        for incident in incidents:
            host, name = incident.host, self.names[incident.host]
            if incident.kind in ("down", "hang"):
                state = "down" if incident.kind == "down" else "hung"
                first = self._first_collection(host, incident.start_ns)
                for t in range(first, incident.end_ns, INTERVAL_NS):
                    self._bad(made, host, t, state, availability=True)
            if incident.kind == "slow":
                self._bad(made, host, self._first_collection(host, incident.start_ns), "slow", availability=False)
            made.points += self._points(incident, name)
        made.points.sort(key=lambda p: p.time_ns)
        return made

    def _first_collection(self, host: int, at_ns: int) -> int:
        phase = self.phases[host]
        return at_ns + (phase - at_ns) % INTERVAL_NS

    def _bad(self, made: History, host: int, t: int, state: str, availability: bool) -> None:
        made.slot_states[t - self.phases[host]][host] = state
        for bucket, width in ((made.bad_minute, MINUTE_NS), (made.bad_hour, HOUR_NS)):
            counts = bucket[floor_to(t, width)].setdefault(host, [0, 0])
            counts[0] += int(availability)
            counts[1] += 1

    def _points(self, incident: Incident, name: str) -> list[Point]:
        """The events and diagnoses an agent writes for one incident."""
        a, b = incident.start_ns, incident.end_ns
        pid = 1000 + (incident.host * 7 + a // S) % 60000
        restarted = (f"libvirtd on {name} restarted: pid {pid} → {pid + 1}; no segfault in the kernel log: it "
                     "exited or was killed")
        if incident.kind == "restart":
            return [event_point(name, "restart", restarted, a),
                    Point("diagnosis", {"host": name, "trigger": "restart"},
                          {"cause": restarted, "hang_seconds": 0.0, "process_state": "S", "threads": 18}, a)]
        if incident.kind == "down":
            seconds = (b - a) / S
            return [event_point(name, "daemon_down", f"libvirtd on {name} is down: the connection closed (eof) "
                                "and no libvirtd process is running", a),
                    event_point(name, "daemon_up", f"libvirtd on {name} answers again after {seconds:.0f} s", b,
                                duration_seconds=seconds),
                    event_point(name, "restart", restarted, b),
                    Point("diagnosis", {"host": name, "trigger": "restart"},
                          {"cause": restarted, "hang_seconds": 0.0, "process_state": "S", "threads": 18}, b)]
        if incident.kind == "hang":
            cause = (f"libvirtd on {name} hung 5 s: 10 of 10 workers busy, 4 calls queued; 12 connections from "
                     f"nova-compute (pid {pid + 7}); the probe has had no answer for 5 s")
            points = [event_point(name, "hang_start", cause, a),
                      Point("diagnosis", {"host": name, "trigger": "hang_start"},
                            {"cause": cause, "hang_seconds": 5.0, "process_state": "S", "threads": 18}, a)]
            for t in range(a + INTERVAL_NS, b, INTERVAL_NS):
                held = (t - a) / S + 5
                points.append(Point("diagnosis", {"host": name, "trigger": "hang"},
                                    {"cause": cause.replace("hung 5 s", f"hung {held:.0f} s"), "hang_seconds": held,
                                     "process_state": "S", "threads": 18}, t))
            points.append(event_point(name, "hang_end", f"libvirtd on {name} answers again: 2 probes in a row "
                                      "within the deadline", b, duration_seconds=(b - a) / S))
            return points
        if incident.kind == "domain_failed":
            guest = f"instance-f{incident.host:04x}{a // S % 65536:04x}"
            return [event_point(name, "domain_failed", f"guest '{guest}' stopped: its QEMU process died "
                                "(reason failed)", a, domain=guest)]
        return []


# --- writers -------------------------------------------------------------------------------------------------------


class _Writer:
    """Rows of the fleet's measurements, batched; a thread sends each batch while the next one is made."""

    def __init__(self, fleet: ScaleFleet, batch: int, threaded: bool = True) -> None:
        self.fleet, self.batch = fleet, batch
        self.points = 0
        self._rows: list = []
        self._queue: queue.Queue | None = queue.Queue(maxsize=2) if threaded else None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True) if threaded else None
        if self._thread:
            self._thread.start()

    # the rows: subclasses say how one is made
    def rollups(self, slo: str, resolution: str, time_ns: int, good: float, total: float,
                bad: dict[int, list[int]] | None = None, which: int = 0) -> None:
        """One rollup of each host: `good` of `total`, less bad[host][which] for the hosts in `bad`."""
        raise NotImplementedError

    def probes(self, slot_ns: int, states: dict[int, str], hosts: Iterable[int] | None = None) -> None:
        """The libvirtd and collector points of each host's collection of a slot (states: down, hung, slow)."""
        raise NotImplementedError

    def domains(self, slot_ns: int, hosts: Iterable[int] | None = None) -> None:
        """The domain points of each host's collection of a slot, and the round's count of them."""
        raise NotImplementedError

    def extra(self, points: list[Point]) -> None:
        """Any other points (events, diagnoses)."""
        raise NotImplementedError

    def boundary(self) -> None:
        """Send the rows made so far if they fill a batch (called between slots, so no batch goes back in time)."""
        if self._pending() >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Send the rows made so far."""
        if self._error is not None:
            raise self._error
        if not self._pending():
            return
        batch = self._take()
        if self._queue is None:
            self.points += self._send(batch)
        else:
            self._queue.put(batch)

    def _pending(self) -> int:
        """How many rows are made and not sent yet."""
        return len(self._rows)

    def _take(self):
        """Return the rows made so far as one batch to send, and start a new one."""
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        """Send what is left and wait until everything was sent; raise what sending raised."""
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is None:
                try:
                    self.points += self._send(batch)
                except BaseException as error:  # noqa: BLE001 - raised again by flush/close in the caller
                    self._error = error

    def _send(self, batch) -> int:
        """Send one batch; return how many points it held."""
        raise NotImplementedError

    def _hosts(self, hosts):
        return range(len(self.fleet)) if hosts is None else hosts


class LinesWriter(_Writer):
    """Pre-encoded line protocol POSTed to InfluxDB 1.x `/write` (no gzip), one keep-alive connection."""

    def __init__(self, fleet: ScaleFleet, port: int, database: str, batch: int = BATCH_LINES,
                 threaded: bool = True, host: str = "127.0.0.1") -> None:
        self.target = f"/write?db={database}&precision=ns"
        self._address = (host, port)
        self._connection: http.client.HTTPConnection | None = None
        names = fleet.names
        self._lv_ok = [f"libvirtd,host={n} hung=0i,probe_latency_ms=" for n in names]
        self._lv_down = [f"libvirtd,host={n} hung=0i,probe_ok=0i,up=0i " for n in names]
        self._lv_hung = [f"libvirtd,host={n} hung=1i,probe_latency_ms={PROBE_TIMEOUT_MS!r},probe_ok=0i,up=1i "
                         for n in names]
        self._collector = [f"collector,host={n} scrape_duration_ms=" for n in names]
        self._domain = [[f"domain,domain={d},host={n} state_code=1i,state_reason_code=1i,stats_partial=0i "
                         for d in ds] for n, ds in zip(names, fleet.domains)]
        # each round's own count of its domain points (tsdb.wedged), as an agent writes it beside them
        self._round = [f"domain_round,host={n} domain_points={len(ds)}i,wedged_points=0i " for n, ds in
                       zip(names, fleet.domains)]
        super().__init__(fleet, batch, threaded)

    def rollups(self, slo, resolution, time_ns, good, total, bad=None, which=0):
        tail = f",valid_total={float(total)!r} {time_ns}"
        default = f" good_total={float(good)!r}{tail}"
        bad = bad or {}
        self._rows += [f"sli,host={n},resolution={resolution},slo={slo}"
                       + (default if i not in bad else f" good_total={float(good - bad[i][which])!r}{tail}")
                       for i, n in enumerate(self.fleet.names)]

    def probes(self, slot_ns, states, hosts=None):
        phases, rows = self.fleet.phases, self._rows
        for i in self._hosts(hosts):
            t = slot_ns + phases[i]
            k = (i + t // INTERVAL_NS)
            state = states.get(i)
            if state is None:
                rows.append(f"{self._lv_ok[i]}{_LATENCIES[k % 997]!r},probe_ok=1i,up=1i {t}")
            elif state == "down":
                rows.append(f"{self._lv_down[i]}{t}")
            elif state == "hung":
                rows.append(f"{self._lv_hung[i]}{t}")
            else:  # slow
                rows.append(f"{self._lv_ok[i]}{SLOW_PROBE_MS!r},probe_ok=1i,up=1i {t}")
            rows.append(f"{self._collector[i]}{_SCRAPES[k % 991]!r} {t}")

    def domains(self, slot_ns, hosts=None):
        phases, rows = self.fleet.phases, self._rows
        for i in self._hosts(hosts):
            t = slot_ns + phases[i]
            rows += [f"{head}{t}" for head in self._domain[i]]
            rows.append(f"{self._round[i]}{t}")

    def extra(self, points):
        self._rows += [line for line in map(encode_point, points) if line is not None]

    def _send(self, rows):
        body = ("\n".join(rows) + "\n").encode()
        for attempt in range(3):
            try:
                if self._connection is None:
                    self._connection = http.client.HTTPConnection(*self._address, timeout=120)
                self._connection.request("POST", self.target, body, {"Content-Type": "text/plain"})
                response = self._connection.getresponse()
                answer = response.read()
                if response.status != 204:
                    raise RuntimeError(f"InfluxDB /write answered {response.status}: {answer[:300]!r}")
                return len(rows)
            except (OSError, http.client.HTTPException):
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        super().close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PointsWriter(_Writer):
    """tsdb Points through a Store's `write` (the embedded DuckDB store, or any other)."""

    def __init__(self, fleet: ScaleFleet, store: Store, batch: int = 100_000, threaded: bool = True) -> None:
        self.store = store
        self._tags = [{"host": n} for n in fleet.names]
        self._domain_tags = [[{"host": n, "domain": d} for d in ds] for n, ds in zip(fleet.names, fleet.domains)]
        self._rollup_tags: dict = {}
        super().__init__(fleet, batch, threaded)

    def rollups(self, slo, resolution, time_ns, good, total, bad=None, which=0):
        key = (slo, resolution)
        if key not in self._rollup_tags:
            self._rollup_tags[key] = [{"host": n, "slo": slo, "resolution": resolution} for n in self.fleet.names]
        bad = bad or {}
        total = float(total)
        self._rows += [Point("sli", tags, {"good_total": float(good - bad[i][which]) if i in bad else float(good),
                                           "valid_total": total}, time_ns)
                       for i, tags in enumerate(self._rollup_tags[key])]

    def probes(self, slot_ns, states, hosts=None):
        phases, rows = self.fleet.phases, self._rows
        for i in self._hosts(hosts):
            t = slot_ns + phases[i]
            k = (i + t // INTERVAL_NS)
            state = states.get(i)
            if state is None:
                fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": _LATENCIES[k % 997]}
            elif state == "down":
                fields = {"up": 0, "hung": 0, "probe_ok": 0}
            elif state == "hung":
                fields = {"up": 1, "hung": 1, "probe_ok": 0, "probe_latency_ms": PROBE_TIMEOUT_MS}
            else:
                fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": SLOW_PROBE_MS}
            rows.append(Point("libvirtd", self._tags[i], fields, t))
            rows.append(Point("collector", self._tags[i], {"scrape_duration_ms": _SCRAPES[k % 991]}, t))

    def domains(self, slot_ns, hosts=None):
        phases, rows = self.fleet.phases, self._rows
        for i in self._hosts(hosts):
            t = slot_ns + phases[i]
            rows += [Point("domain", tags, {"state_code": 1, "state_reason_code": 1, "stats_partial": 0}, t)
                     for tags in self._domain_tags[i]]
            rows.append(Point("domain_round", self._tags[i], {"domain_points": len(self._domain_tags[i]),
                                                              "wedged_points": 0}, t))

    def extra(self, points):
        self._rows += points

    def _send(self, rows):
        self.store.write(rows)
        return len(rows)


class ColumnsWriter(_Writer):
    """Whole columns through the embedded store's `write_columns` (no Point objects: ~2x PointsWriter's rate);
    events and diagnoses as Points."""

    TAGS = {"sli": ["host", "slo", "resolution"], "libvirtd": ["host"], "collector": ["host"],
            "domain": ["host", "domain"], "domain_round": ["host"]}

    def __init__(self, fleet: ScaleFleet, store: Store, batch: int = 200_000, threaded: bool = True) -> None:
        self.store = store
        self._columns: dict[str, dict[str, list]] = {}
        self._points: list[Point] = []
        self._count = 0
        super().__init__(fleet, batch, threaded)

    def _table(self, measurement: str, *names: str) -> dict[str, list]:
        if measurement not in self._columns:
            self._columns[measurement] = {name: [] for name in ("time_ns", *self.TAGS[measurement], *names)}
        return self._columns[measurement]

    def rollups(self, slo, resolution, time_ns, good, total, bad=None, which=0):
        table = self._table("sli", "good_total", "valid_total")
        n = len(self.fleet)
        bad = bad or {}
        table["time_ns"] += [time_ns] * n
        table["host"] += self.fleet.names
        table["slo"] += [slo] * n
        table["resolution"] += [resolution] * n
        table["good_total"] += [float(good - bad[i][which]) if i in bad else float(good) for i in range(n)]
        table["valid_total"] += [float(total)] * n
        self._count += n

    def probes(self, slot_ns, states, hosts=None):
        daemon = self._table("libvirtd", "up", "hung", "probe_ok", "probe_latency_ms")
        agent = self._table("collector", "scrape_duration_ms")
        hosts = list(self._hosts(hosts))
        names, phases = self.fleet.names, self.fleet.phases
        times = [slot_ns + phases[i] for i in hosts]
        ks = [i + t // INTERVAL_NS for i, t in zip(hosts, times)]
        for column in (daemon["time_ns"], agent["time_ns"]):
            column += times
        for column in (daemon["host"], agent["host"]):
            column += [names[i] for i in hosts]
        fields = [_PROBE_FIELDS.get(states.get(i)) or (1, 0, 1, _LATENCIES[k % 997]) for i, k in zip(hosts, ks)]
        for position, name in enumerate(("up", "hung", "probe_ok", "probe_latency_ms")):
            daemon[name] += [f[position] for f in fields]
        agent["scrape_duration_ms"] += [_SCRAPES[k % 991] for k in ks]
        self._count += 2 * len(hosts)

    def domains(self, slot_ns, hosts=None):
        table = self._table("domain", "state_code", "state_reason_code", "stats_partial")
        names, phases, domains = self.fleet.names, self.fleet.phases, self.fleet.domains
        rows = [(slot_ns + phases[i], names[i], d) for i in self._hosts(hosts) for d in domains[i]]
        table["time_ns"] += [r[0] for r in rows]
        table["host"] += [r[1] for r in rows]
        table["domain"] += [r[2] for r in rows]
        for name, value in (("state_code", 1), ("state_reason_code", 1), ("stats_partial", 0)):
            table[name] += [value] * len(rows)
        self._count += len(rows)
        rounds = self._table("domain_round", "domain_points", "wedged_points")
        chosen = list(self._hosts(hosts))
        rounds["time_ns"] += [slot_ns + phases[i] for i in chosen]
        rounds["host"] += [names[i] for i in chosen]
        rounds["domain_points"] += [len(domains[i]) for i in chosen]
        rounds["wedged_points"] += [0] * len(chosen)
        self._count += len(chosen)

    def extra(self, points):
        self._points += points
        self._count += len(points)

    def _pending(self) -> int:
        return self._count

    def _take(self):
        batch = (self._columns, self._points)
        self._columns, self._points, self._count = {}, [], 0
        return batch

    def _send(self, batch):
        columns, points = batch
        sent = 0
        for measurement, table in columns.items():
            sent += self.store.write_columns(measurement, table, tags=self.TAGS[measurement])
        if points:
            sent += self.store.write(points)
        return sent


# --- history -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    """What `plant` wrote: points, events (and diagnoses), the rollups' coverage, and the ranges of each part."""

    points: int
    event_points: int
    incidents: int
    coverage: Coverage
    hours_from_ns: int
    minutes_from_ns: int
    raw_from_ns: int
    domains_from_ns: int
    seconds: float


def plant(fleet: ScaleFleet, writer: _Writer, end_ns: int, *, days: float, minute_hours: float,
          raw_hours: float, domain_minutes: float, slos: Iterable, progress=None) -> Planted:
    """Write the fleet's history before `end_ns` (see the module docstring) through `writer`, in time order;
    `progress(done_fraction)` hears of each hour (the share of the points planted, estimated). Return what was
    planted."""
    began = time.perf_counter()
    per_minute = {"libvirtd_availability": PER_MINUTE, "libvirtd_latency": PER_MINUTE,
                  "collection_freshness": PER_MINUTE}
    start = floor_to(end_ns - int(days * 86400 * S), HOUR_NS)
    minute_until = floor_to(end_ns - LAG_SECONDS * S, MINUTE_NS)  # what the engine has rolled by end_ns
    hour_until = floor_to(minute_until - REROLL_SECONDS * S, HOUR_NS)  # hours whose minutes will not change
    minutes_from = max(start, floor_to(end_ns - int(minute_hours * 3600 * S), HOUR_NS))
    raw_from = max(start, floor_to(end_ns - int(raw_hours * 3600 * S), MINUTE_NS))
    domains_from = max(start, floor_to(end_ns - int(domain_minutes * 60 * S), MINUTE_NS))
    incidents = fleet.incidents(start, end_ns - QUIET_SECONDS * S)
    made = fleet.history(incidents)
    events = made.points
    per_domain = PER_MINUTE * len(fleet.domains[0]) if fleet.domains and fleet.domains[0] else 0
    # (slo name, good and total per minute of a healthy host, which bad count: 0 availability, 1 latency, None)
    series = []
    for slo in slos:
        if slo.sli == "domain_stability":
            series.append((slo.name, per_domain, None))
        elif slo.sli in per_minute:
            which = {"libvirtd_availability": 0, "libvirtd_latency": 1}.get(slo.sli)
            series.append((slo.name, per_minute[slo.sli], which))
        else:
            raise ValueError(f"SLO {slo.name!r}: no planted rollups for sli {slo.sli!r}")
    series = [s for s in series if s[1] > 0]
    next_event = 0
    hours = range(start, end_ns, HOUR_NS)

    def minutes_in(hour: int, since: int) -> int:
        return max(0, min(hour + HOUR_NS, end_ns) - max(hour, since)) // MINUTE_NS

    def weight(hour: int) -> int:  # an hour's points per host: rollups, raw libvirtd and collector, domains
        return (len(series) * (1 + minutes_in(hour, minutes_from)) + 2 * PER_MINUTE * minutes_in(hour, raw_from)
                + per_domain * minutes_in(hour, domains_from))

    weights = [weight(hour) for hour in hours]
    total_weight, done_weight = sum(weights), 0
    for done, hour in enumerate(hours):
        if hour < hour_until:
            bad = made.bad_hour.get(hour)
            for name, count, which in series:
                writer.rollups(name, "1h", hour, 60 * count, 60 * count, bad if which is not None else None,
                               which or 0)
        writer.boundary()
        upto = next_event
        while upto < len(events) and events[upto].time_ns < min(hour + HOUR_NS, end_ns):
            upto += 1
        writer.extra(events[next_event:upto])
        next_event = upto
        for minute in range(hour, min(hour + HOUR_NS, end_ns), MINUTE_NS):
            if minutes_from <= minute < minute_until:
                bad = made.bad_minute.get(minute)
                for name, count, which in series:
                    writer.rollups(name, "1m", minute, count, count, bad if which is not None else None, which or 0)
                writer.boundary()
            if minute + MINUTE_NS <= raw_from:
                continue
            for slot in range(minute, minute + MINUTE_NS, INTERVAL_NS):
                if slot + INTERVAL_NS <= raw_from or slot >= end_ns:
                    continue
                whole = raw_from <= slot and slot + INTERVAL_NS <= end_ns
                hosts = None if whole else fleet.due(slot, raw_from, end_ns)
                writer.probes(slot, made.slot_states.get(slot, {}), hosts)
                if slot + INTERVAL_NS > domains_from:
                    writer.domains(slot, None if whole and slot >= domains_from
                                   else fleet.due(slot, max(raw_from, domains_from), end_ns))
                writer.boundary()
        done_weight += weights[done]
        if progress:
            progress(done_weight / total_weight)
    writer.close()
    return Planted(writer.points, len(events), len(incidents), Coverage(minute_until, hour_until), start,
                   minutes_from, raw_from, domains_from, time.perf_counter() - began)


# --- live ----------------------------------------------------------------------------------------------------------


class LiveFleet:
    """The fleet's agents writing in real time from `start_ns` on (see the module docstring), through `writer`
    (unthreaded: each write is one batch); `skip` names hosts left out (a real agent writes them)."""

    STEP_SECONDS = 0.5

    def __init__(self, fleet: ScaleFleet, writer: _Writer, start_ns: int, seed: int = 1) -> None:
        self.fleet, self.writer, self.cursor = fleet, writer, start_ns
        self.rng = random.Random(seed * 7 + 3)
        self.batches = 0
        self.max_lag_ns = 0
        self.errors: list[str] = []
        self.events = 0
        self._rate_ns = (RATES_PER_DAY["restart"] + RATES_PER_DAY["domain_failed"]) * len(fleet) / (86400 * S)
        self._next_event = start_ns + self._gap()
        self._last_restart: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _gap(self) -> int:
        return int(self.rng.expovariate(self._rate_ns)) if self._rate_ns > 0 else 2**62

    def write_until(self, now_ns: int) -> None:
        """Write every collection and event stamped in [cursor, now_ns), at most a minute of them a batch."""
        live = now_ns - self.cursor < 5 * S  # else a catch-up (a late start): its lag says nothing
        while self.cursor < now_ns:
            upto = min(now_ns, self.cursor + 60 * S)
            first = floor_to(self.cursor, INTERVAL_NS) - INTERVAL_NS
            for slot in range(first, upto, INTERVAL_NS):
                hosts = self.fleet.due(slot, self.cursor, upto)
                if hosts:
                    self.writer.probes(slot, {}, hosts)
                    self.writer.domains(slot, hosts)
            self.writer.extra(self._events(upto))
            oldest = self.cursor
            self.cursor = upto
            try:
                self.writer.flush()
            except Exception as error:  # noqa: BLE001 - counted and reported; an agent would spool
                self.errors.append(f"{type(error).__name__}: {error}")
            self.batches += 1
            if live:
                self.max_lag_ns = max(self.max_lag_ns, time.time_ns() - oldest)

    def _events(self, upto: int) -> list[Point]:
        points = []
        while self._next_event < upto:
            t = self._next_event
            self._next_event += self._gap()
            host = self.rng.randrange(len(self.fleet))
            name = self.fleet.names[host]
            restart_share = RATES_PER_DAY["restart"] / (RATES_PER_DAY["restart"] + RATES_PER_DAY["domain_failed"])
            if self.rng.random() < restart_share:
                if t - self._last_restart.get(host, -(2**62)) < RESTART_SPACING_SECONDS * S:
                    continue
                self._last_restart[host] = t
                points.append(event_point(name, "restart", f"libvirtd on {name} restarted: pid 4100 → 4101; no "
                                          "segfault in the kernel log: it exited or was killed", t))
            else:
                guest = f"instance-f{host:04x}{t // S % 65536:04x}"
                points.append(event_point(name, "domain_failed", f"guest '{guest}' stopped: its QEMU process died "
                                          "(reason failed)", t, domain=guest))
        self.events += len(points)
        return points

    def run(self) -> None:
        """Write in real time until `stop`."""
        while not self._stop.is_set():
            self.write_until(time.time_ns())
            self._stop.wait(self.STEP_SECONDS)

    def start(self) -> "LiveFleet":
        """Run on a thread of its own."""
        self._thread = threading.Thread(target=self.run, name="live-fleet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def report(self) -> dict:
        """What it wrote: points, batches, events, the longest stamp-to-write lag, errors."""
        return {"points": self.writer.points, "batches": self.batches, "events": self.events,
                "max_lag_seconds": self.max_lag_ns / S, "errors": len(self.errors), "first_error": self.errors[:1]}


def main(argv: list[str] | None = None) -> int:
    """`live`: write a fleet into InfluxDB 1.x in real time until SIGTERM, then write a report."""
    parser = argparse.ArgumentParser(description="a live fleet for bench_scale.py")
    sub = parser.add_subparsers(dest="command", required=True)
    live = sub.add_parser("live", help="write the fleet's points in real time until SIGTERM")
    live.add_argument("--port", type=int, required=True)
    live.add_argument("--db", required=True)
    live.add_argument("--hosts", type=int, required=True)
    live.add_argument("--domains", type=int, default=4)
    live.add_argument("--seed", type=int, default=1)
    live.add_argument("--start-ns", type=int, required=True)
    live.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    fleet = ScaleFleet(args.hosts, args.domains, args.seed)
    writer = LinesWriter(fleet, args.port, args.db, threaded=False)
    writers = LiveFleet(fleet, writer, args.start_ns, args.seed)
    signal.signal(signal.SIGTERM, lambda *_: writers._stop.set())
    signal.signal(signal.SIGINT, lambda *_: writers._stop.set())
    writers.run()
    args.report.write_text(json.dumps(writers.report()))
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
