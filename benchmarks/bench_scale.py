"""Benchmark of the alert engine at the scale of a real cloud: 2,000 hosts and 7 days of history (issue 15).

Run it from the repository root (needs influxd and libvirtd, see `make setup-test`; root, as tests/libvirtd.py);
the defaults took 14 minutes on a 2-CPU machine, the smoke run 6 (two stores x 4 rounds 30 s apart, the engine a
minute):

    .venv/bin/python benchmarks/bench_scale.py [--hosts 2000] [--days 7] [--minutes 3] [--kills 3]
        [--skip-kill] [--skip-cpu] [--skip-duckdb] [--skip-callbacks]
    .venv/bin/python benchmarks/bench_scale.py --hosts 50 --days 1 --minutes 1 --kills 1     # smoke

Progress goes to stderr, the table to stdout.

THE FLEET (benchmarks/scale_fleet.py, seeded): `--hosts` hosts, each collecting every 10 s at its own phase with
`--domains` (4) guests, and a few incidents per host per day, all ENDED at least 2 h before the history's end, so
the fleet is healthy now: ~1 libvirtd restart, 0.3 daemon_down/daemon_up (15-35 s, ending in a restart), 0.1
hang_start/hang_end (10-30 s, with the agent's `diagnosis` points), 0.5 domain_failed and 2 slow probes. A
private InfluxDB 1.6 (tests/servers.py) gets, in time order, what the engine finds there after `--days` of work:

- `sli` hour rollups of the 4 SLOs of deploy/slos.toml for every hour of the `--days`, and minute rollups for the
  last `--minute-hours` (24) only. Why not every minute of 7 days (80.6M points at 2,000 hosts, ~4 more minutes
  of planting per store): the engine never reads a minute rollup older than ~8 h. Windows of a day or more start
  on a whole hour and read hour rollups up to the last rolled hour; shorter windows (at most 6 h) read minutes
  only for their head before the first whole hour; every window reads minutes after the last hour rollup (at
  most ~70 min); the engine's memory of the rollups (alerts.sli_memory) loads the last 8 h of minutes. Older
  minutes sit in blocks no read touches (InfluxDB's TSM block index and DuckDB's zone maps skip them by time).
  The hours: `--days` of them, where a fleet watched for longer has 30 days (the SLO period) that the windows of
  the period and the engine's first load read: `--days 30` plants them.
- raw `libvirtd` (up, hung, probe_ok, probe_latency_ms) and `collector` (scrape_duration_ms) points every 10 s of
  the last `--raw-hours` (24), and `domain` points (state_code, state_reason_code, stats_partial) for the last
  `--domain-minutes` (60). Why not 7 days of raw points (242M for libvirtd and collector): the SLIs read raw points
  only for the minutes being rolled up and the tail after the rollups, and the freshness SLI looks a day
  back (`FRESHNESS_MEMORY_SECONDS`); the event rules' newest-point reads look 7 days back, which InfluxDB answers
  from the newest block of each series (ORDER BY time DESC LIMIT 1) whatever lies behind it, but which DuckDB
  answers by scanning the range: its first rules round is for 1 day of raw points, and grows with more
  (`--raw-hours 168` plants the full week, slowly).
- every event and diagnosis point of the incidents (~2.6 events per host per day).

The rollups equal what the engine would roll up from the planted raw points (each bad probe counted in its
minute), so its re-rolls change nothing. Planting writes pre-encoded line protocol (scale_fleet.LinesWriter:
50,000 lines a POST, no gzip: ~430k points/s here, twice `InfluxStore.write`'s ~215k/s with Points and gzip);
the DuckDB file gets the same history as whole columns through `EmbeddedStore.write_columns` (scale_fleet.
ColumnsWriter, ~2x `store.write` with Points). Memory stays bounded: a batch of the history is made at a time.
InfluxDB is measured once it has compacted what was planted (its process under 20% of a core for 5 s).

From the history's end on, the agents write live (scale_fleet.LiveFleet): every host's libvirtd, collector and
domain points at its phase of each 10 s, written every half second, and restart/domain_failed events at the
history's rates: a separate process for InfluxDB (started before the planting, running to the end), a thread of
this process for DuckDB (started after its planting, first catching up like an agent's spool replay).

ROWS (InfluxDB, and DuckDB beside it for what runs in this process; targets from issue 15):

- planted history: points and seconds.
- engine start: `alerts.rollups.coverage` of the 4 SLOs, and the catch-up roll-up of the minutes since the
  history ended (what a restarted engine's first round does).
- event rules round, steady state: `Engine(store, slos, default_rules(), {}, state_dir).run_round(slos=False,
  rules=True)`, every `[alerts] rules_interval_seconds` (shipped: 2 s) as the engine does (between the SLO
  rounds below), median of `--rules-rounds` (10)
  after a first warm-up round, with what each read (the engine remembers each host between rounds and reads only
  what was written since: alerts.rule_memory). The warm-up round reads the whole week, as a restarted engine
  does (and, for events, as every 10-minute resync does); target <= 0.3 s.
- SLO evaluation: `alerts.burn.evaluate_slos` of the 4 SLOs, every host and the fleet, every window of the
  catalog and the 30-day period, with the coverage found in the store (`alerts.rollups.coverage`), right after
  each roll-up round; median of `--rounds` (4); target <= 3 s. And the same evaluation from the engine's memory
  of the rollups (`memories=`, alerts.sli_memory: only the raw tail since the last rolled minute is read), right
  after the engine's SLO round below: what the engine evaluates every round once it has loaded its memory.
- incremental roll-up round: `alerts.rollups.roll_up` of the 4 SLOs side by side, as the engine rolls them
  (`alerts.rollups.roll_up_each`, 4 threads), from the coverage the previous round reached, 30 s later (the
  engine's SLO interval), `--rounds` times. A round rolls only the minute that settled since the last one, and
  every fifth minute also the five minutes that reached 10 minutes of age (their second pass), so every other
  round has nothing to roll (the rounds fall a second after each whole and half minute, so half of them roll
  one): the median is of the rounds that rolled a minute, the others are shown below it; target <= 1 s.
- the engine's own SLO round, right after those two (no target of its own): `run_round(slos=True, rules=False)`
  of the same Engine, which rolls up (the same minutes again), evaluates from its memory of the rollups
  (alerts.sli_memory: only the raw tail is read) and writes its `slo_budget`/`slo_burn` records; its first round,
  which loads that memory, before the first round.
- engine CPU at steady state: `virtwatch alerts --config F` (the InfluxDB store, deploy/slos.toml, default
  intervals, one webhook receiver) as a subprocess while the fleet writes; after its first 2 SLO rounds (counted
  from its `slo_budget` records), cores used = (utime + stime of /proc/PID/stat over `--minutes`) / wall
  seconds, and InfluxDB's meanwhile; target <= 0.3 core. Its RSS: VmHWM at the end of the run (the kills
  included), target <= 1 GB, and VmRSS after the warm-up and at the end of the CPU measurement.
- libvirtd SIGKILL -> page: a private libvirtd (tests/libvirtd.py) watched by a real `virtwatch agent` (host
  `hv-kill`, default 10 s interval) beside the simulated hosts, the same engine; seconds from SIGKILL to the
  LibvirtdDown page at an HTTP receiver (tests/receivers.py), `--kills` (3) kills, each after the previous one
  resolved and a random 0-10 s (another phase of the agent's interval); median, target <= 10 s.
- fleet page callbacks (hosts, 24 h): `benchmarks/bench_dashboard.fleet_callbacks(store, hosts, hours)` when it
  exists.
- the live writers: points, the longest delay from a point's stamp to its write, errors.

This process and its InfluxDB share the machine (`nproc` cores) with the live writer and the engine: figures are
for this machine, noisy like any shared one (DESIGN.md: never asserted, only measured).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from receivers import HTTPReceiver  # noqa: E402
from scale_fleet import ColumnsWriter, LinesWriter, LiveFleet, Planted, PointsWriter, ScaleFleet, plant  # noqa: E402
from servers import InfluxDBServer, free_port  # noqa: E402
from table import print_columns  # noqa: E402

from alerts.burn import evaluate_slos  # noqa: E402
from alerts.engine import Engine, RoundReport  # noqa: E402
from alerts.event_rules import default_rules  # noqa: E402
from alerts.rollups import coverage, roll_up, roll_up_each  # noqa: E402
from alerts.slo import load_slos  # noqa: E402
from tsdb import open_store  # noqa: E402
from virtwatch.config import AlertsConfig  # noqa: E402

S = 10**9
SLO_FILE = ROOT / "deploy" / "slos.toml"
SLOS = load_slos(SLO_FILE)
DATABASE = "scale"
SLO_ROUND_SECONDS = AlertsConfig().interval_seconds          # shipped: 30 s
RULES_ROUND_SECONDS = AlertsConfig().rules_interval_seconds   # shipped: 2 s
KILL_HOST = "hv-kill"
BEGAN = time.monotonic()


def say(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[{time.monotonic() - BEGAN:7.1f} s] {message}", file=sys.stderr, flush=True)


def planting_progress(label: str):
    """Return a progress callback that says every tenth of the planting."""
    said = [0]

    def hear(fraction: float) -> None:
        if fraction * 10 >= said[0] + 1 or fraction >= 1:
            said[0] = int(fraction * 10)
            say(f"{label}: planted {fraction:.0%}")
    return hear


def plant_history(label: str, fleet: ScaleFleet, writer, end_ns: int, args) -> Planted:
    """Plant the fleet's history before end_ns through a writer, saying how it goes."""
    say(f"{label}: planting {args.days:g} d of history of {len(fleet)} hosts")
    planted = plant(fleet, writer, end_ns, days=args.days, minute_hours=min(args.minute_hours, args.days * 24),
                    raw_hours=min(args.raw_hours, args.days * 24), domain_minutes=args.domain_minutes,
                    slos=SLOS, progress=planting_progress(label))
    say(f"{label}: {planted.points:,} points ({planted.event_points:,} events and diagnoses of "
        f"{planted.incidents:,} incidents) in {planted.seconds:.0f} s ({planted.points / planted.seconds:,.0f}/s)")
    return planted


