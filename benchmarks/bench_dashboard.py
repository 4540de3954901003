"""Benchmark of the dashboard: server time of each page's callbacks over a simulated fleet in InfluxDB and DuckDB.

Run it from the repository root (needs `influxd`, see `make setup-test`):

    .venv/bin/python benchmarks/bench_dashboard.py [--hosts 100] [--days 7] [--domains 4] [--runs 3]
    .venv/bin/python benchmarks/bench_dashboard.py --fleet-hosts 2000 --fleet-hours 24 [--runs 3]

It simulates a fleet (simulator: one point per host per measurement per minute, `--domains` guests per host),
writes it into a private InfluxDB 1.6 (tests/servers.py) and a DuckDB file, rolls up the SLIs of
deploy/slos.toml the way the alert engine does (minute and hour rollups), then calls every data callback of every
page directly, inside the app's request context, for the ranges 24h and 7d, and prints the median of `--runs`
calls after one warm-up call. The SLO evaluation cache (60 s per process) is cleared before every call, so the
figures are those of a cold callback. The SLO-reading callbacks are timed twice: without the alert engine's
records (the dashboard then evaluates every SLO itself), and with them (the normal case: `virtwatch alerts` writes
`slo_budget` and `slo_burn` each round), the rest once. Target: every callback under 300 ms.

With `--fleet-hosts N --fleet-hours H` it measures the fleet page at scale instead (`fleet_callbacks`, which
benchmarks/bench_scale.py calls too). What it plants into each store, ending at a whole minute:

- `libvirtd`: every host every 10 s for H hours (the agents' real cadence, each host at its own phase within the
  10 s), the twelve fields the fleet page reads (up, hung, probe_ok, probe_latency_ms, workers_max,
  workers_current, workers_free, job_queue_depth, and for its leak signs open_fds, max_fds, rss_bytes,
  start_time_seconds; the agents' other fields are not planted, and neither store reads a field it is not asked
  for): 2000 hosts x 24 h are 17.3 million points. 0.5% of the hosts leak descriptors (towards 97% of max_fds
  at the end); 1% of the hosts are hung for
  their last 20 minutes, 0.5% down for their last 15, 1% went silent at a random time in the range (they show
  "no data"), 0.5% restarted in the last 5 minutes;
- `event`: 30 days of failures (the page's "last failure" looks back 30 days): per host and day 0.1 critical
  (tsdb.schema's failure kinds of severity critical: segfault, hang_start, daemon_down, domain_failed,
  domain_crashed) and 0.2 warning events (its warning ones: restart, keepalive_timeout and the guest problems,
  and a log signature's, log_keepalive), guests' events with a `domain` tag, plus the events of the hosts hung,
  down and restarted;
- `slo_budget` and `slo_burn`: the alert engine's records of the four SLOs of deploy/slos.toml for every host
  and the fleet, every 30 s (its real round) over the last 10 minutes (the dashboard reads the newest within
  3 minutes);
- `libvirtd_leak`: the engine's leak records of its last round, made by its own code (alerts.leak_rule.LeakMemory)
  over the planted libvirtd points: what the fleet's leak signs read (one row per host);
- `sli` rollups of those SLOs for every host: hour rollups over the H hours and minute rollups over the last 3
  hours (what the fleet's burn chart reads; the engine keeps minute rollups for longer, which no read here
  touches).

InfluxDB is measured once it has compacted what was planted (its process idle for 5 s). Then it creates the app
over the store with its clock at the planted end and calls the fleet page's callbacks directly, in the app's
request context, over the last H hours: the first load with nothing cached (every cache cleared before each run:
the page was not opened for 5 minutes), the first load once the fleet frame expired (10 s on; the budgets and the
leak signs, kept 60 s, and the failures older than an hour, kept 5 minutes, still cached: a page someone opened
lately, or an auto-refresh), the next page, a sort (by probe latency, worst first), a filter (status hung or
down, name containing "1"), the summary strip (from the cached fleet frame), the failures heatmap and the burn
chart; median of `--runs` after one warm-up, the rows each sends to the browser, the CPU the store reads used
(the dashboard's process, and influxd's: on a shared machine wall time depends on the neighbours, CPU time much
less), the load average meanwhile and the process' RSS. Target: every callback under 500 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import InfluxDBServer  # noqa: E402
from table import print_table  # noqa: E402

TARGET_MS = 300.0
RANGES = ("24h", "7d")
DATABASE = "bench_dashboard"


def fill(store, simulation, slos, end_ns: int) -> float:
    """Write the simulation and its SLI rollups into a store; return the seconds it took."""
    from alerts.rollups import NO_ROLLUPS, roll_up
    from simulator import write_simulation

    began = time.perf_counter()
    write_simulation(store, simulation)
    for slo in slos:
        roll_up(store, slo, end_ns, NO_ROLLUPS, backfill_seconds=simulation.spec.steps * simulation.spec.step_seconds,
                chunk_seconds=6 * 3600)
    return time.perf_counter() - began


def record_evaluations(store, slos, end_ns: int) -> None:
    """Write the SLO evaluations a running alert engine would have written half a minute before the end."""
    from alerts.burn import evaluate_slos
    from alerts.records import evaluation_points
    from alerts.rollups import coverage

    at_ns = end_ns - 30 * 10**9
    store.write(evaluation_points(evaluate_slos(store, slos, at_ns, {s.name: coverage(store, s, at_ns) for s in slos}),
                                  at_ns))


def page_callbacks(host: str):
    """Return (page, callback name, function of range data) for every data callback of every page."""
    pages = {name: sys.modules[f"dashboard.pages.{name}"] for name in ("fleet", "host", "slos", "events", "alerts")}
    path = f"/host/{host}"
    return [
        ("fleet", "hosts_page", lambda r: pages["fleet"].hosts_page({"startRow": 0, "endRow": 50}, r, [], "", "")),
        ("fleet", "summary", lambda r: pages["fleet"].summary(r, 0, "")),
        ("fleet", "failure_heatmap", lambda r: pages["fleet"].failure_heatmap(r, 0)),
        ("fleet", "burn_chart", lambda r: pages["fleet"].burn_chart(r, 0)),
        ("host", "health", lambda r: pages["host"].health(r, 0, path)),
        ("host", "domains", lambda r: pages["host"].domains(r, 0, path)),
        ("host", "host_events", lambda r: pages["host"].host_events(r, 0, path)),
        ("slos", "slo_cards", lambda r: pages["slos"].slo_cards(r, 0)),
        ("events", "events_table", lambda r: pages["events"].events_table(r, 0, [], [], [], "")),
        ("events", "events_table (critical)", lambda r: pages["events"].events_table(r, 0, [], [], ["critical"], "")),
        ("events", "host_options", lambda r: pages["events"].host_options(r, [])),
        ("alerts", "active", lambda r: pages["alerts"].active(r, 0)),
        ("alerts", "history", lambda r: pages["alerts"].history(r, 0)),
    ]


def time_callbacks(backend: str, store, slos, state_dir: Path, end_ns: int, host: str, runs: int,
                   only: tuple[str, ...] = ()) -> list:
    """Return table rows: the median server time of each callback (those named in `only`, if any) per range."""
    import datetime as dt

    from dashboard import data
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    now = dt.datetime.fromtimestamp(end_ns / 1e9, tz=dt.timezone.utc)
    app = create_app(DashboardContext(store, slos, state_dir, clock=lambda: now))
    app.server.test_client().get("/_dash-layout")  # the first request moves the pages' callbacks into this app
    rows = []
    with app.server.test_request_context("/"):
        for page, name, call in page_callbacks(host):
            if only and name not in only:
                continue
            for range_name in RANGES:
                range_data = {"range": range_name, "start": "", "end": "", "refresh": "off"}
                times = []
                for run in range(runs + 1):
                    data.clear_caches()
                    began = time.perf_counter()
                    result = call(range_data)
                    elapsed = (time.perf_counter() - began) * 1000
                    if run:
                        times.append(elapsed)
                text = str(result)
                if "empty-error" in text:
                    raise SystemExit(f"{backend} {page}.{name} {range_name}: the callback failed: {text[:600]}")
                median = statistics.median(times)
                rows.append((f"{backend} {page}.{name} ({range_name})", f"{median:.0f}", "ms",
                             f"< {TARGET_MS:.0f} ms" + ("" if median < TARGET_MS else "  MISSED")))
    return rows


# ---- the fleet page at scale ----

FLEET_TARGET_MS = 500.0
#: the agents' interval
AGENT_INTERVAL_SECONDS = 10
#: the engine's round, and how far back its records are planted
ENGINE_ROUND_SECONDS = 30
ENGINE_RECORDS_SECONDS = 600
#: minute rollups are planted this far back
MINUTE_ROLLUPS_SECONDS = 3 * 3600
EVENT_DAYS = 30
#: a log signature's kind, planted with the warnings
LOG_KIND = "log_keepalive"


def failure_kinds(severity: str) -> tuple[str, ...]:
    """Return tsdb.schema's failure kinds of a severity (the warnings with a log signature's kind)."""
    from tsdb.schema import EVENT_KINDS, FAILURE_KINDS

    kinds = tuple(k for k in FAILURE_KINDS if EVENT_KINDS[k].severity == severity)
    return kinds + (LOG_KIND,) if severity == "warning" else kinds


def fleet_host_names(hosts: int) -> list[str]:
    """Return the planted hosts' names."""
    return [f"hv-{index:04d}" for index in range(hosts)]