# --- in-process figures --------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one store measured in this process."""

    planted: Planted | None = None
    compactions_seconds: float | None = None
    coverage_seconds: float = 0.0
    catch_up_seconds: float = 0.0
    catch_up_minutes: float = 0.0
    rules_first: float = 0.0
    rules_first_reads: str = ""
    rules: list[float] = field(default_factory=list)
    rules_reads: list[str] = field(default_factory=list)
    evaluations: list[float] = field(default_factory=list)
    memory_evaluations: list[float] = field(default_factory=list)
    rollups: list[float] = field(default_factory=list)   # rounds that rolled a new minute (and re-rolled one)
    empty_rollups: list[float] = field(default_factory=list)  # rounds with no minute settled since the last
    engine_slo_first: float = 0.0
    engine_slo: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    callbacks: list | str = ""


def measure(label: str, store, state_dir: Path, args) -> Figures:
    """Run the engine's steps against a store on the engine's schedule; return their times.

    Each round, `SLO_ROUND_SECONDS` after the previous one: the roll-up, the evaluation through the store, then the
    engine's own SLO round (the same roll-up again, the evaluation from its memory, its records); the rules rounds
    every `RULES_ROUND_SECONDS` in between, until there are `--rules-rounds` of them.
    """
    figures = Figures()
    now = time.time_ns()
    began = time.perf_counter()
    found = {slo.name: coverage(store, slo, now) for slo in SLOS}
    figures.coverage_seconds = time.perf_counter() - began
    began = time.perf_counter()
    done = roll_up_each(store, SLOS, lambda slo, shared: roll_up(shared, slo, now, found[slo.name]))
    figures.catch_up_seconds = time.perf_counter() - began
    figures.catch_up_minutes = max((done[n].minute_until_ns - found[n].minute_until_ns) / (60 * S) for n in done)
    say(f"{label}: coverage {figures.coverage_seconds:.2f} s, catch-up roll-up of {figures.catch_up_minutes:.0f} min "
        f"{figures.catch_up_seconds:.1f} s")
    engine = Engine(store, SLOS, default_rules(), {}, state_dir)

    def engine_round(slos: bool) -> RoundReport:
        report = engine.run_round(slos=slos, rules=not slos)
        if report.error:
            figures.errors.append(f"{'SLO' if slos else 'rules'} round: {report.error}")
        return report

    def rules_round() -> tuple[float, str]:
        report = engine_round(slos=False)
        reads = getattr(report, "rules_reads", None)
        said = "" if reads is None else (f"{reads.queries} queries, {reads.rows:,} rows, "
                                         f"{reads.evaluated_hosts} hosts evaluated")
        return report.seconds, said

    figures.rules_first, figures.rules_first_reads = rules_round()
    say(f"{label}: first rules round {figures.rules_first:.2f} s ({figures.rules_first_reads})")
    figures.engine_slo_first = engine_round(slos=True).seconds
    say(f"{label}: the engine's first SLO round {figures.engine_slo_first:.2f} s")
    # rounds 30 s apart, a second after a whole minute or half minute: every other round finds a minute settled
    start = time.time() - time.time() % SLO_ROUND_SECONDS + SLO_ROUND_SECONDS + 1.0
    for index in range(args.rounds):
        _sleep_until(start + index * SLO_ROUND_SECONDS)
        now = time.time_ns()
        began = time.perf_counter()
        before, done = done, roll_up_each(store, SLOS, lambda slo, shared: roll_up(shared, slo, now,
                                                                                    done[slo.name]))
        took = time.perf_counter() - began
        rolled = any(done[n].minute_until_ns > before[n].minute_until_ns for n in done)
        (figures.rollups if rolled else figures.empty_rollups).append(took)
        coverages = {slo.name: coverage(store, slo, now) for slo in SLOS}
        began = time.perf_counter()
        evaluated = evaluate_slos(store, SLOS, now, coverages)
        figures.evaluations.append(time.perf_counter() - began)
        figures.engine_slo.append(engine_round(slos=True).seconds)
        began = time.perf_counter()
        evaluate_slos(store, SLOS, now, engine.coverage, memories=engine.memories)
        figures.memory_evaluations.append(time.perf_counter() - began)
        hosts = len(evaluated[SLOS[0].name]) - 1
        say(f"{label}: round {index + 1}: roll-up {took:.2f} s ({'a new minute' if rolled else 'nothing settled'}), "
            f"evaluation of {hosts} hosts + fleet {figures.evaluations[-1]:.2f} s (from memory "
            f"{figures.memory_evaluations[-1]:.2f} s), the engine's SLO round {figures.engine_slo[-1]:.2f} s")
        next_round = start + (index + 1) * SLO_ROUND_SECONDS
        while len(figures.rules) < args.rules_rounds and (index == args.rounds - 1 or
                                                           time.time() + RULES_ROUND_SECONDS < next_round):
            round_began = time.time()
            seconds, reads = rules_round()
            figures.rules.append(seconds)
            figures.rules_reads.append(reads)
            _sleep_until(round_began + RULES_ROUND_SECONDS)
    say(f"{label}: rules rounds {', '.join(f'{s:.2f}' for s in figures.rules)} s; reads of the last: "
        f"{figures.rules_reads[-1] if figures.rules_reads else '-'}")
    return figures


def wait_for_compactions(pid: int, busy_share: float = 0.2, quiet_seconds: int = 5,
                         max_seconds: float = 600.0) -> float:
    """Wait until a process (InfluxDB compacting what was just planted) has used under `busy_share` of a core for
    `quiet_seconds` in a row (the live writes cost it a few percent); return the seconds waited."""
    began, quiet, last = time.monotonic(), 0, _cpu_seconds(pid)
    while quiet < quiet_seconds and time.monotonic() - began < max_seconds:
        time.sleep(1.0)
        now = _cpu_seconds(pid)
        quiet = quiet + 1 if now - last < busy_share else 0
        last = now
    return time.monotonic() - began


def _sleep_until(moment: float) -> None:
    """Sleep until a wall-clock time (time.time())."""
    time.sleep(max(0.0, moment - time.time()))


def fleet_callbacks(store, fleet: ScaleFleet, hours: int) -> list | str:
    """Return bench_dashboard.fleet_callbacks' rows (what, value, unit, target) for the fleet page over the
    last `hours`, or why there are none (another engineer adds that function: it may not be there yet)."""
    try:
        import bench_dashboard
    except Exception as error:  # noqa: BLE001 - a row of the table, not a reason to stop
        return f"n/a (bench_dashboard not importable: {type(error).__name__}: {error})"
    function = getattr(bench_dashboard, "fleet_callbacks", None)
    if function is None:
        return "n/a (bench_dashboard.fleet_callbacks not available)"
    try:
        result = function(store, len(fleet), hours)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - it exits when a callback fails
        return f"failed: {type(error).__name__}: {error}"[:300]
    if isinstance(result, (list, tuple)) and all(isinstance(r, (list, tuple)) and len(r) == 4 for r in result):
        return [tuple(map(str, r)) for r in result]
    return str(result)[:300]