def plant_fleet(store, hosts: int, hours: float, end_ns: int, slos, progress=None) -> dict[str, int]:
    """Write the fleet the module docstring describes into store, ending at end_ns; return points per
    measurement."""
    import numpy as np

    from alerts.records import BUDGET, BURN
    from alerts.windows import alert_windows
    from tsdb import Point

    random = np.random.default_rng(11)
    names = fleet_host_names(hosts)
    step_ns = AGENT_INTERVAL_SECONDS * 10**9
    start_ns = end_ns - int(hours * 3600) * 10**9
    phase = random.integers(0, step_ns, hosts)
    latency = np.round(random.lognormal(np.log(15.0), 0.5, hosts), 1)
    picked = random.permutation(hosts)
    hung = set(picked[: hosts // 100].tolist())
    down = set(picked[hosts // 100: hosts // 100 + hosts // 200].tolist())
    silent_at = {int(h): int(random.integers(start_ns, end_ns - 1800 * 10**9))
                 for h in picked[hosts // 100 + hosts // 200: 2 * (hosts // 100) + hosts // 200]}
    restarted = picked[2 * (hosts // 100) + hosts // 200: 2 * (hosts // 100) + 2 * (hosts // 200)].tolist()
    leaking = set(picked[2 * (hosts // 100) + 2 * (hosts // 200): 2 * (hosts // 100) + 3 * (hosts // 200)].tolist())
    started_s = (start_ns // 10**9 - random.integers(3600, 30 * 86400, hosts)).astype(float)
    hung_from, down_from = end_ns - 1200 * 10**9, end_ns - 900 * 10**9
    counts = {"libvirtd": 0, "event": 0, "slo_budget": 0, "slo_burn": 0, "sli": 0}
    chunk_ns = 600 * 10**9
    total_chunks = -(-(end_ns - start_ns) // chunk_ns)
    for number, chunk_start in enumerate(range(start_ns, end_ns, chunk_ns)):
        points = []
        for tick in range(chunk_start, min(chunk_start + chunk_ns, end_ns), step_ns):
            wobble = (tick // step_ns) % 5
            for index, name in enumerate(names):
                time_ns = tick + int(phase[index])
                if time_ns >= end_ns or time_ns >= silent_at.get(index, end_ns):
                    continue
                if index in down and time_ns >= down_from:
                    fields = {"up": 0, "hung": 0, "probe_ok": 0}
                elif index in hung and time_ns >= hung_from:
                    fields = {"up": 1, "hung": 1, "probe_ok": 0, "probe_latency_ms": 5000.0, "workers_max": 20,
                              "workers_current": 20, "workers_free": 0, "job_queue_depth": 5 + index % 15}
                else:
                    fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": float(latency[index]) + wobble,
                              "workers_max": 20, "workers_current": 5 + index % 4, "workers_free": 3,
                              "job_queue_depth": 0}
                if fields["up"]:
                    age = (time_ns - start_ns) / (end_ns - start_ns)
                    fields.update(max_fds=8192, rss_bytes=40 * 2**20 + index % 50 * 2**20,
                                  open_fds=round(100 + 7800 * age) if index in leaking else 40 + wobble + index % 30,
                                  start_time_seconds=float(started_s[index]))
                points.append(Point("libvirtd", {"host": name}, fields, time_ns))
        store.write(points)
        counts["libvirtd"] += len(points)
        if progress:
            progress(number + 1, total_chunks)
    events = []
    day_ns = 86400 * 10**9
    for severity, per_day in (("critical", 0.1), ("warning", 0.2)):
        kinds = failure_kinds(severity)
        count = int(hosts * EVENT_DAYS * per_day)
        hosts_of = random.integers(0, hosts, count)
        times = random.integers(end_ns - EVENT_DAYS * day_ns, end_ns, count)
        kinds_of = random.integers(0, len(kinds), count)
        for host, time_ns, kind_index in zip(hosts_of.tolist(), times.tolist(), kinds_of.tolist()):
            kind = kinds[kind_index]
            tags = {"host": names[host], "kind": kind, "severity": severity}
            if kind.startswith("domain_"):
                tags["domain"] = f"vm-{host}-{time_ns % 7}"
            events.append(Point("event", tags, {"message": f"{kind} on {names[host]}", "count": 1}, time_ns))
    for index in hung:
        events.append(Point("event", {"host": names[index], "kind": "hang_start", "severity": "critical"},
                            {"message": "libvirtd hung: every worker busy", "count": 1}, hung_from + int(phase[index])))
    for index in down:
        events.append(Point("event", {"host": names[index], "kind": "daemon_down", "severity": "critical"},
                            {"message": "libvirtd down", "count": 1}, down_from + int(phase[index])))
    for index in restarted:
        events.append(Point("event", {"host": names[index], "kind": "restart", "severity": "warning"},
                            {"message": "libvirtd restarted", "count": 1}, end_ns - 120 * 10**9))
    store.write(events)
    counts["event"] = len(events)
    budget = np.round(random.uniform(-20, 100, hosts), 1)
    for round_ns in range(end_ns - ENGINE_RECORDS_SECONDS * 10**9, end_ns, ENGINE_ROUND_SECONDS * 10**9):
        records = []
        for slo in slos:
            windows = [w.name for w in alert_windows(slo.period)]
            for index, name in [*enumerate(names), (None, None)]:
                tags = {"slo": slo.name} if name is None else {"host": name, "slo": slo.name}
                left = 95.0 if index is None else float(budget[index])
                records.append(Point(BUDGET, tags, {"good_total": 1e6, "valid_total": 1e6 + 1,
                                                    "budget_remaining_percent": left}, round_ns))
                for window in windows:
                    records.append(Point(BURN, {**tags, "window": window},
                                         {"factor": 14.4, "firing": 0, "burn_long": 0.2, "burn_short": 0.1}, round_ns))
        store.write(records)
        counts["slo_budget"] += sum(1 for p in records if p.measurement == BUDGET)
        counts["slo_burn"] += sum(1 for p in records if p.measurement == BURN)
    from alerts.leak_rule import LeakMemory, LeakRule

    memory = LeakMemory(LeakRule())  # the engine's leak round, its own code, over what was planted
    memory.evaluate(store, end_ns - ENGINE_ROUND_SECONDS * 10**9)
    store.write(memory.records)
    counts["libvirtd_leak"] = len(memory.records)
    from alerts.sli import fleet_rollup_points

    hour_ns, minute_ns = 3600 * 10**9, 60 * 10**9
    rollups = []
    for slo in slos:
        for time_ns in range(start_ns - start_ns % hour_ns, end_ns - 2 * hour_ns, hour_ns):
            rollups += [Point("sli", {"host": name, "slo": slo.name, "resolution": "1h"},
                              {"good_total": 360.0 - (index % 3 == 0), "valid_total": 360.0}, time_ns)
                        for index, name in enumerate(names)]
        store.write(rollups + fleet_rollup_points(rollups))  # as the engine writes them
        counts["sli"] += len(rollups)
        rollups = []
        for time_ns in range(end_ns - MINUTE_ROLLUPS_SECONDS * 10**9, end_ns, minute_ns):
            rollups += [Point("sli", {"host": name, "slo": slo.name, "resolution": "1m"},
                              {"good_total": 6.0 - (index in hung), "valid_total": 6.0}, time_ns)
                        for index, name in enumerate(names)]
            if len(rollups) > 200_000:
                store.write(rollups + fleet_rollup_points(rollups))  # as the engine writes them
                counts["sli"] += len(rollups)
                rollups = []
        store.write(rollups + fleet_rollup_points(rollups))  # as the engine writes them
        counts["sli"] += len(rollups)
        rollups = []
    return counts


def _rss_mib() -> float:
    """Return this process' resident memory in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fleet_callbacks(store, hosts: int, hours: float, *, end_ns: int | None = None, slos=None,
                    state_dir: Path | None = None, runs: int = 3, label: str = "", store_pid: int | None = None
                    ) -> list:
    """Return table rows timing the fleet page's callbacks over the last `hours` of a store holding a fleet of
    `hosts` hosts: the first load with nothing cached and once the fleet frame expired (both read the store),
    next page, sort, filter (from the cached fleet), the burn chart; over the live range of as many `hours`
    (range=24h, auto-refresh 1m) the first load once its frame is kept fresh in the background and one background
    re-read of it (dashboard.live_frames); the rows each sends to the browser; the CPU the reads used (this
    process, and the store server's process `store_pid` when given: wall time on a shared machine depends on its
    neighbours, CPU time much less); the load average meanwhile; the process' RSS.

    `end_ns` is the dashboard clock (default: just after the newest libvirtd point), `slos` those of
    deploy/slos.toml by default. Callbacks run directly in the app's request context (no HTTP).
    """
    import datetime as dt

    from alerts.slo import load_slos
    from dashboard import data
    from dashboard.app import create_app
    from dashboard.context import DashboardContext
    from dashboard.fleet_table import PAGE_SIZE

    if slos is None:
        slos = load_slos(ROOT / "deploy" / "slos.toml")
    if end_ns is None:
        now_ns = time.time_ns()
        newest = store.latest("libvirtd", ["up"], now_ns - int(hours * 3600) * 10**9, now_ns)
        end_ns = (int(newest["time"].iloc[0].value) + 10**9) if len(newest) else now_ns
    now = dt.datetime.fromtimestamp(end_ns // 10**9, tz=dt.timezone.utc)
    start = now - dt.timedelta(hours=hours)
    range_data = {"range": "custom", "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
                  "end": now.strftime("%Y-%m-%dT%H:%M:%S"), "refresh": "off"}

    def live_rows(fleet, prefix: str) -> list:
        """Return rows timing the fleet page over a LIVE range of `hours` (range=24h, auto-refresh 1m; the app's
        clock fixed): one background read of the fleet frame as dashboard.live_frames' thread does it every
        FLEET_CACHE_SECONDS, and the first load's callback once that read is kept. Run in the app's request context
        with a keeper of no thread of its own (its reads are the ones timed, none runs beside the other rows)."""
        from dashboard import data
        from dashboard.fleet_table import PAGE_SIZE
        from dashboard.live_frames import LiveFrames
        from dashboard.timerange import RANGES

        name = next((name for name, seconds in RANGES.items() if seconds == hours * 3600), None)
        if name is None:
            return []
        live = {"range": name, "refresh": "1m"}
        request = {"startRow": 0, "endRow": PAGE_SIZE, "sortModel": [], "filterModel": {}}
        moment = [time.monotonic()]  # the keeper's clock, moved FLEET_CACHE_SECONDS at a time (a read is due each)
        keeper = LiveFrames(data.FLEET_CACHE_SECONDS, max_keys=data._FLEET_CACHE_MAX, monotonic=lambda: moment[0],
                            background=False)
        kept, data.live_fleet_frames = data.live_fleet_frames, keeper
        rows, reads, served, store_cpu = [], [], [], []
        try:
            result = fleet.hosts_page(request, live, [], "", "")  # the first ask reads itself; the range is watched
            for run in range(runs + 1):
                began_store = _cpu_seconds(store_pid) if store_pid else 0.0
                began = time.perf_counter()
                moment[0] += data.FLEET_CACHE_SECONDS
                if keeper.refresh_due(moment[0]) != 1:
                    raise SystemExit(f"{prefix}fleet live range: the keeper did not re-read the watched range")
                took = (time.perf_counter() - began) * 1000
                used = ((_cpu_seconds(store_pid) - began_store) if store_pid else 0.0) * 1000
                began = time.perf_counter()
                result = fleet.hosts_page(request, live, [], "", "")
                if run:
                    reads.append(took)
                    store_cpu.append(used)
                    served.append((time.perf_counter() - began) * 1000)
        finally:
            data.live_fleet_frames = kept
        text = str(result)
        if "empty-error" in text or "bad-input" in text:
            raise SystemExit(f"{prefix}fleet live range: the callback failed: {text[:600]}")
        median = statistics.median(served)
        rows.append((f"{prefix}fleet first load, live range kept fresh in the background", f"{median:.0f}", "ms",
                     f"< {FLEET_TARGET_MS:.0f} ms" + ("" if median < FLEET_TARGET_MS else "  MISSED")))
        rows.append((f"{prefix}fleet background re-read of the live fleet frame", f"{statistics.median(reads):.0f}",
                     "ms", f"about every {data.FLEET_CACHE_SECONDS} s while watched"))
        if store_pid:
            rows.append((f"{prefix}  CPU used: store server", f"{statistics.median(store_cpu):.0f}", "ms", ""))
        return rows

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        app = create_app(DashboardContext(store, slos, state_dir or Path(tmp) / "alerts", clock=lambda: now))
        app.server.test_client().get("/_dash-layout")  # the first request moves the pages' callbacks into this app
        fleet = sys.modules["dashboard.pages.fleet"]

        def page(start_row=0, sort=(), statuses=(), text=""):
            request = {"startRow": start_row, "endRow": start_row + PAGE_SIZE,
                       "sortModel": [{"colId": c, "sort": d} for c, d in sort], "filterModel": {}}
            return lambda: fleet.hosts_page(request, range_data, list(statuses), text, "")

        calls = [
            ("first load, nothing cached", page(), "all"),
            ("first load, fleet frame expired", page(), "frames"),
            ("next page", page(PAGE_SIZE), False),
            ("sort by probe ms, worst first", page(sort=[("probe_latency_ms", "desc")]), False),
            ("filter hung or down, name holds 1", page(statuses=("hung", "down"), text="1"), False),
            ("summary strip, fleet frame cached", lambda: fleet.summary(range_data, 0, ""), False),
            ("failures heatmap", lambda: fleet.failure_heatmap(range_data, 0), "all"),
            ("burn chart", lambda: fleet.burn_chart(range_data, 0), "all"),
        ]
        rows = []
        prefix = f"{label} " if label else ""
        load_before = os.getloadavg()[0]
        with app.server.test_request_context("/"):
            page()()  # the fleet frame is cached for the callbacks that read no store
            for name, call, cold in calls:
                times, own_cpu, store_cpu, result = [], [], [], None
                for run in range(runs + 1):
                    if cold:
                        data.clear_caches(fleet_frames_only=cold == "frames")
                    else:
                        data.fleet_frame(store, _range_of(range_data, end_ns), slos)  # keep it fresh
                    began, began_cpu = time.perf_counter(), time.process_time()
                    began_store = _cpu_seconds(store_pid) if store_pid else 0.0
                    result = call()
                    if run:
                        times.append((time.perf_counter() - began) * 1000)
                        own_cpu.append((time.process_time() - began_cpu) * 1000)
                        store_cpu.append(((_cpu_seconds(store_pid) - began_store) if store_pid else 0.0) * 1000)
                text = str(result)
                if "empty-error" in text or "bad-input" in text:
                    raise SystemExit(f"{prefix}fleet {name}: the callback failed: {text[:600]}")
                sent = len(result[1]["rowData"]) if isinstance(result, tuple) else 0
                median = statistics.median(times)
                rows.append((f"{prefix}fleet {name}", f"{median:.0f}", "ms",
                             f"< {FLEET_TARGET_MS:.0f} ms" + ("" if median < FLEET_TARGET_MS else "  MISSED")))
                if isinstance(result, tuple):
                    rows.append((f"{prefix}  rows sent to the browser", str(sent), "rows", f"<= {PAGE_SIZE}"))
                if cold:
                    cpu = f"{statistics.median(own_cpu):.0f}"
                    if store_pid:
                        cpu += f" + {statistics.median(store_cpu):.0f}"
                    rows.append((f"{prefix}  CPU used: dashboard process" + (" + store server" if store_pid else ""),
                                 cpu, "ms", ""))
            rows += live_rows(fleet, prefix)
        rows.append((f"{prefix}load average while measuring", f"{load_before:.1f} to {os.getloadavg()[0]:.1f}", "",
                     f"on {os.cpu_count()} CPUs"))
        rows.append((f"{prefix}fleet hosts in the table", str(len(data.fleet_frame(store, _range_of(range_data, end_ns),
                                                                                   slos))), "hosts", ""))
        rows.append((f"{prefix}RSS after the fleet callbacks", f"{_rss_mib():.0f}", "MiB", ""))
    return rows


def _range_of(range_data: dict, end_ns: int):
    """Return the TimeRange the dashboard resolves range_data to at end_ns."""
    from dashboard.timerange import range_from_data

    return range_from_data(range_data, end_ns)


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process pid has used, in seconds (proc(5): utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, quiet_seconds: int = 5, busy_percent: float = 10.0, max_seconds: float = 600.0) -> float:
    """Wait until process pid has used under busy_percent of a CPU for quiet_seconds in a row (InfluxDB compacting
    what was just planted is busy for minutes, and would be measured too); return the seconds waited."""
    began, quiet, last = time.monotonic(), 0, _cpu_seconds(pid)
    while quiet < quiet_seconds and time.monotonic() - began < max_seconds:
        time.sleep(1.0)
        now = _cpu_seconds(pid)
        quiet = quiet + 1 if (now - last) * 100 < busy_percent else 0
        last = now
    return time.monotonic() - began


def fleet_main(args) -> int:
    """Plant a fleet of args.fleet_hosts hosts x args.fleet_hours hours into each store, time the fleet page."""
    from alerts.slo import load_slos
    from tsdb import open_store

    slos = load_slos(ROOT / "deploy" / "slos.toml")
    now_ns = time.time_ns()
    end_ns = now_ns - now_ns % (60 * 10**9)
    rows = [("fleet planted", f"{args.fleet_hosts} hosts x {args.fleet_hours:g} h", "", "")]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-fleet-") as tmp:
        tmp = Path(tmp)
        server = InfluxDBServer(tmp / "influxdb").start() if "influxdb" in args.backends.split(",") else None
        try:
            stores = {}
            if server:
                server.create_database(DATABASE)
                stores["influxdb"] = open_store(f"influxdb://127.0.0.1:{server.port}/{DATABASE}")
            if "duckdb" in args.backends.split(","):
                stores["duckdb"] = open_store(f"duckdb://{tmp}/store.duckdb")
            for backend, store in stores.items():
                began = time.perf_counter()

                def progress(done, total, backend=backend):
                    if done % 12 == 0 or done == total:
                        print(f"{backend}: libvirtd {done}/{total} chunks, {time.perf_counter() - began:.0f} s",
                              file=sys.stderr, flush=True)

                counts = plant_fleet(store, args.fleet_hosts, args.fleet_hours, end_ns, slos, progress)
                seconds = time.perf_counter() - began
                rows.append((f"{backend}: planted", f"{sum(counts.values()):,}", "points",
                             ", ".join(f"{k} {v:,}" for k, v in counts.items())))
                rows.append((f"{backend}: planting took", f"{seconds:.0f}", "s", ""))
                print(f"{backend}: planted in {seconds:.0f} s", file=sys.stderr, flush=True)
                if backend == "influxdb":
                    waited = wait_until_idle(server.process.pid)
                    rows.append((f"{backend}: waited for its compactions to settle", f"{waited:.0f}", "s", ""))
                rows += fleet_callbacks(store, args.fleet_hosts, args.fleet_hours, end_ns=end_ns, slos=slos,
                                        state_dir=tmp / "alerts", runs=args.runs, label=backend,
                                        store_pid=server.process.pid if backend == "influxdb" else None)
                store.close()
        finally:
            if server:
                server.stop()
    print_table(rows)
    return 0


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--domains", type=int, default=4, help="guests per host")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="influxdb,duckdb", help="comma-separated: influxdb, duckdb")
    parser.add_argument("--fleet-hosts", type=int, default=0,
                        help="measure the fleet page over a planted fleet of this many hosts instead")
    parser.add_argument("--fleet-hours", type=float, default=24.0, help="hours of the planted fleet and the range")
    args = parser.parse_args()
    if args.fleet_hosts:
        return fleet_main(args)

    from alerts.slo import load_slos
    from simulator import FleetSpec, simulate
    from tsdb import open_store

    slos = load_slos(ROOT / "deploy" / "slos.toml")
    began = time.perf_counter()
    simulation = simulate(FleetSpec(hosts=args.hosts, days=args.days, seed=7, domains_per_host=args.domains))
    simulated_seconds = time.perf_counter() - began
    end_ns = simulation.end_ns
    host = simulation.hosts[len(simulation.hosts) // 2]
    points = simulation.point_count()
    rows = [("fleet simulated", f"{args.hosts} hosts x {args.days:g} d", "", ""),
            ("points", f"{points:,}", "points", ""),
            ("simulation", f"{simulated_seconds:.1f}", "s", "")]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        tmp = Path(tmp)
        server = InfluxDBServer(tmp / "influxdb").start()
        try:
            server.create_database(DATABASE)
            stores = {"influxdb": open_store(f"influxdb://127.0.0.1:{server.port}/{DATABASE}"),
                      "duckdb": open_store(f"duckdb://{tmp}/store.duckdb")}
            stores = {name: store for name, store in stores.items() if name in args.backends.split(",")}
            for backend, store in stores.items():
                seconds = fill(store, simulation, slos, end_ns)
                rows.append((f"{backend}: write points and SLI rollups", f"{seconds:.0f}", "s", ""))
                print(f"{backend}: filled in {seconds:.0f} s", file=sys.stderr, flush=True)
            for backend, store in stores.items():
                rows += time_callbacks(f"{backend}, no engine records:", store, slos, tmp / "alerts", end_ns, host,
                                       args.runs, only=("slo_cards", "hosts_page"))
                record_evaluations(store, slos, end_ns)
                rows += time_callbacks(backend, store, slos, tmp / "alerts", end_ns, host, args.runs)
                store.close()
        finally:
            server.stop()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