# --- the engine as a process ---------------------------------------------------------------------------------------


@dataclass
class EngineFigures:
    """What the `virtwatch alerts` process did: CPU, memory, SLO rounds, kill-to-page delays, log errors."""

    cores: float | None = None
    cpu_seconds: float = 0.0
    influxdb_cores: float | None = None
    wall_seconds: float = 0.0
    slo_rounds: int = 0
    warm_up_seconds: float = 0.0
    hwm_mb: float | None = None
    rss_mb: float | None = None
    warm_rss_mb: float | None = None   # after its first 2 SLO rounds
    delays: list[float] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, key: str) -> float | None:
    """A memory figure of /proc/PID/status (VmHWM, VmRSS) in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _slo_rounds(server: InfluxDBServer, since_ns: int) -> int:
    """How many SLO rounds the engine recorded since a time: its fleet-wide availability `slo_budget` points."""
    answer = server.query(f"SELECT valid_total FROM slo_budget WHERE slo = 'libvirtd-availability' AND host = '' "
                          f"AND time >= {since_ns}", db=DATABASE, epoch="ns")
    series = answer["results"][0].get("series", [])
    return sum(len(s["values"]) for s in series)


def _down_notices(receiver: HTTPReceiver, start: int) -> list[str]:
    """The statuses of LibvirtdDown on the kill host in notifications from the start-th request on."""
    found = []
    for request in receiver.delivered[start:]:
        try:
            body = request.json()
        except ValueError:
            continue
        for alert in body.get("alerts", []):
            labels = alert.get("labels", {})
            if labels.get("alertname") == "LibvirtdDown" and labels.get("host") == KILL_HOST:
                found.append(alert.get("status", ""))
    return found


def run_engine(server: InfluxDBServer, tmp: Path, args) -> EngineFigures:
    """Run `virtwatch alerts` (and for the kills a private libvirtd and `virtwatch agent`); measure it."""
    figures = EngineFigures()
    receiver = HTTPReceiver(free_port())
    receiver.start()
    daemon = None
    processes: dict[str, subprocess.Popen] = {}
    logs = []
    try:
        agent_section = ""
        if not args.skip_kill:
            from libvirtd import PrivateLibvirtd

            daemon = PrivateLibvirtd(tmp / "libvirtd").start()
            agent_section = f"""
[agent]
libvirt_uri = {json.dumps(daemon.uri_test)}
admin_uri = {json.dumps(daemon.admin_uri)}
host_name = "{KILL_HOST}"
daemon_pidfile = {json.dumps(str(daemon.pidfile))}
spool_dir = {json.dumps(str(tmp / "spool"))}
forensics_dir = {json.dumps(str(tmp / "forensics"))}
"""
        config = tmp / "virtwatch.toml"
        config.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{server.port}/{DATABASE}"
{agent_section}
[alerts]
slo_file = {json.dumps(str(SLO_FILE))}
state_dir = {json.dumps(str(tmp / "alerts"))}
[[alerts.receivers]]
name = "oncall"
type = "webhook"
url = "{receiver.url}/hook"
""")
        virtwatch = str(Path(sys.executable).with_name("virtwatch"))
        names = ["alerts"] + ([] if args.skip_kill else ["agent"])
        for name in names:
            log = open(tmp / f"{name}.log", "wb")
            logs.append(log)
            processes[name] = subprocess.Popen([virtwatch, name, "--config", str(config)], stdout=log,
                                               stderr=subprocess.STDOUT)
        engine = processes["alerts"]
        started = time.time_ns()
        say(f"engine: virtwatch alerts pid {engine.pid}" + ("" if args.skip_kill else
                                                            f", agent pid {processes['agent'].pid}"))
        began = time.monotonic()
        while _slo_rounds(server, started) < 2:  # the first round catches up; the second is steady
            if engine.poll() is not None:
                raise RuntimeError(f"virtwatch alerts exited with {engine.returncode}; see {tmp / 'alerts.log'}")
            if time.monotonic() - began > 900:
                raise RuntimeError("virtwatch alerts recorded no 2 SLO rounds in 15 minutes")
            time.sleep(1)
        figures.warm_up_seconds = time.monotonic() - began
        figures.warm_rss_mb = _status_mb(engine.pid, "VmRSS")
        say(f"engine: 2 SLO rounds after {figures.warm_up_seconds:.0f} s, VmRSS {figures.warm_rss_mb:.0f} MB, "
            f"VmHWM {_status_mb(engine.pid, 'VmHWM'):.0f} MB")
        if not args.skip_cpu:
            if not args.skip_kill:
                time.sleep(max(0.0, 15 - figures.warm_up_seconds))
            window_ns = time.time_ns()
            cpu_before, wall_before = _cpu_seconds(engine.pid), time.monotonic()
            store_before = _cpu_seconds(server.process.pid)
            say(f"engine: measuring its CPU for {args.minutes:g} min")
            time.sleep(args.minutes * 60)
            figures.cpu_seconds = _cpu_seconds(engine.pid) - cpu_before
            figures.wall_seconds = time.monotonic() - wall_before
            figures.cores = figures.cpu_seconds / figures.wall_seconds
            figures.influxdb_cores = (_cpu_seconds(server.process.pid) - store_before) / figures.wall_seconds
            figures.slo_rounds = _slo_rounds(server, window_ns)
            figures.rss_mb = _status_mb(engine.pid, "VmRSS")
            say(f"engine: {figures.cores:.3f} cores ({figures.cpu_seconds:.1f} s CPU in {figures.wall_seconds:.0f} s, "
                f"{figures.slo_rounds} SLO rounds), RSS {figures.rss_mb:.0f} MB")
        if not args.skip_kill:
            time.sleep(max(0.0, 15 - (time.monotonic() - began)))  # the agent's first collections
            for number in range(args.kills):
                seen = len(receiver.delivered)
                killed = time.monotonic()
                daemon.kill(signal.SIGKILL)
                while "firing" not in _down_notices(receiver, seen) and time.monotonic() - killed < 120:
                    time.sleep(0.05)
                if "firing" not in _down_notices(receiver, seen):
                    figures.notes.append(f"kill {number + 1}: no LibvirtdDown page within 120 s")
                    daemon.start()
                    break
                figures.delays.append(time.monotonic() - killed)
                say(f"engine: kill {number + 1}: LibvirtdDown paged after {figures.delays[-1]:.1f} s")
                daemon.start()
                while "resolved" not in _down_notices(receiver, seen) and time.monotonic() - killed < 300:
                    time.sleep(0.2)
                if "resolved" not in _down_notices(receiver, seen):
                    figures.notes.append(f"kill {number + 1}: LibvirtdDown not resolved within 300 s")
                    break
                time.sleep(random.uniform(0, 10))  # kill at another phase of the agent's interval
        figures.hwm_mb = _status_mb(engine.pid, "VmHWM")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
        if daemon is not None:
            daemon.stop()
        receiver.stop()
    text = (tmp / "alerts.log").read_text(errors="replace") if (tmp / "alerts.log").exists() else ""
    figures.log_errors = [line for line in text.splitlines() if " ERROR " in line]
    return figures


# --- the table -----------------------------------------------------------------------------------------------------


def _median(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} {unit} (max {max(values):.2f})"


def _planted_cell(planted: Planted | None) -> str:
    if planted is None:
        return "-"
    return f"{planted.points / 1e6:.1f}M in {planted.seconds:.0f} s ({planted.points / planted.seconds / 1000:.0f}k/s)"


def _callback_rows(hosts: int, influx: Figures | None, duck: Figures | None, skipped: str) -> list:
    """The fleet page's rows from bench_dashboard.fleet_callbacks, InfluxDB and DuckDB side by side."""
    title = f"fleet page callbacks ({hosts} hosts, 24 h)"
    found = {label: (f.callbacks if f else skipped) or skipped for label, f in (("InfluxDB", influx), ("DuckDB", duck))}
    lists = {label: value for label, value in found.items() if isinstance(value, list)}
    if not lists:
        return [(title, found["InfluxDB"], found["DuckDB"], "")]
    rows, keys = [(title, "", "", "")], []
    keyed = {label: _occurrences(value) for label, value in lists.items()}
    for value in keyed.values():
        keys += [key for key in value if key not in keys]
    for key in keys:
        cells, target = [], ""
        for label in ("InfluxDB", "DuckDB"):
            if label in keyed:
                row = keyed[label].get(key)
                cells.append(f"{row[1]} {row[2]}".strip() if row else "-")
                target = target or (row[3] if row else "")
            else:
                cells.append(found[label])
        rows.append((f"  {key[0].removeprefix('fleet ')}", *cells, target))
    return rows


def _occurrences(rows: list) -> dict:
    """Key rows by (what, how many rows of that name came before): names repeat ("rows sent to the browser")."""
    seen: dict[str, int] = {}
    keyed = {}
    for row in rows:
        keyed[(row[0], seen.get(row[0], 0))] = row
        seen[row[0]] = seen.get(row[0], 0) + 1
    return keyed


def table(args, fleet: ScaleFleet, stores: dict[str, Figures], engine: EngineFigures | None,
          live: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """Return the table's rows: what, InfluxDB, DuckDB, target."""
    influx, duck = stores.get("InfluxDB"), stores.get("DuckDB")
    skipped = "skipped"

    def both(cell, target=""):
        return (cell(influx) if influx else skipped, cell(duck) if duck else skipped, target)

    hosts = len(fleet)
    rows = [
        (f"planted history ({hosts} hosts: 1h rollups {args.days:g} d, 1m rollups "
         f"{min(args.minute_hours, args.days * 24):g} h, raw {min(args.raw_hours, args.days * 24):g} h, domains "
         f"{args.domain_minutes:g} min, events)", *both(lambda f: _planted_cell(f.planted))),
        ("events and diagnoses planted (of incidents)",
         *both(lambda f: f"{f.planted.event_points:,} ({f.planted.incidents:,})")),
        ("InfluxDB: waited after planting for its compactions (under 20% of a core for 5 s)",
         *both(lambda f: "-" if f.compactions_seconds is None else f"{f.compactions_seconds:.0f} s")),
        ("engine start: coverage of the 4 SLOs", *both(lambda f: f"{f.coverage_seconds:.2f} s")),
        ("engine start: catch-up roll-up since the history ended",
         *both(lambda f: f"{f.catch_up_seconds:.1f} s for {f.catch_up_minutes:.0f} min")),
        ("event rules round, first (warm-up: reads the week)", *both(lambda f: f"{f.rules_first:.2f} s")),
        ("  its reads", *both(lambda f: f.rules_first_reads or "-")),
        (f"event rules round, steady state, every {RULES_ROUND_SECONDS:g} s: median of {args.rules_rounds}",
         *both(lambda f: _median(f.rules), "<= 0.3 s")),
        ("  reads of the last one", *both(lambda f: f.rules_reads[-1] if f.rules_reads else "-")),
        (f"SLO evaluation, 4 SLOs x {hosts} hosts + fleet, every window, through the store (a restarted engine, "
         f"the dashboard): median of {args.rounds}", *both(lambda f: _median(f.evaluations), "<= 3 s")),
        ("SLO evaluation, the same, from the engine's memory of the rollups (what each of its SLO rounds does): "
         f"median of {args.rounds}", *both(lambda f: _median(f.memory_evaluations), "<= 3 s")),
        ("incremental roll-up round, 4 SLOs, 30 s after the previous: median of the rounds that rolled a minute",
         *both(lambda f: _median(f.rollups) + f" of {len(f.rollups)}", "<= 1 s")),
        ("  rounds with no minute settled since the previous",
         *both(lambda f: _median(f.empty_rollups) + f" of {len(f.empty_rollups)}" if f.empty_rollups else "none")),
        ("the engine's SLO round, first (loads its memory of the rollups)",
         *both(lambda f: f"{f.engine_slo_first:.2f} s")),
        (f"the engine's SLO round (the roll-up, the evaluation from its memory, records): median of {args.rounds}",
         *both(lambda f: _median(f.engine_slo))),
    ]
    in_process = "-"  # the engine process, the kills and the writer process are InfluxDB's only
    if engine is not None and engine.cores is not None:
        rows.append((f"engine CPU at steady state (virtwatch alerts, {engine.wall_seconds / 60:.1f} min, "
                     f"{engine.slo_rounds} SLO rounds, after {engine.warm_up_seconds:.0f} s warm-up)",
                     f"{engine.cores:.3f} cores ({engine.cpu_seconds:.0f} s CPU)", in_process, "<= 0.3 core"))
        rows.append(("  InfluxDB's CPU meanwhile (the engine's reads, the live writes, the agent's)",
                     f"{engine.influxdb_cores:.3f} cores", in_process, ""))
    elif args.skip_cpu:
        rows.append(("engine CPU at steady state", skipped, in_process, "<= 0.3 core"))
    if engine is not None and not args.skip_kill:
        each = ", ".join(f"{d:.1f}" for d in engine.delays)
        cell = f"{statistics.median(engine.delays):.1f} s ({each})" if engine.delays else "no page"
        rows.append((f"libvirtd SIGKILL -> LibvirtdDown page, default intervals: median of {len(engine.delays)}",
                     cell, in_process, "<= 10 s"))
    elif args.skip_kill:
        rows.append(("libvirtd SIGKILL -> LibvirtdDown page", skipped, in_process, "<= 10 s"))
    rows += _callback_rows(hosts, influx, duck, skipped)
    if engine is not None:
        rss = "-" if engine.hwm_mb is None else f"{engine.hwm_mb:.0f} MB VmHWM"
        rows.append(("engine RSS (virtwatch alerts): peak over the run", rss, in_process, "<= 1 GB"))
        for what, value in (("  VmRSS after its first 2 SLO rounds", engine.warm_rss_mb),
                            ("  VmRSS at the end of the CPU measurement", engine.rss_mb)):
            if value is not None:
                rows.append((what, f"{value:.0f} MB", in_process, ""))
        rows.append(("engine: ERROR lines in its log", str(len(engine.log_errors)), in_process, "0"))
    for label in ("InfluxDB", "DuckDB"):
        report = live.get(label)
        if report:
            cell = (f"{report['points']:,} points, {report['events']} events, max lag "
                    f"{report['max_lag_seconds']:.2f} s, {report['errors']} errors")
            rows.append((f"live writer ({'a process' if label == 'InfluxDB' else 'a thread'})",
                         cell if label == "InfluxDB" else "", cell if label == "DuckDB" else "", "0 errors"))
    errors = {label: f.errors for label, f in stores.items() if f.errors}
    if errors:
        rows.append(("round errors in this process", *both(lambda f: str(len(f.errors))), "0"))
    rows.append(("peak RSS of this process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
                 "", ""))
    return rows


# --- main ----------------------------------------------------------------------------------------------------------


def start_live_process(server: InfluxDBServer, args, start_ns: int, report: Path) -> subprocess.Popen:
    """Start the fleet's agents as a process writing into InfluxDB from start_ns on."""
    command = [sys.executable, str(ROOT / "benchmarks" / "scale_fleet.py"), "live", "--port", str(server.port),
               "--db", DATABASE, "--hosts", str(args.hosts), "--domains", str(args.domains), "--seed",
               str(args.seed), "--start-ns", str(start_ns), "--report", str(report)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(report.with_suffix(".log"), "wb"))


def stop_live_process(process: subprocess.Popen, report: Path) -> dict:
    """Stop the writer process (SIGTERM) and return its report."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not report.exists():
        return {"points": 0, "events": 0, "max_lag_seconds": float("nan"), "errors": 1,
                "first_error": [f"no report (exit {process.returncode}), see {report.with_suffix('.log')}"]}
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--domains", type=int, default=4, help="guests per host")
    parser.add_argument("--minute-hours", type=float, default=24, help="hours of minute rollups planted")
    parser.add_argument("--raw-hours", type=float, default=24, help="hours of raw libvirtd and collector points")
    parser.add_argument("--domain-minutes", type=float, default=60, help="minutes of raw domain points")
    parser.add_argument("--rounds", type=int, default=4, help="roll-up and evaluation rounds, 30 s apart")
    parser.add_argument("--rules-rounds", type=int, default=10, help="rules rounds after the warm-up one")
    parser.add_argument("--minutes", type=float, default=3, help="minutes of the engine's CPU measurement")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--skip-callbacks", action="store_true")
    args = parser.parse_args()
    fleet = ScaleFleet(args.hosts, args.domains, args.seed)
    stores: dict[str, Figures] = {}
    live: dict[str, dict] = {}
    engine = None
    say(f"{os.cpu_count()} CPUs; fleet of {args.hosts} hosts, {args.days:g} days")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        server = InfluxDBServer(tmp / "influxdb").start()
        writer_process = None
        try:
            server.create_database(DATABASE)
            end_ns = time.time_ns()
            writer_process = start_live_process(server, args, end_ns, tmp / "live-influxdb.json")
            planted = plant_history("InfluxDB", fleet, LinesWriter(fleet, server.port, DATABASE), end_ns, args)
            compactions = wait_for_compactions(server.process.pid)
            say(f"InfluxDB: compactions settled after {compactions:.0f} s")
            with open_store(f"influxdb://127.0.0.1:{server.port}/{DATABASE}") as store:
                figures = stores["InfluxDB"] = measure("InfluxDB", store, tmp / "state-influxdb", args)
                figures.planted, figures.compactions_seconds = planted, compactions
                if not args.skip_callbacks:
                    say("InfluxDB: fleet page callbacks")
                    figures.callbacks = fleet_callbacks(store, fleet, 24)
            if not args.skip_duckdb:
                with open_store(f"duckdb://{tmp}/scale.duckdb") as store:
                    end_ns = time.time_ns()
                    bulk = ColumnsWriter if hasattr(store, "write_columns") else PointsWriter
                    planted = plant_history("DuckDB", fleet, bulk(fleet, store), end_ns, args)
                    writers = LiveFleet(fleet, PointsWriter(fleet, store, threaded=False), end_ns, args.seed).start()
                    try:
                        figures = stores["DuckDB"] = measure("DuckDB", store, tmp / "state-duckdb", args)
                        figures.planted = planted
                        if not args.skip_callbacks:
                            say("DuckDB: fleet page callbacks")
                            figures.callbacks = fleet_callbacks(store, fleet, 24)
                    finally:
                        writers.stop()
                    live["DuckDB"] = writers.report()
            if not (args.skip_cpu and args.skip_kill):
                engine = run_engine(server, tmp, args)
        finally:
            if writer_process is not None:
                live["InfluxDB"] = stop_live_process(writer_process, tmp / "live-influxdb.json")
            server.stop()
    for label, figures in stores.items():
        for error in figures.errors[:3]:
            say(f"{label}: {error}")
    if engine is not None:
        for line in engine.log_errors[:5] + engine.notes:
            say(f"engine: {line}")
    for label, report in live.items():
        for error in report.get("first_error", []):
            say(f"live writer ({label}): {error}")
    print_columns(("what", "InfluxDB", "DuckDB", "target"), table(args, fleet, stores, engine, live))


if __name__ == "__main__":
    main()
